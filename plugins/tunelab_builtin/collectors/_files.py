"""What the collectors that read files share: :class:`FileCollector` (a file, a folder
(recursively) or a glob, optionally gzipped; binary and compressed formats that are not
text refused by their magic bytes; UTF-16/UTF-32 files found by their byte-order mark).

Each row's id is ``<file>:<line>`` — the file relative to the given folder (or to the
glob's fixed leading folders), and the line the record starts on (the record number
for Parquet and JSON arrays) — so an id says where the row came from and stays the
same across runs. Records that cannot be parsed go to the quarantine with file, line
and reason; nothing is dropped silently.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import io
import logging
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunelab.api import StageContext
from tunelab_builtin.collectors._records import RawRecord, RecordCollector, SourceError

log = logging.getLogger(__name__)

_GLOB_CHARS = "*?["

#: the collector that reads a file with this suffix (for the hint on a skipped file)
_COLLECTOR_BY_SUFFIX = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".txt": "text",
    ".text": "text",
    ".md": "text",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
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
    (
        b"\xfd7zXZ\x00",
        "xz-compressed",
        "decompress it (unxz FILE), or recompress it with gzip: gzipped files are read directly",
    ),
    (
        b"\x28\xb5\x2f\xfd",
        "zstd-compressed",
        "decompress it (zstd -d FILE), or recompress it with gzip: gzipped files are read directly",
    ),
    (
        b"\x04\x22\x4d\x18",
        "LZ4-compressed",
        "decompress it (lz4 -d FILE), or recompress it with gzip: gzipped files are read directly",
    ),
    (
        b"SQLite format 3\x00",
        "an SQLite database",
        "read it with data=sql data.url=sqlite:///FILE data.query='SELECT ...'",
    ),
    (b"%PDF-", "a PDF document", "read it with data=pdf"),
    (
        b"ARROW1\x00\x00",
        "an Arrow IPC file",
        "read its folder with data=hf_dataset, or convert it to Parquet and use data=parquet",
    ),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "a legacy Microsoft Office file (.xls/.doc)",
        "export it as CSV and read that",
    ),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", "remove it from data.path"),
    (b"\xff\xd8\xff", "a JPEG image", "remove it from data.path"),
    (b"GIF87a", "a GIF image", "remove it from data.path"),
    (b"GIF89a", "a GIF image", "remove it from data.path"),
)
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
_GZIP_MAGIC = b"\x1f\x8b"
#: byte-order marks that say a file is UTF-32 or UTF-16 (UTF-32 LE first: it starts like UTF-16 LE)
WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def sniff_binary(head: bytes) -> tuple[str, str] | None:
    """(what the file is, the fix) when ``head`` (a file's first bytes) starts with the
    magic bytes of a binary or compressed format that is not text; None otherwise."""
    if _BZIP2.match(head):
        return (
            "bzip2-compressed",
            "decompress it (bunzip2 FILE), or recompress it with gzip: gzipped files are read directly",
        )
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
                raise ValueError(
                    f"data.encoding {config.encoding!r} is not a known text encoding (e.g. utf-8, latin-1, cp1252)"
                ) from None
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
        shown = ", ".join(names[:_LISTED_SKIPPED]) + (
            f", ... ({len(names) - _LISTED_SKIPPED} more)" if len(names) > _LISTED_SKIPPED else ""
        )
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
            raise SourceError(
                f"{file} is not valid {encoding} ({exc.reason} at byte {exc.start}); set data.encoding"
            ) from None
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
            ctx.metadata["files skipped (other formats)"] = [
                self.label(p) for p in self.skipped_files[:_LISTED_SKIPPED]
            ]
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
            log.warning(
                "data.path '%s': %d file%s without records: %s",
                self._spec(),
                len(empty),
                "s" if len(empty) > 1 else "",
                "; ".join(empty[:_LISTED_SKIPPED]),
            )
            ctx.count("files without records", len(empty))
            ctx.metadata["files without records"] = empty[:_LISTED_SKIPPED]
            if len(empty) == len(files):
                raise SourceError(f"data.path '{self._spec()}' holds no records: {'; '.join(empty[:_LISTED_SKIPPED])}")
