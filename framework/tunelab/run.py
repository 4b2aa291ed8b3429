"""One run: validate → prepare data → train → evaluate → write results, with the
lifecycle hooks around it. Called by the Hydra app once per job."""

from __future__ import annotations

import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tunelab.api import RunInfo
from tunelab.config import Origin, RunConfig, redact_secrets, validate
from tunelab.plugins import Plugins, get_plugins

log = logging.getLogger("tunelab")

STAGES = ("prepare", "train")


def _hydra_context() -> tuple[Path, str, str, list[str]]:
    """(run dir, run name, group, overrides) from Hydra, or defaults outside Hydra."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        run_dir = Path.cwd() / "outputs" / time.strftime("%Y-%m-%d_%H-%M-%S")
        return run_dir, run_dir.name, run_dir.name, []
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    overrides = list(hc.overrides.task)
    name = ",".join(o for o in overrides if not o.startswith(("hydra.", "cache_dir="))) or "default"
    # the sweep (or single run) directory, e.g. "2026-11-21_09-30-00", groups W&B runs
    group_dir = Path(hc.sweep.dir) if hc.mode == RunMode.MULTIRUN else run_dir
    group = "_".join(group_dir.parts[-2:])
    return run_dir, name, group, overrides


def _register_trackers(plugins: Plugins, rc: RunConfig) -> list[str]:
    names = []
    for selected in rc.trackers:
        tracker = selected.instantiate(plugins.registry)
        name = f"tracker:{selected.name}:{id(tracker)}"
        plugins.pm.register(tracker, name=name)
        names.append(name)
    return names


def run(cfg: DictConfig, stage: str = "train") -> dict[str, Any]:
    """Run one job and return its metrics. Raises on failure after telling the hooks."""
    from tunelab.data.engine import copy_artifacts, prepare

    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}")
    plugins = get_plugins()
    rc = validate(cfg, plugins.registry, Origin.from_hydra())
    run_dir, name, group, overrides = _hydra_context()
    run_dir.mkdir(parents=True, exist_ok=True)
    public_config = redact_secrets(rc.resolved)
    public_config.pop("hydra", None)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(public_config)))
    info = RunInfo(
        run_dir=run_dir,
        name=name,
        group=group,
        job_type=stage,
        config=public_config,
        overrides=overrides,
        plugins=plugins.versions(),
    )
    hook = plugins.pm.hook
    tracker_names = _register_trackers(plugins, rc)
    metrics: dict[str, Any] = {}
    try:
        hook.tunelab_run_start(run=info)
        started = time.perf_counter()
        prepared = prepare(rc, plugins)
        copy_artifacts(prepared, run_dir)
        data_stats = {**prepared.summary, "seconds": round(time.perf_counter() - started, 3)}
        hook.tunelab_stage_end(run=info, stage="prepare", stats=data_stats)
        log.info("prepared data: %s (%s)", prepared.directory, "cache hit" if prepared.cache_hit else "built")
        metrics.update({f"data_{k}": v for k, v in prepared.summary["splits"].items()})
        metrics["data_cache_hit"] = prepared.cache_hit
        metrics["data_key"] = prepared.key
        if stage == "train":
            from tunelab.train.engine import train_and_evaluate

            def sink(values: dict[str, float], step: int | None) -> None:
                hook.tunelab_metrics(run=info, metrics=values, step=step)

            results = train_and_evaluate(rc, plugins, prepared, run_dir, sink)
            metrics.update(results)
            hook.tunelab_stage_end(run=info, stage="train", stats=results)
            sink({k: v for k, v in results.items() if isinstance(v, (int, float))}, None)
        metrics["status"] = "ok"
        _write_metrics(run_dir, metrics, info)
        hook.tunelab_run_end(run=info, status="ok", metrics=metrics, error=None)
        return metrics
    except BaseException as exc:
        metrics["status"] = "failed"
        metrics["error"] = f"{type(exc).__name__}: {exc}"
        _write_metrics(run_dir, metrics, info)
        (run_dir / "error.txt").write_text(traceback.format_exc())
        try:
            hook.tunelab_run_end(run=info, status="failed", metrics=metrics, error=metrics["error"])
        except Exception:  # a tracker failing must not hide the real error
            log.exception("a tracker failed while reporting the run's failure")
        raise
    finally:
        for tracker_name in tracker_names:
            plugins.pm.unregister(name=tracker_name)


def _write_metrics(run_dir: Path, metrics: dict[str, Any], info: RunInfo) -> None:
    payload = {"run": info.name, "group": info.group, "overrides": info.overrides, "metrics": metrics}
    (run_dir / "metrics.json").write_text(json.dumps(payload, indent=2, default=str))
