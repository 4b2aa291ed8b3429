"""File collectors: JSON, JSON Lines, CSV, TSV, Parquet and plain text, from a file, a
folder (recursively) or a glob, optionally gzipped.

Each row's id is ``<file>:<line>`` — the file relative to the given folder (or to the
glob's fixed leading folders), and the line the record starts on (the record number
for Parquet and JSON arrays) — so an id says where the row came from and stays the
same across runs. Records that cannot be parsed, or do not fit the selected
``format``, go to the quarantine with file, line and reason; nothing is dropped
silently.

The shared machinery for every collector (``columns`` renaming, ``format`` adapters,
the text-column check, building the Dataset) lives in :class:`RecordCollector`; the
web, PDF, SQL and Hugging Face collectors build on it too.
"""

from __future__ import annotations

import codecs
import csv
import glob
import gzip
import io
import json
import logging
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple, Optional

from tunelab.api import CANONICAL_TEXT_COLUMNS, MESSAGES, PARENT_ID, ROW_ID, TEXT, Collector, Component, StageContext
from tunelab.data.labels import multi_label_reason

from tunelab_builtin.formats import ADAPTERS, FormatMismatch, check_format_name, detect_format

log = logging.getLogger(__name__)

SOURCE = "source"
#: columns tunelab sets on every row; a source column with one of these names is kept as
#: ``source_<name>`` (``id`` -> ``source_id``), never overwritten
RESERVED_COLUMNS = (ROW_ID, PARENT_ID, SOURCE)
# a lone UTF-16 surrogate (JSON can spell one as "\ud800"): not text that can be stored
_SURROGATE = re.compile("[\ud800-\udfff]")
_GLOB_CHARS = "*?["
# CSV fields longer than this are quarantined (the csv module's default is 128 KiB)
CSV_FIELD_LIMIT = 32 * 1024 * 1024
#: records nested deeper than this (lists in objects in lists ...) are quarantined: Arrow
#: and JSON text cannot hold arbitrarily deep values
MAX_NESTING = 64


class SourceError(ValueError):
    """A source cannot be read at all (missing, unreadable, wrong format)."""


class RawRecord(NamedTuple):
    """One record as a collector read it, before renaming and format adaptation."""

    #: where it came from, as shown in the ``source`` column and the quarantine
    source: str
    #: line or record number in the source (None when the source has no numbering)
    line: int | None
    row_id: str
    record: dict[str, Any]
    #: for a row made from one element of a record's list (``explode``): the record's id
    parent: Optional[str] = None
    #: and which element it is ("element 2 of 'instances'"), named in quarantine reasons
    element: str = ""


