"""Runs the data pipeline over ``datasets.Dataset`` and caches the prepared splits.

Stages run in a fixed order — collect, clean, annotate, augment, balance, split — and
the steps inside a stage in the order the config lists them. Each step is one call
into its component (never one call per row); the engine times it and checks the
ledger after it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab import __version__
from tunelab.api import KIND_TABLE, LABEL, PARENT_ID, PIPELINE_STAGES, ROW_ID, StageContext, file_lock
from tunelab.config import RunConfig
from tunelab.data.labels import LabelError, normalize_labels
from tunelab.data.ledger import Ledger, LedgerError, StepStats
from tunelab.errors import TunelabError
from tunelab.plugins import Plugins
from tunelab.redaction import log_record_rewriter

log = logging.getLogger(__name__)

SPLITS_DIR = "splits"
COMPLETE_MARKER = "COMPLETE.json"
#: the column the built-in collectors fill with where a row came from (a file name, a URL)
SOURCE = "source"
#: sha256 and size of every file of a prepared-data directory, written last (atomically): a
#: copy is used only when it has a manifest and every file matches it (see :func:`verify`)
MANIFEST = "MANIFEST.json"


class DataError(TunelabError):
    """The data cannot be prepared; the message names the source or step and the fix."""


@dataclass
class Prepared:
    """The prepared splits and how they were made."""

    splits: dict[str, Any]
    directory: Path
    key: str
    cache_hit: bool
    summary: dict[str, Any] = field(default_factory=dict)


def cache_key(rc: RunConfig, plugins: Plugins) -> str:
    """Key of the prepared data: the data and pipeline config, the data seed, the versions of
    the components used, and the size and mtime of every input file."""
    used = [rc.collector, rc.splitter, *(s for stage in rc.steps.values() for s in stage)]
    files = []
    for selected in used:
        component = selected.instantiate(plugins.registry)
        with _step_errors(KIND_TABLE[selected.kind].stage, selected.step):
            files += getattr(component, "input_files", lambda: [])()
    versions = sorted({f"{s.kind}/{s.name}={plugins.registry.get(s.kind, s.name).supplier.version}" for s in used})
    inputs = []
    for path in files:
        try:
            st = path.stat()
            inputs.append([str(path.resolve()), st.st_size, st.st_mtime_ns])
        except OSError:
            inputs.append([str(path), None, None])
    payload = {
        "data": rc.resolved["data"],
        "pipeline": rc.resolved["pipeline"],
        "seed": rc.data_seed,
        "components": versions,
        "inputs": inputs,
        "tunelab": __version__,
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def prepare(rc: RunConfig, plugins: Plugins, failed_dir: Path | None = None) -> Prepared:
    """Return the prepared splits, from the cache when an identical preparation exists.

    Concurrent callers with the same key (the jobs of a sweep) wait on a file lock, so
    the data is prepared once and every caller reads the same complete copy.

    A preparation that fails leaves its quarantine and ledger (partial, as far as it got) in
    ``failed_dir`` (the run directory; by default ``<cache>/prepared/<key>.failed``) — its
    staging directory is deleted — and its error names them and lists the first reasons.
    """
    key = cache_key(rc, plugins)
    root = rc.cache_dir / "prepared"
    target = root / key
    failed_dir = failed_dir if failed_dir is not None else root / f"{key}{FAILED_SUFFIX}"
    rebuilt = ""
    with file_lock(root / f"{key}.lock"):
        for stale in root.glob(f"{key}.tmp-*"):  # a preparation killed half-way (we hold the lock: none is running)
            log.warning("prepared data: removing %s, a preparation that was interrupted before it finished", stale)
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():
            problem = verify(target)
            if problem is None:
                try:
                    prepared = _load(target, key, cache_hit=True)
                    log.info("prepared data: cache hit %s", target)
                    for warning in prepared.summary.get("warnings", []):  # said again: the data has not changed
                        log.warning("prepared data: %s", warning)
                    return prepared
                except Exception as exc:  # verified, yet unreadable: rebuild rather than fail
                    problem = f"it cannot be loaded ({type(exc).__name__}: {exc})"
            rebuilt = problem
            log.warning("prepared data in %s is not usable: %s; it is rebuilt", target, problem)
            shutil.rmtree(target)
        staging = root / f"{key}.tmp-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            summary = run_pipeline(rc, plugins, staging)
            summary["key"] = key
            (staging / COMPLETE_MARKER).write_text(json.dumps(summary, indent=2, default=str))
            write_manifest(staging)  # last: a directory without it is never used
            os.replace(staging, target)
        except BaseException as exc:
            # the staging directory goes: what the error points at must outlive it
            _keep_failed(staging, failed_dir, exc)
            raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(root / f"{key}{FAILED_SUFFIX}", ignore_errors=True)  # an earlier failure's files: fixed now
        with (root / "preparations.log").open("a") as fh:  # one line per real preparation
            fh.write(f"{time.time():.3f} {key} pid={os.getpid()}" + (f" rebuilt: {rebuilt}" if rebuilt else "") + "\n")
    return _load(target, key, cache_hit=False)


#: What a failed preparation keeps (partial but true: the rows as far as it got).
FAILED_FILES = ("quarantine.jsonl", "ledger.jsonl")
#: ``<key>.failed``: where a failed preparation keeps them when no run directory is given
FAILED_SUFFIX = ".failed"
#: How many reasons a failed preparation's error lists (one line each).
FIRST_REASONS = 5


def _keep_failed(staging: Path, failed_dir: Path, exc: BaseException) -> None:
    """Copy :data:`FAILED_FILES` of a failed preparation out of its staging directory into
    ``failed_dir`` and, for tunelab's own errors, make the message point at the copies and
    list the first reasons the files give (redacted like every message)."""
    from tunelab.redaction import redact_text

    kept = []
    try:
        failed_dir.mkdir(parents=True, exist_ok=True)
        for name in FAILED_FILES:
            source = staging / name
            if source.is_file():
                shutil.copyfile(source, failed_dir / name)
                kept.append(failed_dir / name)
    except OSError as copy_error:  # the original error matters more than its files
        log.warning("could not keep the files of the failed preparation in %s: %s", failed_dir, copy_error)
        return
    if not kept or not isinstance(exc, TunelabError) or len(exc.args) != 1 or not isinstance(exc.args[0], str):
        return
    message = exc.args[0]
    pointed = str(staging) in message
    message = message.replace(str(staging), str(failed_dir))
    if not pointed:  # a step that raised (its error is the reason): the rows so far are still worth a look
        exc.args = (message + f" (the quarantine and ledger so far: {', '.join(str(p) for p in kept)})",)
        return
    lines = _first_reasons(failed_dir, message)
    if lines:
        message += "\nfirst reasons:\n" + "\n".join(f"  {redact_text(line)}" for line in lines)
    exc.args = (message,)


def _first_reasons(directory: Path, message: str) -> list[str]:
    """Up to :data:`FIRST_REASONS` lines ``id: reason`` from the file ``message`` points at:
    the quarantine, or the drops of the step that left no rows (the ledger's last step)."""
    records: list[dict[str, Any]] = []
    for name in FAILED_FILES:
        if str(directory / name) not in message:
            continue
        try:
            with (directory / name).open(encoding="utf-8") as fh:
                records = [json.loads(line) for line in fh if line.strip()]
        except (OSError, ValueError):
            return []
        if name == "ledger.jsonl":
            drops = [r for r in records if r.get("action") in ("dropped", "quarantined")]
            last = (drops[-1].get("stage"), drops[-1].get("step")) if drops else None
            records = [r for r in drops if (r.get("stage"), r.get("step")) == last]
        break
    lines = []
    for record in records[:FIRST_REASONS]:
        if "source" in record:  # a quarantined record: file and line
            where = f"{record['source']}:{record['line']}" if record.get("line") is not None else str(record["source"])
        else:
            where = str(record.get("id"))
        line = f"{where}: {' '.join(str(record.get('reason', '')).split())}"
        detail = record.get("detail")
        if isinstance(detail, dict):  # the measured value and the limit, e.g. (field=prompt, value=65, limit=10000)
            scalars = [
                f"{k}={v}"
                for k, v in detail.items()
                if isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 40)
            ]
            line += f" ({', '.join(scalars)})" if scalars else ""
        lines.append(line if len(line) <= 200 else line[:197] + "...")
    if len(records) > FIRST_REASONS:
        lines.append(f"... and {len(records) - FIRST_REASONS} more")
    return lines


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path) -> None:
    """Write :data:`MANIFEST` (size and sha256 of every file below ``directory``), atomically."""
    files = {
        path.relative_to(directory).as_posix(): {"size": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    tmp = directory / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"files": files}, indent=1))
    os.replace(tmp, directory / MANIFEST)


