"""The ``classify`` method: fine-tunes a sequence classifier (all weights, or a PEFT
adapter), with an optionally class-weighted loss."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, List  # noqa: UP035 (field types are printed as written: List[...] stays)

from tunelab.api import PROMPT, TEXT, Method, TrainJob, TrainOutcome
from tunelab_builtin._lib.choices import check_choice
from tunelab_builtin._lib.train_inputs import check_text_columns, label_indices, text_column
from tunelab_builtin.methods._classifier import (
    CLASS_WEIGHT_MODES,
    resolve_class_weights,
    write_labels_file,
)


@dataclass
class ClassifyConfig:
    #: candidate text columns; the first one the data has is the input text
    text_columns: List[str] = field(default_factory=lambda: [TEXT, PROMPT])
    #: none, auto (the weights of a class_weights data step, if it ran) or balanced (from the train split)
    class_weights: str = "none"


@functools.cache
def _weighted_trainer_class() -> type:
    import torch
    from transformers import Trainer

    class WeightedTrainer(Trainer):
        """A Trainer whose loss is (optionally class-weighted) cross-entropy of the logits."""

        def __init__(self, *args: Any, class_weights: list[float] | None = None, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.class_weights = class_weights
            # the loss below is a batch mean: let the Trainer scale it for gradient accumulation
            self.model_accepts_loss_kwargs = False

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: D401 - Trainer API
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs.logits.float()
            weight = None
            if self.class_weights is not None:
                weight = torch.tensor(self.class_weights, dtype=logits.dtype, device=logits.device)
            loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1), weight=weight)
            return (loss, outputs) if return_outputs else loss

    return WeightedTrainer


class Classify(Method):
    """Fine-tunes a sequence classifier (all weights, or a PEFT adapter) with optional class weights."""

    task = "sequence_classification"

    def __init__(self, config: ClassifyConfig):
        super().__init__(config)
        check_text_columns("classify.text_columns", config.text_columns)
        check_choice("classify.class_weights", config.class_weights, CLASS_WEIGHT_MODES)

    def train(self, job: TrainJob) -> TrainOutcome:
        from transformers import DataCollatorWithPadding, TrainingArguments

        from tunelab.train.arguments import common_training_arguments, run_trainer

        s = job.settings
        labels = list(job.request.labels)
        if len(labels) < 2:
            raise ValueError(f"method=classify needs at least two classes, the training data has {labels}")
        train = job.splits["train"]
        column = text_column(train, self.config.text_columns)
        tokenizer = job.model.tokenizer
        weights = resolve_class_weights(self.config.class_weights, labels, train[job.label_column], job.data_metadata)

        def encode(batch: dict[str, list]) -> dict[str, list]:
            enc = tokenizer([t or "" for t in batch[column]], truncation=True, max_length=s.max_length)
            return {
                "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"],
                "labels": label_indices(batch[job.label_column], labels),
            }

        dataset = train.map(encode, batched=True, remove_columns=train.column_names, desc="tokenize")
        dataset = dataset.filter(lambda row: row["labels"] >= 0)
        model = job.model.model
        if job.peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, job.peft_config)
        args = TrainingArguments(**common_training_arguments(job))
        trainer = _weighted_trainer_class()(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=job.callbacks,
            class_weights=weights,
        )
        result = run_trainer(trainer, job)
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        metrics = {
            "train_loss": float(result.training_loss),
            "train_loss_first": float(losses[0]) if losses else float("nan"),
            "train_loss_last": float(losses[-1]) if losses else float("nan"),
            "train_steps": trainer.state.global_step,
            "train_rows": len(dataset),
            "train_classes": len(labels),
            "train_class_weighted": float(weights is not None),
            "train_samples_per_second": float(result.metrics.get("train_samples_per_second", float("nan"))),
        }
        saved_to = None
        if s.save_model:
            saved_to = job.output_dir / "model"
            trainer.save_model(str(saved_to))
            tokenizer.save_pretrained(str(saved_to))
            write_labels_file(
                saved_to,
                method="classify",
                task="sequence_classification",
                labels=labels,
                text_column=column,
                max_length=s.max_length,
                adapter=job.peft_config is not None,
                class_weights=weights,
            )
        return TrainOutcome(model=trainer.model, tokenizer=tokenizer, metrics=metrics, saved_to=saved_to)