def require_module(module: str, collector: str, package: str) -> None:
    """Fail with an install hint when an optional dependency is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise SourceError(
            f"the '{collector}' collector needs the '{package}' package: pip install 'tunelab[data]' (or pip install {package})"
        )


# --- configs ------------------------------------------------------------------------


@dataclass
class RecordOptions:
    #: rename source columns onto the row schema, e.g. {question: prompt, answer: completion}; a key may be a
    #: dotted path into nested records, list indices from 0 (meta.source, instances.0.output) (null: no renaming)
    columns: Optional[dict[str, str]] = None
    #: a list column (or dotted path to one) whose elements each become a row with the id <record id>#<index>;
    #: in columns, the list's name then stands for one element (instances.output) (empty: no exploding)
    explode: str = ""
    #: record layout: auto (detected from the keys of the first record that fits one), none (columns
    #: kept as they are), alpaca, sharegpt, messages, prompt_completion, preference, hh_rlhf, text_label
    format: str = "auto"


@dataclass
class PathConfig(RecordOptions):
    #: a file, a folder (every file with a matching suffix inside, recursively) or a glob
    path: str = "???"


@dataclass
class FileSourceConfig(PathConfig):
    #: text encoding of the files (any Python codec name, e.g. utf-8, latin-1, cp1252)
    encoding: str = "utf-8"


@dataclass
class JsonSourceConfig(FileSourceConfig):
    #: for a file holding one object, the key whose value is the list of records
    #: (e.g. "data" for {"version": 2, "data": [...]}); empty: the object is one record
    records_key: str = ""


@dataclass
class CsvSourceConfig(FileSourceConfig):
    #: field delimiter: one character, "tab", or "auto" (a tab for .tsv/.tab files, a comma otherwise)
    delimiter: str = "auto"


@dataclass
class TextSourceConfig(FileSourceConfig):
    #: one row per file, per paragraph (blank-line separated) or per non-blank line
    unit: str = "file"


# --- the shared collector -------------------------------------------------------------


class RecordCollector(Collector):
    """Base of every built-in collector: subclasses yield :class:`RawRecord` items from
    :meth:`raw_records`; exploding, renaming, format adaptation and checks happen here."""

    def __init__(self, config: Any):
        super().__init__(config)
        check_format_name(config.format, "data.format")
        targets: dict[str, str] = {}
        for source, target in (config.columns or {}).items():
            if not isinstance(source, str) or not source:
                raise ValueError(f"data.columns has an empty key (mapped onto {target!r}); name a source column or a dotted path")
            if not isinstance(target, str) or not target:
                raise ValueError(f"data.columns.{source} must name a column, got {target!r}")
            if target in RESERVED_COLUMNS:
                raise ValueError(
                    f"data.columns.{source} maps onto '{target}', which tunelab sets on every row "
                    f"({', '.join(RESERVED_COLUMNS)}); choose another name"
                )
            if target in targets:
                raise ValueError(f"data.columns maps both '{targets[target]}' and '{source}' onto '{target}'; keep one")
            targets[target] = source
        explode = getattr(config, "explode", "") or ""
        if explode and not all(explode.split(".")):
            raise ValueError(
                f"data.explode {explode!r} is not a column name or a dotted path to a list (e.g. instances, data.items)"
            )

    def raw_records(self, ctx: StageContext) -> Iterable[RawRecord]:  # pragma: no cover - contract
        raise NotImplementedError

    def collect(self, ctx: StageContext):
        return self.build(self.raw_records(ctx), ctx)

    def _rename(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with ``columns`` applied; a source column named like one tunelab sets
        (id, parent_id, source) is kept as ``source_<name>`` (``source_source_<name>`` when
        that name is taken too). Two columns that ``columns`` gives the same name do not
        fit: neither value is overwritten silently.

        A key that is not a column of the record but a dotted path into one (``meta.source``,
        ``instances.0.output``) takes the value found there; what the paths leave of that
        column is kept under its own name (an element taken whole stays as null, so the
        others keep their positions), and the column goes when nothing is left."""
        mapping = self.config.columns or {}
        paths: dict[str, list[tuple[list[str], str]]] = {}
        for key, target in mapping.items():
            parts = _path_parts(key)
            if key not in record and parts and parts[0] in record:
                paths.setdefault(parts[0], []).append((parts[1:], target))
        row: dict[str, Any] = {}
        origin: dict[str, str] = {}

        def put(target: str, value: Any, key: str) -> None:
            if target in row:
                raise FormatMismatch(
                    f"columns '{origin[target]}' and '{key}' would both be named '{target}'; rename one with data.columns"
                )
            row[target] = value
            origin[target] = key

        for key, value in record.items():
            key = str(key)
            for rest, target in paths.get(key, ()):
                put(target, _walk(value, rest)[0], ".".join([key, *rest]))
            if key in paths and key not in mapping:
                value = _without(value, [rest for rest, _ in paths[key]])
                if value is _MISSING:  # every part of it was mapped
                    continue
            target = mapping.get(key, key)
            if key not in mapping and target in RESERVED_COLUMNS:
                target = f"source_{target}"  # the source's own id is kept, ours is the row id
                while target in record or target in row:  # the source has a source_id too: keep both
                    target = f"source_{target}"
            put(target, value, key)
        return row

    def _explode(self, raws: list[RawRecord], ctx: StageContext) -> list[RawRecord]:
        """One row per element of the ``explode`` list of each record, id ``<record id>#<index>``
        (from 0, like the indices in ``columns`` paths). A record without such a list, or with
        an empty one, makes no row: it is quarantined with the reason."""
        path = getattr(self.config, "explode", "") or ""
        if not path:
            return raws
        parts = path.split(".")
        found = [_lookup(raw.record, path) for raw in raws]
        if raws and not any(isinstance(value, list) for value, _ in found):
            if all(value is _MISSING for value, _ in found):
                raise SourceError(f"data.explode {_missing_everywhere(path, [r.record for r in raws], found)}")
            held = sorted({_kind(value) for value, _ in found if value is not _MISSING})
            lists = sorted({str(k) for r in raws for k, v in r.record.items() if isinstance(v, list)})
            raise SourceError(
                f"data.explode '{path}' holds {' or '.join(held)} in every record that has it, not a list; "
                + (f"the list columns are: {', '.join(lists[:20])}" if lists else "the records have no list columns")
            )
        out: list[RawRecord] = []
        records = 0
        for raw, (value, _) in zip(raws, found):
            if value is _MISSING:
                ctx.quarantine(raw.source, raw.line, f"the record has no '{path}' to explode (data.explode); its columns: "
                               f"{_names(raw.record)}", short(raw.record))
            elif not isinstance(value, list):
                ctx.quarantine(raw.source, raw.line, f"data.explode '{path}' holds {_kind(value)}, not a list", short(raw.record))
            elif not value:
                ctx.quarantine(raw.source, raw.line, f"data.explode '{path}' is an empty list: the record makes no rows",
                               short(raw.record))
            else:
                records += 1
                where = [path] if path in raw.record else parts  # a column whose name has a dot is taken as it is
                for index, element in enumerate(value):
                    out.append(RawRecord(raw.source, raw.line, f"{raw.row_id}#{index}", _replaced(raw.record, where, element),
                                         parent=raw.row_id, element=f"element {index} of '{path}'"))
        ctx.count(f"records exploded on '{path}'", records)
        ctx.count(f"rows made from them (one per element of '{path}')", len(out))
        return out

    def _check_columns(self, raws: list[RawRecord], ctx: StageContext) -> list[RawRecord]:
        """Check every ``columns`` key against the records: a key no record has fails the
        source (naming the columns that exist and a close match); a record that lacks a key
        others have is quarantined with the key, never kept with a hole in it."""
        mapping = self.config.columns or {}
        if not mapping or not raws:
            return raws
        explode = getattr(self.config, "explode", "") or ""
        found = {key: [_lookup(raw.record, key) for raw in raws] for key in mapping}
        for key, results in found.items():
            if all(value is _MISSING for value, _ in results):
                noun = "rows" if explode else "records"
                why = _missing_everywhere(key, [r.record for r in raws], results, mapping[key], noun)
                parts = key.split(".")
                if explode and key.startswith(f"{explode}.") and _index(parts[len(explode.split("."))]) is not None:
                    rest = [*explode.split("."), *parts[len(explode.split(".")) + 1:]]
                    why = (f"{why.split('; ')[0]}; with data.explode={explode} the name '{explode}' stands for one element: "
                           f"write '{'.'.join(rest)}'")
                raise SourceError(f"data.columns key {why}")
        kept = []
        for index, raw in enumerate(raws):
            missing = [key for key in mapping if found[key][index][0] is _MISSING]
            if not missing:
                kept.append(raw)
                continue
            keys = ", ".join(f"'{key}'" for key in missing)
            maps = ", ".join(f"'{key}' onto '{mapping[key]}'" for key in missing)
            it = "it" if len(missing) == 1 else "them"
            prefix = f"{raw.element}: " if raw.element else ""
            ctx.quarantine(raw.source, raw.line, f"{prefix}the record has no {keys} (data.columns maps {maps}; other records "
                           f"have {it}); its columns: {_names(raw.record)}. Add {it} to the record (null is kept)",
                           short(raw.record))
        return kept

    def build(self, raws: Iterable[RawRecord], ctx: StageContext):
        """Explode, check and rename columns, adapt to the format, check text columns;
        quarantine what does not fit."""
        raws = self._check_columns(self._explode(list(raws), ctx), ctx)
        renamed = []
        for raw in raws:
            try:
                renamed.append(raw._replace(record=self._rename(raw.record)))
            except FormatMismatch as exc:
                ctx.quarantine(raw.source, raw.line, _in_element(raw, exc), short(raw.record))
        fmt = self.config.format
        detected = fmt == "auto"
        if detected:
            fmt = next((f for f in map(detect_format, (r.record for r in renamed)) if f), "none")
        ctx.metadata["format"] = fmt
        adapter = ADAPTERS.get(fmt)
        rows: list[dict[str, Any]] = []
        children: list[RawRecord] = []
        for raw in renamed:
            try:
                row = adapter(raw.record) if adapter else raw.record
                for column in CANONICAL_TEXT_COLUMNS:
                    value = row.get(column)
                    if value is not None and not isinstance(value, str):
                        raise FormatMismatch(f"column '{column}' holds {type(value).__name__}, expected text")
                bad = _invalid_text(row)
                if bad is not None:
                    raise FormatMismatch(bad)
                label = row.get(ctx.label_column)
                if isinstance(label, (list, tuple, dict)):
                    # multi-label data: quarantined here, before rows_to_dataset would turn the list
                    # into JSON text that looks like one more class
                    raise FormatMismatch(multi_label_reason(ctx.label_column, label))
            except FormatMismatch as exc:
                ctx.quarantine(raw.source, raw.line, _in_element(raw, exc), short(raw.record))
                continue
            row[ROW_ID] = raw.row_id
            row[SOURCE] = raw.source
            rows.append(row)
            if raw.parent is not None:
                children.append(raw)
        if children:  # the ledger says which record each exploded row came from
            ctx.exploded([r.row_id for r in children], [r.parent for r in children], [r.element for r in children])
        ctx.count(f"records in format {fmt}{' (detected)' if detected else ''}", len(rows))
        return rows_to_dataset(rows, ctx)


