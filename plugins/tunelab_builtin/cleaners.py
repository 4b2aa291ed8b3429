"""Cleaners: text normalization, missing values, exact deduplication.

All of them work on whole batches through ``Dataset.map``/``Dataset.filter``-style
passes; the drops they make are recorded in the ledger with a reason.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from tunelab.api import COMPLETION, PROMPT, ROW_ID, Cleaner, Component, StageContext

_CHANGED = "__tunelab_changed"
# zero-width and other invisible format characters; soft hyphen; BOM
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")
# UTF-8 bytes decoded as Windows-1252/Latin-1 leave these lead characters behind
_MOJIBAKE = re.compile("[\u00c2\u00c3\u00c5\u00e2][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122]")


def _cp1252_byte(char: str) -> int | None:
    try:
        return char.encode("cp1252")[0]
    except UnicodeEncodeError:
        return ord(char) if ord(char) < 256 else None


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 text that was decoded as Windows-1252 ("donâ€™t" -> "don't").

    Applied only when the text shows the telltale pairs, and only when re-encoding
    gives valid UTF-8 with fewer of them; otherwise the text is returned unchanged.
    """
    if not _MOJIBAKE.search(text):
        return text
    raw = [_cp1252_byte(ch) for ch in text]
    if any(b is None for b in raw):
        # mixed text: repair each run of Latin-1-range characters on its own
        return re.sub("[\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122]+", lambda m: fix_mojibake(m.group(0)) if _cp1252_byte(m.group(0)[0]) else m.group(0), text)
    try:
        repaired = bytes(raw).decode("utf-8")  # type: ignore[arg-type]
    except UnicodeDecodeError:
        return text
    return repaired if len(_MOJIBAKE.findall(repaired)) < len(_MOJIBAKE.findall(text)) else text


def require_columns(data: Any, columns: list[str], step: str) -> None:
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise ValueError(
            f"{step}: column(s) {missing} not in the data (columns: {data.column_names}); "
            f"set pipeline.params.{step}.fields to existing columns"
        )


@dataclass
class NormalizeConfig:
    #: columns to normalize (missing columns are an error, None values are left alone)
    fields: list[str] = field(default_factory=lambda: [PROMPT, COMPLETION])
    #: repair UTF-8 that was decoded as Windows-1252 ("donâ€™t" -> "don’t")
    fix_mojibake: bool = True
    #: Unicode normal form: NFC, NFKC (also folds full-width forms and no-break spaces), or none
    unicode_form: str = "NFKC"
    #: remove zero-width, bidi-control and other invisible characters, and C0 controls
    remove_invisible: bool = True
    #: turn runs of spaces/tabs into one space and 3+ newlines into a blank line
    collapse_whitespace: bool = True
    strip: bool = True


class Normalize(Cleaner):
    """Mojibake repair, Unicode normal form, invisible characters and whitespace; shows edits."""

    def __init__(self, config: NormalizeConfig):
        super().__init__(config)
        if config.unicode_form not in ("NFC", "NFKC", "NFD", "NFKD", "none"):
            raise ValueError(f"normalize.unicode_form must be NFC, NFKC, NFD, NFKD or none, got {config.unicode_form!r}")

    def _fix(self, text: str) -> str:
        c = self.config
        if c.fix_mojibake:
            text = fix_mojibake(text)
        if c.unicode_form != "none":
            text = unicodedata.normalize(c.unicode_form, text)
        if c.remove_invisible:
            text = _CONTROL.sub("", _INVISIBLE.sub("", text))
        if c.collapse_whitespace:
            text = _BLANK_LINES.sub("\n\n", _SPACES.sub(" ", text.replace("\r\n", "\n")))
        if c.strip:
            text = "\n".join(line.strip() for line in text.split("\n")).strip() if c.collapse_whitespace else text.strip()
        return text

    def _batch(self, batch: dict[str, list]) -> dict[str, list]:
        n = len(batch[ROW_ID])
        changed = [False] * n
        for column in self.config.fields:
            values = batch[column]
            out = []
            for i, value in enumerate(values):
                if isinstance(value, str):
                    fixed = self._fix(value)
                    if fixed != value:
                        changed[i] = True
                    out.append(fixed)
                else:
                    out.append(value)
            batch[column] = out
        batch[_CHANGED] = changed
        return batch

    def apply(self, data, ctx: StageContext):
        require_columns(data, self.config.fields, "normalize")
        out = data.map(self._batch, batched=True, num_proc=_procs(ctx, data), desc="normalize")
        changed = [i for i, flag in enumerate(out[_CHANGED]) if flag]
        ctx.count("rows_modified", len(changed))
        first = self.config.fields[0]
        for i in changed[:5]:
            before, after = data[i], out[i]
            column = next((c for c in self.config.fields if before[c] != after[c]), first)
            ctx.example(before[ROW_ID], repr(before[column]), repr(after[column]))
        return out.remove_columns(_CHANGED)


