"""The ``hf_dataset`` collector: Hugging Face datasets (saved folders, local files through
a packaged builder, Hub datasets).

The Hub is only contacted when ``path`` names a Hub dataset; offline
(``HF_HUB_OFFLINE``) or unreachable, the error says how to use a local copy instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tunelab.api import StageContext
from tunelab_builtin.collectors._files import WIDE_BOMS, sniff_binary
from tunelab_builtin.collectors._records import RawRecord, RecordCollector, RecordOptions, SourceError, require_module

#: packaged builders that read local files given in data_files
LOCAL_BUILDERS = ("json", "csv", "parquet", "text", "arrow")
# "owner/name" or "name": what a Hub dataset id looks like
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_MEDIA_FEATURES = ("Image", "Audio", "Video", "Pdf")


@dataclass
class HfDatasetConfig(RecordOptions):
    #: a folder written by save_to_disk, a builder (json, csv, parquet, text, arrow) with data_files,
    #: a local folder of data files, or a Hub dataset id (owner/name; needs network)
    path: str = "???"
    #: files for a builder (paths or globs), e.g. [data/train.jsonl]
    data_files: list[str] = field(default_factory=list)
    #: dataset configuration (subset) of a Hub dataset that has several
    subset: Optional[str] = None
    #: the split to read (a saved DatasetDict or a loaded dataset)
    split: str = "train"
    #: Hub branch, tag or commit; pin it so reruns read the same data
    revision: Optional[str] = None
    #: ClassLabel columns hold the class name ("positive") instead of its number (1)
    label_names: bool = True


_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")


#: the datasets json builder's default chunk size; pyarrow parses a chunk in blocks of 1/32 of it
_JSON_CHUNK = 10 << 20
#: the largest chunk size asked for: Python allocates a read buffer of the chunk size
_JSON_CHUNK_LIMIT = 1 << 30


def _check_text_head(file: Path, head: bytes) -> None:
    """Refuse a data file that is binary, compressed (other than gzip) or UTF-16/UTF-32,
    which the builders cannot read as JSON text, saying what it is."""
    found = sniff_binary(head)
    if found:
        raise SourceError(f"{file} is {found[0]}, not JSON text: {found[1]}")
    wide = next((name for bom, name in WIDE_BOMS if head.startswith(bom)), None)
    if wide:
        raise SourceError(
            f"{file} is {wide.upper()} text (it starts with a byte-order mark); "
            "the datasets json builder reads UTF-8 only. "
            "Read it with data=jsonl (which reads UTF-16 and UTF-32 files), or convert it to UTF-8"
        )


def _check_json_lines(files: list[Path]) -> int:
    """Refuse JSON Lines files holding a record that is not an object (``null``, ``3``,
    ``"text"``), naming the file and line, and return the chunk size the datasets json
    builder must read them with.

    pyarrow's JSON reader, under that builder, crashes the whole process (a segmentation
    fault) on a ``null`` record, and when a column changes type in a line that crosses a
    parse block (1/32 of the chunk size). The chunk size returned makes a block at least
    four times the largest file where that fits in 1 GiB chunks (files up to 8 MiB), so
    such a file is parsed as one block even after the builder re-encodes its mixed-type
    columns as JSON text; otherwise at least twice the longest line."""
    import gzip
    import json

    longest = largest = 0
    for file in files:
        size = 0
        name = file.name.lower()
        if not name.endswith(_JSON_SUFFIXES):
            continue
        try:
            with file.open("rb") as fh:
                compressed = fh.read(2) == b"\x1f\x8b"
            with gzip.open(file, "rb") if compressed else file.open("rb") as fh:
                start = fh.read(64)
                _check_text_head(file, start)
                fh.seek(0)
                first, array_line = True, 0
                for number, line in enumerate(fh, start=1):
                    longest = max(longest, len(line))
                    size += len(line)
                    head = line.strip().lstrip(b"\xef\xbb\xbf")
                    if not head:
                        continue
                    if array_line:
                        raise SourceError(
                            f"{file} line {array_line}: a JSON Lines record must be an object, "
                            "found a JSON array on one line with more lines after it. "
                            "Remove the line, or read the file with data=jsonl, which quarantines "
                            "such lines and keeps the others"
                        )
                    if first and head.startswith(b"["):
                        try:
                            json.loads(head)
                        except (ValueError, RecursionError):
                            break  # a JSON array document over several lines, parsed whole
                        array_line = number  # one array on the first line: a document only if nothing follows
                        continue
                    first = False
                    if head.startswith(b"{"):
                        continue
                    try:
                        value = json.loads(head)
                    except (ValueError, RecursionError):
                        continue  # a line of a pretty-printed document; the builder judges it
                    raise SourceError(
                        f"{file} line {number}: a JSON Lines record must be an object, found {type(value).__name__} "
                        f"({head[:40].decode('utf-8', 'replace')!r}). "
                        "Remove the line, or read the file with data=jsonl, "
                        "which quarantines such lines and keeps the others"
                    )
        except (OSError, EOFError) as exc:
            raise SourceError(f"cannot read {file}: {exc}") from None
        largest = max(largest, size)
    one_block = 128 * largest if 128 * largest <= _JSON_CHUNK_LIMIT else 0
    return max(_JSON_CHUNK, one_block, min(64 * longest, _JSON_CHUNK_LIMIT))


def _decodable_rows(data: Any, source: str, ctx: StageContext) -> list[dict[str, Any] | None]:
    """The rows of ``data`` one by one; a row holding text that is not valid UTF-8 is
    quarantined (None in its place)."""
    rows: list[dict[str, Any] | None] = []
    for index in range(len(data)):
        try:
            rows.append(data[index])
        except UnicodeDecodeError as exc:
            ctx.quarantine(
                source,
                index,
                f"holds text that is not valid UTF-8 ({exc.reason} at byte {exc.start}); fix the file's encoding",
            )
            rows.append(None)
    return rows


def _offline() -> str | None:
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in ("1", "true", "yes", "on"):
            return variable
    return None


class HfDatasetCollector(RecordCollector):
    """Hugging Face datasets: save_to_disk folders, builders on local files, or Hub datasets."""

    def __init__(self, config: HfDatasetConfig):
        super().__init__(config)
        if not config.path.strip():
            raise ValueError(
                "data.path must name a saved dataset folder, a builder (json, csv, ...) or a Hub dataset id"
            )
        if config.path in LOCAL_BUILDERS and not config.data_files:
            raise ValueError(f"data.path={config.path} is a builder: give the files to read in data.data_files=[...]")
        if not config.split.strip():
            raise ValueError("data.split must name a split, e.g. train")

    def _mode(self) -> str:
        """saved (save_to_disk folder), folder (data files), builder, or hub."""
        path = Path(self.config.path).expanduser()
        if path.is_dir():
            if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
                return "saved"
            return "folder"
        if self.config.path in LOCAL_BUILDERS:
            return "builder"
        if path.is_file():
            raise SourceError(
                f"data.path '{self.config.path}' is a file; read it with a file collector (data=jsonl, data=csv, ...), "
                f"or with data.path=<builder> data.data_files=[{self.config.path}]"
            )
        spec = self.config.path
        if not _HUB_ID.match(spec) or spec.startswith((".", "~")):
            raise SourceError(f"data.path '{spec}' does not exist (working directory: {Path.cwd()})")
        return "hub"

    def _data_files(self) -> list[Path]:
        import glob

        files: list[Path] = []
        for spec in self.config.data_files:
            expanded = str(Path(spec).expanduser())
            if any(ch in spec for ch in "*?["):
                matched = sorted(glob.glob(expanded, recursive=True))
                if not matched:
                    raise SourceError(f"data.data_files entry '{spec}' matches no files")
                files += [Path(p) for p in matched]
            elif Path(expanded).is_file():
                files.append(Path(expanded))
            else:
                raise SourceError(f"data.data_files entry '{spec}' does not exist (working directory: {Path.cwd()})")
        return files

    def input_files(self) -> list[Path]:
        mode = self._mode()
        if mode in ("saved", "folder"):
            root = Path(self.config.path).expanduser()
            return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        if mode == "builder":
            return self._data_files()
        return []

    def _name(self, mode: str) -> str:
        return Path(self.config.path).expanduser().resolve().name if mode in ("saved", "folder") else self.config.path

    def _pick_split(self, loaded: Any) -> Any:
        from datasets import DatasetDict

        if isinstance(loaded, DatasetDict):
            if self.config.split not in loaded:
                raise SourceError(
                    f"data.split '{self.config.split}' is not in '{self.config.path}'; its splits: {', '.join(loaded)}"
                )
            return loaded[self.config.split]
        return loaded

    def _load(self, mode: str, cache_dir: str) -> Any:
        import datasets
        import pyarrow

        c = self.config
        if mode == "saved":
            try:
                return self._pick_split(datasets.load_from_disk(str(Path(c.path).expanduser())))
            except SourceError:
                raise
            except Exception as exc:  # noqa: BLE001 - pyarrow and datasets raise many types for damaged folders
                raise SourceError(
                    f"data.path '{c.path}' is a saved dataset folder that cannot be read ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}); save it again with save_to_disk"
                ) from None
        from datasets.exceptions import DatasetGenerationError

        try:
            if mode == "builder":
                files = self._data_files()
                options = {"chunksize": _check_json_lines(files)} if c.path == "json" else {}
                return datasets.load_dataset(
                    c.path, data_files=[str(p) for p in files], split=c.split, cache_dir=cache_dir, **options
                )
            if mode == "folder":
                files = self.input_files()
                chunk = _check_json_lines(files)
                # a folder of JSON files only is read by the json builder, which takes the chunk size
                options = (
                    {"chunksize": chunk}
                    if files and all(p.name.lower().endswith(_JSON_SUFFIXES) for p in files)
                    else {}
                )
                return datasets.load_dataset(
                    str(Path(c.path).expanduser()), split=c.split, cache_dir=cache_dir, **options
                )
            return self._load_hub()
        except SourceError:
            raise
        # the builders raise many types for a bad file: a DatasetGenerationError, or (when the
        # json builder's fallback parse fails too) a bare pyarrow, overflow or recursion error
        except Exception as exc:  # noqa: BLE001 - each becomes a SourceError naming the file
            if isinstance(exc, ValueError) and "split" in str(exc).lower():
                raise SourceError(f"data.split '{c.split}': {exc}") from None
            # a DatasetGenerationError's cause is the builder's own reason ("JSON parse error: ... in row 3")
            cause = exc.__cause__ if isinstance(exc, DatasetGenerationError) and exc.__cause__ else exc
            reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
            if isinstance(cause, RecursionError):  # datasets walks the inferred schema recursively
                reason = f"values are nested too deeply for the builder ({reason})"
            elif not isinstance(cause, (ValueError, pyarrow.ArrowException)):
                reason = f"{type(cause).__name__}: {reason}"
            what = f"{', '.join(c.data_files)} with the '{c.path}' builder" if mode == "builder" else f"'{c.path}'"
            raise SourceError(
                f"cannot load {what}: {reason}. Fix the file, or read it with a file collector "
                "(data=jsonl, data=csv, ...), which quarantines the records it cannot read and keeps the others"
            ) from None

    def _unreachable(self, why: str) -> SourceError:
        spec = self.config.path
        return SourceError(
            f"data.path '{spec}' names a Hugging Face Hub dataset, but the Hub is unreachable ({why}). "
            f"Use a local copy: on a machine with network access run "
            f"`datasets.load_dataset('{spec}').save_to_disk('DIR')`, copy DIR here and set data.path=DIR "
            f"(or download its files and use data.path=json|csv|parquet with data.data_files=[...])"
        )

    def _load_hub(self) -> Any:
        import datasets

        variable = _offline()
        if variable:
            raise self._unreachable(f"{variable} is set")
        c = self.config
        try:
            return datasets.load_dataset(c.path, c.subset, split=c.split, revision=c.revision)
        except (ConnectionError, TimeoutError) as exc:
            raise self._unreachable(str(exc).split("\n")[0]) from None
        except FileNotFoundError as exc:  # DatasetNotFoundError is one
            raise SourceError(
                f"data.path '{c.path}': no such dataset on the Hugging Face Hub, or it is private ({exc})"
            ) from None
        except OSError as exc:
            raise self._unreachable(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None

    def raw_records(self, ctx: StageContext) -> Iterator[RawRecord]:
        import tempfile

        require_module("datasets", "hf_dataset", "datasets")
        mode = self._mode()
        name = self._name(mode)
        # builders on local files write an Arrow cache; keep it out of the user's HF cache
        source = f"{name}:{self.config.split}"
        with tempfile.TemporaryDirectory(prefix="tunelab-hf-") as cache_dir:
            data = self._without_media(self._load(mode, cache_dir), ctx)
            class_names = self._class_names(data)
            try:
                records: list[dict[str, Any] | None] = data.to_list()
            except UnicodeDecodeError:
                # the JSON builder lets bytes that are not UTF-8 into string columns: find the rows
                records = _decodable_rows(data, source, ctx)
        for column, names in class_names.items():
            for record in records:
                if record is None:
                    continue
                value = record[column]
                # -1 (or any number outside the names) marks an unlabelled row
                record[column] = names[value] if isinstance(value, int) and 0 <= value < len(names) else None
        for index, record in enumerate(records):
            if record is not None:
                yield RawRecord(source, index, f"{source}:{index}", record)

    @staticmethod
    def _without_media(data: Any, ctx: StageContext) -> Any:
        media = [name for name, feature in data.features.items() if type(feature).__name__ in _MEDIA_FEATURES]
        if media:
            ctx.count(f"media columns left out: {', '.join(media)}")
            data = data.remove_columns(media)
        return data

    def _class_names(self, data: Any) -> dict[str, list[str]]:
        """Columns whose class numbers become class names (ClassLabel features)."""
        from datasets import ClassLabel

        if not self.config.label_names:
            return {}
        return {column: feature.names for column, feature in data.features.items() if isinstance(feature, ClassLabel)}
