"""The ``csv`` tracker: appends every metric to ``metrics.csv`` in the run directory."""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from tunelab.api import RunInfo, Tracker, hookimpl
from tunelab_builtin.trackers._common import flat_numbers


@dataclass
class CsvTrackerConfig:
    #: file name inside the run directory
    filename: str = "metrics.csv"


class CsvTracker(Tracker):
    """Appends every metric (training curve, data stats, final scores) to a CSV in the run dir."""

    def __init__(self, config: CsvTrackerConfig):
        super().__init__(config)
        name = config.filename
        if (
            not name.strip()
            or name in (".", "..")
            or "/" in name
            or "\\" in name
            or name in ("metrics.json", "config.yaml")
        ):
            raise ValueError(
                f"tracker.csv.filename must be a file name inside the run directory (e.g. metrics.csv), got {name!r}"
            )
        self.path: Path | None = None
        #: the training curve an earlier, interrupted attempt left in this run directory
        self.earlier: list[list[str]] = []

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
        self.earlier = []
        if self.path.exists():  # a rerun in the same directory: start the file afresh
            try:
                with self.path.open(newline="") as fh:
                    self.earlier = [
                        r for r in list(csv.reader(fh))[1:] if len(r) == 4 and r[0] == "train" and r[1].isdigit()
                    ]
                self.path.unlink()
            except OSError as exc:
                warnings.warn(f"csv tracker: cannot replace {self.path} of an earlier attempt: {exc}")

    @hookimpl
    def tunelab_stage_end(self, run: RunInfo, stage: str, stats: dict[str, Any]) -> None:
        numbers = flat_numbers({k: v for k, v in stats.items() if k != "steps"})
        self._write([(stage, "", name, value) for name, value in numbers.items()])

    @hookimpl
    def tunelab_metrics(self, run: RunInfo, metrics: dict[str, float], step: Optional[int]) -> None:
        stage = "train" if step is not None else "final"
        rows: list[tuple[str, Any, str, Any]] = []
        if step is not None and self.earlier:
            # past the first logging step: the run continued from a checkpoint (train.save_steps);
            # keep the earlier attempt's curve up to where this one starts
            first = (run.config.get("train") or {}).get("logging_steps") or 1
            if isinstance(first, int) and step > first:
                rows += [(r[0], int(r[1]), r[2], r[3]) for r in self.earlier if int(r[1]) < step]
            self.earlier = []
        rows += [(stage, "" if step is None else step, name, value) for name, value in flat_numbers(metrics).items()]
        self._write(rows)
