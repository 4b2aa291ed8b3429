"""The ``sft`` method: supervised / instruction fine-tuning (TRL SFTTrainer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunelab.api import COMPLETION, PROMPT, Method, TrainJob, TrainOutcome
from tunelab.train.arguments import common_training_arguments, loss_metrics, run_trainer, save_trained
from tunelab.train.formatting import render_pair


def rendered(split: Any, tokenizer: Any) -> Any:
    """prompt/completion columns rendered as model text (chat template when there is one)."""

    def render(batch: dict[str, list]) -> dict[str, list]:
        pairs = [render_pair(tokenizer, p or "", c or "") for p, c in zip(batch[PROMPT], batch[COMPLETION])]
        return {PROMPT: [p for p, _ in pairs], COMPLETION: [c for _, c in pairs]}

    return split.map(render, batched=True, remove_columns=split.column_names, desc="render")


@dataclass
class SftConfig:
    #: compute the loss on completion tokens only (not on the prompt)
    completion_only_loss: bool = True
    #: pack several short examples into one sequence
    packing: bool = False
    #: the column holding the answer to learn; e.g. ``chosen`` trains on the preferred
    #: answers of preference data (prompt/chosen/rejected)
    completion_column: str = COMPLETION


class Sft(Method):
    """Supervised / instruction fine-tuning on prompt/completion rows (TRL SFTTrainer)."""

    required_columns = (PROMPT, COMPLETION)

    def __init__(self, config: SftConfig):
        super().__init__(config)
        if not isinstance(config.completion_column, str) or not config.completion_column.strip():
            raise ValueError(f"sft.completion_column must name a column, got {config.completion_column!r}")
        self.required_columns = (PROMPT, config.completion_column)

    def train(self, job: TrainJob) -> TrainOutcome:
        from trl import SFTConfig, SFTTrainer

        s = job.settings
        tokenizer = job.model.tokenizer
        args = SFTConfig(
            **common_training_arguments(job),
            max_length=s.max_length,
            packing=self.config.packing,
            completion_only_loss=self.config.completion_only_loss,
        )
        train = job.splits["train"]
        if self.config.completion_column != COMPLETION:
            train = train.select_columns([PROMPT, self.config.completion_column]).rename_column(
                self.config.completion_column, COMPLETION
            )
        train_rows = rendered(train, tokenizer)
        trainer = SFTTrainer(
            model=job.model.model,
            args=args,
            train_dataset=train_rows,
            processing_class=tokenizer,
            peft_config=job.peft_config,
            callbacks=job.callbacks,
        )
        result = run_trainer(trainer, job)
        metrics = {
            **loss_metrics(trainer, result),
            "train_rows": len(trainer.train_dataset),
            # TRL drops rows whose completion is cut off entirely by train.max_length
            "train_rows_truncated_away": len(train_rows) - len(trainer.train_dataset),
        }
        saved_to = save_trained(trainer, tokenizer, job)
        return TrainOutcome(model=trainer.model, tokenizer=tokenizer, metrics=metrics, saved_to=saved_to)