def verify(directory: Path) -> str | None:
    """None when every file :data:`MANIFEST` lists is there with its size and sha256, else
    what is wrong. Files the manifest does not list are not checked: ``datasets`` adds its
    own caches (``cache-*.arrow``) next to the splits when a job maps over them."""
    try:
        files = json.loads((directory / MANIFEST).read_text())["files"]
        if not isinstance(files, dict) or COMPLETE_MARKER not in files:
            raise ValueError(f"it does not list {COMPLETE_MARKER}")
    except FileNotFoundError:
        return f"it has no {MANIFEST} (a preparation that did not finish, or a copy made before checksums)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its {MANIFEST} is unreadable ({exc})"
    for name, expected in files.items():
        path = directory / name
        if not isinstance(expected, dict):
            return f"its {MANIFEST} is unreadable (entry {name!r} is not a mapping)"
        try:
            size = path.stat().st_size
        except OSError:
            return f"{name} is missing"
        if size != expected.get("size"):
            return f"{name} has {size} bytes, the manifest says {expected.get('size')} (truncated or rewritten)"
        if _sha256(path) != expected.get("sha256"):
            return f"the sha256 of {name} does not match the manifest (the file was damaged or changed)"
    return None


@contextmanager
def _step_errors(stage: str, step: str) -> Iterator[None]:
    """Turn an operator's exception into a DataError that names the step."""
    try:
        yield
    except TunelabError:
        raise
    except (ValueError, TypeError, KeyError, OSError) as exc:
        raise DataError(f"{stage} step '{step}' failed: {exc}") from exc