# --- nested columns (dotted paths, explode) ------------------------------------------------

#: a path that leads nowhere
_MISSING: Any = object()


def _path_parts(key: str) -> list[str] | None:
    """The parts of a dotted path (``instances.0.output``), None for a plain name."""
    parts = key.split(".")
    return parts if len(parts) > 1 and all(parts) else None


def _index(part: str) -> int | None:
    return int(part) if part.isascii() and part.isdigit() else None


def _walk(value: Any, parts: list[str]) -> tuple[Any, int]:
    """(the value at ``parts`` under ``value``, len(parts)), or (_MISSING, how many parts matched)."""
    for depth, part in enumerate(parts):
        index = _index(part)
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and index is not None and index < len(value):
            value = value[index]
        else:
            return _MISSING, depth
    return value, len(parts)


def _lookup(record: dict[str, Any], key: str) -> tuple[Any, int]:
    """A ``columns`` key in one record: the column of that name, else the dotted path."""
    if key in record:
        return record[key], 1
    parts = _path_parts(key)
    return _walk(record, parts) if parts else (_MISSING, 0)


def _without(value: Any, paths: list[list[str]]) -> Any:
    """``value`` without what ``paths`` (relative to it) lead to; _MISSING when nothing is left.
    A list element taken whole becomes None, so the others keep their positions."""
    if any(not path for path in paths):
        return _MISSING
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            below = [path[1:] for path in paths if path[0] == key]
            rest = _without(child, below) if below else child
            if rest is not _MISSING:
                out[key] = rest
        return out or _MISSING
    if isinstance(value, list):
        items = []
        for position, child in enumerate(value):
            below = [path[1:] for path in paths if _index(path[0]) == position]
            items.append(_without(child, below) if below else child)
        if all(item is _MISSING for item in items):
            return _MISSING
        return [None if item is _MISSING else item for item in items]
    return value  # pragma: no cover - a path into a scalar was not found, so it is not mapped


def _replaced(record: dict[str, Any], parts: list[str], element: Any) -> dict[str, Any]:
    """A copy of ``record`` with ``element`` where ``parts`` lead (copying only the
    containers on the way)."""
    top = dict(record)
    holder: Any = top
    for part in parts[:-1]:
        index = _index(part)
        key: Any = part if isinstance(holder, dict) else index
        holder[key] = dict(holder[key]) if isinstance(holder[key], dict) else list(holder[key])
        holder = holder[key]
    holder[parts[-1] if isinstance(holder, dict) else _index(parts[-1])] = element
    return top


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {str: "text", dict: "an object", list: "a list", bool: "a boolean"}.get(type(value), type(value).__name__)


def _names(record: dict[str, Any], limit: int = 20) -> str:
    names = [str(k) for k in record]
    return ", ".join(names[:limit]) + (f" (and {len(names) - limit} more)" if len(names) > limit else "") if names else "none"


def _missing_everywhere(
    key: str, records: list[dict[str, Any]], found: list[tuple[Any, int]], target: str | None = None, noun: str = "records"
) -> str:
    """Why no record has ``key``: what the records hold where the path stops, and a close match."""
    import difflib

    parts = _path_parts(key) or [key]
    depth = max(matched for _, matched in found) if found else 0
    prefix = ".".join(parts[:depth])
    names: dict[str, None] = {}
    held: set[str] = set()
    lengths: set[int] = set()
    for record, (_, matched) in zip(records, found):
        if matched != depth:
            continue
        value = _walk(record, parts[:depth])[0] if depth else record
        if isinstance(value, dict):
            names.update((str(k), None) for k in value)
        elif isinstance(value, list):
            lengths.add(len(value))
        else:
            held.add(_kind(value))
    onto = f" (mapped onto '{target}')" if target else ""
    part = parts[depth] if depth < len(parts) else ""
    hint = "name a column or a dotted path into one (meta.source, instances.0.output)"
    if names:
        shown = list(names)[:20]
        where = f"'{prefix}' holds the keys" if prefix else "the records have the columns"
        what = f"{where} {', '.join(shown)}{' ...' if len(names) > 20 else ''}"
        close = difflib.get_close_matches(part, list(names), n=1)
        if close:
            hint = f"did you mean '{'.'.join([*parts[:depth], close[0], *parts[depth + 1:]])}'?"
    elif lengths:
        sizes = f"{min(lengths)}" if len(lengths) == 1 else f"{min(lengths)} to {max(lengths)}"
        what = f"'{prefix}' holds a list of {sizes} items"
        if _index(part) is None:
            hint = f"name an element by its index from 0 ({prefix}.0.{part}), or set data.explode={prefix} for a row per element"
        else:
            hint = "indices count from 0"
    else:
        what = f"'{prefix}' holds {' or '.join(sorted(held))}, which has no '{part}'"
    return f"'{key}'{onto} is in none of the {len(records)} {noun}: {what}; {hint}"


def _in_element(raw: RawRecord, exc: Exception) -> str:
    """A quarantine reason, naming the element for a row exploded from a list."""
    return f"{raw.element}: {exc}" if raw.element else str(exc)


def short(record: Any, limit: int = 500) -> str:
    """A record as JSON text, cut to ``limit`` characters (for the quarantine)."""
    try:
        text = json.dumps(record, ensure_ascii=False, default=str) if not isinstance(record, str) else record
    except (RecursionError, ValueError):  # nested too deeply, or a circular structure
        text = f"({type(record).__name__} nested too deeply to show)"
    return text[:limit]


