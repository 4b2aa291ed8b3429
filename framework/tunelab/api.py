"""The public surface of tunelab: what a plugin imports, and nothing else.

A plugin is a module (or object) with functions marked ``@hookimpl`` whose names
match the hook specifications in :mod:`tunelab.hookspecs`. Registration hooks return
:class:`Component` records; each record names a class implementing one of the
contracts below and, optionally, a dataclass that is the component's config schema.

This module imports nothing heavy: ``datasets``, ``torch`` and ``transformers`` are
only named in type hints. It is one module on purpose, though longer than the others:
it is the whole surface a plugin imports, so a plugin author reads one file.
"""

from __future__ import annotations

import dataclasses
import fcntl
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pluggy

if TYPE_CHECKING:  # pragma: no cover - type hints only
    from datasets import Dataset

#: Version of the plugin API (hookspecs + this module). A plugin may declare the
#: version it was written for as ``TUNELAB_API_VERSION`` in its entry-point module;
#: a different major version is refused with a message naming the plugin.
API_VERSION = "1.0"

hookimpl = pluggy.HookimplMarker("tunelab")

# --- the row schema -------------------------------------------------------------
#: Stable identifier of a row. Collectors set it from where the row came from
#: (``file:line``); derived rows extend their parent's id (``parent~op1``).
ROW_ID = "id"
#: Id of the row a derived row (augmented, oversampled) was made from; None otherwise.
PARENT_ID = "parent_id"
#: Canonical text columns. A dataset uses the ones its task needs.
TEXT = "text"
PROMPT = "prompt"
COMPLETION = "completion"
LABEL = "label"
#: preference pairs: the preferred and the dispreferred completion of ``prompt``
CHOSEN = "chosen"
REJECTED = "rejected"
#: chat transcripts: a list of {"role": "system"|"user"|"assistant", "content": str}
MESSAGES = "messages"
CANONICAL_TEXT_COLUMNS = (TEXT, PROMPT, COMPLETION, CHOSEN, REJECTED)


