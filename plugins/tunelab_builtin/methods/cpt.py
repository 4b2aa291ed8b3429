"""The ``cpt`` method: continued pretraining on raw text (next-token loss on a causal LM,
masked-token loss on an encoder)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List  # noqa: UP035 (field types are printed as written: List[...] stays)

from tunelab.api import COMPLETION, PROMPT, Method, TrainJob, TrainOutcome
from tunelab.train.arguments import common_training_arguments, loss_metrics, run_trainer, save_trained
from tunelab_builtin._lib.train_inputs import documents


@dataclass
class CptConfig:
    #: columns joined (with ``separator``) into the training text when the data has no ``text`` column
    text_fields: List[str] = field(default_factory=lambda: [PROMPT, COMPLETION])
    #: what goes between the joined fields
    separator: str = "\n"
    #: append the tokenizer's end-of-sequence token to every document
    add_eos: bool = True


class Cpt(Method):
    """Continued pretraining on raw text: next-token loss on every token of a causal LM, or
    masked-token loss (15% of tokens) on an encoder."""

    task = "causal_lm"
    alternative_tasks = ("masked_lm",)

    def __init__(self, config: CptConfig):
        super().__init__(config)
        if not config.text_fields or not all(isinstance(c, str) and c for c in config.text_fields):
            raise ValueError(f"cpt.text_fields must be a non-empty list of column names, got {config.text_fields!r}")

    def documents(self, split: Any) -> list[str]:
        return documents(split, self.config.text_fields, self.config.separator, "cpt")

    def train(self, job: TrainJob) -> TrainOutcome:
        from datasets import Dataset
        from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

        s = job.settings
        tokenizer = job.model.tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        eos = tokenizer.eos_token if self.config.add_eos and tokenizer.eos_token else ""
        texts = [d + eos for d in self.documents(job.splits["train"]) if d.strip()]
        if not texts:
            raise ValueError("cpt: every training document is empty")
        enc = tokenizer(texts, truncation=True, max_length=s.max_length)
        dataset = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
        model = job.model.model
        if job.peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, job.peft_config)
        args = TrainingArguments(**common_training_arguments(job))
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=DataCollatorForLanguageModeling(
                tokenizer, mlm=job.model.task == "masked_lm", mlm_probability=0.15
            ),
            callbacks=job.callbacks,
        )
        result = run_trainer(trainer, job)
        metrics = loss_metrics(trainer, result)
        metrics["train_rows"] = len(dataset)
        saved_to = save_trained(trainer, tokenizer, job)
        return TrainOutcome(model=trainer.model, tokenizer=tokenizer, metrics=metrics, saved_to=saved_to)