def _invalid_text(row: dict[str, Any]) -> str | None:
    """Why a row cannot be stored as Arrow data (None when it can): a column name holding
    a NUL, a string or column name holding a lone UTF-16 surrogate, or values nested
    deeper than Arrow holds."""
    for key, value in row.items():
        column = str(key)
        if "\x00" in column:  # Arrow cuts a column name at a NUL, and the table no longer fits its schema
            return f"column name {_SURROGATE.sub('?', column)!r} holds a NUL character, which Arrow column names cannot hold; rename the key in the source"
        if not column.isascii() and _SURROGATE.search(column):
            return f"column '{_SURROGATE.sub('?', column)}': {_SURROGATE_REASON}"
        if isinstance(value, str):
            if not value.isascii() and _SURROGATE.search(value):
                return f"column '{_SURROGATE.sub('?', column)}' holds {_SURROGATE_REASON}"
        elif isinstance(value, (list, tuple, dict)):
            why = _invalid_nested(value)
            if why:
                return f"column '{_SURROGATE.sub('?', column)}' {why}"
    return None


_SURROGATE_REASON = "a lone UTF-16 surrogate (an escape such as \\ud800 that is not half of a pair), which is not valid Unicode text"


def _invalid_nested(value: Any) -> str | None:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return f"holds {_SURROGATE_REASON}"
        elif isinstance(item, (list, tuple, dict)):
            if depth >= MAX_NESTING:
                return f"is nested more than {MAX_NESTING} levels deep"
            if isinstance(item, dict):
                stack.extend((key, depth + 1) for key in item if isinstance(key, str))
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
    return None


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, dict) and set(m) == {"role", "content"} and all(isinstance(v, str) for v in m.values()) for m in value
    )


def rows_to_dataset(rows: list[dict[str, Any]], ctx: StageContext):
    """Build a Dataset from row dicts. A non-text column whose values mix types (say,
    numbers and strings), or hold objects or lists, is turned into JSON text so one odd
    row cannot fail the source; integers mixed with floats become floats. ``messages``
    lists of {role, content} stay structured."""
    from datasets import Dataset, List, Value

    columns: dict[str, set[type]] = {}
    for row in rows:
        for key, value in row.items():
            if value is not None:
                columns.setdefault(key, set()).add(type(value))
    for row in rows:
        for key in columns:
            row.setdefault(key, None)
    structured_messages = MESSAGES in columns and all(row[MESSAGES] is None or _is_messages(row[MESSAGES]) for row in rows)
    for key, types in columns.items():
        if key == MESSAGES and structured_messages:
            continue
        if types == {int, float}:  # whole and fractional numbers: all floats, not text
            for row in rows:
                if isinstance(row[key], int):
                    row[key] = float(row[key])
            continue
        if len(types) > 1 or types & {dict, list}:
            _as_text(rows, key)
            ctx.count(f"column '{key}' stored as text (mixed types)")
    if not rows:
        return Dataset.from_dict({ROW_ID: [], SOURCE: []})
    try:
        data = Dataset.from_list(rows)
    except Exception:  # noqa: BLE001 - pyarrow raises several types; find the column
        import pyarrow as pa

        for key in columns:
            try:
                pa.array([row[key] for row in rows])
            except Exception:  # noqa: BLE001
                _as_text(rows, key)
                ctx.count(f"column '{key}' stored as text (values Arrow cannot hold)")
        data = Dataset.from_list(rows)
    if structured_messages:
        data = data.cast_column(MESSAGES, List({"role": Value("string"), "content": Value("string")}))
    return data


def _as_text(rows: list[dict[str, Any]], key: str) -> None:
    for row in rows:
        value = row[key]
        if value is not None and not isinstance(value, str):
            row[key] = json.dumps(value, ensure_ascii=False, default=str)


# --- files ------------------------------------------------------------------------------


#: the collector that reads a file with this suffix (for the hint on a skipped file)
_COLLECTOR_BY_SUFFIX = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
    ".parquet": "parquet", ".txt": "text", ".text": "text", ".md": "text", ".html": "html", ".htm": "html",
    ".xhtml": "html", ".pdf": "pdf",
}
#: skipped files named in the report and the warning (the count is always complete)
_LISTED_SKIPPED = 50

#: (magic bytes, what the file is, the fix) for formats a text collector cannot read;
#: gzip (1f 8b) is not here: it is decompressed whatever the file is called
_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive", "unzip it and set data.path to the files inside"),
    (b"PK\x05\x06", "an (empty) ZIP archive", "unzip it and set data.path to the files inside"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract it and set data.path to the files inside"),
    (b"Rar!\x1a\x07", "a RAR archive", "extract it and set data.path to the files inside"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it (unxz FILE), or recompress it with gzip: gzipped files are read directly"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it (zstd -d FILE), or recompress it with gzip: gzipped files are read directly"),
    (b"\x04\x22\x4d\x18", "LZ4-compressed", "decompress it (lz4 -d FILE), or recompress it with gzip: gzipped files are read directly"),
    (b"SQLite format 3\x00", "an SQLite database", "read it with data=sql data.url=sqlite:///FILE data.query='SELECT ...'"),
    (b"%PDF-", "a PDF document", "read it with data=pdf"),
    (b"ARROW1\x00\x00", "an Arrow IPC file", "read its folder with data=hf_dataset, or convert it to Parquet and use data=parquet"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Microsoft Office file (.xls/.doc)", "export it as CSV and read that"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", "remove it from data.path"),
    (b"\xff\xd8\xff", "a JPEG image", "remove it from data.path"),
    (b"GIF87a", "a GIF image", "remove it from data.path"),
    (b"GIF89a", "a GIF image", "remove it from data.path"),
)
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
_GZIP_MAGIC = b"\x1f\x8b"
#: byte-order marks that say a file is UTF-32 or UTF-16 (UTF-32 LE first: it starts like UTF-16 LE)
WIDE_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def sniff_binary(head: bytes) -> tuple[str, str] | None:
    """(what the file is, the fix) when ``head`` (a file's first bytes) starts with the
    magic bytes of a binary or compressed format that is not text; None otherwise."""
    if _BZIP2.match(head):
        return "bzip2-compressed", "decompress it (bunzip2 FILE), or recompress it with gzip: gzipped files are read directly"
    if head.startswith(b"PAR1") and b"\x00" in head[:64]:
        return "a Parquet file", "read it with data=parquet"
    for magic, what, fix in _MAGIC:
        if head.startswith(magic):
            return what, fix
    return None


