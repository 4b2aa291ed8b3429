"""One run: validate → prepare data → train → evaluate → write results, with the
lifecycle hooks around it. Called by the Hydra app once per job."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tunelab.api import RunInfo
from tunelab.config import Origin, RunConfig, check_sources, validate
from tunelab.config.validation import resolved_config
from tunelab.plugins import Plugins, call_safely, get_plugins
from tunelab.redaction import (
    install_log_redaction,
    redact_hydra_outputs,
    redact_secrets,
    redact_text,
    remember_config,
)

log = logging.getLogger("tunelab")

STAGES = ("prepare", "train")
#: Top-level keys left out of a run's fingerprint: where things are cached or logged and how
#: many workers prepare the data change no result (see :func:`config_fingerprint`).
VOLATILE_KEYS = frozenset({"hydra", "cache_dir", "num_proc", "tracker", "resume"})
#: Keys of the ``train`` section left out of the fingerprint: checkpointing changes no result,
#: so a job rerun with checkpoints on (or off) still matches the same finished job.
VOLATILE_TRAIN_KEYS = frozenset({"save_steps", "save_total_limit"})
#: Written in a sweep job's directory instead of metrics.json when the job was resumed.
RESUME_MARKER = "resumed.txt"


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
    return run_dir, name, group_of(group_dir), overrides


def group_of(directory: Path) -> str:
    """The tracker group of the runs in a sweep (or single-run) directory: its last two
    path parts, e.g. ``multirun/2026-11-21/09-30-00`` -> ``2026-11-21_09-30-00``."""
    return "_".join(Path(directory).parts[-2:])


def validated_config(cfg: DictConfig, registry: Any, validated: RunConfig | None = None) -> RunConfig:
    """The job's config validated: ``validated`` (validated, its components built, by the command
    line's check) when the job's composed config resolves to the same values (``resume`` aside:
    the job takes it out), so every component is built once; else :func:`validate`."""
    if validated is not None:
        resolved = resolved_config(cfg)
        if resolved == {key: value for key, value in validated.resolved.items() if key != "resume"}:
            return dataclasses.replace(validated, resolved=resolved)
    return validate(cfg, registry, Origin.from_hydra())


def _register_trackers(plugins: Plugins, rc: RunConfig) -> list[str]:
    names = []
    for selected in rc.trackers:
        tracker = selected.instantiate(plugins.registry)
        name = f"tracker:{selected.name}:{id(tracker)}"
        plugins.pm.register(tracker, name=name)
        names.append(name)
    return names


def run(cfg: DictConfig, stage: str = "train", validated: RunConfig | None = None) -> dict[str, Any]:
    """Run one job and return its metrics. Raises on failure after telling the hooks.

    ``validated``: the config the command line's check validated in this process before Hydra
    composed it again for this job (see :func:`validated_config`)."""
    from tunelab.data.cache import copy_artifacts, prepare
    from tunelab.data.names import name_scrubber

    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}")
    cfg, resume = _take_resume_flag(cfg)
    plugins = get_plugins()
    # secrets out of what Hydra wrote before the job started (.hydra/*.yaml, multirun.yaml)
    # and out of every log line: first by pattern, then by the values this config holds
    install_log_redaction()
    redact_hydra_outputs()
    rc = validated_config(cfg, plugins.registry, validated)
    check_sources(rc, plugins.registry)  # data.path is there: before the run directory or any data work
    remember_config(rc.resolved)
    redact_hydra_outputs()
    run_dir, name, group, overrides = _hydra_context()
    name, overrides = redact_text(name), [redact_text(o) for o in overrides]
    scrub_name = name_scrubber(rc, plugins.registry)
    if scrub_name is not None:  # the run name (trackers' run names, TensorBoard folders) may name a data file
        name, overrides = scrub_name(name), [scrub_name(o) for o in overrides]
    run_dir.mkdir(parents=True, exist_ok=True)
    public_config = redact_secrets(rc.resolved)
    public_config.pop("hydra", None)
    fingerprint = config_fingerprint(public_config, stage)
    sweep_dir = _sweep_dir()
    if resume and sweep_dir is not None:  # a sweep rerun in the same directory: skip finished jobs
        finished = find_finished_run(sweep_dir, fingerprint, prefer=run_dir)
        if finished is not None:
            return _resumed(run_dir, *finished)
    (run_dir / RESUME_MARKER).unlink(missing_ok=True)  # from an earlier rerun; this time it runs
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
    warned: set[tuple[str, str]] = set()

    def hook(name: str, **kwargs: Any) -> None:
        """A lifecycle hook; a tracker or plugin that raises costs a warning, never the run."""
        call_safely(plugins.pm, name, plugins.suppliers, warned, plugins.registry, **kwargs)

    tracker_names = _register_trackers(plugins, rc)
    metrics: dict[str, Any] = {}
    stop_signal = _stop_on_sigterm()
    try:
        hook("tunelab_run_start", run=info)
        if stage == "train":  # refuse an approach that cannot work before any data or model is touched
            from tunelab.train.compat import check_approach

            check_approach(rc, plugins.registry)
        started = time.perf_counter()
        prepared = prepare(rc, plugins, failed_dir=run_dir)  # a failure keeps its quarantine and ledger here
        copy_artifacts(prepared, run_dir)
        # directory + key: what a tracker needs to log the prepared data as an artifact
        data_stats = {
            **prepared.summary,
            "directory": str(prepared.directory),
            "key": prepared.key,
            "seconds": round(time.perf_counter() - started, 3),
        }
        hook("tunelab_stage_end", run=info, stage="prepare", stats=data_stats)
        log.info("prepared data: %s (%s)", prepared.directory, "cache hit" if prepared.cache_hit else "built")
        metrics.update({f"data_{k}": v for k, v in prepared.summary["splits"].items()})
        metrics["data_cache_hit"] = prepared.cache_hit
        metrics["data_key"] = prepared.key
        if stage == "train":
            from tunelab.train import checkpoints
            from tunelab.train.compat import check_evaluation_rows
            from tunelab.train.engine import train_and_evaluate

            check_evaluation_rows(rc, prepared.summary["splits"], prepared.summary)  # before the model is loaded

            def sink(values: dict[str, float], step: int | None) -> None:
                hook("tunelab_metrics", run=info, metrics=values, step=step)

            # train.save_steps: a rerun of a sweep continues a killed job from its latest checkpoint
            resume_from = (
                checkpoints.claim(run_dir, fingerprint, resume and sweep_dir is not None)
                if rc.train.save_steps
                else None
            )
            results = train_and_evaluate(rc, plugins, prepared, run_dir, sink, resume_from=resume_from)
            metrics.update(results)
            hook("tunelab_stage_end", run=info, stage="train", stats=results)
            sink({k: v for k, v in results.items() if isinstance(v, (int, float))}, None)
        metrics["status"] = "ok"
        _write_metrics(run_dir, metrics, info, fingerprint)
        if stage == "train":  # the checkpoints of this job, or of an earlier attempt, are of no more use
            checkpoints.remove(run_dir)
        hook("tunelab_run_end", run=info, status="ok", metrics=metrics, error=None)
        return metrics
    except BaseException as exc:
        metrics["status"] = "failed"
        metrics["error"] = redact_text(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM (the launcher's job process, _stop_on_sigterm)
            metrics["interrupted"] = str(exc) or "KeyboardInterrupt"
            metrics["error"] = f"interrupted ({metrics['interrupted']}); a sweep rerun with resume=true runs it again"
        _write_metrics(run_dir, metrics, info, fingerprint)
        (run_dir / "error.txt").write_text(redact_text(traceback.format_exc()))
        hook("tunelab_run_end", run=info, status="failed", metrics=metrics, error=metrics["error"])
        raise
    finally:
        for tracker_name in tracker_names:
            plugins.pm.unregister(name=tracker_name)
        stop_signal.restore()


class _StopOnSigterm:
    """While a run runs in the main thread with SIGTERM's default action (a plain ``tunelab``
    process; the gpu_pool job process has its own handler), SIGTERM raises KeyboardInterrupt
    so the run records that it was interrupted. ``restore`` puts the default back and, after
    such a stop, ends the process by SIGTERM as the default action would have (exit status
    143): Hydra's basic launcher does not start the sweep's next job."""

    def __init__(self) -> None:
        self.installed = False
        self.received = False
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, self._raise)
            self.installed = True

    def _raise(self, signum: int, frame: Any) -> None:
        self.received = True
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    def restore(self) -> None:
        if not self.installed:
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self.installed = False
        if self.received:
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGTERM)


def _stop_on_sigterm() -> _StopOnSigterm:
    return _StopOnSigterm()


def _write_metrics(run_dir: Path, metrics: dict[str, Any], info: RunInfo, fingerprint: str | None = None) -> None:
    payload = {"run": info.name, "group": info.group, "overrides": info.overrides, "metrics": metrics}
    if fingerprint is not None:
        payload["fingerprint"] = fingerprint
    # atomically: jobs of a parallel sweep read each other's metrics.json (resume)
    path = run_dir / "metrics.json"
    tmp = path.with_name(f".metrics.json.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


# --- resume: a rerun of a sweep skips the jobs that already finished ----------------------


def _take_resume_flag(cfg: DictConfig) -> tuple[DictConfig, bool]:
    """The ``resume`` setting (default true) and the config without it (it is not a run setting)."""
    if "resume" not in cfg:
        return cfg, True
    from omegaconf import open_dict

    from tunelab.config import check_resume

    value = check_resume(cfg.get("resume"))
    cfg = cfg.copy()
    with open_dict(cfg):
        del cfg["resume"]
    return cfg, value


def config_fingerprint(config: dict[str, Any], stage: str) -> str:
    """Identity of a job for resume: its resolved config (secrets redacted, without
    :data:`VOLATILE_KEYS`) and its stage. Two jobs with the same fingerprint compute the same thing."""
    kept = {k: v for k, v in config.items() if k not in VOLATILE_KEYS}
    if isinstance(kept.get("train"), dict):
        kept["train"] = {k: v for k, v in kept["train"].items() if k not in VOLATILE_TRAIN_KEYS}
    blob = json.dumps({"stage": stage, "config": kept}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _sweep_dir() -> Path | None:
    """The sweep directory of a multirun job; None for a single run (which never resumes)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return Path(str(HydraConfig.get().sweep.dir)).absolute()


