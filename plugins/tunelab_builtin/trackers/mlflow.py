"""The ``mlflow`` tracker: logs to an MLflow tracking store (a local SQLite file by
default), with a comparison run at the end of a sweep. mlflow is imported only when a
run starts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tunelab.api import RunInfo, Tracker, file_lock, hookimpl
from tunelab_builtin.trackers._common import (
    DATA_STATS,
    comparison_files,
    comparison_summary,
    flat_numbers,
    warn_missing,
)


def _sweep_dir_of_job() -> Optional[Path]:
    """The sweep directory when this process runs a multirun job; None otherwise."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:
        return None
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return Path(str(HydraConfig.get().sweep.dir)).absolute()


@dataclass
class MlflowTrackerConfig:
    #: the MLflow experiment the runs go to (created when missing), like W&B's project
    experiment: str = "tunelab"
    #: where runs are stored. null: $MLFLOW_TRACKING_URI when set, else a SQLite store
    #: sqlite:///<sweep dir>/mlflow.db for the jobs of a sweep (<run dir>/mlflow.db for a
    #: single run), with artifacts next to it in mlartifacts/
    tracking_uri: Optional[str] = None
    #: extra tags on every run
    tags: dict[str, str] = field(default_factory=dict)
    #: at the end of a sweep, one more run (tag tunelab.job_type=comparison) with the
    #: comparison report files as artifacts
    log_comparison: bool = True


_MLFLOW_NAME = re.compile(r"[^/\w.\- ]")
#: MLflow's limits (mlflow.utils.validation): batch sizes, key and value lengths
_MLFLOW_BATCH = 100
_MLFLOW_KEY_LENGTH = 250
_MLFLOW_PARAM_LENGTH = 6000
_MLFLOW_TAG_LENGTH = 8000


def _mlflow_key(key: str) -> str:
    """A metric/param name MLflow accepts: only letters, digits, _ - . / and space."""
    return re.sub("/+", "/", _MLFLOW_NAME.sub("_", key)).strip("/")[:_MLFLOW_KEY_LENGTH] or "_"


def _flatten(values: Any, prefix: str = "") -> dict[str, str]:
    """A nested config as MLflow params: ``{"train": {"max_steps": 4}}`` -> ``{"train.max_steps": "4"}``;
    lists as JSON."""
    out: dict[str, str] = {}
    if isinstance(values, dict) and values:
        for key, value in values.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    text = json.dumps(values, default=str) if isinstance(values, (list, tuple, dict)) else str(values)
    out[_mlflow_key(prefix[:-1])] = text[:_MLFLOW_PARAM_LENGTH]
    return out


