"""The ``tensorboard`` tracker: writes TensorBoard event files under the run directory
(curves, data statistics, final metrics with the run's hyperparameters, the config as
text). torch's SummaryWriter is imported only when a run starts."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from tunelab.api import RunInfo, Tracker, hookimpl
from tunelab_builtin.trackers._common import (
    DATA_STATS,
    comparison_files,
    comparison_summary,
    flat_numbers,
    slug,
    warn_missing,
)


@dataclass
class TensorboardTrackerConfig:
    #: where the event files go: relative paths are inside the run directory (at the end of
    #: a sweep: inside the sweep directory); an absolute path collects every run under
    #: <logdir>/<group>/<run name>
    logdir: str = "tensorboard"
    #: at the end of a sweep, write the comparison report (its markdown tables) as text
    log_comparison: bool = True


def _hparams(run: RunInfo) -> dict[str, Any]:
    """The approach of a run as TensorBoard hyperparameters: every override (``peft=lora``,
    ``train.learning_rate=3e-3``) plus the model, method, peft and seed."""
    out: dict[str, Any] = {}
    for section in ("model", "method", "peft"):
        value = run.config.get(section)
        if isinstance(value, dict) and "name" in value:
            out[section] = str(value["name"])
    if isinstance(run.config.get("seed"), int):
        out["seed"] = run.config["seed"]
    for override in run.overrides:
        key, sep, value = override.partition("=")
        key = key.lstrip("+~")
        if not sep or key.startswith("hydra.") or key == "cache_dir":
            continue
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def _yaml_text(values: dict[str, Any]) -> str:
    """A YAML dump as a markdown code block (TensorBoard's text plugin renders markdown)."""
    import yaml

    return "    " + yaml.safe_dump(values, sort_keys=False, default_flow_style=False).replace("\n", "\n    ")


class TensorboardTracker(Tracker):
    """TensorBoard: event files in the run dir (curves, data stats, final metrics + hparams).

    Training curves with their steps, data statistics, the final metrics with the run's
    hyperparameters (the HParams tab), the config as text. ``tensorboard --logdir <sweep
    dir>`` shows every job of a sweep side by side; the sweep end adds the comparison."""

    def __init__(self, config: TensorboardTrackerConfig):
        super().__init__(config)
        if not str(config.logdir).strip():
            raise ValueError(
                "tracker.tensorboard.logdir must not be empty; e.g. tracker.tensorboard.logdir=tensorboard"
            )
        self.writer: Any = None
        self.step = 0
        #: the final metrics (step None), written with the hyperparameters at run end
        self.final: dict[str, float] = {}

    def _dir(self, base: Path, *under_absolute: str) -> Path:
        logdir = Path(self.config.logdir).expanduser()
        if logdir.is_absolute():
            return logdir.joinpath(*(slug(part) for part in under_absolute))
        return base / logdir

    def _open(self, path: Path) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warn_missing("tensorboard", "tensorboard", "not writing TensorBoard event files")
            return None
        try:
            return SummaryWriter(log_dir=str(path))
        except Exception as exc:
            warnings.warn(f"tensorboard tracker disabled for this run: cannot write {path}: {exc}")
            return None

    @hookimpl
    def tunelab_run_start(self, run: RunInfo) -> None:
        self.step, self.final = 0, {}
        self.writer = self._open(self._dir(run.run_dir, run.group, run.name))
        if self.writer is None:
            return
        self.writer.add_text("config", _yaml_text(run.config))
        self.writer.add_text("overrides", _yaml_text({"overrides": run.overrides, "plugins": run.plugins}))

    @hookimpl
    def tunelab_stage_end(self, run: RunInfo, stage: str, stats: dict[str, Any]) -> None:
        if self.writer is None or stage != "prepare":
            return
        for name, value in flat_numbers({k: v for k, v in stats.items() if k in DATA_STATS}, prefix="prepare/").items():
            self.writer.add_scalar(name, value, 0)

    @hookimpl
    def tunelab_metrics(self, run: RunInfo, metrics: dict[str, float], step: Optional[int]) -> None:
        if self.writer is None:
            return
        if step is None:
            self.final.update(flat_numbers(metrics))
            return  # written with the hyperparameters at run end (add_hparams writes them as scalars)
        self.step = max(self.step, step)
        for name, value in flat_numbers(metrics).items():
            self.writer.add_scalar(name, value, step)

    @hookimpl
    def tunelab_run_end(self, run: RunInfo, status: str, metrics: dict[str, Any], error: Optional[str]) -> None:
        if self.writer is None:
            return
        try:
            # run_name=".": the hyperparameters and final metrics land in this run's own directory
            self.writer.add_hparams(_hparams(run), dict(self.final), run_name=".", global_step=self.step)
            self.writer.add_text("status", status + (f": {error}" if error else ""))
        finally:
            self.writer.close()
            self.writer = None

    @hookimpl
    def tunelab_sweep_end(self, sweep_dir: Path, rows: list[dict[str, Any]], comparison: Any, group: str) -> None:
        if not self.config.log_comparison:
            return
        files = comparison_files(comparison, sweep_dir)
        if "md" not in files:
            return
        writer = self._open(self._dir(sweep_dir, group, "comparison"))
        if writer is None:
            return
        try:
            writer.add_text("comparison", files["md"].read_text(encoding="utf-8"))
            for name, value in comparison_summary(comparison, rows).items():
                if isinstance(value, (int, float)):
                    writer.add_scalar(f"comparison/{name}", value, 0)
        finally:
            writer.close()
