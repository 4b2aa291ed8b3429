"""The ``csv`` and ``tsv`` collectors: delimited files with a header row (optionally
gzipped). A record with the wrong number of fields, or a quote that never closes, is
quarantined with the lines it spans.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tunelab.api import StageContext
from tunelab_builtin.collectors._files import FileCollector
from tunelab_builtin.collectors._records import FileSourceConfig, SourceError

# CSV fields longer than this are quarantined (the csv module's default is 128 KiB)
CSV_FIELD_LIMIT = 32 * 1024 * 1024


@dataclass
class CsvSourceConfig(FileSourceConfig):
    #: field delimiter: one character, "tab", or "auto" (a tab for .tsv/.tab files, a comma otherwise)
    delimiter: str = "auto"


class _NumberedLines:
    """The lines a ``csv.reader`` reads, numbered from 1. The lines of the record being
    read are kept, so the reader can be given them again (after a broken record)."""

    def __init__(self, lines: Iterable[str]):
        self._source = iter(lines)
        self._again: list[tuple[int, str]] = []  # to be read again, last first
        self.taken: list[tuple[int, str]] = []
        self._count = 0

    def __iter__(self) -> _NumberedLines:
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
            raise ValueError(
                f"data.delimiter must be 'auto', 'tab' or one character (e.g. ',', ';', '|'), got {config.delimiter!r}"
            )

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
                    raise SourceError(
                        f"{file}: the header row cannot be read as CSV ({exc}); fix its quoting"
                    ) from None
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
                        where = (
                            f" (the record runs from line {first} to line {last}: a quoted field holds line breaks)"
                            if last > first
                            else ""
                        )
                        ctx.quarantine(
                            label,
                            first,
                            f"expected {len(header)} fields, found {len(values)}{where}",
                            lines.text()[:500],
                        )
                        continue
                    yield first, dict(zip(header, values))
        except UnicodeDecodeError as exc:
            hint = (
                "; it holds NUL bytes: UTF-16 text without a byte-order mark? set data.encoding=utf-16"
                if exc.object and b"\x00" in exc.object[:4096]
                else ""
            )
            raise SourceError(
                f"{file} is not valid {self.encoding(file)} ({exc.reason} at byte {exc.start}); set data.encoding{hint}"
            ) from exc
        finally:
            csv.field_size_limit(previous_limit)

    @staticmethod
    def _broken_record(lines: _NumberedLines, exc: csv.Error, label: str, ctx: StageContext) -> None:
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
        runs = (
            "to the end of the file"
            if "unexpected end of data" in str(exc)
            else f"to line {last}, where a quote cannot close it ({exc})"
        )
        starts = f"the record starting on line {first} holds " if opened > first else ""
        again = ""
        if last > opened:
            again = (
                f"; line {last} is read again as a record"
                if last == opened + 1
                else f"; lines {opened + 1}-{last} are read again as records"
            )
        ctx.quarantine(
            label,
            first,
            f"malformed CSV: unterminated quote: {starts}a quoted field that opens on line {opened} "
            "and is never closed "
            f"(read as one field it runs {runs}){again}",
            lines.text(upto=opened)[:500],
        )
        lines.again(opened)


class TsvCollector(CsvCollector):
    """TSV files (tab-separated, header row; .tsv/.tab, gzipped too)."""

    suffixes = (".tsv", ".tab", ".tsv.gz", ".tab.gz")

    def _delimiter(self, file: Path) -> str:
        return "\t" if self._given_delimiter() == "auto" else self._given_delimiter()
