"""Trackers: plugins on the lifecycle hooks, registered for the length of one run (and,
for ``tunelab_sweep_end``, for the end of a sweep).

``csv`` writes ``metrics.csv`` in the run directory; ``wandb`` logs to Weights & Biases
(offline without an API key), with opt-in dataset/model artifacts and a comparison run
at the end of a sweep; ``tensorboard`` writes event files under the run directory;
``mlflow`` logs to an MLflow tracking store (a local SQLite file by default). The
libraries are imported only when a run starts: ``tunelab --help`` imports none of them.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import time
import warnings
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tunelab.api import Component, RunInfo, Tracker, file_lock, hookimpl

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


#: The data statistics TensorBoard and MLflow log as ``prepare/...`` metrics (the rest of the
#: prepare stage's statistics, e.g. per-step metadata, is in the run's data report).
DATA_STATS = ("rows_read", "rows_quarantined", "rows_added", "rows_dropped", "rows_final", "splits",
              "labels_after", "cache_hit", "seconds")


def _missing(tracker: str, package: str, consequence: str) -> None:
    """Warn (not fail) that a tracker's library is not installed, naming the extra to install."""
    warnings.warn(
        f"tracker={tracker} needs the {package} package: pip install 'tunelab[{tracker}]'; {consequence}",
        stacklevel=3,
    )


def _slug(text: str, limit: int = 100) -> str:
    """``peft=lora,seed=0`` -> ``peft-lora-seed-0``: a name W&B accepts for an artifact or alias."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:limit] or "run"


def _typed_columns(rows: list[list[str]]) -> list[list[Any]]:
    """CSV cells to values, column by column: a column whose non-empty cells are all
    numbers becomes int/float, any other stays text; empty cells become None."""
    if not rows:
        return []

    def number(text: str) -> Any:
        try:
            return int(text)
        except ValueError:
            return float(text)

    columns = list(zip(*rows))
    typed = []
    for cells in columns:
        try:
            typed.append([None if c == "" else number(c) for c in cells])
        except ValueError:
            typed.append([None if c == "" else c for c in cells])
    return [list(row) for row in zip(*typed)]


def read_csv_table(path: Path) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of a comparison CSV, with numbers typed (see :func:`_typed_columns`)."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        lines = list(csv.reader(fh))
    if not lines:
        return [], []
    width = len(lines[0])
    return lines[0], _typed_columns([line + [""] * (width - len(line)) for line in lines[1:]])


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


def _comparison_files(comparison: Any, sweep_dir: Path) -> dict[str, Path]:
    """The report files of a comparison (name -> path), existing ones only."""
    from tunelab.compare import APPROACHES_CSV, HTML, MARKDOWN, RUNS_CSV

    files = {"md": sweep_dir / MARKDOWN, "html": sweep_dir / HTML, "csv": sweep_dir / APPROACHES_CSV,
             "runs_csv": sweep_dir / RUNS_CSV}
    files.update({k: Path(v) for k, v in (getattr(comparison, "files", None) or {}).items()})
    return {k: v for k, v in files.items() if v.is_file()}


def _comparison_summary(comparison: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Headline numbers of a sweep: counts, the primary metric and the best approach's means."""
    approaches = list(getattr(comparison, "approaches", None) or [])
    out: dict[str, Any] = {
        "runs": len(rows),
        "failed_runs": sum(1 for r in rows if r.get("status") != "ok"),
        "approaches": len(approaches),
    }
    primary = getattr(comparison, "primary", None)
    best = getattr(comparison, "best", None)
    if primary:
        out["primary_metric"] = primary
    if best is not None:
        out["best_approach"] = best.name
        for metric, stat in best.stats.items():
            out[f"best/{metric}_mean"] = stat.mean
    return out


@dataclass
class CsvTrackerConfig:
    #: file name inside the run directory
    filename: str = "metrics.csv"


