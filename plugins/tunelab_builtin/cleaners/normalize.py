"""The cleaner ``normalize``: mojibake repair, Unicode normal form, invisible characters,
whitespace, case and punctuation; every edited row goes to the ledger."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from tunelab.api import COMPLETION, PROMPT, ROW_ID, Cleaner, StageContext
from tunelab_builtin.cleaners._columns import CHANGED, columns_as_lists, procs, record_changes, require_columns

# zero-width and other invisible format characters; soft hyphen; BOM
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# a run of two or more spaces, or any other horizontal space: what collapsing changes
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]{2,}|[\t\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")
_INDENT = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]*")
_LEADING_BLANK_LINES = re.compile(r"\A(?:[^\S\n]*\n)+")


def _collapse_inside(line: str) -> str:
    """One line with its runs of spaces collapsed, its leading indentation kept as written."""
    indent = _INDENT.match(line).end()  # type: ignore[union-attr]
    return line[:indent] + _SPACES.sub(" ", line[indent:])


# UTF-8 bytes decoded as Windows-1252/Latin-1 leave these lead characters behind
_MOJIBAKE = re.compile(
    "[\u00c2\u00c3\u00c5\u00e2][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122]"
)


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
        return re.sub(
            "[\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122]+",
            lambda m: fix_mojibake(m.group(0)) if _cp1252_byte(m.group(0)[0]) else m.group(0),
            text,
        )
    try:
        repaired = bytes(raw).decode("utf-8")  # type: ignore[arg-type]
    except UnicodeDecodeError:
        return text
    return repaired if len(_MOJIBAKE.findall(repaired)) < len(_MOJIBAKE.findall(text)) else text


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
    #: turn runs of spaces/tabs inside a line into one space (leading indentation is kept) and 3+
    #: newlines into a blank line
    collapse_whitespace: bool = True
    #: strip spaces at the start and end of the text (multi-line: blank lines before, space after; the
    #: first line keeps its indentation), and at the end of each line with collapse_whitespace
    strip: bool = True
    #: lower-case the text (for classifiers that should ignore case; off for generation data)
    lowercase: bool = False
    #: keep (leave punctuation alone), ascii (curly quotes, dashes, ellipsis and primes become
    #: ' " - ... ; nothing else changes), or strip (remove punctuation; apostrophes vanish,
    #: marks between two digits stay (3.5, 10:30), other marks between letters/digits become a space)
    punctuation: str = "keep"


class Normalize(Cleaner):
    """Mojibake repair, Unicode normal form, invisible characters and whitespace; shows edits."""

    def __init__(self, config: NormalizeConfig):
        super().__init__(config)
        if config.unicode_form not in ("NFC", "NFKC", "NFD", "NFKD", "none"):
            raise ValueError(
                f"normalize.unicode_form must be NFC, NFKC, NFD, NFKD or none, got {config.unicode_form!r}"
            )
        if config.punctuation not in ("keep", "ascii", "strip"):
            raise ValueError(f"normalize.punctuation must be keep, ascii or strip, got {config.punctuation!r}")

    def _fix(self, text: str) -> str:
        c = self.config
        # ASCII text has no mojibake, no invisible format characters and is in every
        # normal form: skip those passes (most rows of most corpora)
        plain = text.isascii()
        # printable ASCII also has no control characters, tabs or line breaks
        simple = plain and text.isprintable()
        if c.fix_mojibake and not plain:
            text = fix_mojibake(text)
        if c.unicode_form != "none" and not plain:
            text = unicodedata.normalize(c.unicode_form, text)
        if c.remove_invisible and not simple:
            if not plain:
                text = _INVISIBLE.sub("", text)
            text = _CONTROL.sub("", text)
        if c.punctuation == "ascii":
            text = ascii_punctuation(text)
        elif c.punctuation == "strip":
            text = strip_punctuation(text)
        if c.lowercase:
            text = text.lower()
        if c.collapse_whitespace and (not simple or c.punctuation != "keep" or "  " in text):
            text = text.replace("\r\n", "\n")
            if "\n" in text:
                # a line's indentation is structure (code, nested lists, verse): only the
                # spaces after its first visible character are collapsed
                text = "\n".join(_collapse_inside(line) for line in text.split("\n"))
                text = _BLANK_LINES.sub("\n\n", text)
            else:
                text = _SPACES.sub(" ", text)
        if c.strip:
            if "\n" in text:
                if c.collapse_whitespace:
                    text = "\n".join(line.rstrip() for line in text.split("\n"))
                # leading blank lines and trailing space go; the first line keeps its indentation
                text = _LEADING_BLANK_LINES.sub("", text).rstrip()
            else:
                text = text.strip()
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
        batch[CHANGED] = changed
        return batch

    def apply(self, data, ctx: StageContext):
        require_columns(data, self.config.fields, "normalize")
        out = data.map(self._batch, batched=True, num_proc=procs(ctx, data), desc="normalize")
        ids, flags = columns_as_lists(out, ROW_ID, CHANGED)
        changed = [i for i, flag in enumerate(flags) if flag]
        record_changes(ctx, data, out, ids, changed, "text normalized", self.config.fields)
        return out.remove_columns(CHANGED)


# typographic marks and their plain-ASCII spelling
_ASCII_PUNCTUATION = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        "\u2026": "...",
    }
)
_APOSTROPHES = "'\u2019\u02bc"


def ascii_punctuation(text: str) -> str:
    """Curly quotes, primes, dashes and the ellipsis in their ASCII spelling."""
    return text.translate(_ASCII_PUNCTUATION)


def strip_punctuation(text: str) -> str:
    """Remove punctuation (Unicode category P*). Apostrophes vanish ("don't" -> "dont");
    a mark between two digits stays, because it is part of a number (3.5, 10:30); any
    other mark between two letters or digits becomes a space ("8am-6pm" -> "8am 6pm") so
    words do not fuse."""
    out: list[str] = []
    for i, char in enumerate(text):
        if not unicodedata.category(char).startswith("P"):
            out.append(char)
            continue
        before = text[i - 1] if i > 0 else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        if before.isdigit() and after.isdigit():
            out.append(char)
        elif char not in _APOSTROPHES and before.isalnum() and after.isalnum():
            out.append(" ")
    return "".join(out)