@dataclass(frozen=True)
class Component:
    """What a registration hook returns: one named, configurable component.

    ``config`` is a dataclass whose fields are the component's parameters (types and
    defaults). Config values are validated against it before any work starts, and an
    instance of it is passed to ``cls(config)``.
    """

    name: str
    cls: type
    config: type | None = None
    description: str = ""

    def summary(self) -> str:
        if self.description:
            return self.description
        doc = (self.cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


@dataclass
class NoConfig:
    """Schema of a component that takes no parameters."""


# --- data preparation contracts --------------------------------------------------


@dataclass
class Drop:
    """Rows an operator removed, with one reason (and optional detail per row)."""

    ids: list[str]
    reason: str
    detail: list[dict[str, Any]] | None = None


class StageContext:
    """Handed to every data operator: the seed, parallelism, and the drop ledger.

    An operator that removes rows must say so with :meth:`drop`; the engine checks
    after every step that each missing row was recorded, and that each new row has a
    ``parent_id`` naming an input row. Calls are per step (bulk), never per row.
    """

    def __init__(
        self,
        *,
        seed: int,
        num_proc: int,
        work_dir: Path,
        label_column: str = LABEL,
        factory: Callable[[str, str, dict[str, Any]], Any] | None = None,
        step: str = "",
        label_case: str = "keep",
    ):
        #: the step id (``name`` or ``name@alias``), e.g. to name files the step writes
        self.step = step
        self.seed = seed
        self.num_proc = num_proc
        #: where the step may write files for the user (review queues, plots); they are
        #: kept with the prepared data and copied into every run directory
        self.work_dir = work_dir
        self.label_column = label_column
        #: ``pipeline.label_case``: "fold" when labels differing only by case or spacing are one
        #: class (a step that writes labels, e.g. from annotators' votes, compares them so)
        self.label_case = label_case
        self.drops: list[Drop] = []
        self.quarantined: list[dict[str, Any]] = []
        self.counters: Counter[str] = Counter()
        self.examples: list[dict[str, Any]] = []
        #: (ids, what, detail): detail is None or one JSON-like dict per id (e.g. a short before/after)
        self.modifications: list[tuple[list[str], str, list[dict[str, Any]] | None]] = []
        #: rows a collector made from one record each (child id, record id, which part)
        self.explosions: list[tuple[str, str, str]] = []
        #: structured results for the report and for later stages (e.g. agreement
        #: metrics, class weights); must be JSON-serializable
        self.metadata: dict[str, Any] = {}
        #: what the user should know though nothing failed (a class missing from test):
        #: logged and listed under "Warnings" at the top of the data report
        self.warnings: list[str] = []
        self._factory = factory

    def make(self, kind: str, name: str, params: dict[str, Any] | None = None) -> Any:
        """Build another registered component (validated like config), e.g. a balancer
        that augments minority classes through any registered augmenter."""
        if self._factory is None:
            raise RuntimeError("this StageContext cannot build components")
        return self._factory(kind, name, dict(params or {}))

    def drop(self, ids: Iterable[str], reason: str, detail: list[dict[str, Any]] | None = None) -> None:
        ids = list(ids)
        if detail is not None and len(detail) != len(ids):
            raise ValueError("drop(): detail must have one entry per id")
        if ids:
            self.drops.append(Drop(ids, reason, detail))

    def quarantine(
        self, source: str, line: int | None, reason: str, raw: str | None = None, row_id: str | None = None
    ) -> None:
        """Record an input record that could not be parsed (collectors), or a row a step
        sets aside for review (with ``row_id``; the step must also :meth:`drop` it). Both
        are written to ``quarantine.jsonl``, where a user reviews them."""

        def storable(text: str | None) -> str | None:
            # a lone surrogate (JSON can spell one) cannot be written as UTF-8: show U+FFFD
            return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace") if isinstance(text, str) else text

        item = {"source": storable(source), "line": line, "reason": storable(reason), "raw": storable(raw)}
        if row_id is not None:
            item.update({"id": row_id, "step": self.step})
        self.quarantined.append(item)

    def warn(self, message: str) -> None:
        """Record a warning for the log and the data report (the engine logs it, naming the step)."""
        self.warnings.append(message)

    def count(self, name: str, n: int = 1) -> None:
        """Add to a named counter shown in the data report (e.g. ``rows_modified``)."""
        self.counters[name] += n

    def modified(self, ids: Iterable[str], what: str, detail: list[dict[str, Any]] | None = None) -> None:
        """Record that rows were edited (e.g. ``"whitespace normalized"``). Goes into the
        ledger, so `tunelab explain ROW_ID` can say what happened to a row; also counted.
        ``detail`` (one dict per id, e.g. ``{"field", "before", "after"}``) goes into each
        row's ledger record."""
        ids = list(ids)
        if detail is not None and len(detail) != len(ids):
            raise ValueError("modified(): detail must have one entry per id")
        if ids:
            self.modifications.append((ids, what, detail))
            self.counters[f"modified: {what}"] += len(ids)

    def exploded(self, ids: Iterable[str], parents: Iterable[str], what: Iterable[str]) -> None:
        """Record rows a collector made from parts of one source record (the elements of a
        list, ``data.explode``): the ledger keeps each row's record id as its ``parent_id``,
        so `tunelab explain` can say where it came from. Collectors only, once per step."""
        self.explosions.extend(zip(ids, parents, what))

    def example(self, row_id: str, before: str, after: str, limit: int = 5) -> None:
        """Keep an example of an edit for the report (at most ``limit`` per step)."""
        if len(self.examples) < limit:
            self.examples.append({"id": row_id, "before": before, "after": after})


class Collector:
    """Reads a source into a ``datasets.Dataset`` with a unique ``id`` per row."""

    kind: ClassVar[str] = "collector"

    def __init__(self, config: Any):
        self.config = config

    def collect(self, ctx: StageContext) -> Dataset:  # pragma: no cover - contract
        raise NotImplementedError

    def input_files(self) -> list[Path]:
        """Files read by :meth:`collect`; their sizes and mtimes key the data cache."""
        return []


class Operator:
    """A data step: takes a dataset, returns a dataset. Base of the four kinds below."""

    kind: ClassVar[str] = ""

    def __init__(self, config: Any):
        self.config = config

    def input_files(self) -> list[Path]:
        """Files the step reads besides the data (annotation files, local models); their
        sizes and mtimes are part of the data cache key, so editing them re-prepares."""
        return []

    def apply(self, data: Dataset, ctx: StageContext) -> Dataset:  # pragma: no cover
        raise NotImplementedError


class Cleaner(Operator):
    """Edits rows in place or drops them (with a reason)."""

    kind = "cleaner"


class Annotator(Operator):
    """Adds or changes labels."""

    kind = "annotator"


class Augmenter(Operator):
    """Adds derived rows; each keeps ``parent_id``."""

    kind = "augmenter"


class Balancer(Operator):
    """Changes the label distribution by adding or dropping rows."""

    kind = "balancer"


class Splitter:
    """Partitions the dataset into named splits (``train``/``validation``/``test``)."""

    kind: ClassVar[str] = "splitter"
    #: the names of the splits :meth:`split` returns (some may be empty); ``eval.split`` must
    #: name one of them, checked before any work. A splitter making other splits overrides it.
    splits: ClassVar[tuple[str, ...]] = ("train", "validation", "test")

    def __init__(self, config: Any):
        self.config = config

    def split(self, data: Dataset, ctx: StageContext) -> dict[str, Dataset]:  # pragma: no cover
        raise NotImplementedError


# --- training contracts ----------------------------------------------------------


#: model tasks: a generating causal LM, a sequence classifier (a head over labels), the
#: bare encoder (embeddings, feature-based training), a masked LM (encoder pretraining)
MODEL_TASKS: tuple[str, ...] = ("causal_lm", "sequence_classification", "encoder", "masked_lm")


@dataclass
class ModelRequest:
    """What the objective needs from the model loader."""

    #: one of :data:`MODEL_TASKS`
    task: str = "causal_lm"
    #: class names, in the order of the classification head's outputs
    labels: list[str] = field(default_factory=list)
    #: ``transformers.BitsAndBytesConfig`` arguments when the adaptation trains on a
    #: quantized base (QLoRA); compute dtype given by name. None: load unquantized.
    quantization: dict[str, Any] | None = None


@dataclass
class LoadedModel:
    """A model and its tokenizer, as a model loader returns them."""

    model: Any
    tokenizer: Any
    name: str
    #: the model's own id or path, for the run record (never secret)
    source: str = ""
    #: the task it was loaded for (see :class:`ModelRequest`)
    task: str = "causal_lm"


@dataclass
class TrainSettings:
    """Settings shared by every objective (the ``train`` section of the config)."""

    max_steps: int = 20
    num_epochs: float = 1.0
    learning_rate: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 256
    #: warmup: a number of steps, or a fraction of all steps when below 1
    warmup_steps: float = 0.0
    weight_decay: float = 0.0
    logging_steps: int = 5
    #: "auto" uses bf16 on a GPU that supports it, fp32 elsewhere
    precision: str = "auto"
    #: trade compute for memory; worth it for large models on small GPUs, a slowdown otherwise
    gradient_checkpointing: bool = False
    save_model: bool = True
    #: save a checkpoint (weights, optimizer, scheduler, RNG, step) every this many steps under
    #: <run dir>/trainer/, so that a sweep rerun (resume=true) continues a killed job from its
    #: latest complete checkpoint; 0: no checkpoints. Removed when the run finishes ok
    save_steps: int = 0
    #: checkpoints kept on disk while training (the oldest are deleted); at least 1
    save_total_limit: int = 2
    #: budget matching: stop once this many input tokens were trained on (0: no limit).
    #: Give every approach the same number, with max_steps high enough not to stop first.
    max_train_tokens: int = 0
    #: budget matching by wall time: stop after this many seconds of training (0: no limit)
    max_train_seconds: float = 0.0
    #: label scarcity (classifiers): keep the labels of this fraction of the training rows,
    #: per class, the same rows for every approach and seed; the others become unlabelled
    #: (classify and feature skip them, semi_supervised pseudo-labels them). 1.0: all labels
    label_fraction: float = 1.0
    #: electricity grid for the CO2e estimate (a key of the intensity table in tunelab.train.meters)
    country: str = "world"
    #: W per busy CPU core, used when RAPL energy counters cannot be read
    cpu_watts_per_core: float = 10.0
    #: W of a GPU at full load, used when the GPU reports no power draw
    gpu_watts: float = 300.0


@dataclass
class TrainJob:
    """Everything an objective needs to train, prepared by the train engine."""

    model: LoadedModel
    splits: dict[str, Dataset]
    peft_config: Any | None
    settings: TrainSettings
    output_dir: Path
    seed: int
    #: transformers ``TrainerCallback`` objects the objective must pass to its trainer
    callbacks: list[Any] = field(default_factory=list)
    #: what the model was loaded for (task, class names)
    request: ModelRequest = field(default_factory=ModelRequest)
    #: the label column of the prepared data
    label_column: str = LABEL
    #: step results of the data preparation, e.g. ``{"class_weights": {"class_weights": {...}}}``
    data_metadata: dict[str, Any] = field(default_factory=dict)
    #: a complete checkpoint of this same job (``output_dir/trainer/checkpoint-N``) to continue
    #: from, or None; an objective passes it to ``trainer.train(resume_from_checkpoint=...)``
    #: (see ``tunelab.train.arguments.run_trainer``)
    resume_from: Path | None = None


@dataclass
class TrainOutcome:
    """What an objective returns: the trained model and how training went."""

    model: Any
    tokenizer: Any
    metrics: dict[str, float] = field(default_factory=dict)
    #: where the objective saved the adapter/model, if it did
    saved_to: Path | None = None


class ModelLoader:
    """Loads (or builds) a model and tokenizer."""

    kind: ClassVar[str] = "model"
    #: the tasks (:attr:`ModelRequest.task`) this loader can serve; checked before any work
    tasks: ClassVar[tuple[str, ...]] = ("causal_lm",)
    #: whether it honours :attr:`ModelRequest.quantization` (a 4-bit base for QLoRA)
    quantizable: ClassVar[bool] = False

    def __init__(self, config: Any):
        self.config = config

    def load(
        self, data: dict[str, Dataset], cache_dir: Path, request: ModelRequest | None = None
    ) -> LoadedModel:  # pragma: no cover
        """Load for ``request`` (None: a causal LM). A loader that cannot serve the
        requested task raises ValueError saying which tasks it supports."""
        raise NotImplementedError


class PeftMethod:
    """Decides what is trained: returns a ``peft.PeftConfig``, or None for all weights."""

    kind: ClassVar[str] = "peft"
    #: the model tasks it can adapt (:attr:`ModelRequest.task`); checked before any work
    tasks: ClassVar[tuple[str, ...]] = MODEL_TASKS

    def __init__(self, config: Any):
        self.config = config

    def peft_config(self, model: LoadedModel) -> Any | None:  # pragma: no cover
        raise NotImplementedError


class Method:
    """A training objective (SFT, DPO, ...)."""

    kind: ClassVar[str] = "method"
    #: columns the prepared data must have for this objective
    required_columns: ClassVar[tuple[str, ...]] = ()
    #: the model task this objective trains (see :class:`ModelRequest`)
    task: ClassVar[str] = "causal_lm"
    #: tasks it can train instead, in order of preference, when the model cannot serve
    #: ``task`` (e.g. ``cpt`` trains a masked LM on an encoder)
    alternative_tasks: ClassVar[tuple[str, ...]] = ()
    #: what the trained model is, for choosing an evaluator (``Evaluator.scores``); None:
    #: the task it was trained as. E.g. ``reward`` trains a causal LM into a ``reward_model``.
    produces: ClassVar[str | None] = None
    #: ``peft`` options this objective cannot train with, and why (``{"prefix_tuning": "..."}``);
    #: ``"*"`` refuses every option except ``none``
    unsupported_peft: ClassVar[dict[str, str]] = {}

    def __init__(self, config: Any):
        self.config = config

    def train(self, job: TrainJob) -> TrainOutcome:  # pragma: no cover
        raise NotImplementedError


class Evaluator:
    """Scores a trained model on the test split; returns flat ``name -> number``."""

    kind: ClassVar[str] = "evaluator"
    #: what it can score (a model task, or a :attr:`Method.produces` value); empty: anything
    scores: ClassVar[tuple[str, ...]] = ()
    #: columns the evaluated split must have
    required_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any):
        self.config = config
        split = getattr(config, "split", None)  # the split scored, for evaluators that have the setting
        if split is not None and (not isinstance(split, str) or not split.strip()):
            raise ValueError(
                f"eval.split must name a split of the prepared data (train, validation or test), got {split!r}"
            )

    def evaluate(self, job: TrainJob, outcome: TrainOutcome) -> dict[str, float]:  # pragma: no cover
        raise NotImplementedError