class CsvTracker(Tracker):
    """Appends every metric (training curve, data stats, final scores) to a CSV in the run dir."""

    def __init__(self, config: CsvTrackerConfig):
        super().__init__(config)
        name = config.filename
        if not name.strip() or name in (".", "..") or "/" in name or "\\" in name or name in ("metrics.json", "config.yaml"):
            raise ValueError(f"tracker.csv.filename must be a file name inside the run directory (e.g. metrics.csv), got {name!r}")
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
                    self.earlier = [r for r in list(csv.reader(fh))[1:] if len(r) == 4 and r[0] == "train" and r[1].isdigit()]
                self.path.unlink()
            except OSError as exc:
                warnings.warn(f"csv tracker: cannot replace {self.path} of an earlier attempt: {exc}")

    @hookimpl
    def tunelab_stage_end(self, run: RunInfo, stage: str, stats: dict[str, Any]) -> None:
        numbers = _numbers({k: v for k, v in stats.items() if k != "steps"})
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
        rows += [(stage, "" if step is None else step, name, value) for name, value in _numbers(metrics).items()]
        self._write(rows)


# --- Weights & Biases ---------------------------------------------------------------


@dataclass
class WandbTrackerConfig:
    #: W&B project the runs go to
    project: str = "tunelab"
    #: W&B team or user; None: the API key's default entity
    entity: Optional[str] = None
    #: auto (online when an API key is configured, else offline), online, offline, disabled
    mode: str = "auto"
    #: tags added to every run
    tags: list[str] = field(default_factory=list)
    #: log the prepared data (splits, data report, ledger) as a "dataset" artifact named
    #: data-<cache key>: the jobs of a sweep share one artifact version
    log_dataset: bool = False
    #: log the trained model/adapter (<run dir>/model) as a "model" artifact
    log_model: bool = False
    #: at the end of a sweep, one more run (job_type comparison) with the comparison tables
    log_comparison: bool = True


def _prepared_files(directory: Path) -> list[Path]:
    """The files of a prepared-data directory, without the caches ``datasets`` adds next to
    the splits when a job maps over them (``cache-*.arrow``, ``tmp*``): those differ from job
    to job, and the jobs of a sweep must log the same content to share one artifact version."""
    return sorted(
        p for p in directory.rglob("*")
        if p.is_file() and not (p.name.startswith("cache-") and p.suffix == ".arrow") and not p.name.startswith("tmp")
    )


def _approach_name(run: RunInfo) -> str:
    """The overrides that change a result (not ``tracker``/``hydra``/``cache_dir``...), e.g.
    ``experiment=smoke,peft=lora``: the model artifact's name."""
    from tunelab.run import VOLATILE_KEYS

    kept = [o for o in run.overrides if o.partition("=")[0].lstrip("+~").split(".")[0] not in VOLATILE_KEYS]
    return ",".join(kept) or "default"


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


