"""``jsonl``: every metric of a run as one JSON line in the run directory.

Each line has the same keys, so the file loads as a table
(``pandas.read_json(path, lines=True)``, ``jq``)::

    {"time": 1700000000.123, "run": "peft=lora", "stage": "train", "step": 3, "name": "loss", "value": 2.71}

``stage`` is ``prepare`` (data statistics), ``train`` (training logs, with the optimizer
step; the train stage's statistics have no step), or ``final`` (evaluation metrics).
At the end of a sweep, ``<sweep dir>/<filename>`` gets the numbers of every run of the
comparison table (``stage`` ``sweep``).

A tracker is an object with ``@hookimpl`` lifecycle methods: tunelab registers the
trackers a run selects (``tracker=[csv,jsonl]``) with its plugin manager for that run.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from tunelab.api import RunInfo, Tracker, hookimpl


@dataclass
class JsonlTrackerConfig:
    #: file name inside the run directory (and, at the end of a sweep, the sweep directory)
    filename: str = "metrics.jsonl"
    #: at the end of a sweep, write every run's numbers into <sweep dir>/<filename>
    log_sweep: bool = True


def numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers in a (nested) mapping, keys joined with ``/``; booleans as 0/1,
    values that are not finite numbers left out."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(numbers(value, f"{prefix}{key}/"))
        elif isinstance(value, bool):
            out[prefix + str(key)] = float(value)
        elif isinstance(value, (int, float)) and math.isfinite(value):
            out[prefix + str(key)] = value
    return out


class JsonlTracker(Tracker):
    """Writes every metric (data stats, training curve, final scores) as JSON lines in the run dir."""

    def __init__(self, config: JsonlTrackerConfig):
        super().__init__(config)
        name = str(config.filename)
        if not name.strip() or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(
                f"tracker.jsonl.filename must be a file name such as metrics.jsonl (it is written inside the run "
                f"directory), got {config.filename!r}"
            )
        self.path: Optional[Path] = None

    def _write(self, path: Optional[Path], run: str, stage: str, step: Optional[int], values: dict[str, float]) -> None:
        if path is None or not values:
            return
        now = round(time.time(), 3)
        lines = [
            json.dumps({"time": now, "run": run, "stage": stage, "step": step, "name": name, "value": value})
            for name, value in values.items()
        ]
        try:
            with path.open("a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
        except OSError as exc:  # a full disk must not cost the training result
            warnings.warn(f"jsonl tracker: cannot write {path}: {exc}")

    @hookimpl
    def tunelab_run_start(self, run: RunInfo) -> None:
        self.path = Path(run.run_dir) / self.config.filename

    @hookimpl
    def tunelab_stage_end(self, run: RunInfo, stage: str, stats: dict[str, Any]) -> None:
        # "steps" holds the per-step table of the data report; its totals are in the other keys
        self._write(self.path, run.name, stage, None, numbers({k: v for k, v in stats.items() if k != "steps"}))

    @hookimpl
    def tunelab_metrics(self, run: RunInfo, metrics: dict[str, float], step: Optional[int]) -> None:
        self._write(self.path, run.name, "train" if step is not None else "final", step, numbers(metrics))

    @hookimpl
    def tunelab_sweep_end(self, sweep_dir: Path, rows: list[dict[str, Any]]) -> None:
        if not self.config.log_sweep:
            return
        path = Path(sweep_dir) / self.config.filename
        for row in rows:
            name = str(row.get("run") or row.get("dir") or "?")
            self._write(path, name, "sweep", None, numbers(row))
