"""File collectors: JSON Lines, CSV/TSV and Parquet, from a file, a folder or a glob.

Each row's id is ``<file>:<line>`` (``<file>:<row>`` for Parquet), so an id says where
the row came from and stays the same across runs. Records that cannot be parsed go
to the quarantine with file, line and reason; they are never dropped silently.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tunelab.api import CANONICAL_TEXT_COLUMNS, PARENT_ID, ROW_ID, Collector, Component, StageContext

SOURCE = "source"


class SourceError(ValueError):
    """A source cannot be read at all (missing, unreadable, wrong format)."""


@dataclass
class FileSourceConfig:
    #: a file, a folder (every file with a matching suffix inside, recursively) or a glob
    path: str = "???"
    #: rename source columns onto the row schema, e.g. {question: prompt, answer: completion}
    columns: dict[str, str] = field(default_factory=dict)
    encoding: str = "utf-8"


@dataclass
class CsvSourceConfig(FileSourceConfig):
    #: field delimiter; "auto" uses a tab for .tsv files and a comma otherwise
    delimiter: str = "auto"


class FileCollector(Collector):
    suffixes: tuple[str, ...] = ()

    def input_files(self) -> list[Path]:
        spec = str(self.config.path)
        path = Path(spec).expanduser()
        if any(ch in spec for ch in "*?["):
            files = [Path(p) for p in sorted(glob.glob(str(path), recursive=True)) if Path(p).is_file()]
        elif path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and any(p.name.endswith(s) for s in self.suffixes)
            )
        elif path.is_file():
            files = [path]
        else:
            raise SourceError(f"data.path '{spec}' does not exist (working directory: {Path.cwd()})")
        if not files:
            raise SourceError(f"data.path '{spec}' matches no {'/'.join(self.suffixes)} files")
        return files

    def _label(self, file: Path) -> str:
        root = Path(str(self.config.path)).expanduser()
        if root.is_dir():
            return str(file.relative_to(root))
        return file.name

    def _open_text(self, file: Path) -> io.TextIOBase:
        raw = gzip.open(file, "rb") if file.name.endswith(".gz") else file.open("rb")
        return io.TextIOWrapper(raw, encoding=self.config.encoding, errors="strict", newline="")

    def records(self, file: Path, label: str, ctx: StageContext) -> Iterator[tuple[int, dict[str, Any]]]:
        raise NotImplementedError  # pragma: no cover

    def collect(self, ctx: StageContext):
        rows: list[dict[str, Any]] = []
        for file in self.input_files():
            label = self._label(file)
            try:
                for line, record in self.records(file, label, ctx):
                    row = self._map(record, label, line, ctx)
                    if row is not None:
                        rows.append(row)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise SourceError(f"cannot read {file}: {exc}") from exc
        return rows_to_dataset(rows, ctx)

    def _map(self, record: dict[str, Any], label: str, line: int, ctx: StageContext) -> dict[str, Any] | None:
        mapping = self.config.columns
        row: dict[str, Any] = {}
        for key, value in record.items():
            key = str(key)
            if key == ROW_ID and ROW_ID not in mapping:
                key = "source_id"  # the source's own id is kept, ours is the row id
            row[mapping.get(key, key)] = value
        for column in CANONICAL_TEXT_COLUMNS:
            value = row.get(column)
            if value is not None and not isinstance(value, str):
                ctx.quarantine(label, line, f"column '{column}' holds {type(value).__name__}, expected text", _short(record))
                return None
        row[ROW_ID] = f"{label}:{line}"
        row[SOURCE] = label
        row.pop(PARENT_ID, None)
        return row


def _short(record: Any, limit: int = 500) -> str:
    text = json.dumps(record, ensure_ascii=False, default=str) if not isinstance(record, str) else record
    return text[:limit]


def rows_to_dataset(rows: list[dict[str, Any]], ctx: StageContext):
    """Build a Dataset from row dicts. A non-text column whose values mix types (say,
    numbers and strings) is turned into text so one odd row cannot fail the source."""
    from datasets import Dataset

    columns: dict[str, set[type]] = {}
    for row in rows:
        for key, value in row.items():
            if value is not None:
                columns.setdefault(key, set()).add(type(value))
    for row in rows:
        for key in columns:
            row.setdefault(key, None)
    for key, types in columns.items():
        if len(types) > 1 or types & {dict, list}:
            for row in rows:
                value = row[key]
                if value is not None and not isinstance(value, str):
                    row[key] = json.dumps(value, ensure_ascii=False, default=str)
            ctx.count(f"column '{key}' stored as text (mixed types)")
    if not rows:
        return Dataset.from_dict({ROW_ID: [], SOURCE: []})
    return Dataset.from_list(rows)


class JsonlCollector(FileCollector):
    """JSON Lines files (one object per line; .jsonl, .json, optionally gzipped)."""

    suffixes = (".jsonl", ".jsonl.gz", ".ndjson", ".json")

    def records(self, file, label, ctx):
        opener = gzip.open if file.name.endswith(".gz") else open
        with opener(file, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    text = raw.decode(self.config.encoding)
                except UnicodeDecodeError as exc:
                    ctx.quarantine(label, number, f"not valid {self.config.encoding}: {exc.reason} at byte {exc.start}", raw[:500].decode("utf-8", "replace"))
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    ctx.quarantine(label, number, f"invalid JSON: {exc.msg} (column {exc.colno})", text[:500])
                    continue
                if not isinstance(record, dict):
                    ctx.quarantine(label, number, f"expected a JSON object, found {type(record).__name__}", text[:500])
                    continue
                yield number, record


class CsvCollector(FileCollector):
    """CSV and TSV files with a header row (optionally gzipped)."""

    suffixes = (".csv", ".tsv", ".csv.gz", ".tsv.gz")

    def records(self, file, label, ctx):
        delimiter = self.config.delimiter
        if delimiter == "auto":
            delimiter = "\t" if ".tsv" in file.name else ","
        try:
            with self._open_text(file) as fh:
                reader = csv.reader(fh, delimiter=delimiter)
                header = next(reader, None)
                if header is None:
                    return
                if len(set(header)) != len(header):
                    raise SourceError(f"{file}: the header repeats a column name: {header}")
                while True:
                    try:
                        values = next(reader)
                    except StopIteration:
                        break
                    except csv.Error as exc:
                        ctx.quarantine(label, reader.line_num, f"malformed CSV: {exc}")
                        continue
                    if not values:
                        continue
                    if len(values) != len(header):
                        ctx.quarantine(
                            label, reader.line_num, f"expected {len(header)} fields, found {len(values)}", delimiter.join(values)[:500]
                        )
                        continue
                    yield reader.line_num, dict(zip(header, values))
        except UnicodeDecodeError as exc:
            raise SourceError(
                f"{file} is not valid {self.config.encoding} ({exc.reason} at byte {exc.start}); set data.encoding"
            ) from exc


class ParquetCollector(FileCollector):
    """Parquet files; the row number (from 1) is the line in the row id."""

    suffixes = (".parquet",)

    def records(self, file, label, ctx):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(file)
        except Exception as exc:  # pyarrow raises several types for broken files
            raise SourceError(f"{file} is not a readable Parquet file: {exc}") from exc
        for number, record in enumerate(table.to_pylist(), start=1):
            yield number, record


COMPONENTS = [
    ("collector", Component("jsonl", JsonlCollector, FileSourceConfig)),
    ("collector", Component("csv", CsvCollector, CsvSourceConfig)),
    ("collector", Component("parquet", ParquetCollector, FileSourceConfig)),
]
