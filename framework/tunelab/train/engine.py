"""Train and evaluate one approach (model × method × peft) on prepared data.

Reads top to bottom: seed → model → adaptation → objective → evaluation → costs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelab.api import ModelRequest, TrainJob
from tunelab.config import ConfigError, RunConfig
from tunelab.data.cache import Prepared
from tunelab.errors import TunelabError
from tunelab.plugins import Plugins
from tunelab.train.arguments import budget_callback
from tunelab.train.compat import check_approach
from tunelab.train.meters import EnergySettings, ResourceMeter, count_parameters

log = logging.getLogger(__name__)

MetricsSink = Callable[[dict[str, float], "int | None"], None]


class TrainingError(TunelabError):
    """Training ran but its result is unusable (e.g. it diverged)."""


def non_finite_parameters(model: Any) -> list[str]:
    """Names of trained weight tensors holding NaN or inf."""
    import torch

    return [name for name, p in model.named_parameters() if p.requires_grad and not bool(torch.isfinite(p).all())]


def _log_forwarder(sink: MetricsSink) -> Any:
    """A transformers callback that forwards the trainer's logs (per logging step)."""
    from transformers import TrainerCallback

    class ForwardLogs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D401 - transformers API
            numbers = {f"train/{k}": float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))}
            if numbers:
                sink(numbers, state.global_step)

    return ForwardLogs()


def check_columns(rc: RunConfig, method: Any, evaluator: Any, prepared: Prepared) -> None:
    """The prepared data has what the objective trains on and what the evaluator scores."""
    train = prepared.splits.get("train")
    if train is None or len(train) == 0:
        raise ConfigError(f"the prepared data has no 'train' rows (splits: {prepared.summary.get('splits')})")
    needs = [(f"method={rc.method.name}", "train", method.required_columns)]
    split = getattr(evaluator.config, "split", "test")
    needs.append((f"eval={rc.evaluator.name}", split, evaluator.required_columns))
    for who, name, required in needs:
        data = prepared.splits.get(name)
        if data is None or not required:
            continue
        missing = [c for c in required if c not in data.column_names]
        if missing:
            raise ConfigError(
                f"{who} needs columns {list(required)} in the '{name}' split, but the prepared data lacks {missing} "
                f"(it has {data.column_names}). Map them in the data config (e.g. data.columns={{question: prompt}}) "
                f"or choose a {who.split('=')[0]} that fits the data."
            )