def _is_wide_text(data: bytes, encoding: str) -> bool:
    """Whether bytes that start with a UTF-16/32 byte-order mark are text in that encoding:
    they decode, and their line breaks are line breaks there (UTF-8 lines after junk that
    happens to start like a mark decode as UTF-16 too, but their newlines become other
    characters)."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return b"\n" not in data or "\n" in text


def _ascii_compatible(encoding: str) -> bool:
    """Whether the codec writes ASCII (line breaks, quotes, braces) as the ASCII bytes, so
    files can be split into lines before decoding (not so for UTF-16, UTF-32, EBCDIC)."""
    try:
        return '\n\r{}[]",;\t'.encode(encoding) == b'\n\r{}[]",;\t'
    except (UnicodeError, LookupError):
        return False


class FileCollector(RecordCollector):
    """Base of the collectors that read files named by ``path`` (file, folder or glob)."""

    suffixes: tuple[str, ...] = ()
    #: what a file of this collector holds ("CSV text"); a collector that names one gets its
    #: files checked for the magic bytes of binary and compressed formats before reading,
    #: and reads UTF-16/UTF-32 files (a byte-order mark, or data.encoding) as text
    text_kind: str = ""

    def __init__(self, config: Any):
        super().__init__(config)
        if isinstance(config.path, str) and not config.path.strip() and not getattr(config, "urls", None):
            raise ValueError("data.path is empty: give a file, a folder or a glob (e.g. data.path=data/train.jsonl)")
        if hasattr(config, "encoding"):
            try:
                codecs.lookup(config.encoding)
            except LookupError:
                raise ValueError(f"data.encoding {config.encoding!r} is not a known text encoding (e.g. utf-8, latin-1, cp1252)") from None
        #: files in the given folder that do not have one of ``suffixes`` (found by input_files)
        self.skipped_files: list[Path] = []
        #: the encoding each text file is read in (data.encoding, or the one its byte-order mark names)
        self._encodings: dict[Path, str] = {}

    def _spec(self) -> str:
        return str(self.config.path)

    def _root(self) -> Path | None:
        """The folder ids are relative to: the given folder, or a glob's fixed leading part."""
        spec = self._spec()
        path = Path(spec).expanduser()
        if any(ch in spec for ch in _GLOB_CHARS):
            fixed = []
            for part in path.parts:
                if any(ch in part for ch in _GLOB_CHARS):
                    break
                fixed.append(part)
            return Path(*fixed) if fixed else Path(".")
        return path if path.is_dir() else None

    def input_files(self) -> list[Path]:
        spec = self._spec()
        path = Path(spec).expanduser()
        self.skipped_files = []
        if any(ch in spec for ch in _GLOB_CHARS):
            files = [Path(p) for p in sorted(glob.glob(str(path), recursive=True)) if Path(p).is_file()]
        elif path.is_dir():
            files = []
            for p in sorted(path.rglob("*")):
                # hidden files and folders (.git, .ipynb_checkpoints) are never data
                if not p.is_file() or any(part.startswith(".") for part in p.relative_to(path).parts):
                    continue
                (files if any(p.name.lower().endswith(s) for s in self.suffixes) else self.skipped_files).append(p)
        elif path.is_file():
            files = [path]
        else:
            raise SourceError(f"data.path '{spec}' does not exist (working directory: {Path.cwd()})")
        if not files:
            others = f"; it holds {self._skipped_summary()}" if self.skipped_files else ""
            raise SourceError(f"data.path '{spec}' matches no {'/'.join(self.suffixes)} files{others}")
        return files

    def _skipped_summary(self) -> str:
        """``3 files of other formats (a.csv, b.txt, c.pdf); read them with data=csv, data=text, data=pdf``"""
        names = [self.label(p) for p in self.skipped_files]
        shown = ", ".join(names[:_LISTED_SKIPPED]) + (f", ... ({len(names) - _LISTED_SKIPPED} more)" if len(names) > _LISTED_SKIPPED else "")
        readers = []
        for p in self.skipped_files:
            name = p.name.lower().removesuffix(".gz")
            reader = next((c for s, c in _COLLECTOR_BY_SUFFIX.items() if name.endswith(s)), None)
            if reader and f"data={reader}" not in readers:
                readers.append(f"data={reader}")
        hint = f"; read them with {', '.join(readers)} (one collector per run)" if readers else ""
        return f"{len(names)} file{'s' if len(names) != 1 else ''} of other formats ({shown}){hint}"

    def label(self, file: Path) -> str:
        root = self._root()
        if root is not None:
            try:
                return file.relative_to(root).as_posix()
            except ValueError:
                pass
        return file.name

    @staticmethod
    def _compressed(file: Path) -> bool:
        """Whether the file is gzip data: judged by its first bytes, not its name (a gzip
        named .csv is read, a plain file named .gz too)."""
        with file.open("rb") as fh:
            return fh.read(2) == _GZIP_MAGIC

    def open_binary(self, file: Path):
        return gzip.open(file, "rb") if self._compressed(file) else file.open("rb")

    def read_bytes(self, file: Path) -> bytes:
        with self.open_binary(file) as fh:
            return fh.read()

    def _check_file(self, file: Path, ctx: StageContext) -> None:
        """Refuse a binary or compressed file the collector cannot read as text, saying what
        it is and the fix; note a gzip file without .gz; pick the file's text encoding."""
        compressed = self._compressed(file)
        with self.open_binary(file) as fh:
            head = fh.read(64)
        found = sniff_binary(head)
        if found:
            what, fix = found
            inside = "gzip-compressed and holds " if compressed else ""
            raise SourceError(f"{file} is {inside}{what}, not {self.text_kind}: {fix}")
        if compressed and not file.name.lower().endswith(".gz"):
            ctx.count("files read as gzip (named without .gz)")
        encoding = self.config.encoding
        if codecs.lookup(encoding).name == "utf-8":
            # these bytes are not valid UTF-8: the mark settles the encoding
            wide = next((name for bom, name in WIDE_BOMS if head.startswith(bom)), None)
            if wide and _is_wide_text(self.read_bytes(file), wide):
                encoding = wide
                ctx.count(f"files read as {wide.upper()} (byte-order mark)")
            # else: UTF-8 with junk that happens to start like a mark; its bad lines are quarantined
        self._encodings[file] = encoding

    def encoding(self, file: Path) -> str:
        return self._encodings.get(file, self.config.encoding)

    def open_data(self, file: Path) -> tuple[Any, str]:
        """The file's bytes as a binary stream, and the encoding to decode them with. A file
        in an encoding that does not write ASCII as ASCII bytes (UTF-16, UTF-32) is decoded
        whole and handed on as UTF-8, so it can be split into lines like any other."""
        encoding = self.encoding(file)
        if _ascii_compatible(encoding):
            return self.open_binary(file), encoding
        data = self.read_bytes(file)
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise SourceError(f"{file} is not valid {encoding} ({exc.reason} at byte {exc.start}); set data.encoding") from None
        return io.BytesIO(text.encode("utf-8", "surrogatepass")), "utf-8"

    def read_data(self, file: Path) -> tuple[bytes, str]:
        stream, encoding = self.open_data(file)
        with stream:
            return stream.read(), encoding

    def _open_text(self, file: Path) -> io.TextIOBase:
        stream, encoding = self.open_data(file)
        return io.TextIOWrapper(stream, encoding=encoding, errors="strict", newline="")

    def read(self, file: Path, label: str, ctx: StageContext) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(line or record number, record)`` for one file."""
        raise NotImplementedError  # pragma: no cover

    def empty_reason(self, file: Path) -> str:
        """Why a file gave neither a record nor a quarantine entry (said in the report)."""
        return "empty (0 bytes)" if file.stat().st_size == 0 else "no records"

    def raw_records(self, ctx: StageContext) -> Iterator[RawRecord]:
        files = self.input_files()
        if self.skipped_files:
            summary = self._skipped_summary()
            log.warning("data.path '%s': skipped %s", self._spec(), summary)
            ctx.count("files skipped (other formats)", len(self.skipped_files))
            ctx.metadata["files skipped (other formats)"] = [self.label(p) for p in self.skipped_files[:_LISTED_SKIPPED]]
        empty: list[str] = []
        for file in files:
            label = self.label(file)
            before, records = len(ctx.quarantined), 0
            try:
                if self.text_kind:
                    self._check_file(file, ctx)
                for line, record in self.read(file, label, ctx):
                    records += 1
                    yield RawRecord(label, line, f"{label}:{line}", record)
            except (OSError, EOFError, zlib.error) as exc:  # zlib.error: damaged gzip data
                raise SourceError(f"cannot read {file}: {exc}") from exc
            if not records and len(ctx.quarantined) == before:
                empty.append(f"{label}: {self.empty_reason(file)}")
        if empty:
            log.warning("data.path '%s': %d file%s without records: %s", self._spec(), len(empty), "s" if len(empty) > 1 else "", "; ".join(empty[:_LISTED_SKIPPED]))
            ctx.count("files without records", len(empty))
            ctx.metadata["files without records"] = empty[:_LISTED_SKIPPED]
            if len(empty) == len(files):
                raise SourceError(f"data.path '{self._spec()}' holds no records: {'; '.join(empty[:_LISTED_SKIPPED])}")


def _decode_line(raw: bytes, number: int, label: str, encoding: str, ctx: StageContext) -> str | None:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        hint = "=utf-16 (the line holds NUL bytes: UTF-16 text without a byte-order mark?)" if b"\x00" in raw else ""
        ctx.quarantine(
            label, number, f"not valid {encoding}: {exc.reason} at byte {exc.start}; set data.encoding{hint}", raw[:500].decode("utf-8", "replace")
        )
        return None


class _Repeated(dict):
    """A JSON object that repeats a key (json keeps the last value): quarantined, never kept."""

    repeated: list[str]


class _KeyCheck:
    """``object_pairs_hook`` for json.loads: notes every key an object repeats."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        seen: set[str] = set()
        repeated = [key for key, _ in pairs if key in seen or seen.add(key)]
        marked = _Repeated(obj)
        marked.repeated = list(dict.fromkeys(repeated))
        self.found += marked.repeated
        return marked


