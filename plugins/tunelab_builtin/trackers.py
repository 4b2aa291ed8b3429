"""Trackers: plugins on the lifecycle hooks, registered for the length of one run."""

from __future__ import annotations

import csv
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tunelab.api import Component, RunInfo, Tracker, hookimpl

log = logging.getLogger(__name__)


def _numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, bool):
            out[prefix + key] = float(value)
        elif isinstance(value, (int, float)):
            out[prefix + key] = value
        elif isinstance(value, dict):
            out.update(_numbers(value, f"{prefix}{key}/"))
    return out


@dataclass
class CsvTrackerConfig:
    #: file name inside the run directory
    filename: str = "metrics.csv"


class CsvTracker(Tracker):
    """Appends every metric (training curve, data stats, final scores) to a CSV in the run dir."""

    def __init__(self, config: CsvTrackerConfig):
        super().__init__(config)
        self.path: Path | None = None

    def _write(self, rows: list[tuple[str, Any, str, float]]) -> None:
        if self.path is None:
            return
        try:
            new = not self.path.exists()
            with self.path.open("a", newline="") as fh:
                writer = csv.writer(fh)
                if new:
                    writer.writerow(["stage", "step", "name", "value"])
                writer.writerows(rows)
        except OSError as exc:  # a full disk must not lose the training result
            warnings.warn(f"csv tracker: cannot write {self.path}: {exc}")

    @hookimpl
    def tunelab_run_start(self, run: RunInfo) -> None:
        self.path = run.run_dir / self.config.filename

    @hookimpl
    def tunelab_stage_end(self, run: RunInfo, stage: str, stats: dict[str, Any]) -> None:
        numbers = _numbers({k: v for k, v in stats.items() if k != "steps"})
        self._write([(stage, "", name, value) for name, value in numbers.items()])

    @hookimpl
    def tunelab_metrics(self, run: RunInfo, metrics: dict[str, float], step: Optional[int]) -> None:
        stage = "train" if step is not None else "final"
        self._write([(stage, "" if step is None else step, name, value) for name, value in _numbers(metrics).items()])


@dataclass
class WandbTrackerConfig:
    project: str = "tunelab"
    entity: Optional[str] = None
    #: auto (online when an API key is configured, else offline), online, offline, disabled
    mode: str = "auto"
    tags: list[str] = field(default_factory=list)


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


class WandbTracker(Tracker):
    """Weights & Biases: one W&B run per tunelab run, grouped by sweep; offline without a key."""

    def __init__(self, config: WandbTrackerConfig):
        super().__init__(config)
        if config.mode not in ("auto", "online", "offline", "disabled"):
            raise ValueError(f"tracker.wandb.mode must be auto, online, offline or disabled, got {config.mode!r}")
        self.run: Any = None

    def mode(self) -> str:
        if os.environ.get("WANDB_MODE"):
            return os.environ["WANDB_MODE"]
        if self.config.mode == "auto":
            return "online" if _has_api_key() else "offline"
        return self.config.mode

    @hookimpl
    def tunelab_run_start(self, run: RunInfo) -> None:
        try:
            import wandb
        except ImportError:
            warnings.warn("tracker=wandb needs the wandb package: pip install 'tunelab[wandb]'; not tracking to W&B")
            return
        try:
            self.run = wandb.init(
                project=self.config.project,
                entity=self.config.entity,
                group=run.group,
                job_type=run.job_type,
                name=run.name,
                tags=list(self.config.tags),
                config={**run.config, "tunelab_plugins": run.plugins, "tunelab_overrides": run.overrides},
                dir=str(run.run_dir),
                mode=self.mode(),
                reinit="finish_previous",
            )
        except Exception as exc:  # W&B unreachable or misconfigured: keep training, warn
            warnings.warn(f"wandb tracker disabled for this run: {exc}")
            self.run = None

    @hookimpl
    def tunelab_stage_end(self, run: RunInfo, stage: str, stats: dict[str, Any]) -> None:
        # the train stage's results also arrive as final metrics; log only data statistics here
        if self.run is not None and stage == "prepare":
            numbers = _numbers({k: v for k, v in stats.items() if k != "steps"}, prefix=f"{stage}/")
            self.run.summary.update(numbers)

    @hookimpl
    def tunelab_metrics(self, run: RunInfo, metrics: dict[str, float], step: Optional[int]) -> None:
        if self.run is None:
            return
        if step is None:
            self.run.summary.update(_numbers(metrics))
        else:
            self.run.log(_numbers(metrics), step=step)

    @hookimpl
    def tunelab_run_end(self, run: RunInfo, status: str, metrics: dict[str, Any], error: Optional[str]) -> None:
        if self.run is None:
            return
        self.run.summary["status"] = status
        if error:
            self.run.summary["error"] = error
        self.run.finish(exit_code=0 if status == "ok" else 1)
        self.run = None


COMPONENTS = [
    ("tracker", Component("csv", CsvTracker, CsvTrackerConfig)),
    ("tracker", Component("wandb", WandbTracker, WandbTrackerConfig)),
]
