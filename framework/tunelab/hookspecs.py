"""Hook specifications: every hook a tunelab plugin can implement.

All hooks are called per component kind, per run or per stage; none is ever called
per row. Registration hooks are collected from every plugin (no result wins over
another); duplicate component names within a kind are an error that names both
suppliers. Lifecycle hooks are called on every registered plugin, including the
trackers the run selected (for ``tunelab_sweep_end``: the trackers the sweep selected),
and their return values are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy

from tunelab.api import Component, RunInfo

hookspec = pluggy.HookspecMarker("tunelab")

# --- registration: one hook per component kind -----------------------------------


@hookspec
def tunelab_register_collectors() -> list[Component]:
    """Return collectors: read a source (files, databases, ...) into rows.

    Each :class:`~tunelab.api.Component` names a :class:`~tunelab.api.Collector`
    subclass. Selected with ``data.name=<name>``.
    """


@hookspec
def tunelab_register_cleaners() -> list[Component]:
    """Return cleaners (:class:`~tunelab.api.Cleaner`): steps of ``pipeline.clean``."""


@hookspec
def tunelab_register_annotators() -> list[Component]:
    """Return annotators (:class:`~tunelab.api.Annotator`): steps of ``pipeline.annotate``."""


@hookspec
def tunelab_register_augmenters() -> list[Component]:
    """Return augmenters (:class:`~tunelab.api.Augmenter`): steps of ``pipeline.augment``."""


@hookspec
def tunelab_register_balancers() -> list[Component]:
    """Return balancers (:class:`~tunelab.api.Balancer`): steps of ``pipeline.balance``."""


@hookspec
def tunelab_register_splitters() -> list[Component]:
    """Return splitters (:class:`~tunelab.api.Splitter`), selected by ``pipeline.split``."""


@hookspec
def tunelab_register_models() -> list[Component]:
    """Return model loaders (:class:`~tunelab.api.ModelLoader`), selected by ``model.name``."""


@hookspec
def tunelab_register_methods() -> list[Component]:
    """Return training objectives (:class:`~tunelab.api.Method`), selected by ``method.name``."""


@hookspec
def tunelab_register_pefts() -> list[Component]:
    """Return adaptation methods (:class:`~tunelab.api.PeftMethod`), selected by ``peft.name``."""


@hookspec
def tunelab_register_evaluators() -> list[Component]:
    """Return evaluators (:class:`~tunelab.api.Evaluator`), selected by ``eval.name``."""


@hookspec
def tunelab_register_trackers() -> list[Component]:
    """Return trackers (:class:`~tunelab.api.Tracker`), selected by the ``tracker`` list.

    A tracker instance is registered with the plugin manager for one run, so its
    ``@hookimpl`` lifecycle methods receive that run's events.
    """


@hookspec
def tunelab_config_search_paths() -> list[str]:
    """Return extra Hydra config search paths (``pkg://my_plugin.conf`` or
    ``file:///abs/dir``) holding config groups this plugin ships, e.g. ``peft/my_peft.yaml``.

    Called once when the Hydra app starts; all results are appended after tunelab's own
    config directory.
    """


# --- lifecycle -------------------------------------------------------------------


@hookspec
def tunelab_run_start(run: RunInfo) -> None:
    """A run starts: the config is resolved and validated, no work done yet."""


@hookspec
def tunelab_stage_end(run: RunInfo, stage: str, stats: dict[str, Any]) -> None:
    """A stage ended (``prepare``, ``train``, ``evaluate``) with its statistics.

    For ``prepare``, ``stats`` holds per-step rows in/out, drops by reason and timings,
    and whether the prepared data came from the cache.
    """


@hookspec
def tunelab_metrics(run: RunInfo, metrics: dict[str, float], step: int | None) -> None:
    """Metrics were measured: training logs (with the optimizer step) and final
    evaluation metrics (``step`` None)."""


@hookspec
def tunelab_run_end(run: RunInfo, status: str, metrics: dict[str, float], error: str | None) -> None:
    """A run ended. ``status`` is ``"ok"`` or ``"failed"`` (then ``error`` says why);
    ``metrics`` is what was written to the run's ``metrics.json``."""


@hookspec
def tunelab_sweep_end(sweep_dir: Path, rows: list[dict[str, Any]], comparison: Any, group: str) -> None:
    """A multirun ended and its comparison report is written into ``sweep_dir``.

    ``rows`` is the per-run table, one dict per job (``comparison.runs``).
    ``comparison`` is the :class:`tunelab.compare.Comparison`: ``approaches`` with their
    statistics and paired tests, ``primary``/``best``, and ``files`` (name -> path of
    ``comparison.md``, ``comparison.html``, ``comparison_approaches.csv`` (key ``csv``),
    ``comparison.csv`` (key ``runs_csv``) and the plots). ``group`` is the
    :attr:`~tunelab.api.RunInfo.group` the sweep's runs were tracked under.

    Besides every installed plugin, the trackers selected by the sweep's config (or by any
    of its jobs) are registered for this one call, so a tracker can log the comparison
    next to the runs it tracked. An implementation may accept any subset of the arguments.
    """