def _repeated_key(value: Any) -> str | None:
    """The first key repeated in an object anywhere inside ``value`` (None: none)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Repeated):
            return item.repeated[0]
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _repeated_reason(key: str) -> str:
    return f"the key {key!r} appears twice in one JSON object (only one value could be kept); remove or rename one of them"


def _json_lines(lines: Iterable[bytes], label: str, encoding: str, ctx: StageContext) -> Iterator[tuple[int, dict[str, Any]]]:
    check = _KeyCheck()
    decode = json.JSONDecoder(object_pairs_hook=check).decode  # built once: json.loads(hook=) builds one per call
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        text = _decode_line(raw, number, label, encoding, ctx)
        if text is None:
            continue
        if number == 1:
            text = text.lstrip("\ufeff")
        check.found.clear()
        try:
            record = decode(text)
        except json.JSONDecodeError as exc:
            # NULs between the characters: UTF-16 text read as UTF-8 (no byte-order mark to tell)
            hint = "; the line holds NUL bytes: UTF-16 text without a byte-order mark? set data.encoding=utf-16" if "\x00" in text else ""
            ctx.quarantine(label, number, f"invalid JSON: {exc.msg} (column {exc.colno}){hint}", text[:500])
            continue
        except RecursionError:
            ctx.quarantine(label, number, f"JSON nested too deeply to read (more than {MAX_NESTING} levels are not kept)", text[:500])
            continue
        if not isinstance(record, dict):
            hint = " on one line (JSON Lines holds one object per line)" if isinstance(record, list) else ""
            ctx.quarantine(label, number, f"expected a JSON object, found {type(record).__name__}{hint}", text[:500])
            continue
        if check.found:
            ctx.quarantine(label, number, _repeated_reason(check.found[0]), text[:500])
            continue
        yield number, record


def _first_value_on_one_line(text: str, end: int) -> bool:
    """Whether the JSON value that ends at ``end`` (where json found extra data) stands on
    one line: then the text is JSON Lines, not one document."""
    return not any(ch in text[:end].strip() for ch in "\r\n")


def _json_document(
    data: bytes, label: str, encoding: str, records_key: str, ctx: StageContext, lines_on_error: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Records of a whole-file JSON document: an array of objects, one object, or an
    object holding the array under ``records_key``. Numbers are record positions (from 1).
    A text that is not one document but several values, the first on a line of its own
    (``[1, 2]`` then objects, line by line), is read as JSON Lines; so is any text that
    is not valid JSON with ``lines_on_error`` (a file named .jsonl is line-based)."""
    try:
        text = data.decode(encoding).lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        if lines_on_error:
            yield from _json_lines(data.splitlines(), label, encoding, ctx)
            return
        line = data[: exc.start].count(b"\n") + 1
        ctx.quarantine(label, line, f"not valid {encoding}: {exc.reason} at byte {exc.start}; set data.encoding; the file was not read")
        return
    check = _KeyCheck()
    try:
        document = json.loads(text, object_pairs_hook=check)
    except RecursionError:
        ctx.quarantine(label, 1, "JSON nested too deeply to read; the file was not read", text[:500])
        return
    except json.JSONDecodeError as exc:
        several = exc.msg == "Extra data" and (text.lstrip().startswith("{") or _first_value_on_one_line(text, exc.pos))
        if several or lines_on_error:
            # several values, one per line: a JSON Lines file (with a .json name, or an array first)
            ctx.count("JSON files read as JSON Lines")
            yield from _json_lines(data.splitlines(), label, encoding, ctx)
            return
        ctx.quarantine(label, exc.lineno, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}); the file was not read", text[:500])
        return
    if isinstance(document, dict) and records_key:
        if isinstance(document, _Repeated) and records_key in document.repeated:
            ctx.quarantine(label, 1, f"{_repeated_reason(records_key)}; the file was not read", text[:500])
            return
        if not isinstance(document.get(records_key), list):
            found = type(document.get(records_key)).__name__ if records_key in document else "nothing"
            raise SourceError(
                f"{label}: data.records_key '{records_key}' holds {found}, expected a list of records "
                f"(top-level keys: {', '.join(map(str, document))})"
            )
        document = document[records_key]
    if isinstance(document, dict):
        repeated = _repeated_key(document) if check.found else None
        if repeated is not None:
            ctx.quarantine(label, 1, _repeated_reason(repeated), short(document))
            return
        yield 1, document
        return
    if not isinstance(document, list):
        ctx.quarantine(label, 1, f"expected a JSON array of objects or an object, found {type(document).__name__}", text[:500])
        return
    for number, record in enumerate(document, start=1):
        if not isinstance(record, dict):
            ctx.quarantine(label, number, f"record {number} is {type(record).__name__}, expected a JSON object", short(record))
            continue
        repeated = _repeated_key(record) if check.found else None
        if repeated is not None:
            ctx.quarantine(label, number, f"record {number}: {_repeated_reason(repeated)}", short(record))
            continue
        yield number, record