@dataclass
class DropMissingConfig:
    #: a row is dropped when any of these columns is None or only whitespace
    fields: list[str] = field(default_factory=lambda: [PROMPT, COMPLETION])


class DropMissing(Cleaner):
    """Drops rows whose required columns are missing or blank (reason names the column)."""

    def apply(self, data, ctx: StageContext):
        require_columns(data, self.config.fields, "drop_missing")
        columns = {c: data[c] for c in self.config.fields}
        ids = data[ROW_ID]
        keep: list[int] = []
        dropped: dict[str, list[str]] = {}
        for i, row_id in enumerate(ids):
            empty = next((c for c in self.config.fields if not _present(columns[c][i])), None)
            if empty is None:
                keep.append(i)
            else:
                dropped.setdefault(empty, []).append(row_id)
        for column, row_ids in dropped.items():
            ctx.drop(row_ids, f"missing {column}")
        return data.select(keep) if len(keep) != len(data) else data


def _present(value: Any) -> bool:
    return value is not None and (not isinstance(value, str) or value.strip() != "")


@dataclass
class ExactDedupConfig:
    #: columns that make two rows the same
    fields: list[str] = field(default_factory=lambda: [PROMPT, COMPLETION])
    #: compare case-folded text with whitespace collapsed (so "Hi  there" == "hi there")
    normalize: bool = True


class ExactDedup(Cleaner):
    """Drops exact duplicates, keeping the first occurrence; the ledger names the survivor."""

    def _key(self, values: list[Any]) -> str:
        parts = []
        for value in values:
            text = "" if value is None else str(value)
            if self.config.normalize:
                text = " ".join(text.casefold().split())
            parts.append(text)
        return hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16).hexdigest()

    def apply(self, data, ctx: StageContext):
        require_columns(data, self.config.fields, "exact_dedup")
        columns = [data[c] for c in self.config.fields]
        ids = data[ROW_ID]
        first_seen: dict[str, str] = {}
        keep: list[int] = []
        dropped: list[str] = []
        survivors: list[dict[str, str]] = []
        for i, row_id in enumerate(ids):
            key = self._key([column[i] for column in columns])
            kept = first_seen.setdefault(key, row_id)
            if kept == row_id:
                keep.append(i)
            else:
                dropped.append(row_id)
                survivors.append({"kept": kept})
        ctx.drop(dropped, "exact duplicate", survivors)
        return data.select(keep) if dropped else data


def _procs(ctx: StageContext, data: Any) -> int | None:
    # worker processes only pay off on larger data
    return ctx.num_proc if ctx.num_proc > 1 and len(data) >= 10_000 else None


COMPONENTS = [
    ("cleaner", Component("normalize", Normalize, NormalizeConfig)),
    ("cleaner", Component("drop_missing", DropMissing, DropMissingConfig)),
    ("cleaner", Component("exact_dedup", ExactDedup, ExactDedupConfig)),
]