def _scrub_ids(data: Any, scrub: Any) -> tuple[Any, list[str]]:
    """Row ids with personal data in them (``data.id_column`` of e-mail addresses, a file
    name) take the detector's placeholders and a running number (``sql:<EMAIL>#1``): ids
    are written to the ledger, the splits, reports and per-example scores. Returns the data
    and the new ids."""
    ids, parents = _ids(data)
    taken = set(ids)
    renamed: dict[str, str] = {}
    for row_id in ids:
        clean = scrub(row_id)
        if clean == row_id:
            continue
        number = len(renamed) + 1
        while f"{clean}#{number}" in taken:
            number += 1
        renamed[row_id] = f"{clean}#{number}"
        taken.add(renamed[row_id])
    if not renamed:
        return data, []
    data = data.remove_columns([ROW_ID, PARENT_ID])
    data = data.add_column(ROW_ID, [renamed.get(i, i) for i in ids])
    data = data.add_column(PARENT_ID, [renamed.get(p, p) if p is not None else None for p in parents])
    return data, list(renamed.values())


def _unique_names(names: list[str], clean: Any) -> dict[str, str]:
    """name -> cleaned name, for the names ``clean`` changes; two names that clean to the same
    text (two files of one customer's e-mail address), or to a name already there, are told
    apart by a number (``export_<EMAIL>.jsonl#2``), in the order given."""
    taken = set(names)
    renamed: dict[str, str] = {}
    for name in names:
        new = clean(name)
        if new == name or name in renamed:
            continue
        candidate, number = new, 1
        while candidate in taken:
            number += 1
            candidate = f"{new}#{number}"
        renamed[name] = candidate
        taken.add(candidate)
    return renamed


def _scrub_names(data: Any, ctx: StageContext, scrub_name: Any, names: _Names | None = None) -> Any:
    """With a pii step, the names a collector took from the files and the records go through
    its name detector before anything is written: the ``source`` column (file and folder
    names), the row ids made from it (``<source>:<line>``), the quarantine's sources, and
    column names (a key ``ssn 123-45-6789`` becomes ``ssn <US_SSN>``). One file keeps one
    name, so its rows still read ``export_<EMAIL>.jsonl:1``, ``...:2``."""
    row_sources = list(data[SOURCE]) if SOURCE in data.column_names else []
    sources = list(
        dict.fromkeys(
            [
                *(s for s in row_sources if isinstance(s, str)),
                *(q.get("source") for q in ctx.quarantined if isinstance(q.get("source"), str)),
            ]
        )
    )
    renamed = _unique_names(sources, scrub_name)
    if renamed:
        for item in ctx.quarantined:
            item["source"] = renamed.get(item.get("source"), item.get("source"))
        ids, parents = _ids(data)

        def rename_id(row_id: str | None, source: str | None) -> str | None:
            if row_id is None or source not in renamed or not row_id.startswith(source):
                return row_id
            return renamed[source] + row_id[len(source) :]

        by_id = dict(zip(ids, row_sources))
        new_ids = [rename_id(i, s) for i, s in zip(ids, row_sources)]
        new_parents = [rename_id(p, by_id.get(p)) for p in parents]
        data = data.remove_columns([ROW_ID, PARENT_ID, SOURCE])
        data = data.add_column(ROW_ID, new_ids)
        data = data.add_column(PARENT_ID, new_parents)
        data = data.add_column(SOURCE, [renamed.get(s, s) for s in row_sources])
        log.warning(
            "%d source names held personal data; they are renamed with placeholders (e.g. %s)",
            len(renamed),
            next(iter(renamed.values())),
        )
        ctx.count("source names renamed (personal data)", len(renamed))
    columns = _unique_names([c for c in data.column_names if c not in (ROW_ID, PARENT_ID, SOURCE)], scrub_name)
    if columns:
        data = data.rename_columns(columns)
        log.warning(
            "%d column names held personal data; they are renamed with placeholders (e.g. %s)",
            len(columns),
            next(iter(columns.values())),
        )
        ctx.count("column names renamed (personal data)", len(columns))
    if names is not None:  # later log lines and errors quote them renamed too
        names.add(renamed={**renamed, **columns})
    return data