def _starts_with_array(file_head: bytes) -> bool:
    return file_head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


_LINE_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")


class JsonlCollector(FileCollector):
    """JSON Lines files: one object per line (.jsonl/.ndjson/.json, gzipped too); a file holding one JSON array is read whole."""

    suffixes = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json", ".json.gz")
    text_kind = "JSON Lines text"

    def read(self, file, label, ctx):
        stream, encoding = self.open_data(file)
        with stream as fh:
            head = fh.read(4096)
            if _starts_with_array(head):
                # one array (a JSON document) is read whole; an array on the first line with
                # more lines after it is one line of a JSON Lines file, and so is anything
                # in a .jsonl file that is not one valid document
                lines = file.name.lower().endswith(_LINE_SUFFIXES)
                yield from _json_document(head + fh.read(), label, encoding, "", ctx, lines_on_error=lines)
                return
        stream, encoding = self.open_data(file)
        with stream as fh:
            yield from _json_lines(fh, label, encoding, ctx)


class JsonCollector(FileCollector):
    """JSON documents: an array of objects, one object, or records under records_key (.json, gzipped too)."""

    suffixes = (".json", ".json.gz")
    text_kind = "JSON text"

    def read(self, file, label, ctx):
        data, encoding = self.read_data(file)
        yield from _json_document(data, label, encoding, self.config.records_key, ctx)


class _NumberedLines:
    """The lines a ``csv.reader`` reads, numbered from 1. The lines of the record being
    read are kept, so the reader can be given them again (after a broken record)."""

    def __init__(self, lines: Iterable[str]):
        self._source = iter(lines)
        self._again: list[tuple[int, str]] = []  # to be read again, last first
        self.taken: list[tuple[int, str]] = []
        self._count = 0

    def __iter__(self) -> "_NumberedLines":
        return self

    def __next__(self) -> str:
        if self._again:
            item = self._again.pop()
        else:
            self._count += 1
            item = (self._count, next(self._source))
        self.taken.append(item)
        return item[1]

    def begin(self) -> None:
        """A new record starts."""
        self.taken = []

    def span(self) -> tuple[int, int]:
        """First and last line of the record read last."""
        return (self.taken[0][0], self.taken[-1][0]) if self.taken else (self._count, self._count)

    def text(self, upto: int | None = None) -> str:
        return "".join(line for number, line in self.taken if upto is None or number <= upto)

    def unclosed_quote_line(self, include_last: bool) -> int | None:
        """The line where the quote that is still open at the end of the record (or, when
        the error is on the last line, before it) was opened: the last line after which an
        odd number of quote characters has been read. None when that cannot be told."""
        lines = self.taken if include_last else self.taken[:-1]
        inside, opened = False, None
        for number, line in lines:
            if line.count('"') % 2:
                inside = not inside
                if inside:
                    opened = number
        return opened if inside else None

    def again(self, after: int) -> None:
        """Read the lines after line ``after`` of the current record again."""
        rest = [item for item in self.taken if item[0] > after]
        self._again.extend(reversed(rest))