class WandbTracker(Tracker):
    """Weights & Biases: one W&B run per tunelab run, grouped by sweep; offline without a key.

    Opt-in artifacts: the prepared data (``log_dataset``; the run uses it, so W&B shows the
    lineage dataset -> run -> model) and the trained model (``log_model``). At the end of a
    sweep a run with ``job_type=comparison`` in the sweep's group logs the comparison
    tables, the HTML report and the report files as a ``comparison`` artifact.
    """

    def __init__(self, config: WandbTrackerConfig):
        super().__init__(config)
        if config.mode not in ("auto", "online", "offline", "disabled"):
            raise ValueError(f"tracker.wandb.mode must be auto, online, offline or disabled, got {config.mode!r}")
        self.run: Any = None
        #: a W&B call failed during this run: log nothing more, only finish the run
        self.broken = False

    def _safely(self, what: str, action: Any) -> None:
        """One W&B call; when it fails (W&B unreachable, disk full) warn once and log nothing
        more for this run: the training and its local results go on."""
        if self.run is None or self.broken:
            return
        try:
            action()
        except Exception as exc:
            self.broken = True
            warnings.warn(f"wandb tracker: could not {what} ({type(exc).__name__}: {exc}); not logging the rest of this run to W&B")

    def mode(self) -> str:
        if os.environ.get("WANDB_MODE"):
            return os.environ["WANDB_MODE"]
        if self.config.mode == "auto":
            return "online" if _has_api_key() else "offline"
        return self.config.mode

    def _init(self, **settings: Any) -> Any:
        """A started W&B run, or None (with a warning) when wandb is missing or fails."""
        try:
            import wandb
        except ImportError:
            _missing("wandb", "wandb", "not tracking to W&B")
            return None
        from tunelab.redaction import redacted_argv

        try:
            with redacted_argv():  # wandb records the command line in the run's metadata
                return wandb.init(
                    project=self.config.project,
                    entity=self.config.entity,
                    tags=list(self.config.tags),
                    mode=self.mode(),
                    reinit="finish_previous",
                    **settings,
                )
        except Exception as exc:  # W&B unreachable or misconfigured: keep going, warn
            warnings.warn(f"wandb tracker disabled for this run: {exc}")
            return None

    @hookimpl
    def tunelab_run_start(self, run: RunInfo) -> None:
        self.broken = False
        self.run = self._init(
            group=run.group,
            job_type=run.job_type,
            name=run.name,
            config={**run.config, "tunelab_plugins": run.plugins, "tunelab_overrides": run.overrides},
            dir=str(run.run_dir),
        )

    @hookimpl
    def tunelab_stage_end(self, run: RunInfo, stage: str, stats: dict[str, Any]) -> None:
        # the train stage's results also arrive as final metrics; log only data statistics here
        if self.run is None or stage != "prepare":
            return
        numbers = _numbers({k: v for k, v in stats.items() if k != "steps"}, prefix=f"{stage}/")
        self._safely("log the data statistics", lambda: self.run.summary.update(numbers))
        if self.config.log_dataset and not self.broken:
            try:
                self._log_dataset(run, stats)
            except Exception as exc:  # an artifact must not cost the training run
                warnings.warn(f"wandb tracker: could not log the prepared data as an artifact: {exc}")

    def _log_dataset(self, run: RunInfo, stats: dict[str, Any]) -> None:
        import wandb

        directory, key = stats.get("directory"), stats.get("key")
        if not directory or not key or not Path(directory).is_dir():
            warnings.warn(
                "tracker.wandb.log_dataset is on but the prepare stage named no prepared-data directory; "
                "the dataset artifact is not logged"
            )
            return
        metadata = {k: stats[k] for k in ("key", "splits", "rows_read", "rows_final", "rows_dropped", "rows_added",
                                          "rows_quarantined", "label_column") if k in stats}
        metadata.update({k: run.config.get(k) for k in ("data", "pipeline", "data_seed") if k in run.config})
        artifact = wandb.Artifact(
            f"data-{key}",
            type="dataset",
            description="tunelab prepared data (splits, data report, ledger, quarantine), named by its cache key",
            metadata=metadata,
        )
        for path in _prepared_files(Path(directory)):
            artifact.add_file(str(path), name=path.relative_to(directory).as_posix())
        if getattr(self.run, "offline", self.mode() in ("offline", "dryrun")):
            # using an artifact needs the server; offline the run records it (wandb sync uploads it)
            self.run.log_artifact(artifact)
        else:
            self.run.use_artifact(artifact)

    @hookimpl
    def tunelab_metrics(self, run: RunInfo, metrics: dict[str, float], step: Optional[int]) -> None:
        if self.run is None:
            return
        if step is None:
            self._safely("log the final metrics", lambda: self.run.summary.update(_numbers(metrics)))
        else:
            self._safely("log metrics", lambda: self.run.log(_numbers(metrics), step=step))

    def _log_model(self, run: RunInfo, metrics: dict[str, Any]) -> None:
        import wandb

        model_dir = run.run_dir / "model"
        if not model_dir.is_dir():
            if run.job_type == "train":
                warnings.warn(
                    f"tracker.wandb.log_model is on but {model_dir} does not exist "
                    "(train.save_model=false?); the model artifact is not logged"
                )
            return
        metadata = {"run": run.name, "group": run.group, **_numbers(metrics)}
        for section in ("model", "method", "peft"):
            if isinstance(run.config.get(section), dict):
                metadata[section] = run.config[section].get("name")
        if metrics.get("data_key"):
            metadata["data_key"] = metrics["data_key"]
        artifact = wandb.Artifact(
            f"model-{_slug(_approach_name(run))}",
            type="model",
            description=f"tunelab trained model/adapter of run {run.name} (sweep {run.group})",
            metadata=metadata,
        )
        # immutable: no staging copy of a possibly large model; the files stay in the run dir
        artifact.add_dir(str(model_dir), policy="immutable")
        self.run.log_artifact(artifact, aliases=["latest", _slug(run.group)])

    @hookimpl
    def tunelab_run_end(self, run: RunInfo, status: str, metrics: dict[str, Any], error: Optional[str]) -> None:
        if self.run is None:
            return
        self._safely("log the run's status", lambda: self.run.summary.update({"status": status, **({"error": error} if error else {})}))
        if status == "ok" and self.config.log_model and not self.broken:
            try:
                self._log_model(run, metrics)
            except Exception as exc:
                warnings.warn(f"wandb tracker: could not log the model as an artifact: {exc}")
        wb, self.run = self.run, None
        try:
            wb.finish(exit_code=0 if status == "ok" else 1)
        except Exception as exc:
            warnings.warn(f"wandb tracker: could not finish the W&B run ({type(exc).__name__}: {exc})")

    @hookimpl
    def tunelab_sweep_end(self, sweep_dir: Path, rows: list[dict[str, Any]], comparison: Any, group: str) -> None:
        if not self.config.log_comparison or self.mode() == "disabled":
            return
        files = _comparison_files(comparison, sweep_dir)
        summary = _comparison_summary(comparison, rows)
        wb = self._init(
            group=group,
            job_type="comparison",
            name=f"comparison {group}",
            config={
                "sweep_dir": str(sweep_dir),
                "primary_metric": summary.get("primary_metric"),
                "approaches": [a.name for a in getattr(comparison, "approaches", None) or []],
                "shared_overrides": list(getattr(comparison, "shared", None) or []),
            },
            dir=str(sweep_dir),
        )
        if wb is None:
            return
        try:
            import wandb

            logged: dict[str, Any] = {}
            for key, name in (("comparison/approaches", "csv"), ("comparison/runs", "runs_csv")):
                if name in files:
                    columns, data = read_csv_table(files[name])
                    logged[key] = wandb.Table(columns=columns, data=data, allow_mixed_types=True)
            if "html" in files:
                logged["comparison/report"] = wandb.Html(files["html"].read_text(encoding="utf-8"))
            wb.log(logged)
            wb.summary.update(summary)
            artifact = wandb.Artifact(
                f"comparison-{_slug(group)}",
                type="comparison",
                description=f"tunelab comparison report of sweep {group} ({sweep_dir})",
                metadata=summary,
            )
            for path in files.values():
                artifact.add_file(str(path))
            wb.log_artifact(artifact)
            wb.finish(exit_code=0)
        except Exception as exc:
            warnings.warn(f"wandb tracker: could not log the comparison of {sweep_dir}: {exc}")
            wb.finish(exit_code=1)