class MlflowTracker(Tracker):
    """MLflow: one MLflow run per tunelab run; a local SQLite store unless told otherwise.

    Runs go to the experiment ``experiment``; params = the flattened resolved config and
    the plugin versions, metrics with their steps, tags ``tunelab.group`` and
    ``tunelab.job_type``; at the end of a sweep a comparison run with the report files."""

    def __init__(self, config: MlflowTrackerConfig):
        super().__init__(config)
        if not str(config.experiment).strip():
            raise ValueError(
                "tracker.mlflow.experiment must name an MLflow experiment, e.g. tracker.mlflow.experiment=tunelab"
            )
        self.client: Any = None
        self.run_id: Optional[str] = None
        self.step = 0

    def store(self, base: Path) -> tuple[str, Optional[Path]]:
        """(tracking URI, directory of the default local store or None) for runs under ``base``."""
        if self.config.tracking_uri:
            return self.config.tracking_uri, None
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"], None
        base = Path(base).absolute()
        return f"sqlite:///{base / 'mlflow.db'}", base

    def _connect(self, base: Path) -> Optional[tuple[Any, str]]:
        """(client, experiment id), or None with a warning."""
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            warn_missing("mlflow", "mlflow-skinny", "not tracking to MLflow")
            return None
        uri, local = self.store(base)
        from tunelab.redaction import redact_text

        shown = redact_text(uri)  # a tracking server URL may hold a password
        try:
            # parallel jobs of a sweep create the shared SQLite store and its experiment once
            with file_lock(local / "mlflow.db.lock") if local else contextlib.nullcontext():
                client = MlflowClient(tracking_uri=uri)
                experiment = client.get_experiment_by_name(self.config.experiment)
                if experiment is None:
                    options = {"artifact_location": (local / "mlartifacts").as_uri()} if local else {}
                    return client, client.create_experiment(self.config.experiment, **options)
                if experiment.lifecycle_stage == "deleted":
                    warnings.warn(
                        f"mlflow tracker disabled: experiment {self.config.experiment!r} is deleted in {shown}; "
                        "restore it "
                        "(mlflow experiments restore) or set tracker.mlflow.experiment=<another name>"
                    )
                    return None
                return client, experiment.experiment_id
        except ImportError as exc:  # e.g. the SQLite store needs sqlalchemy and alembic
            warnings.warn(
                f"mlflow tracker disabled: cannot open {shown}: {redact_text(str(exc))}. "
                "Fix: pip install 'tunelab[mlflow]'"
            )
        except Exception as exc:
            warnings.warn(f"mlflow tracker disabled: cannot open {shown}: {redact_text(str(exc))}")
        return None

    def _batch(
        self,
        run_id: str,
        metrics: Optional[dict[str, float]] = None,
        params: Optional[dict[str, str]] = None,
        tags: Optional[dict[str, str]] = None,
        step: int = 0,
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metric_list = [Metric(_mlflow_key(k), float(v), now, step) for k, v in (metrics or {}).items()]
        param_list = [Param(k, v) for k, v in (params or {}).items()]
        tag_list = [RunTag(k, str(v)[:_MLFLOW_TAG_LENGTH]) for k, v in (tags or {}).items()]
        for i in range(0, max(len(metric_list), len(param_list), len(tag_list)), _MLFLOW_BATCH):
            self.client.log_batch(
                run_id,
                metrics=metric_list[i : i + _MLFLOW_BATCH],
                params=param_list[i : i + _MLFLOW_BATCH],
                tags=tag_list[i : i + _MLFLOW_BATCH],
            )

    def _safely(self, what: str, action: Any) -> None:
        """Run one MLflow call; on failure warn once and stop tracking this run."""
        if self.client is None or self.run_id is None:
            return
        try:
            action()
        except Exception as exc:
            warnings.warn(f"mlflow tracker: could not {what} ({exc}); not tracking the rest of this run")
            self.client = None

    def _tags(self, group: str, job_type: str) -> dict[str, str]:
        return {**self.config.tags, "tunelab.group": group, "tunelab.job_type": job_type}

    @hookimpl
    def tunelab_run_start(self, run: RunInfo) -> None:
        self.step = 0
        connected = self._connect(_sweep_dir_of_job() or run.run_dir)
        if connected is None:
            return
        self.client, experiment_id = connected
        tags = {
            **self._tags(run.group, run.job_type),
            "tunelab.run_dir": str(run.run_dir),
            "tunelab.overrides": " ".join(run.overrides),
        }
        try:
            self.run_id = self.client.create_run(experiment_id, run_name=run.name, tags=tags).info.run_id
        except Exception as exc:
            warnings.warn(f"mlflow tracker disabled for this run: cannot create a run: {exc}")
            self.client = None
            return
        params = {**_flatten(run.config), **_flatten({"tunelab_plugins": run.plugins})}
        self._safely("log the config as params", lambda: self._batch(self.run_id, params=params))

    @hookimpl
    def tunelab_stage_end(self, run: RunInfo, stage: str, stats: dict[str, Any]) -> None:
        if stage == "prepare":
            numbers = flat_numbers({k: v for k, v in stats.items() if k in DATA_STATS}, prefix="prepare/")
            self._safely("log the data statistics", lambda: self._batch(self.run_id, metrics=numbers))

    @hookimpl
    def tunelab_metrics(self, run: RunInfo, metrics: dict[str, float], step: Optional[int]) -> None:
        if step is not None:
            self.step = max(self.step, step)
        numbers = flat_numbers(metrics)
        at = self.step if step is None else step  # final metrics at the last training step
        self._safely("log metrics", lambda: self._batch(self.run_id, metrics=numbers, step=at))

    @hookimpl
    def tunelab_run_end(self, run: RunInfo, status: str, metrics: dict[str, Any], error: Optional[str]) -> None:
        if self.client is None or self.run_id is None:
            return
        run_id = self.run_id
        tags = {"tunelab.status": status, **({"tunelab.error": error} if error else {})}
        self._safely("tag the run's status", lambda: self._batch(run_id, tags=tags))
        # not metrics.json: a copy under the sweep directory would count as another run (tunelab compare, resume)
        for name in ("config.yaml", "data_report.md"):
            if (run.run_dir / name).is_file():
                self._safely(
                    f"log {name} as an artifact",
                    lambda name=name: self.client.log_artifact(run_id, str(run.run_dir / name)),
                )
        if self.client is not None:
            try:
                self.client.set_terminated(run_id, "FINISHED" if status == "ok" else "FAILED")
            except Exception as exc:
                warnings.warn(f"mlflow tracker: could not end run {run_id}: {exc}")
        self.client, self.run_id = None, None

    @hookimpl
    def tunelab_sweep_end(self, sweep_dir: Path, rows: list[dict[str, Any]], comparison: Any, group: str) -> None:
        if not self.config.log_comparison:
            return
        connected = self._connect(sweep_dir)
        if connected is None:
            return
        client, experiment_id = connected
        summary = comparison_summary(comparison, rows)
        try:
            tags = {**self._tags(group, "comparison"), "tunelab.sweep_dir": str(sweep_dir)}
            tags.update({f"tunelab.{k}": str(v) for k, v in summary.items() if isinstance(v, str)})
            run_id = client.create_run(experiment_id, run_name=f"comparison {group}", tags=tags).info.run_id
        except Exception as exc:
            warnings.warn(f"mlflow tracker: could not log the comparison of {sweep_dir}: {exc}")
            return
        self.client, self.run_id = client, run_id
        numbers = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
        for approach in getattr(comparison, "approaches", None) or []:  # the headline columns, per approach
            for metric in (summary.get("primary_metric"), "trainable_params", "train_seconds"):
                stat = approach.stats.get(metric) if metric else None
                if stat is not None:
                    numbers[f"approach/{approach.label or approach.name}/{metric}_mean"] = stat.mean
        self._safely("log the comparison summary", lambda: self._batch(run_id, metrics=numbers))
        for path in comparison_files(comparison, sweep_dir).values():
            self._safely(f"log {path.name}", lambda path=path: client.log_artifact(run_id, str(path)))
        try:
            client.set_terminated(run_id, "FINISHED" if self.client is not None else "FAILED")
        except Exception as exc:
            warnings.warn(f"mlflow tracker: could not end the comparison run {run_id}: {exc}")
        self.client, self.run_id = None, None
