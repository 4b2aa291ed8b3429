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
# One hook per entry of tunelab.api.KIND_TABLE (named by Kind.hook). Each returns
# Component records whose class subclasses the kind's contract; anything else stops
# tunelab with an error naming the plugin.


@hookspec
def tunelab_register_collectors() -> list[Component]:
    """Return collectors (:class:`~tunelab.api.Collector`): read a source (files, a
    database, ...) into rows with a unique ``id`` each. Selected with ``data.name=<name>``.

    Example::

        @dataclass
        class LinesConfig:
            path: str = "???"

        class Lines(Collector):
            '''One row per line of a text file.'''

            def collect(self, ctx):
                from datasets import Dataset

                lines = Path(self.config.path).read_text().splitlines()
                return Dataset.from_dict({"id": [f"line{i}" for i in range(len(lines))], "text": lines})

        @hookimpl
        def tunelab_register_collectors():
            return [Component("lines", Lines, LinesConfig)]
    """


@hookspec
def tunelab_register_cleaners() -> list[Component]:
    """Return cleaners (:class:`~tunelab.api.Cleaner`): steps of ``pipeline.clean`` that
    edit rows or drop them through ``ctx.drop(ids, reason)``.

    Example::

        class Shout(Cleaner):
            '''Upper-cases the prompt.'''

            def apply(self, data, ctx):
                return data.map(lambda b: {"prompt": [t.upper() for t in b["prompt"]]}, batched=True)

        @hookimpl
        def tunelab_register_cleaners():
            return [Component("shout", Shout)]
    """


@hookspec
def tunelab_register_annotators() -> list[Component]:
    """Return annotators (:class:`~tunelab.api.Annotator`): steps of ``pipeline.annotate``
    that add or change labels.

    Example::

        @hookimpl
        def tunelab_register_annotators():
            return [Component("keyword_label", KeywordLabel, KeywordLabelConfig)]
    """


@hookspec
def tunelab_register_augmenters() -> list[Component]:
    """Return augmenters (:class:`~tunelab.api.Augmenter`): steps of ``pipeline.augment``
    that add derived rows, each with a new ``id`` and the ``parent_id`` of its original.

    Example::

        @hookimpl
        def tunelab_register_augmenters():
            return [Component("reverse_words", ReverseWords, ReverseWordsConfig)]
    """


@hookspec
def tunelab_register_balancers() -> list[Component]:
    """Return balancers (:class:`~tunelab.api.Balancer`): steps of ``pipeline.balance``.

    Example::

        @hookimpl
        def tunelab_register_balancers():
            return [Component("cap_per_class", CapPerClass, CapPerClassConfig)]
    """


@hookspec
def tunelab_register_splitters() -> list[Component]:
    """Return splitters (:class:`~tunelab.api.Splitter`), selected by ``pipeline.split``.

    Example::

        @hookimpl
        def tunelab_register_splitters():
            return [Component("by_date", ByDate, ByDateConfig)]
    """


@hookspec
def tunelab_register_models() -> list[Component]:
    """Return model loaders (:class:`~tunelab.api.ModelLoader`), selected by ``model.name``.

    Example::

        @hookimpl
        def tunelab_register_models():
            return [Component("my_llm", MyLlm, MyLlmConfig)]
    """


@hookspec
def tunelab_register_methods() -> list[Component]:
    """Return training objectives (:class:`~tunelab.api.Method`), selected by ``method.name``.

    Example::

        @hookimpl
        def tunelab_register_methods():
            return [Component("simpo", Simpo, SimpoConfig)]
    """


@hookspec
def tunelab_register_pefts() -> list[Component]:
    """Return adaptation methods (:class:`~tunelab.api.PeftMethod`), selected by ``peft.name``.

    Example::

        @hookimpl
        def tunelab_register_pefts():
            return [Component("vera", Vera, VeraConfig)]
    """


@hookspec
def tunelab_register_evaluators() -> list[Component]:
    """Return evaluators (:class:`~tunelab.api.Evaluator`), selected by ``eval.name``.

    Example::

        @hookimpl
        def tunelab_register_evaluators():
            return [Component("bleu", Bleu, BleuConfig)]
    """


@hookspec
def tunelab_register_trackers() -> list[Component]:
    """Return trackers (:class:`~tunelab.api.Tracker`), selected by the ``tracker`` list.

    A tracker instance is registered with the plugin manager for one run, so its
    ``@hookimpl`` lifecycle methods receive that run's events.

    Example::

        class Printer(Tracker):
            '''Prints every metric.'''

            @hookimpl
            def tunelab_metrics(self, run, metrics, step):
                print(run.name, step, metrics)

        @hookimpl
        def tunelab_register_trackers():
            return [Component("printer", Printer)]
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