#: Per-example scores of the evaluated split, next to ``metrics.json`` in the run directory.
#: ``tunelab compare`` pairs approaches on them (joined on ``id``) for its significance tests.
EXAMPLE_SCORES_FILE = "example_scores.jsonl"


def evaluation_split(job_or_splits: TrainJob | dict[str, Dataset], name: str = "test") -> Dataset:
    """The split an evaluator scores (``job.splits[name]``), or a ValueError that names the
    split, the splits there are (with their row counts) and what to set to fix it."""
    splits = job_or_splits.splits if isinstance(job_or_splits, TrainJob) else job_or_splits
    split = splits.get(name)
    if split is not None and len(split) > 0:
        return split
    have = ", ".join(f"{key} ({len(rows)} rows)" for key, rows in splits.items()) or "none"
    raise ValueError(
        f"eval: the prepared data has no '{name}' rows (splits: {have}); set eval.split to a split that has rows, "
        f"or give '{name}' rows: the Warnings of data_report.md say why it is empty and which setting fills it"
    )


def write_example_scores(job: TrainJob, rows: Iterable[dict[str, Any]], split: Dataset | None = None) -> Path:
    """Write one JSON line per scored row to ``job.output_dir / example_scores.jsonl``.

    ``rows`` holds one mapping per evaluated row, in the split's order, e.g.
    ``{"correct": 1, "loss": 0.12, "predicted": "billing"}``. Each line gets an ``id``:
    the mapping's own ``"id"`` if it has one, else the split's :data:`ROW_ID` column
    (when ``split`` is given and has it), else the row's index as a string. Scores that are
    not finite numbers are written as ``null``; numpy/torch scalars become plain numbers.
    An evaluator (built-in or plugin) calls this once, after scoring; returns the path.
    """
    import json
    import math

    ids = list(split[ROW_ID]) if split is not None and ROW_ID in split.column_names else None

    def plain(value: Any) -> Any:
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    path = Path(job.output_dir) / EXAMPLE_SCORES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for index, row in enumerate(rows):
            row_id = row.get(ROW_ID)
            if row_id is None:
                row_id = ids[index] if ids is not None and index < len(ids) else index
            line = {ROW_ID: str(row_id), **{k: plain(v) for k, v in row.items() if k != ROW_ID}}
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path