def hide_labels(train: Any, label_column: str, fraction: float) -> tuple[Any, int]:
    """``train`` with the labels of all but ``fraction`` of each class's rows set to None, and
    how many were hidden. Which rows keep their label depends only on the row ids (a hash),
    so every approach and every training seed of a sweep sees the same labelled rows. Each
    class keeps at least one label."""
    import hashlib

    from tunelab.api import ROW_ID

    values = train[label_column]
    ids = train[ROW_ID] if ROW_ID in train.column_names else [str(i) for i in range(len(train))]
    by_class: dict[str, list[int]] = {}
    for i, value in enumerate(values):
        if value is not None and str(value).strip():
            by_class.setdefault(str(value), []).append(i)
    hide: set[int] = set()
    for rows in by_class.values():
        rows.sort(key=lambda i: hashlib.blake2b(str(ids[i]).encode(), digest_size=8).digest())
        keep = max(1, round(fraction * len(rows)))
        hide.update(rows[keep:])
    if not hide:
        return train, 0

    def blank(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        return {label_column: [None if i in hide else v for i, v in zip(indices, batch[label_column])]}

    return train.map(blank, batched=True, with_indices=True, desc="label_fraction"), len(hide)


def train_and_evaluate(
    rc: RunConfig,
    plugins: Plugins,
    prepared: Prepared,
    run_dir: Path,
    sink: MetricsSink,
    resume_from: Path | None = None,
) -> dict[str, float]:
    """Train and evaluate; ``resume_from``: a complete checkpoint of this job to continue from
    (see tunelab.train.checkpoints)."""
    from transformers import set_seed

    from tunelab.train.checkpoints import checkpoint_callback, step_of

    registry = plugins.registry
    approach = check_approach(rc, registry)
    method = rc.method.instantiate(registry)
    evaluator = rc.evaluator.instantiate(registry)
    check_columns(rc, method, evaluator, prepared)
    set_seed(rc.seed)

    labels: list[str] = []
    splits = prepared.splits
    label_metrics: dict[str, float] = {}
    classifier = "sequence_classification" in (approach.task, approach.produces)
    if classifier:
        train = prepared.splits["train"]
        if rc.label_column not in train.column_names:
            raise ConfigError(
                f"method '{rc.method.name}' trains a classifier but the prepared data has no '{rc.label_column}' "
                f"column (it has {train.column_names}); set pipeline.label_column or map a column to label"
            )
    if approach.task == "sequence_classification":
        # rows without a label (None or blank) are unlabelled, not a class of their own
        labels = sorted({str(v) for v in train[rc.label_column] if v is not None and str(v).strip()})
    if rc.train.label_fraction < 1.0:
        if not classifier:
            raise ConfigError(
                f"train.label_fraction={rc.train.label_fraction} hides class labels, but method '{rc.method.name}' "
                f"does not train a classifier; remove it or use method=classify, feature or semi_supervised"
            )
        hidden_train, hidden = hide_labels(train, rc.label_column, rc.train.label_fraction)
        splits = {**splits, "train": hidden_train}
        label_metrics = {"train_labels_hidden": hidden, "train_labels_kept": len(train) - hidden}
    adaptation = rc.peft.instantiate(registry)
    # QLoRA: the base is loaded quantized (check_approach made sure the loader and machine can)
    quantization = adaptation.quantization_kwargs() if getattr(adaptation, "load_in_4bit", False) else None
    request = ModelRequest(task=approach.task, labels=labels, quantization=quantization)
    try:
        loaded = rc.model.instantiate(registry).load(prepared.splits, rc.cache_dir, request)
    except ValueError as exc:
        raise ConfigError(f"model '{rc.model.name}' for method '{rc.method.name}': {exc}") from None
    peft_config = adaptation.peft_config(loaded)
    budget = budget_callback(rc.train)
    callbacks = [_log_forwarder(sink), budget]
    if rc.train.save_steps > 0:
        callbacks.append(checkpoint_callback())
    job = TrainJob(
        model=loaded,
        splits=splits,
        peft_config=peft_config,
        settings=rc.train,
        output_dir=run_dir,
        seed=rc.seed,
        callbacks=callbacks,
        request=request,
        label_column=rc.label_column,
        data_metadata=prepared.summary.get("metadata") or {},
        resume_from=resume_from,
    )
    energy = EnergySettings.from_train_settings(rc.train)
    with ResourceMeter(energy=energy) as meter:
        outcome = method.train(job)
    diverged = non_finite_parameters(outcome.model) if hasattr(outcome.model, "named_parameters") else []
    if diverged:
        raise TrainingError(
            f"training diverged: {len(diverged)} trained weight tensors hold NaN/inf (e.g. {diverged[0]}). Lower "
            f"train.learning_rate; for preference methods, "
            "raise train.max_length if prompts leave no room for the answers"
        )
    trainable, total = count_parameters(outcome.model)
    metrics: dict[str, float] = {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_pct": 100.0 * trainable / total if total else 0.0,
        "train_seconds": round(meter.seconds, 3),
        "peak_rss_mb": round(meter.peak_rss_mb, 1),
    }
    if meter.peak_gpu_mb is not None:
        metrics["peak_gpu_mb"] = round(meter.peak_gpu_mb, 1)
    # estimated energy / CO2e of the training block (see tunelab.train.meters)
    assert meter.energy is not None
    metrics["train_cpu_percent"] = round(meter.cpu_percent, 1)
    metrics["energy_kwh"] = meter.energy.kwh
    metrics["co2_g"] = meter.energy.co2_g
    metrics["energy_source"] = meter.energy.source
    metrics.update(outcome.metrics)
    metrics.update(label_metrics)
    if resume_from is not None:  # train_seconds etc. are of this attempt, from that step on
        metrics["train_resumed_from_step"] = step_of(resume_from)
    if rc.train.max_train_tokens or rc.train.max_train_seconds:
        # which limit ended training: tokens, seconds, or steps/epochs (they came first)
        metrics["train_budget_stop"] = budget.stopped_by or "steps"
        if rc.train.max_train_tokens and not metrics.get("train_tokens"):
            log.warning(
                "train.max_train_tokens: method=%s does not count input tokens; the token budget did not apply",
                rc.method.name,
            )

    with ResourceMeter(energy=energy) as eval_meter:
        scores = evaluator.evaluate(job, outcome)
    metrics.update(scores)
    metrics["eval_seconds"] = round(eval_meter.seconds, 3)
    if eval_meter.energy is not None:
        metrics["eval_energy_kwh"] = eval_meter.energy.kwh
    bad = [k for k, v in metrics.items() if isinstance(v, float) and math.isnan(v)]
    if bad:
        log.warning("metrics are NaN: %s", ", ".join(bad))
    return metrics
