"""Keeping personal data out of names, ids and messages.

With a step that removes personal data (pii), names of files, folders and columns can
hold it too: they are renamed in the data, the ledger and the reports right after
collection, and no log line or error of the preparation shows one raw. Row ids that hold
it take the detector's placeholders, and what a step recorded for files (quarantine,
examples, drop reasons and details, metadata) goes through its detector.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tunelab.api import PARENT_ID, PIPELINE_STAGES, ROW_ID, StageContext
from tunelab.config import RunConfig
from tunelab.redaction import log_record_rewriter

log = logging.getLogger(__name__)

#: the column the built-in collectors fill with where a row came from (a file name, a URL)
SOURCE = "source"


def row_ids(data: Any) -> tuple[list[str], list[str | None]]:
    return list(data[ROW_ID]), list(data[PARENT_ID])


def scrub_ids(data: Any, scrub: Any) -> tuple[Any, list[str]]:
    """Row ids with personal data in them (``data.id_column`` of e-mail addresses, a file
    name) take the detector's placeholders and a running number (``sql:<EMAIL>#1``): ids
    are written to the ledger, the splits, reports and per-example scores. Returns the data
    and the new ids."""
    ids, parents = row_ids(data)
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


def scrub_names(data: Any, ctx: StageContext, scrub_name: Any, names: Names | None = None) -> Any:
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
        ids, parents = row_ids(data)

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
def scrubbed_logs(names: Names) -> Iterator[None]:
    """Log records created meanwhile (a collector's warning naming a file) show the names
    that held personal data renamed, whatever handler writes them."""
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(log_record_rewriter(previous, names))
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)


def rename_in_exception(exc: BaseException, names: Names) -> None:
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


class Names:
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


def name_scrubber(rc: RunConfig, registry: Any) -> Any:
    """The name scrubber of the pipeline's pii step (``name -> name`` with placeholders), or
    None without one: run names made from command-line overrides may name a data file."""
    return scrubber(rc, registry)[2]


def scrubber(rc: RunConfig, registry: Any) -> tuple[tuple[str, str] | None, Any, Any]:
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


def scrub_context(ctx: StageContext, scrub: Any) -> None:
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