class Tracker:
    """Base for trackers. A tracker is an object with ``@hookimpl`` lifecycle methods
    (``tunelab_run_start``, ``tunelab_metrics``, ...); the run engine registers the
    selected trackers with the plugin manager for the duration of a run."""

    kind: ClassVar[str] = "tracker"

    def __init__(self, config: Any):
        self.config = config


@dataclass
class RunInfo:
    """Who is running: passed to every lifecycle hook."""

    run_dir: Path
    name: str
    #: the sweep this run belongs to (the multirun directory name), or the run name
    group: str
    job_type: str
    #: the fully resolved config, secrets removed
    config: dict[str, Any]
    overrides: list[str] = field(default_factory=list)
    #: plugin distribution name -> version
    plugins: dict[str, str] = field(default_factory=dict)


def schema_fields(config_cls: type | None) -> list[dataclasses.Field]:
    """Fields of a component config schema (empty for None)."""
    return list(dataclasses.fields(config_cls)) if config_cls is not None else []


def field_default(f: dataclasses.Field) -> Any:
    """A schema field's default value; ``"???"`` (required) when it has none."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return "???"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created with its parents) for the ``with``
    block: parallel jobs of a sweep use it to build a shared cache entry only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- the kinds of component ------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One kind of component. Everything that differs by kind is derived from this table:
    the registration hook, the registry's contract check, where a run's config selects
    the component, the built-ins' package and the reference page."""

    #: singular name: the registry's key (``tunelab plugins --kind collector``)
    name: str
    #: the base class every component of this kind subclasses
    contract: type
    #: the built-ins' package and the reference page (``collectors``); peft keeps its group name
    plural: str
    #: heading of the reference page
    title: str
    #: the config group whose ``name`` key selects one component (``data.name=jsonl``), if any
    group: str | None
    #: the data-preparation stage it runs in (collect, clean, ..., split), if any
    stage: str | None
    #: True when ``pipeline.<stage>`` lists several steps of this kind
    steps: bool
    #: what the reference page says first
    intro: str

    @property
    def hook(self) -> str:
        """Name of the registration hook (declared in :mod:`tunelab.hookspecs`)."""
        return f"tunelab_register_{self.name}s"


