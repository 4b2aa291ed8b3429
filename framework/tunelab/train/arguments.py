"""What every transformers/TRL-based objective shares: trainer arguments from the run's
``train`` settings, the loss metrics read from the trainer's log, and saving the result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelab.api import TrainJob


def precision_flags(precision: str) -> dict[str, bool]:
    """bf16/fp16 flags for ``train.precision`` (auto: bf16 on a GPU that supports it)."""
    import torch

    cuda = torch.cuda.is_available()
    if precision == "auto":
        return {"bf16": cuda and torch.cuda.is_bf16_supported(), "fp16": False}
    if precision in ("bf16", "fp16") and not cuda:
        raise ValueError(f"train.precision={precision} needs a CUDA GPU; use auto or fp32 on CPU")
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"train.precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def common_training_arguments(job: TrainJob) -> dict[str, Any]:
    """Keyword arguments for ``transformers.TrainingArguments`` (and TRL's configs, which
    extend it) that follow from ``job.settings``: steps, optimizer, logging, precision,
    seeds, device; tunelab tracks and saves itself, so the trainer does neither."""
    import torch

    s = job.settings
    return {
        "output_dir": str(job.output_dir / "trainer"),
        "max_steps": s.max_steps,
        "num_train_epochs": s.num_epochs,
        "learning_rate": s.learning_rate,
        "per_device_train_batch_size": s.batch_size,
        "gradient_accumulation_steps": s.grad_accum,
        "warmup_steps": s.warmup_steps,
        "weight_decay": s.weight_decay,
        "logging_steps": s.logging_steps,
        # checkpoints only with train.save_steps (tunelab.train.checkpoints); the result is saved by save_trained
        **(
            {"save_strategy": "steps", "save_steps": s.save_steps, "save_total_limit": s.save_total_limit}
            if s.save_steps > 0
            else {"save_strategy": "no"}
        ),
        "eval_strategy": "no",
        "report_to": "none",
        "seed": job.seed,
        "data_seed": job.seed,
        "use_cpu": not torch.cuda.is_available(),
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "activation_checkpointing": s.gradient_checkpointing,
        "include_num_input_tokens_seen": True,
        **precision_flags(s.precision),
    }


def run_trainer(trainer: Any, job: TrainJob) -> Any:
    """``trainer.train()``, continuing from ``job.resume_from`` (a complete checkpoint of this
    job, set when a rerun resumes a killed job) when there is one. Every objective trains
    through this, so ``train.save_steps`` checkpoints can be resumed with any of them."""
    checkpoint = str(job.resume_from) if job.resume_from is not None else None
    return trainer.train(resume_from_checkpoint=checkpoint)


def loss_metrics(trainer: Any, result: Any) -> dict[str, float]:
    """Training loss (overall, first and last logged), steps and samples/s of a finished
    ``trainer.train()`` — the shape every objective reports."""
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    nan = float("nan")
    metrics = {
        "train_loss": float(result.training_loss),
        "train_loss_first": float(losses[0]) if losses else nan,
        "train_loss_last": float(losses[-1]) if losses else nan,
        "train_steps": trainer.state.global_step,
        "train_samples_per_second": float(result.metrics.get("train_samples_per_second", nan)),
    }
    tokens = int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
    if tokens:  # trainers whose batches carry input_ids count them
        runtime = result.metrics.get("train_runtime") or 0
        metrics["train_tokens"] = tokens
        metrics["train_tokens_per_second"] = tokens / runtime if runtime else nan
    return metrics


def budget_callback(settings: Any) -> Any:
    """A transformers callback that stops training at ``train.max_train_tokens`` input tokens
    or ``train.max_train_seconds`` seconds (budget matching), whichever comes first; it
    records which limit stopped the run in ``stopped_by``."""
    import time

    from transformers import TrainerCallback

    class Budget(TrainerCallback):
        stopped_by = ""
        started = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if settings.max_train_tokens and state.num_input_tokens_seen >= settings.max_train_tokens:
                self.stopped_by = "tokens"
            elif settings.max_train_seconds and time.perf_counter() - self.started >= settings.max_train_seconds:
                self.stopped_by = "seconds"
            if self.stopped_by:
                control.should_training_stop = True
            return control

    return Budget()


def save_trained(trainer: Any, tokenizer: Any, job: TrainJob, save: Callable[[str], Any] | None = None) -> Path | None:
    """Save the model (or adapter) and tokenizer to ``output_dir/model`` unless
    ``train.save_model`` is off; ``save`` replaces ``trainer.save_model``."""
    if not job.settings.save_model:
        return None
    saved_to = job.output_dir / "model"
    (save or trainer.save_model)(str(saved_to))
    tokenizer.save_pretrained(str(saved_to))
    return saved_to
