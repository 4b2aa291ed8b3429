"""Trainer arguments every objective shares, from the run's ``train`` settings."""

from __future__ import annotations

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
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": "none",
        "seed": job.seed,
        "data_seed": job.seed,
        "use_cpu": not torch.cuda.is_available(),
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "activation_checkpointing": s.gradient_checkpointing,
        **precision_flags(s.precision),
    }