_STEP_PARAMS = "each step's parameters live under `pipeline.params.<step>`."

#: Every kind of component, in pipeline order for the data kinds.
KIND_TABLE: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "collector",
            Collector,
            "collectors",
            "Collectors",
            group="data",
            stage="collect",
            steps=False,
            intro="A collector reads a source (files, a folder, URLs, a database, a saved dataset) into rows "
            "with a unique `id` each. A run has exactly one, selected by the `data` config group.",
        ),
        Kind(
            "cleaner",
            Cleaner,
            "cleaners",
            "Cleaners",
            group=None,
            stage="clean",
            steps=True,
            intro="Steps of the clean stage: they edit rows or drop them with a reason. `pipeline.clean` "
            f"lists them in the order they run; {_STEP_PARAMS}",
        ),
        Kind(
            "annotator",
            Annotator,
            "annotators",
            "Annotators",
            group=None,
            stage="annotate",
            steps=True,
            intro=(
                "Steps of the annotate stage: they add or change labels. "
                f"`pipeline.annotate` lists them; {_STEP_PARAMS}"
            ),
        ),
        Kind(
            "augmenter",
            Augmenter,
            "augmenters",
            "Augmenters",
            group=None,
            stage="augment",
            steps=True,
            intro="Steps of the augment stage: they add derived rows, each with the `parent_id` of the row it "
            "came from. `pipeline.augment` lists them (the `augment` group swaps the whole stage); "
            f"{_STEP_PARAMS}",
        ),
        Kind(
            "balancer",
            Balancer,
            "balancers",
            "Balancers",
            group=None,
            stage="balance",
            steps=True,
            intro="Steps of the balance stage: they change the label distribution by adding or dropping rows "
            f"(or compute class weights). `pipeline.balance` lists them; {_STEP_PARAMS}",
        ),
        Kind(
            "splitter",
            Splitter,
            "splitters",
            "Splitters",
            group=None,
            stage="split",
            steps=False,
            intro="The splitter partitions the prepared rows into `train`/`validation`/`test`. `pipeline.split` "
            "names one; its parameters live under `pipeline.params.<splitter>`.",
        ),
        Kind(
            "model",
            ModelLoader,
            "models",
            "Models",
            group="model",
            stage=None,
            steps=False,
            intro="A model loader loads (or builds) the model and tokenizer for the task the objective needs. "
            "Selected by the `model` config group.",
        ),
        Kind(
            "method",
            Method,
            "methods",
            "Methods (training objectives)",
            group="method",
            stage=None,
            steps=False,
            intro="A method is the training objective (SFT, classification, DPO, ...). Selected by the "
            "`method` config group.",
        ),
        Kind(
            "peft",
            PeftMethod,
            "peft",
            "Adaptation methods (PEFT)",
            group="peft",
            stage=None,
            steps=False,
            intro="An adaptation method decides what is trained: every weight (`none`) or a parameter-efficient "
            "adapter. Selected by the `peft` config group.",
        ),
        Kind(
            "evaluator",
            Evaluator,
            "evaluators",
            "Evaluators",
            group="eval",
            stage=None,
            steps=False,
            intro="An evaluator scores the trained model on the test split (`eval.split`). Selected by the "
            "`eval` config group.",
        ),
        Kind(
            "tracker",
            Tracker,
            "trackers",
            "Trackers",
            group=None,
            stage=None,
            steps=False,
            intro="Trackers watch runs through the lifecycle hooks (they never change a result). The `tracker` "
            "config group is a list: `tracker=[csv,wandb]`; each tracker's settings live under "
            "`tracker.<name>`.",
        ),
    )
}
#: The kinds' names, in the table's order.
KINDS: tuple[str, ...] = tuple(KIND_TABLE)
#: The data-preparation stages whose ``pipeline.<stage>`` is a list of steps, in the order they run.
PIPELINE_STAGES: tuple[str, ...] = tuple(kind.stage for kind in KIND_TABLE.values() if kind.steps)