# --- TensorBoard --------------------------------------------------------------------


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
            raise ValueError("tracker.tensorboard.logdir must not be empty; e.g. tracker.tensorboard.logdir=tensorboard")
        self.writer: Any = None
        self.step = 0
        #: the final metrics (step None), written with the hyperparameters at run end
        self.final: dict[str, float] = {}

    def _dir(self, base: Path, *under_absolute: str) -> Path:
        logdir = Path(self.config.logdir).expanduser()
        if logdir.is_absolute():
            return logdir.joinpath(*(_slug(part) for part in under_absolute))
        return base / logdir

    def _open(self, path: Path) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            _missing("tensorboard", "tensorboard", "not writing TensorBoard event files")
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
        for name, value in _numbers({k: v for k, v in stats.items() if k in DATA_STATS}, prefix="prepare/").items():
            self.writer.add_scalar(name, value, 0)

    @hookimpl
    def tunelab_metrics(self, run: RunInfo, metrics: dict[str, float], step: Optional[int]) -> None:
        if self.writer is None:
            return
        if step is None:
            self.final.update(_numbers(metrics))
            return  # written with the hyperparameters at run end (add_hparams writes them as scalars)
        self.step = max(self.step, step)
        for name, value in _numbers(metrics).items():
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
        files = _comparison_files(comparison, sweep_dir)
        if "md" not in files:
            return
        writer = self._open(self._dir(sweep_dir, group, "comparison"))
        if writer is None:
            return
        try:
            writer.add_text("comparison", files["md"].read_text(encoding="utf-8"))
            for name, value in _comparison_summary(comparison, rows).items():
                if isinstance(value, (int, float)):
                    writer.add_scalar(f"comparison/{name}", value, 0)
        finally:
            writer.close()