@contextmanager
def _scrubbed_logs(names: _Names) -> Iterator[None]:
    """Log records created meanwhile (a collector's warning naming a file) show the names
    that held personal data renamed, whatever handler writes them."""
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(log_record_rewriter(previous, names))
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)


def _load(directory: Path, key: str, cache_hit: bool) -> Prepared:
    from datasets import Dataset, load_from_disk

    splits = dict(load_from_disk(str(directory / SPLITS_DIR)))
    summary = json.loads((directory / COMPLETE_MARKER).read_text())
    summary["cache_hit"] = cache_hit
    features = splits["train"].features
    for name, size in summary["splits"].items():
        if size == 0:
            splits[name] = Dataset.from_dict({column: [] for column in features}, features=features)
    return Prepared({name: splits[name] for name in summary["splits"]}, directory, key, cache_hit, summary)


def _ids(data: Any) -> tuple[list[str], list[str | None]]:
    return list(data[ROW_ID]), list(data[PARENT_ID])


def _label_counts(data: Any, label_column: str) -> dict[str, int]:
    if label_column not in data.column_names:
        return {}
    return {str(k): v for k, v in sorted(Counter(map(str, data[label_column])).items())}


def run_pipeline(rc: RunConfig, plugins: Plugins, out_dir: Path) -> dict[str, Any]:
    """Run every stage, write splits, ledger, quarantine and report into ``out_dir``.

    When a step fails, the ledger of the steps before it (and the quarantine, once the
    collector has run) are still written, so that the error can point at them.

    With a step that removes personal data (pii), names of files, folders and columns can
    hold it too: they are renamed in the data, the ledger and the reports right after
    collection, and no log line or error of the preparation shows one raw."""
    preparation = _Preparation(rc, plugins.registry, out_dir)
    with preparation.names_hidden(), preparation.ledger_kept_on_failure():
        preparation.collect()
        for stage in PIPELINE_STAGES:  # clean, annotate, augment, balance
            preparation.run_stage(stage)
        preparation.split()
        return preparation.write_outputs()


