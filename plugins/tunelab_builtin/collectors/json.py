"""The ``jsonl`` collector (JSON Lines: one object per line) and the ``json`` collector
(JSON documents: an array of objects, one object, or records under ``records_key``);
they share the JSON reading. Records that cannot be parsed, or repeat a key, are
quarantined with file, line and reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tunelab.api import StageContext
from tunelab_builtin.collectors._files import FileCollector
from tunelab_builtin.collectors._records import MAX_NESTING, FileSourceConfig, SourceError, short


@dataclass
class JsonSourceConfig(FileSourceConfig):
    #: for a file holding one object, the key whose value is the list of records
    #: (e.g. "data" for {"version": 2, "data": [...]}); empty: the object is one record
    records_key: str = ""


def _decode_line(raw: bytes, number: int, label: str, encoding: str, ctx: StageContext) -> str | None:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        hint = "=utf-16 (the line holds NUL bytes: UTF-16 text without a byte-order mark?)" if b"\x00" in raw else ""
        ctx.quarantine(
            label,
            number,
            f"not valid {encoding}: {exc.reason} at byte {exc.start}; set data.encoding{hint}",
            raw[:500].decode("utf-8", "replace"),
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
    return (
        f"the key {key!r} appears twice in one JSON object (only one value could be kept); remove or rename one of them"
    )


def _json_lines(
    lines: Iterable[bytes], label: str, encoding: str, ctx: StageContext
) -> Iterator[tuple[int, dict[str, Any]]]:
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
            hint = (
                "; the line holds NUL bytes: UTF-16 text without a byte-order mark? set data.encoding=utf-16"
                if "\x00" in text
                else ""
            )
            ctx.quarantine(label, number, f"invalid JSON: {exc.msg} (column {exc.colno}){hint}", text[:500])
            continue
        except RecursionError:
            ctx.quarantine(
                label,
                number,
                f"JSON nested too deeply to read (more than {MAX_NESTING} levels are not kept)",
                text[:500],
            )
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
        ctx.quarantine(
            label,
            line,
            f"not valid {encoding}: {exc.reason} at byte {exc.start}; set data.encoding; the file was not read",
        )
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
        ctx.quarantine(
            label,
            exc.lineno,
            f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}); the file was not read",
            text[:500],
        )
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
        ctx.quarantine(
            label, 1, f"expected a JSON array of objects or an object, found {type(document).__name__}", text[:500]
        )
        return
    for number, record in enumerate(document, start=1):
        if not isinstance(record, dict):
            ctx.quarantine(
                label, number, f"record {number} is {type(record).__name__}, expected a JSON object", short(record)
            )
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
    """JSON Lines files: one object per line (.jsonl/.ndjson/.json, gzipped too); a file holding one JSON array is read whole."""  # noqa: E501 (the first line is the `tunelab plugins` description)

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