# --- MLflow -------------------------------------------------------------------------


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
            raise ValueError("tracker.mlflow.experiment must name an MLflow experiment, e.g. tracker.mlflow.experiment=tunelab")
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
            _missing("mlflow", "mlflow-skinny", "not tracking to MLflow")
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
                        f"mlflow tracker disabled: experiment {self.config.experiment!r} is deleted in {shown}; restore it "
                        "(mlflow experiments restore) or set tracker.mlflow.experiment=<another name>"
                    )
                    return None
                return client, experiment.experiment_id
        except ImportError as exc:  # e.g. the SQLite store needs sqlalchemy and alembic
            warnings.warn(f"mlflow tracker disabled: cannot open {shown}: {redact_text(str(exc))}. Fix: pip install 'tunelab[mlflow]'")
        except Exception as exc:
            warnings.warn(f"mlflow tracker disabled: cannot open {shown}: {redact_text(str(exc))}")
        return None

    def _batch(self, run_id: str, metrics: Optional[dict[str, float]] = None, params: Optional[dict[str, str]] = None,
               tags: Optional[dict[str, str]] = None, step: int = 0) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metric_list = [Metric(_mlflow_key(k), float(v), now, step) for k, v in (metrics or {}).items()]
        param_list = [Param(k, v) for k, v in (params or {}).items()]
        tag_list = [RunTag(k, str(v)[:_MLFLOW_TAG_LENGTH]) for k, v in (tags or {}).items()]
        for i in range(0, max(len(metric_list), len(param_list), len(tag_list)), _MLFLOW_BATCH):
            self.client.log_batch(run_id, metrics=metric_list[i : i + _MLFLOW_BATCH],
                                  params=param_list[i : i + _MLFLOW_BATCH], tags=tag_list[i : i + _MLFLOW_BATCH])

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
        tags = {**self._tags(run.group, run.job_type), "tunelab.run_dir": str(run.run_dir),
                "tunelab.overrides": " ".join(run.overrides)}
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
            numbers = _numbers({k: v for k, v in stats.items() if k in DATA_STATS}, prefix="prepare/")
            self._safely("log the data statistics", lambda: self._batch(self.run_id, metrics=numbers))

    @hookimpl
    def tunelab_metrics(self, run: RunInfo, metrics: dict[str, float], step: Optional[int]) -> None:
        if step is not None:
            self.step = max(self.step, step)
        numbers = _numbers(metrics)
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
                self._safely(f"log {name} as an artifact", lambda: self.client.log_artifact(run_id, str(run.run_dir / name)))
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
        summary = _comparison_summary(comparison, rows)
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
        for path in _comparison_files(comparison, sweep_dir).values():
            self._safely(f"log {path.name}", lambda: client.log_artifact(run_id, str(path)))
        try:
            client.set_terminated(run_id, "FINISHED" if self.client is not None else "FAILED")
        except Exception as exc:
            warnings.warn(f"mlflow tracker: could not end the comparison run {run_id}: {exc}")
        self.client, self.run_id = None, None


COMPONENTS = [
    ("tracker", Component("csv", CsvTracker, CsvTrackerConfig)),
    ("tracker", Component("wandb", WandbTracker, WandbTrackerConfig)),
    ("tracker", Component("tensorboard", TensorboardTracker, TensorboardTrackerConfig)),
    ("tracker", Component("mlflow", MlflowTracker, MlflowTrackerConfig)),
]
