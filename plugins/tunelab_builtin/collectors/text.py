"""The ``text`` collector: plain-text files into the text column, one row per file,
paragraph or line (optionally gzipped). A unit that is not valid in the encoding is
quarantined with its line.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tunelab.api import TEXT
from tunelab_builtin.collectors._files import FileCollector
from tunelab_builtin.collectors._records import FileSourceConfig

TEXT_UNITS = ("file", "paragraph", "line")


@dataclass
class TextSourceConfig(FileSourceConfig):
    #: one row per file, per paragraph (blank-line separated) or per non-blank line
    unit: str = "file"


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
                    label,
                    line,
                    f"not valid {encoding}: {exc.reason}; set data.encoding",
                    raw[:500].decode("utf-8", "replace"),
                )
                continue
            yield start, {TEXT: text.strip()}
