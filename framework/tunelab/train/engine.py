"""Train and evaluate one approach (model × method × peft) on prepared data.

Reads top to bottom: seed → model → adaptation → objective → evaluation → costs.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Callable

from tunelab.api import ModelRequest, TrainJob
from tunelab.config import ConfigError, RunConfig
from tunelab.data.engine import Prepared
from tunelab.plugins import Plugins
from tunelab.train.meters import EnergySettings, ResourceMeter, count_parameters

log = logging.getLogger(__name__)

MetricsSink = Callable[[dict[str, float], "int | None"], None]


def _log_forwarder(sink: MetricsSink) -> Any:
    """A transformers callback that forwards the trainer's logs (per logging step)."""
    from transformers import TrainerCallback

    class ForwardLogs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D401 - transformers API
            numbers = {f"train/{k}": float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))}
            if numbers:
                sink(numbers, state.global_step)

    return ForwardLogs()


def check_columns(rc: RunConfig, required: tuple[str, ...], prepared: Prepared) -> None:
    train = prepared.splits.get("train")
    if train is None or len(train) == 0:
        raise ConfigError(f"the prepared data has no 'train' rows (splits: {prepared.summary.get('splits')})")
    missing = [c for c in required if c not in train.column_names]
    if missing:
        raise ConfigError(
            f"method '{rc.method.name}' needs columns {list(required)}, but the prepared data lacks {missing} "
            f"(it has {train.column_names}). Map them in the data config, e.g. data.columns={{question: prompt}}."
        )


def train_and_evaluate(rc: RunConfig, plugins: Plugins, prepared: Prepared, run_dir: Path, sink: MetricsSink) -> dict[str, float]:
    from transformers import set_seed

    registry = plugins.registry
    method = rc.method.instantiate(registry)
    check_columns(rc, method.required_columns, prepared)
    set_seed(rc.seed)

    labels: list[str] = []
    if method.task == "sequence_classification":
        train = prepared.splits["train"]
        if rc.label_column not in train.column_names:
            raise ConfigError(
                f"method '{rc.method.name}' trains a classifier but the prepared data has no '{rc.label_column}' "
                f"column (it has {train.column_names}); set pipeline.label_column or map a column to label"
            )
        # rows without a label (None or blank) are unlabelled, not a class of their own
        labels = sorted({str(v) for v in train[rc.label_column] if v is not None and str(v).strip()})
    adaptation = rc.peft.instantiate(registry)
    quantization = None
    if getattr(adaptation, "load_in_4bit", False):  # QLoRA: the base is loaded quantized
        reason = adaptation.unavailable_reason()
        if reason:
            raise ConfigError(f"peft={rc.peft.name}: {reason}")
        quantization = adaptation.quantization_kwargs()
    request = ModelRequest(task=method.task, labels=labels, quantization=quantization)
    try:
        loaded = rc.model.instantiate(registry).load(prepared.splits, rc.cache_dir, request)
    except ValueError as exc:
        raise ConfigError(f"model '{rc.model.name}' for method '{rc.method.name}': {exc}") from None
    peft_config = adaptation.peft_config(loaded)
    job = TrainJob(
        model=loaded,
        splits=prepared.splits,
        peft_config=peft_config,
        settings=rc.train,
        output_dir=run_dir,
        seed=rc.seed,
        callbacks=[_log_forwarder(sink)],
        request=request,
        label_column=rc.label_column,
        data_metadata=prepared.summary.get("metadata") or {},
    )
    energy = EnergySettings.from_train_settings(rc.train)
    with ResourceMeter(energy=energy) as meter:
        outcome = method.train(job)
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

    evaluator = rc.evaluator.instantiate(registry)
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