def _rename_in_exception(exc: BaseException, names: _Names) -> None:
    """The messages of ``exc`` and of the exceptions it was raised from (a traceback shows
    them all) with the names that held personal data renamed."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):  # its message is built from errno, strerror and the file names
            for attribute in ("filename", "filename2"):
                value = getattr(current, attribute, None)
                if isinstance(value, str):
                    setattr(current, attribute, names(value))
        elif len(current.args) == 1 and isinstance(current.args[0], str):
            current.args = (names(current.args[0]),)
        current = current.__cause__ or current.__context__


class _Names:
    """The names (path parts, sources, columns) that held personal data, and their renamed
    forms: applied to log lines and errors, which quote names among other things (a host,
    a query) that are not to be touched."""

    def __init__(self, scrub_name: Any) -> None:
        self.scrub_name = scrub_name
        self.renamed: dict[str, str] = {}

    def add(self, *names: str, renamed: dict[str, str] | None = None) -> None:
        for name in names:
            clean = self.scrub_name(name)
            if clean != name:
                self.renamed[name] = clean
        self.renamed.update(renamed or {})

    def __call__(self, text: str) -> str:
        for raw in sorted(self.renamed, key=len, reverse=True):  # longest first: a path before its parts
            if raw in text:
                text = text.replace(raw, self.renamed[raw])
        return text


class _Preparation:
    """One preparation of :func:`run_pipeline`, as named steps: :meth:`collect`, :meth:`run_stage`
    for each stage, :meth:`split`, :meth:`write_outputs`. It holds what the steps share: the
    data so far, the ledger, the steps' statistics, metadata and warnings, and the PII state.

    PII: with a step that removes personal data (a ``scrub`` method, e.g. pii), nothing from
    before it is written raw: the quarantine and the report examples, drop details and
    metadata of the earlier steps go through its detector (its own and later ones see clean
    data); :attr:`scrubbing` is true until that step has run."""

    def __init__(self, rc: RunConfig, registry: Any, out_dir: Path) -> None:
        self.rc = rc
        self.registry = registry
        self.out_dir = out_dir
        self.ledger = Ledger()
        self.steps: list[StepStats] = []
        self.metadata: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.scrub_step, self.scrub, self.scrub_name = _scrubber(rc, registry)
        self.scrubbing = self.scrub is not None
        #: the names (paths, sources, columns) that held personal data, with a pii step; else None
        self.names = self._input_names() if self.scrub_name is not None else None
        self.data: Any = None  # the rows so far
        self.labels: Any = None  # the label normalisation (tunelab.data.labels)
        self.collected = self.quarantined = 0  # rows the collector returned, and set aside
        self.splits: dict[str, Any] = {}
        self.total_added = self.total_dropped = self.final = 0  # rows of every step, and in the splits
        self.labels_before: dict[str, int] = {}
        self.labels_after: dict[str, int] = {}
        self.lengths_before: dict[str, dict[str, Any]] = {}
        self.lengths_after: dict[str, dict[str, Any]] = {}

    def _input_names(self) -> _Names:
        """The parts of the collector's input paths, renamed where they hold personal data."""
        names = _Names(self.scrub_name)
        try:
            for path in self.rc.collector.instantiate(self.registry).input_files():
                names.add(*Path(path).parts)
        except Exception:  # noqa: BLE001 - a source that cannot list its files fails in collect, with its reason
            pass
        return names

    @contextmanager
    def names_hidden(self) -> Iterator[None]:
        """With a pii step: no log line or error of the preparation shows a name that held personal data."""
        if self.names is None:
            yield
            return
        with _scrubbed_logs(self.names):
            try:
                yield
            except Exception as exc:
                _rename_in_exception(exc, self.names)
                raise

    @contextmanager
    def ledger_kept_on_failure(self) -> Iterator[None]:
        """When a step fails after the collector ran, the ledger so far is written."""
        try:
            yield
        except BaseException:
            if (self.out_dir / "quarantine.jsonl").is_file():  # the collector ran: its quarantine is there
                self.ledger.write(self.out_dir / "ledger.jsonl")
            raise

    def _factory(self, kind: str, name: str, params: dict[str, Any]) -> Any:
        from tunelab.config import ConfigError, Origin, typed_config

        try:
            component = self.registry.get(kind, name)
        except KeyError as exc:
            raise ConfigError(str(exc)) from None
        config = typed_config(
            component.config_schema, params, kind=kind, name=name, origin=Origin(), group=kind, key_prefix=""
        )
        return component.create(config)

    def _context(self, step: str = "") -> StageContext:
        rc = self.rc
        return StageContext(
            seed=rc.data_seed,
            num_proc=rc.num_proc,
            work_dir=self.out_dir,
            label_column=rc.label_column,
            factory=self._factory,
            step=step,
            label_case=rc.label_case,
        )

    def collect(self) -> None:
        """Run the collector; give every row a parent id; check the ids are unique; with a pii
        step, rename the names and ids that hold personal data; normalise the labels; write the
        quarantine; record the step."""
        from datasets import Value

        from tunelab.data.report import length_profile

        rc, scrub, scrub_name, ledger = self.rc, self.scrub, self.scrub_name, self.ledger
        collector = rc.collector.instantiate(self.registry)
        ctx = self._context(rc.collector.name)
        started = time.perf_counter()
        with _step_errors("collect", rc.collector.name):
            data = collector.collect(ctx)
        if self.scrubbing:
            _scrub_context(ctx, scrub_name)  # the collector's records name files and columns
        if ROW_ID not in data.column_names:
            raise DataError(f"collector '{rc.collector.name}' returned rows without an '{ROW_ID}' column")
        if PARENT_ID not in data.column_names:
            data = data.add_column(PARENT_ID, [None] * len(data))
        data = data.cast_column(PARENT_ID, Value("string"))
        ids, _ = _ids(data)
        if len(ids) != len(set(ids)):
            dupes = [i for i, n in Counter(ids).items() if n > 1][:5]
            raise DataError((scrub or str)(f"collector '{rc.collector.name}' produced duplicate row ids, e.g. {dupes}"))
        if self.scrubbing:
            data = _scrub_names(data, ctx, scrub_name, self.names)
            data, renamed = _scrub_ids(data, scrub_name)
            if renamed:
                log.warning(
                    "%d row ids held personal data; they are renamed with placeholders (e.g. %s)",
                    len(renamed),
                    renamed[0],
                )
                ctx.count("row ids renamed (personal data)", len(renamed))
        # labels: one spelling per class, checked once here for every collector (tunelab.data.labels)
        try:
            data, self.labels = normalize_labels(data, rc.label_column, rc.label_case, scrub or str)
        except LabelError as exc:
            raise DataError(f"collect step '{rc.collector.name}': {exc}") from None
        self.warnings += [f"labels: {w}" for w in self.labels.warnings]
        for merge in self.labels.merges:
            ctx.count(f"labels: {merge['why']}", merge["rows"])
        ledger.quarantined("collect", rc.collector.name, ctx.quarantined)
        if ctx.explosions:  # rows exploded from one record's list: the ledger names the record (ids as renamed)
            final_ids = dict(zip(ids, _ids(data)[0]))
            ledger.exploded(
                "collect",
                rc.collector.name,
                [(final_ids.get(c, c), (scrub or str)(p), (scrub or str)(what)) for c, p, what in ctx.explosions],
            )
        ledger.modified("collect", "labels", self.labels.modifications)
        self.warnings += [f"{rc.collector.name}: {w}" for w in ctx.warnings]
        if ctx.metadata:
            self.metadata[rc.collector.name] = ctx.metadata
        _write_jsonl(self.out_dir / "quarantine.jsonl", ctx.quarantined)
        self.collected = len(data)
        self.quarantined = len(ctx.quarantined)
        self.steps.append(
            StepStats(
                "collect",
                rc.collector.name,
                f"collector/{rc.collector.name}",
                rows_in=self.collected + self.quarantined,
                rows_out=self.collected,
                dropped={"quarantined (unparseable)": self.quarantined} if self.quarantined else {},
                seconds=time.perf_counter() - started,
                counters=dict(ctx.counters),
            )
        )
        if self.collected == 0:
            raise DataError(
                f"collector '{rc.collector.name}' found no usable rows ({self.quarantined} quarantined, see "
                f"{self.out_dir / 'quarantine.jsonl'}). Check data.path and the file format."
            )
        for warning in self.warnings:
            log.warning("%s", warning)
        self.labels_before = _label_counts(data, rc.label_column)
        self.lengths_before = length_profile(data)
        self.data = data

    def run_stage(self, stage: str) -> None:
        """Run the steps of one stage (clean, annotate, augment, balance) in the order the config
        lists them; after annotators, normalise the labels again."""
        rc = self.rc
        for selected in rc.steps[stage]:
            operator = selected.instantiate(self.registry)
            component = f"{selected.kind}/{selected.name}"
            self.data = self._checked_step(stage, selected.step, component, self.data, operator.apply)
        if stage == "annotate" and rc.steps[stage]:  # annotators wrote labels: one spelling per class again
            self.data, relabelled = normalize_labels(self.data, rc.label_column, rc.label_case, self.scrub or str)
            self.ledger.modified("annotate", "labels", relabelled.modifications)
            self.labels.merges += relabelled.merges
            for warning in relabelled.warnings:
                if f"labels: {warning}" not in self.warnings:
                    self.warnings.append(f"labels (after annotation): {warning}")
                    log.warning("labels (after annotation): %s", warning)

    def split(self) -> None:
        """Run the splitter; check the splits it returns, that every input record is in a split,
        dropped or quarantined, and that there are training rows; assign the rows in the ledger."""
        from tunelab.data.report import length_profile

        rc = self.rc
        self.labels_after = _label_counts(self.data, rc.label_column)
        self.lengths_after = length_profile(self.data)
        splitter = rc.splitter.instantiate(self.registry)
        component = f"splitter/{rc.splitter.name}"
        self.splits = splits = self._checked_step("split", rc.splitter.name, component, self.data, splitter.split)
        declared = tuple(getattr(splitter, "splits", ()))
        undeclared = sorted(set(splits) - set(declared)) if declared else []
        if undeclared:
            raise DataError(
                f"the splitter '{rc.splitter.name}' returned splits {undeclared} it does not declare (it declares "
                f"{list(declared)}); the splitter's `splits` class attribute must list every split it makes"
            )

        # the whole-run invariant: every input record is in a split, dropped or quarantined
        self.total_added = sum(s.added for s in self.steps)
        self.total_dropped = sum(s.dropped_total for s in self.steps)
        self.final = sum(len(p) for p in splits.values())
        read = self.collected + self.quarantined
        if read + self.total_added != self.final + self.total_dropped:
            raise LedgerError(
                f"row accounting does not balance: {read} read + {self.total_added} added != "
                f"{self.final} kept + {self.total_dropped} dropped"
            )

        # an empty validation/test split is said now, not when training wants to evaluate on it;
        # a splitter that knows why says so itself (metadata "empty_splits"), a fraction of 0 is meant
        step = rc.splitter.step
        explained = (self.metadata.get(step) or {}).get("empty_splits") or {}
        for name, part in splits.items():
            fraction = getattr(rc.splitter.config, name, None)
            if (
                name == "train"
                or len(part)
                or name in explained
                or (isinstance(fraction, (int, float)) and fraction == 0)
            ):
                continue
            warning = (
                f"{step}: the '{name}' split is empty; a run that evaluates it (eval.split={name}) fails "
                f"before training. Give it rows through the splitter's parameters (pipeline.params.{step})"
            )
            self.warnings.append(warning)
            log.warning("%s", warning)
        self.ledger.assigned({name: list(part[ROW_ID]) for name, part in splits.items()})
        if not len(splits.get("train", [])):
            raise DataError(
                f"the splitter '{rc.splitter.name}' left no training rows (splits: "
                f"{ {name: len(part) for name, part in splits.items()} }); use more data or smaller eval fractions"
            )

    def write_outputs(self) -> dict[str, Any]:
        """Write the splits, the ledger and the data report; return the summary."""
        from datasets import DatasetDict

        from tunelab.data.report import write_data_report

        rc, splits = self.rc, self.splits
        # datasets cannot reload an empty split from disk: save the others, rebuild empties on load
        kept = {name: part for name, part in splits.items() if len(part)}
        DatasetDict(kept).save_to_disk(str(self.out_dir / SPLITS_DIR))
        self.ledger.write(self.out_dir / "ledger.jsonl")
        summary = {
            "rows_read": self.collected + self.quarantined,
            "rows_quarantined": self.quarantined,
            "rows_added": self.total_added,
            "rows_dropped": self.total_dropped,
            "rows_final": self.final,
            "splits": {name: len(part) for name, part in splits.items()},
            "labels_before": self.labels_before,
            "labels_after": self.labels_after,
            "split_labels": {name: _label_counts(part, rc.label_column) for name, part in splits.items()},
            "lengths_before": self.lengths_before,
            "lengths_after": self.lengths_after,
            "metadata": self.metadata,
            "steps": [s.to_dict() for s in self.steps],
            "label_column": rc.label_column or LABEL,
            "label_normalisation": self.labels.to_dict(),
            "warnings": self.warnings,
        }
        write_data_report(summary, self.out_dir)
        return summary

    def _checked_step(self, stage: str, step: str, component: str, data: Any, run: Any) -> Any:
        """Run ``run(data, ctx)`` as one step, time it, and check its ids against the ledger."""
        out_dir, ledger = self.out_dir, self.ledger
        ctx = self._context(step)
        ids_in, _ = _ids(data)
        started = time.perf_counter()
        with _step_errors(stage, step):
            result = run(data, ctx)
        if self.scrubbing:
            if (stage, step) == self.scrub_step:  # the PII step itself reports only redacted text
                self.scrubbing = False
            else:
                _scrub_context(ctx, self.scrub)
        seconds = time.perf_counter() - started
        parts = list(result.values()) if isinstance(result, dict) else [result]
        ids_out: list[str] = []
        parents_out: list[str | None] = []
        for part in parts:
            if ROW_ID not in part.column_names or PARENT_ID not in part.column_names:
                raise LedgerError(f"step '{step}' ({stage}) removed the '{ROW_ID}' or '{PARENT_ID}' column")
            part_ids, part_parents = _ids(part)
            ids_out += part_ids
            parents_out += part_parents
        added, dropped = ledger.check_step(stage, step, ids_in, ids_out, parents_out, ctx)
        ledger.modified(stage, step, ctx.modifications)
        if ctx.quarantined:
            # rows a step set aside for review: dropped (so in the ledger) and listed with the
            # unparseable records, where a user reviews what did not make it into the data
            set_aside = {item.get("id") for item in ctx.quarantined}
            not_dropped = sorted(str(i) for i in set_aside - {i for d in ctx.drops for i in d.ids})
            if not_dropped:
                raise LedgerError(
                    f"step '{step}' ({stage}) quarantined rows it did not drop, e.g. {not_dropped[:5]}; "
                    "a step that sets a row aside must also call ctx.drop(ids, reason) for it"
                )
            _write_jsonl(out_dir / "quarantine.jsonl", ctx.quarantined, append=True)
        self.steps.append(
            StepStats(
                stage,
                step,
                component,
                rows_in=len(ids_in),
                rows_out=len(ids_out),
                added=added,
                dropped=dropped,
                seconds=seconds,
                counters=dict(ctx.counters),
                examples=ctx.examples,
            )
        )
        if ctx.metadata:
            self.metadata[step] = ctx.metadata
        for warning in ctx.warnings:
            self.warnings.append(f"{step}: {warning}")
            log.warning("%s: %s", step, warning)
        log.info("%s/%s: %d -> %d rows (%.2fs)", stage, step, len(ids_in), len(ids_out), seconds)
        if not ids_out:
            raise DataError(
                f"no rows left after step '{step}' ({stage}); see the drop reasons in "
                f"{out_dir / 'ledger.jsonl'}. Loosen that step's parameters or remove it from pipeline.{stage}."
            )
        return result


