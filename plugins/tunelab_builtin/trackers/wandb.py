"""The ``wandb`` tracker: logs to Weights & Biases (offline without an API key), with
opt-in dataset/model artifacts and a comparison run at the end of a sweep. The wandb
library is imported only when a run starts."""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tunelab.api import RunInfo, Tracker, hookimpl
from tunelab_builtin.trackers._common import comparison_files, comparison_summary, flat_numbers, slug, warn_missing


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
        p
        for p in directory.rglob("*")
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
            warnings.warn(
                f"wandb tracker: could not {what} ({type(exc).__name__}: {exc}); "
                "not logging the rest of this run to W&B"
            )

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
            warn_missing("wandb", "wandb", "not tracking to W&B")
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
        numbers = flat_numbers({k: v for k, v in stats.items() if k != "steps"}, prefix=f"{stage}/")
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
        metadata = {
            k: stats[k]
            for k in (
                "key",
                "splits",
                "rows_read",
                "rows_final",
                "rows_dropped",
                "rows_added",
                "rows_quarantined",
                "label_column",
            )
            if k in stats
        }
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
            self._safely("log the final metrics", lambda: self.run.summary.update(flat_numbers(metrics)))
        else:
            self._safely("log metrics", lambda: self.run.log(flat_numbers(metrics), step=step))

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
        metadata = {"run": run.name, "group": run.group, **flat_numbers(metrics)}
        for section in ("model", "method", "peft"):
            if isinstance(run.config.get(section), dict):
                metadata[section] = run.config[section].get("name")
        if metrics.get("data_key"):
            metadata["data_key"] = metrics["data_key"]
        artifact = wandb.Artifact(
            f"model-{slug(_approach_name(run))}",
            type="model",
            description=f"tunelab trained model/adapter of run {run.name} (sweep {run.group})",
            metadata=metadata,
        )
        # immutable: no staging copy of a possibly large model; the files stay in the run dir
        artifact.add_dir(str(model_dir), policy="immutable")
        self.run.log_artifact(artifact, aliases=["latest", slug(run.group)])

    @hookimpl
    def tunelab_run_end(self, run: RunInfo, status: str, metrics: dict[str, Any], error: Optional[str]) -> None:
        if self.run is None:
            return
        self._safely(
            "log the run's status",
            lambda: self.run.summary.update({"status": status, **({"error": error} if error else {})}),
        )
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
        files = comparison_files(comparison, sweep_dir)
        summary = comparison_summary(comparison, rows)
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
                f"comparison-{slug(group)}",
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