class CsvCollector(FileCollector):
    """CSV and TSV files with a header row (optionally gzipped)."""

    suffixes = (".csv", ".tsv", ".tab", ".csv.gz", ".tsv.gz", ".tab.gz")
    text_kind = "CSV text"

    def __init__(self, config: CsvSourceConfig):
        super().__init__(config)
        #: the header of each file read (to say a file holds only a header)
        self._headers: dict[Path, list[str]] = {}
        delimiter = self._given_delimiter()
        if delimiter != "auto" and len(delimiter) != 1:
            raise ValueError(f"data.delimiter must be 'auto', 'tab' or one character (e.g. ',', ';', '|'), got {config.delimiter!r}")

    def _given_delimiter(self) -> str:
        # a tab is hard to type on a command line: accept "tab" and a written-out "\t"
        return {"tab": "\t", "\\t": "\t"}.get(self.config.delimiter, self.config.delimiter)

    def _delimiter(self, file: Path) -> str:
        if self._given_delimiter() != "auto":
            return self._given_delimiter()
        name = file.name.lower()
        return "\t" if name.endswith((".tsv", ".tsv.gz", ".tab", ".tab.gz")) else ","

    def empty_reason(self, file: Path) -> str:
        header = self._headers.get(file)
        if header is not None:
            return f"only a header row ({', '.join(header)}), no records"
        return super().empty_reason(file)

    def read(self, file, label, ctx):
        delimiter = self._delimiter(file)
        previous_limit = csv.field_size_limit(CSV_FIELD_LIMIT)
        try:
            with self._open_text(file) as fh:
                lines = _NumberedLines(fh)
                # strict: a quote that does not close is an error, not a field that swallows the
                # lines after it (or, closed by a later quote, a merge of several rows)
                reader = csv.reader(lines, delimiter=delimiter, strict=True)
                try:
                    header = next(reader, None)
                except csv.Error as exc:
                    raise SourceError(f"{file}: the header row cannot be read as CSV ({exc}); fix its quoting") from None
                if header is None:
                    return
                if header:
                    header[0] = header[0].lstrip("\ufeff")  # byte-order mark of Excel exports
                if len(set(header)) != len(header):
                    raise SourceError(f"{file}: the header repeats a column name: {header}")
                self._headers[file] = header
                while True:
                    lines.begin()
                    try:
                        values = next(reader)
                    except StopIteration:
                        break
                    except csv.Error as exc:
                        self._broken_record(lines, exc, label, ctx)
                        continue
                    if not values:
                        continue
                    first, last = lines.span()
                    if len(values) != len(header):
                        where = f" (the record runs from line {first} to line {last}: a quoted field holds line breaks)" if last > first else ""
                        ctx.quarantine(label, first, f"expected {len(header)} fields, found {len(values)}{where}", lines.text()[:500])
                        continue
                    yield first, dict(zip(header, values))
        except UnicodeDecodeError as exc:
            hint = "; it holds NUL bytes: UTF-16 text without a byte-order mark? set data.encoding=utf-16" if exc.object and b"\x00" in exc.object[:4096] else ""
            raise SourceError(
                f"{file} is not valid {self.encoding(file)} ({exc.reason} at byte {exc.start}); set data.encoding{hint}"
            ) from exc
        finally:
            csv.field_size_limit(previous_limit)

    @staticmethod
    def _broken_record(lines: "_NumberedLines", exc: csv.Error, label: str, ctx: StageContext) -> None:
        """Quarantine a record the csv module refused. A quote that opens a field and never
        closes (the record runs to the end of the file, or to a later quote that cannot
        close it) is reported on the line where it opens; the lines after that line are read
        again as records, so one stray quote costs one line, not the rest of the file."""
        first, last = lines.span()
        quoting = "unexpected end of data" in str(exc) or "expected after" in str(exc)
        opened = lines.unclosed_quote_line(include_last="unexpected end of data" in str(exc)) if quoting else None
        if opened is None:
            where = f" (lines {first}-{last})" if last > first else ""
            ctx.quarantine(label, first, f"malformed CSV: {exc}{where}", lines.text()[:500])
            return
        runs = "to the end of the file" if "unexpected end of data" in str(exc) else f"to line {last}, where a quote cannot close it ({exc})"
        starts = f"the record starting on line {first} holds " if opened > first else ""
        again = ""
        if last > opened:
            again = f"; line {last} is read again as a record" if last == opened + 1 else f"; lines {opened + 1}-{last} are read again as records"
        ctx.quarantine(
            label, first,
            f"malformed CSV: unterminated quote: {starts}a quoted field that opens on line {opened} and is never closed "
            f"(read as one field it runs {runs}){again}",
            lines.text(upto=opened)[:500],
        )
        lines.again(opened)

class TsvCollector(CsvCollector):
    """TSV files (tab-separated, header row; .tsv/.tab, gzipped too)."""

    suffixes = (".tsv", ".tab", ".tsv.gz", ".tab.gz")

    def _delimiter(self, file: Path) -> str:
        return "\t" if self._given_delimiter() == "auto" else self._given_delimiter()


class ParquetCollector(FileCollector):
    """Parquet files; the row number (from 1) is the line in the row id."""

    suffixes = (".parquet",)

    def read(self, file, label, ctx):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(file)
        except Exception as exc:  # pyarrow raises several types for broken files
            raise SourceError(f"{file} is not a readable Parquet file: {exc}") from exc
        for number, record in enumerate(table.to_pylist(), start=1):
            yield number, record


TEXT_UNITS = ("file", "paragraph", "line")


class TextCollector(FileCollector):
    """Plain-text files into the text column: one row per file, paragraph or line (.txt/.md, gzipped too)."""

    suffixes = (".txt", ".text", ".md", ".txt.gz", ".md.gz")
    text_kind = "plain text"

    def __init__(self, config: TextSourceConfig):
        super().__init__(config)
        if config.unit not in TEXT_UNITS:
            raise ValueError(f"data.unit must be one of {', '.join(TEXT_UNITS)}, got {config.unit!r}")

    def _units(self, lines: list[bytes]) -> Iterator[tuple[int, list[bytes]]]:
        """(first line number, lines) of each unit; blank lines never make a unit."""
        if self.config.unit == "file":
            if any(line.strip() for line in lines):
                yield 1, lines
        elif self.config.unit == "line":
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield number, [line]
        else:
            start, block = 0, []
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    if not block:
                        start = number
                    block.append(line)
                elif block:
                    yield start, block
                    block = []
            if block:
                yield start, block

    def empty_reason(self, file: Path) -> str:
        return "empty (0 bytes)" if file.stat().st_size == 0 else "no text (only blank lines)"

    def read(self, file, label, ctx):
        data, encoding = self.read_data(file)
        if data.startswith(codecs.BOM_UTF8) and codecs.lookup(encoding).name.startswith("utf-8"):
            data = data[len(codecs.BOM_UTF8) :]
        # bytes.splitlines splits on \n, \r\n and \r only (str.splitlines would also
        # split on form feeds and Unicode separators inside a line)
        for start, block in self._units(data.splitlines()):
            raw = b"\n".join(block)
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                line = start + raw[: exc.start].count(b"\n")
                ctx.quarantine(
                    label, line, f"not valid {encoding}: {exc.reason}; set data.encoding", raw[:500].decode("utf-8", "replace")
                )
                continue
            yield start, {TEXT: text.strip()}


COMPONENTS = [
    ("collector", Component("jsonl", JsonlCollector, FileSourceConfig)),
    ("collector", Component("json", JsonCollector, JsonSourceConfig)),
    ("collector", Component("csv", CsvCollector, CsvSourceConfig)),
    ("collector", Component("tsv", TsvCollector, CsvSourceConfig)),
    ("collector", Component("parquet", ParquetCollector, PathConfig)),
    ("collector", Component("text", TextCollector, TextSourceConfig)),
]
