"""What every built-in collector shares: :class:`RecordCollector` (``columns`` renaming
and dotted paths, ``explode``, ``format`` adapters, the text-column check, building the
Dataset), the record options every collector config holds (:class:`RecordOptions`,
:class:`PathConfig`, :class:`FileSourceConfig`), :class:`RawRecord`, :class:`SourceError`
and :func:`rows_to_dataset`.

Records that do not fit the selected ``format`` go to the quarantine with the source,
line and reason; nothing is dropped silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

from tunelab.api import CANONICAL_TEXT_COLUMNS, MESSAGES, PARENT_ID, ROW_ID, Collector, StageContext
from tunelab.data.labels import multi_label_reason
from tunelab_builtin.collectors._formats import ADAPTERS, FormatMismatch, check_format_name, detect_format

SOURCE = "source"
#: columns tunelab sets on every row; a source column with one of these names is kept as
#: ``source_<name>`` (``id`` -> ``source_id``), never overwritten
RESERVED_COLUMNS = (ROW_ID, PARENT_ID, SOURCE)
# a lone UTF-16 surrogate (JSON can spell one as "\ud800"): not text that can be stored
_SURROGATE = re.compile("[\ud800-\udfff]")
#: the column the html and pdf collectors put a document's title in
TITLE = "title"
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
            f"the '{collector}' collector needs the '{package}' package: "
            f"pip install 'tunelab[data]' (or pip install {package})"
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
                raise ValueError(
                    f"data.columns has an empty key (mapped onto {target!r}); name a source column or a dotted path"
                )
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
                    f"columns '{origin[target]}' and '{key}' would both be named '{target}'; "
                    "rename one with data.columns"
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
                ctx.quarantine(
                    raw.source,
                    raw.line,
                    f"the record has no '{path}' to explode (data.explode); its columns: {_names(raw.record)}",
                    short(raw.record),
                )
            elif not isinstance(value, list):
                ctx.quarantine(
                    raw.source, raw.line, f"data.explode '{path}' holds {_kind(value)}, not a list", short(raw.record)
                )
            elif not value:
                ctx.quarantine(
                    raw.source,
                    raw.line,
                    f"data.explode '{path}' is an empty list: the record makes no rows",
                    short(raw.record),
                )
            else:
                records += 1
                where = [path] if path in raw.record else parts  # a column whose name has a dot is taken as it is
                for index, element in enumerate(value):
                    out.append(
                        RawRecord(
                            raw.source,
                            raw.line,
                            f"{raw.row_id}#{index}",
                            _replaced(raw.record, where, element),
                            parent=raw.row_id,
                            element=f"element {index} of '{path}'",
                        )
                    )
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
                    rest = [*explode.split("."), *parts[len(explode.split(".")) + 1 :]]
                    why = (
                        f"{why.split('; ')[0]}; with data.explode={explode} "
                        f"the name '{explode}' stands for one element: "
                        f"write '{'.'.join(rest)}'"
                    )
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
            ctx.quarantine(
                raw.source,
                raw.line,
                f"{prefix}the record has no {keys} (data.columns maps {maps}; other records "
                f"have {it}); its columns: {_names(raw.record)}. Add {it} to the record (null is kept)",
                short(raw.record),
            )
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
    return (
        ", ".join(names[:limit]) + (f" (and {len(names) - limit} more)" if len(names) > limit else "")
        if names
        else "none"
    )


def _missing_everywhere(
    key: str,
    records: list[dict[str, Any]],
    found: list[tuple[Any, int]],
    target: str | None = None,
    noun: str = "records",
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
            hint = f"did you mean '{'.'.join([*parts[:depth], close[0], *parts[depth + 1 :]])}'?"
    elif lengths:
        sizes = f"{min(lengths)}" if len(lengths) == 1 else f"{min(lengths)} to {max(lengths)}"
        what = f"'{prefix}' holds a list of {sizes} items"
        if _index(part) is None:
            hint = (
                f"name an element by its index from 0 ({prefix}.0.{part}), "
                f"or set data.explode={prefix} for a row per element"
            )
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
            return (
                f"column name {_SURROGATE.sub('?', column)!r} holds a NUL character, "
                "which Arrow column names cannot hold; rename the key in the source"
            )
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


_SURROGATE_REASON = (
    "a lone UTF-16 surrogate (an escape such as \\ud800 that is not half of a pair), which is not valid Unicode text"
)


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
        isinstance(m, dict) and set(m) == {"role", "content"} and all(isinstance(v, str) for v in m.values())
        for m in value
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
    structured_messages = MESSAGES in columns and all(
        row[MESSAGES] is None or _is_messages(row[MESSAGES]) for row in rows
    )
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