def name_scrubber(rc: RunConfig, registry: Any) -> Any:
    """The name scrubber of the pipeline's pii step (``name -> name`` with placeholders), or
    None without one: run names made from command-line overrides may name a data file."""
    return _scrubber(rc, registry)[2]


def _scrubber(rc: RunConfig, registry: Any) -> tuple[tuple[str, str] | None, Any, Any]:
    """((stage, step id), scrub function, name scrub function) of the first pipeline step that
    removes personal data (its operator has a ``scrub(text) -> text`` method, and maybe a
    ``scrub_name(name) -> name`` for names that glue words together), or (None, None, None)."""
    for stage in PIPELINE_STAGES:
        for selected in rc.steps[stage]:
            operator = selected.instantiate(registry)
            scrub = getattr(operator, "scrub", None)
            if callable(scrub):
                scrub_name = getattr(operator, "scrub_name", None)
                return (stage, selected.step), scrub, scrub_name if callable(scrub_name) else scrub
    return None, None, None


def _scrubbed(value: Any, scrub: Any) -> Any:
    """``value`` (JSON-like) with ``scrub`` applied to every string but row ids."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: v if k in (ROW_ID, PARENT_ID) else _scrubbed(v, scrub) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrubbed(v, scrub) for v in value]
    return value


def _scrub_context(ctx: StageContext, scrub: Any) -> None:
    """Scrub what a step recorded for files (quarantine, examples, drop reasons and details, metadata)."""
    ctx.quarantined = [
        {**item, **{k: _scrubbed(item.get(k), scrub) for k in ("raw", "reason")}} for item in ctx.quarantined
    ]
    ctx.examples = _scrubbed(ctx.examples, scrub)
    ctx.metadata = _scrubbed(ctx.metadata, scrub)
    counters = dict(ctx.counters)  # counter names quote column names and values
    ctx.counters.clear()
    for name, n in counters.items():
        ctx.counters[scrub(name)] += n
    ctx.warnings = [scrub(w) for w in ctx.warnings]
    for drop in ctx.drops:
        drop.reason = scrub(drop.reason)
        if drop.detail is not None:
            drop.detail = _scrubbed(drop.detail, scrub)
    ctx.modifications = [(ids, what, *_scrubbed(list(rest), scrub)) for ids, what, *rest in ctx.modifications]


def _write_jsonl(path: Path, rows: list[dict[str, Any]], append: bool = False) -> None:
    with path.open("a" if append else "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def copy_artifacts(prepared: Prepared, run_dir: Path) -> None:
    """Put the data report, ledger, quarantine and every file a step wrote (review
    queues, plots) into a run dir."""
    for source in prepared.directory.iterdir():
        if source.is_file() and source.name not in (COMPLETE_MARKER, MANIFEST):
            shutil.copyfile(source, run_dir / source.name)