def find_finished_run(
    sweep_dir: Path, fingerprint: str, prefer: Path | None = None
) -> tuple[Path, dict[str, Any]] | None:
    """A job directory under ``sweep_dir`` whose metrics.json has this fingerprint and
    status ok (``prefer`` first: a rerun usually lands in the same directory)."""
    paths = sorted(sweep_dir.rglob("metrics.json"))
    if prefer is not None:
        paths.sort(key=lambda p: p.parent.resolve() != prefer.resolve())
    for path in paths:
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError):  # being written or damaged: not a finished job
            continue
        if payload.get("fingerprint") == fingerprint and (payload.get("metrics") or {}).get("status") == "ok":
            return path.parent, payload
    return None


def _resumed(run_dir: Path, original: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """Return the finished job's metrics without running again. No second metrics.json is
    written (the comparison counts each metrics.json once); ``resumed.txt`` names the original."""
    (run_dir / RESUME_MARKER).write_text(
        f"resumed_from: {original}\n"
        "This job's config matches a finished job, so it did not run again; "
        f"its metrics are in {original / 'metrics.json'}.\n"
        "Run the sweep with resume=false to run every job again.\n"
    )
    log.info("resume: same config finished in %s; not running again (resume=false runs it)", original)
    return {**(payload.get("metrics") or {}), "resumed_from": str(original)}
