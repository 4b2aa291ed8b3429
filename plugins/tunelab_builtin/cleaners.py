"""Cleaners: text normalization, markup stripping, format standardization, missing
values, exact deduplication.

All of them work on whole batches through ``Dataset.map``/``Dataset.filter``-style
passes; the drops they make are recorded in the ledger with a reason. The quality
filters (heuristics, language, word lists) live in :mod:`tunelab_builtin.quality`.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from html import entities as html_entities
from html import escape as html_escape
from html import unescape as html_unescape
from html.parser import HTMLParser
from typing import Any, Callable

from tunelab.api import CANONICAL_TEXT_COLUMNS, COMPLETION, PROMPT, ROW_ID, Cleaner, Component, StageContext

from tunelab_builtin._lib.rows import take_rows

_CHANGED = "__tunelab_changed"
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


def columns_as_lists(data: Any, *columns: str) -> list[list[Any]]:
    """Whole columns as Python lists, in one Arrow conversion. (Iterating or indexing a
    datasets ``Column`` formats one row at a time: ~20x slower on large data.)"""
    table = data.select_columns(list(dict.fromkeys(columns))).to_dict()
    return [table[c] for c in columns]


_TEXT_DTYPES = ("string", "large_string", "null")  # "null": every value is None


def text_fields(data: Any, fields: list[str], step: str) -> list[str]:
    """The text columns a step works on: ``fields``, or (when empty) every canonical
    text column the data has. Each must exist and hold strings (or only None)."""
    chosen = list(fields) or [c for c in CANONICAL_TEXT_COLUMNS if c in data.column_names]
    if not chosen:
        raise ValueError(
            f"{step}: the data has none of the text columns {list(CANONICAL_TEXT_COLUMNS)} "
            f"(columns: {data.column_names}); set pipeline.params.{step}.fields to the columns to check"
        )
    require_columns(data, chosen, step)
    for column in chosen:
        feature = data.features[column]
        if getattr(feature, "dtype", None) not in _TEXT_DTYPES:
            raise ValueError(
                f"{step}: column '{column}' holds {feature} values, not text; "
                f"set pipeline.params.{step}.fields to text columns only, or convert '{column}' to strings "
                "in the collector"
            )
    return chosen


#: what an edit function may say about one value besides the new text: ``removed`` (a
#: short description for the ledger, e.g. "2 tags"), ``hold`` (why the row must be set
#: aside for review instead of edited: the text is then left as it was and the row dropped)
EditNote = dict[str, Any]


def snippet(before: str, after: str, context: int = 30, limit: int = 120) -> tuple[str, str]:
    """The part of ``before`` and ``after`` that differs, with a little context on both
    sides, each at most about ``limit`` characters ("…" marks a cut): what the ledger
    shows of an edit."""
    start = 0
    shortest = min(len(before), len(after))
    while start < shortest and before[start] == after[start]:
        start += 1
    end = 0
    while end < shortest - start and before[-1 - end] == after[-1 - end]:
        end += 1
    lo = max(0, start - context)

    def cut(text: str) -> str:
        hi = min(len(text), len(text) - end + context)
        part = text[lo:hi]
        if len(part) > limit:
            part = part[: limit - 1] + "…"
        return ("…" if lo else "") + part + ("…" if hi < len(text) and not part.endswith("…") else "")

    return cut(before), cut(after)


def edit_text_columns(
    data: Any,
    ctx: StageContext,
    fields: list[str],
    edit: Callable[[str], tuple[str, dict[str, int]] | tuple[str, dict[str, int], EditNote | None]],
    *,
    step: str,
    what: str,
    kinds: tuple[str, ...] = (),
    hold_reason: str = "",
) -> Any:
    """Apply ``edit`` (text -> (new text, counts per kind[, note])) to every string in
    ``fields`` in one batched pass; None values are left alone. Edited rows go to the
    ledger as ``what``, each with the field and a short before/after; per-kind counts go
    to the step's counters, the first edits to its examples. A row whose note says
    ``hold`` is not edited: it is dropped with ``hold_reason`` and written to
    quarantine.jsonl for review, with the whole reason and the original text."""
    count_columns = {kind: f"__tunelab_count_{kind}" for kind in kinds}
    note_column, hold_column = "__tunelab_note", "__tunelab_hold"

    def batch_edit(batch: dict[str, list]) -> dict[str, list]:
        n = len(batch[ROW_ID])
        changed = [False] * n
        counts = {kind: [0] * n for kind in kinds}
        notes: list[dict[str, Any] | None] = [None] * n
        holds: list[dict[str, Any] | None] = [None] * n
        edited: dict[str, list] = {}
        for column in fields:
            out = []
            for i, value in enumerate(batch[column]):
                if isinstance(value, str):
                    fixed, found, *rest = edit(value)
                    note = rest[0] if rest else None
                    if note and note.get("hold") and holds[i] is None:
                        holds[i] = {"field": column, "reason": note["hold"], "text": value}
                    if fixed != value:
                        changed[i] = True
                        for kind, k in found.items():
                            counts[kind][i] += k
                        if notes[i] is None:
                            before, after = snippet(value, fixed)
                            notes[i] = {"field": column, **({"removed": note["removed"]} if note and note.get("removed") else {}),
                                        "before": before, "after": after}
                        else:
                            notes[i].setdefault("also", []).append(column)
                    out.append(fixed)
                else:
                    out.append(value)
            edited[column] = out
        for column, out in edited.items():
            # a row set aside keeps its text as it was
            batch[column] = [v if holds[i] is None else batch[column][i] for i, v in enumerate(out)]
        batch[_CHANGED] = [flag and holds[i] is None for i, flag in enumerate(changed)]
        for kind, column in count_columns.items():
            batch[column] = [k if holds[i] is None else 0 for i, k in enumerate(counts[kind])]
        batch[note_column] = [json.dumps(x, ensure_ascii=False) if x and holds[i] is None else None for i, x in enumerate(notes)]
        batch[hold_column] = [json.dumps(x, ensure_ascii=False) if x else None for x in holds]
        return batch

    out = data.map(batch_edit, batched=True, num_proc=_procs(ctx, data), desc=step)
    ids, flags, notes, holds, *counts = columns_as_lists(out, ROW_ID, _CHANGED, note_column, hold_column, *count_columns.values())
    changed = [i for i, flag in enumerate(flags) if flag]
    ctx.modified([ids[i] for i in changed], what, [json.loads(notes[i]) for i in changed])
    for kind, values in zip(count_columns, counts):
        ctx.count(kind, sum(values))
    for i in changed[:5]:
        before, after = data[i], out[i]
        column = next(c for c in fields if before[c] != after[c])
        ctx.example(before[ROW_ID], repr(before[column]), repr(after[column]))
    out = out.remove_columns([_CHANGED, note_column, hold_column, *count_columns.values()])
    held = [i for i, hold in enumerate(holds) if hold]
    if not held:
        return out
    details = []
    for i in held:
        hold = json.loads(holds[i])
        ctx.quarantine(ids[i], None, f"{step}: {hold['reason']}", hold["text"], row_id=ids[i])
        details.append({"field": hold["field"], "why": hold["reason"]})
    ctx.drop([ids[i] for i in held], hold_reason, details)
    ctx.count("set aside for review", len(held))
    held_set = set(held)
    return take_rows(out, [i for i in range(len(out)) if i not in held_set])


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
            raise ValueError(f"normalize.unicode_form must be NFC, NFKC, NFD, NFKD or none, got {config.unicode_form!r}")
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
        batch[_CHANGED] = changed
        return batch

    def apply(self, data, ctx: StageContext):
        require_columns(data, self.config.fields, "normalize")
        out = data.map(self._batch, batched=True, num_proc=_procs(ctx, data), desc="normalize")
        ids, flags = columns_as_lists(out, ROW_ID, _CHANGED)
        changed = [i for i, flag in enumerate(flags) if flag]
        ctx.modified([ids[i] for i in changed], "text normalized")
        first = self.config.fields[0]
        for i in changed[:5]:
            before, after = data[i], out[i]
            column = next((c for c in self.config.fields if before[c] != after[c]), first)
            ctx.example(before[ROW_ID], repr(before[column]), repr(after[column]))
        return out.remove_columns(_CHANGED)


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


@dataclass
class DropMissingConfig:
    #: a row is dropped when any of these columns is None or only whitespace
    fields: list[str] = field(default_factory=lambda: [PROMPT, COMPLETION])


class DropMissing(Cleaner):
    """Drops rows whose required columns are missing or blank (reason names the column)."""

    def apply(self, data, ctx: StageContext):
        require_columns(data, self.config.fields, "drop_missing")
        ids, *values = columns_as_lists(data, ROW_ID, *self.config.fields)
        columns = dict(zip(self.config.fields, values))
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
        return take_rows(data, keep) if len(keep) != len(data) else data


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

    def __init__(self, config: ExactDedupConfig):
        super().__init__(config)
        if not config.fields:  # every row would have the same (empty) key: all but the first dropped
            raise ValueError("exact_dedup.fields must name at least one column, e.g. [prompt, completion]")

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
        ids, *columns = columns_as_lists(data, ROW_ID, *self.config.fields)
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
        return take_rows(data, keep) if dropped else data


# --- markup ---------------------------------------------------------------------

# What is markup is decided by the HTML syntax and the HTML element list, never by
# "something between < and >": List<Object>, <order id>, x<y && y>z, <name> or a lone
# <template> in a chat answer are text and come out byte for byte.

# the elements of the HTML living standard, obsolete ones still common in scraped pages,
# the SVG and MathML roots and MathML's presentation elements
_HTML_ELEMENTS = frozenset(
    """a abbr address area article aside audio b base bdi bdo blockquote body br button canvas caption
    cite code col colgroup data datalist dd del details dfn dialog div dl dt em embed fieldset figcaption
    figure footer form h1 h2 h3 h4 h5 h6 head header hgroup hr html i iframe img input ins kbd label legend
    li link main map mark menu meta meter nav noscript object ol optgroup option output p picture pre
    progress q rp rt ruby s samp search script section select slot small source span strong style sub
    summary sup table tbody td template textarea tfoot th thead time title tr track u ul var video wbr
    acronym big center font strike tt nobr marquee frame frameset noframes
    svg math mi mn mo ms mtext mspace mrow mfrac msqrt mroot mstyle merror mpadded mphantom msub msup
    msubsup munder mover munderover mmultiscripts mprescripts mtable mtr mtd semantics annotation""".split()
)
_VOID_ELEMENTS = frozenset("area base br col embed hr img input link meta param source track wbr".split())
# never written as placeholders: markup even bare and alone ("line one<br>line two")
_BARE_ELEMENTS = frozenset({"br", "hr", "wbr"})
# elements whose end tag HTML lets a page omit: an unclosed one (or a stray end tag of any
# element) is markup only in a field that has other, unmistakable markup. Not <dd>, <dt>,
# <option>: "<dd>/<mm>/<yyyy>" and "choose <option>" are placeholders
_OPTIONAL_END = frozenset("p li tr td th thead tbody tfoot colgroup rb rt rp rtc".split())
# ... and these only in a whole page (a doctype, or a <head> or <title> with its end tag),
# since "POST <body>" is a placeholder too
_PAGE_ELEMENTS = frozenset({"html", "body"})
# elements whose content is never text for a reader; dropped only between a start tag
# and its end tag, so a lone "<template>" in plain text cannot hide the rest of the field
_HIDDEN_ELEMENTS = frozenset({"script", "style", "head", "noscript", "template", "svg", "iframe", "object"})
# elements that end a paragraph (blank line) or a line
_PARAGRAPH_ELEMENTS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl", "hr", "figure"}
)
_LINE_ELEMENTS = frozenset(
    {"br", "div", "li", "tr", "dt", "dd", "section", "article", "header", "footer", "nav", "aside", "main",
     "form", "fieldset", "address", "caption", "details", "summary", "figcaption"}
)
# inline HTML elements: their text runs on; any other (unknown, XML) element separates words
_INLINE_ELEMENTS = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em", "font", "i", "img",
     "ins", "kbd", "label", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup",
     "time", "tt", "u", "var", "wbr", "html", "body", "math", "mi", "mn", "mo", "ms", "mtext", "mrow", "nobr"}
)
_WS = " \t\n\r\f"  # HTML whitespace
_NAME = r"[A-Za-z][\w.:-]*"
# an attribute: name, name=value, name="value"; spaces around "=" only before a quoted value
# (so "a<b then x = 5 and y>z" is not a tag); quoted values are bounded to keep scans linear
_ATTR = r"""\s+[A-Za-z_:@][-\w:.@]*(?:=(?:"[^"]{0,4000}"|'[^']{0,4000}'|[^\s"'=<>`]+)|\s*=\s*(?:"[^"]{0,4000}"|'[^']{0,4000}'))?"""
# every construct that may be markup; each match is then judged by _markup_tokens
_TOKEN = re.compile(
    r"<!--(?P<comment>(?:(?!--).){0,100000}?)-->"
    r"|<!\[CDATA\[(?P<cdata>.*?)\]\]>"
    r"|(?P<decl><!(?i:doctype)\s[^<>]*>|<\?xml(?:-[\w-]+)?(?:\s[^<>]*?)?\?>)"
    rf"|</(?P<end>{_NAME})\s*>"
    rf"|<(?P<start>{_NAME})(?P<attrs>(?:{_ATTR})*)\s*(?P<selfclose>/?)>"
    r"|&(?:#(?P<dec>\d{1,7})|#[xX](?P<hex>[0-9a-fA-F]{1,6})|(?P<entity>[A-Za-z][A-Za-z0-9]{1,31}));",
    re.DOTALL,
)
_QUOTED_ATTR = re.compile(r"""=\s*["']""")


def _valid_charref(code: int) -> bool:
    return (code in (9, 10, 13) or 32 <= code <= 0x10FFFF) and not 0xD800 <= code <= 0xDFFF


def _markup_tokens(text: str) -> list[re.Match]:
    """The constructs of ``text`` that are markup.

    An element tag counts when its name is an HTML element written in lower or upper case
    (``<Object>`` is a Java type, not ``<object>``; in a field that starts with an XML
    declaration every element name counts) and the tag is well-formed, and when it is
    unmistakable: paired with its end tag, ``<br>``/``<hr>``/``<wbr>``, self-closing
    (``<img/>``), or with a quoted attribute (``<div class="x">``, a void element with any
    attribute value). Unclosed ``<p>``/``<li>``/table tags and stray end tags count only in
    a field that has unmistakable markup (unclosed ``<html>``/``<body>`` only in a whole page). Hidden elements (script, style, ...) count only paired.
    Comments, CDATA, doctype and XML declarations always count; entities only when real
    (``&amp;``, ``&#39;``; not ``AT&T;`` or ``&copy`` without its semicolon).
    """
    if "<" not in text and "&" not in text:
        return []  # most fields of most corpora
    candidates = list(_TOKEN.finditer(text))
    if not candidates:
        return []
    xml = text.lstrip("\ufeff" + _WS).startswith("<?xml")

    def element(name: str) -> str | None:
        """The name to pair on (as written: <B> pairs with </B>, so a placeholder "<B>"
        inside <b>...</b> stays text), or None when this is no element."""
        if xml:
            return name
        lower = name.lower()
        return name if lower in _HTML_ELEMENTS and (name == lower or name == name.upper()) else None

    page = False  # a whole page: doctype, or a paired <head>/<title>
    strong: set[int] = set()  # unmistakable markup
    weak: set[int] = set()  # markup only next to unmistakable markup
    entities: set[int] = set()
    open_tags: dict[str, list[int]] = {}
    for i, m in enumerate(candidates):
        if m.group("start"):
            name = element(m.group("start"))
            if name is None:
                continue
            bare = name.lower()
            if m.group("selfclose"):
                strong.add(i)
            elif bare in _HIDDEN_ELEMENTS:
                open_tags.setdefault(name, []).append(i)  # only a pair hides anything
            elif bare in _BARE_ELEMENTS or (
                (bare in _VOID_ELEMENTS and "=" in m.group("attrs")) or _QUOTED_ATTR.search(m.group("attrs"))
            ):
                strong.add(i)
                if bare not in _VOID_ELEMENTS:
                    open_tags.setdefault(name, []).append(i)
            elif bare not in _VOID_ELEMENTS:
                open_tags.setdefault(name, []).append(i)
        elif m.group("end"):
            name = element(m.group("end"))
            if name is None:
                continue
            opened = open_tags.get(name)
            if opened:
                strong.update((opened.pop(), i))
                page = page or name.lower() in ("head", "title")
            elif not xml and name.lower() not in _HIDDEN_ELEMENTS:
                weak.add(i)
        elif m.group("entity"):
            if f"{m.group('entity')};" in html_entities.html5:
                entities.add(i)
        elif m.group("dec") or m.group("hex"):
            code = int(m.group("dec"), 10) if m.group("dec") else int(m.group("hex"), 16)
            if _valid_charref(code):
                entities.add(i)
        else:  # comment, CDATA, doctype, XML declaration
            strong.add(i)
            page = page or bool(m.group("decl") and m.group("decl").startswith("<!"))
    if strong and not xml:
        optional = _OPTIONAL_END | _PAGE_ELEMENTS if page else _OPTIONAL_END
        for name, opened in open_tags.items():
            weak.update(i for i in opened if name.lower() in optional)
    keep = strong | entities | (weak if strong else set())
    return [m for i, m in enumerate(candidates) if i in keep]


class _TextExtractor(HTMLParser):
    """Collects the text a browser would show from a document whose markup was checked by
    :func:`_markup_tokens` (all other text arrives escaped): tags removed, entities decoded,
    hidden elements dropped, block elements turned into breaks.

    ``pieces`` are ("text", s), ("pre", s) (text inside <pre>, never trimmed),
    ("break", level) (0 word, 1 line, 2 paragraph) and ("gap", None) (removed inline markup).
    """

    def __init__(self, link_urls: bool):
        super().__init__(convert_charrefs=True)
        self.link_urls = link_urls
        self.pieces: list[tuple[str, Any]] = []
        self.kept = 0  # characters of text shown
        self.lost = 0  # characters of text dropped (hidden elements, comments)
        self._hidden = 0
        self._pre = 0
        self._pre_start = False
        self._links: list[tuple[str | None, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_ELEMENTS:
            self._hidden += 1
        if self._hidden:
            self.pieces.append(("gap", None))
        elif tag in _PARAGRAPH_ELEMENTS:
            self.pieces.append(("break", 2))
        elif tag in _LINE_ELEMENTS:
            self.pieces.append(("break", 1))
        elif tag == "a":
            self._links.append((dict(attrs).get("href"), len(self.pieces)))
            self.pieces.append(("gap", None))
        elif tag in _INLINE_ELEMENTS:
            self.pieces.append(("gap", None))
        else:
            self.pieces.append(("break", 0))
        if tag == "pre" and not self._hidden:
            self._pre += 1
            self._pre_start = True

    def handle_endtag(self, tag: str) -> None:
        if self._hidden:
            if tag in _HIDDEN_ELEMENTS:
                self._hidden -= 1
            self.pieces.append(("gap", None))
            return
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag in _PARAGRAPH_ELEMENTS:
            self.pieces.append(("break", 2))
        elif tag in _LINE_ELEMENTS and tag != "br":
            self.pieces.append(("break", 1))
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            shown = "".join(v for k, v in self.pieces[start:] if k in ("text", "pre")).strip(_WS)
            if self.link_urls and href and not href.startswith(("#", "javascript:")) and href != shown:
                self.pieces.append(("text", f" ({href})" if shown else href))
            self.pieces.append(("gap", None))
        elif tag in _INLINE_ELEMENTS or tag == "br":
            self.pieces.append(("gap", None))
        else:
            self.pieces.append(("break", 0))

    def handle_data(self, data: str) -> None:
        if self._hidden:
            # script/style content arrives raw, i.e. as escaped here: count the original
            self.lost += len(html_unescape(data)) if getattr(self, "cdata_elem", None) else len(data)
            return
        if self._pre_start:
            self._pre_start = False
            data = data[1:] if data.startswith("\n") else data  # HTML ignores the newline after <pre>
        if data:
            self.kept += len(data)
            self.pieces.append(("pre" if self._pre else "text", data))

    def handle_comment(self, data: str) -> None:
        self.lost += len(data)
        self.pieces.append(("gap", None))

    def text(self) -> str:
        self.close()
        return _render(self.pieces)


def _render(pieces: list[tuple[str, Any]]) -> str:
    """Join the extractor's pieces. Text is kept as it was; only whitespace that touches
    removed markup changes: a block break takes the place of the whitespace around it (no
    break at the start or end of the field), and removed inline markup keeps one of the
    whitespace runs around it (``a <b>bold</b> word``)."""
    out: list[str] = []
    kinds: list[str] = []
    started = False
    levels: list[int] | None = None  # the breaks of the current run of removed markup
    inner = ""  # whitespace-only text inside that run

    def rstrip_out() -> None:
        while out and kinds[-1] != "pre":
            out[-1] = out[-1].rstrip(_WS)
            if out[-1]:
                return
            out.pop()
            kinds.pop()

    def resolve(text: str | None, kind: str | None) -> str | None:
        trim = kind == "text"
        if levels:  # a word, line or paragraph break
            rstrip_out()
            if text is not None and trim:
                text = text.lstrip(_WS)
            if started and text:
                n = 2 if 2 in levels else min(2, levels.count(1))
                out.append("\n" * n if n else " ")
                kinds.append("break")
        elif not started:  # removed inline markup at the start: whitespace after it goes
            out.clear()
            kinds.clear()
            if text is not None and trim:
                text = text.lstrip(_WS)
        elif text is None:  # ... at the end: whitespace before it goes
            rstrip_out()
        elif kinds[-1] != "pre" and out[-1][-1:] in tuple(_WS):
            if trim:
                text = text.lstrip(_WS)
        elif inner:
            out.append(inner)
            kinds.append("text")
            if trim:
                text = text.lstrip(_WS)
        return text

    for kind, value in pieces:
        if kind in ("break", "gap"):
            if levels is None:
                levels, inner = [], ""
            if kind == "break":
                levels.append(value)
            continue
        if not value:
            continue
        if levels is not None:
            if kind == "text" and not value.strip(_WS):
                inner += value
                continue
            value = resolve(value, kind)
            levels, inner = None, ""
            if not value:
                continue
        out.append(value)
        kinds.append(kind)
        started = started or kind == "pre" or bool(value.strip(_WS))
    if levels is not None:
        resolve(None, None)
    return "".join(out)


@dataclass
class MarkupStripped:
    """What :func:`strip_html_counted` removed from one text."""

    text: str
    tags: int = 0
    comments: int = 0
    entities: int = 0
    #: characters of text kept, and dropped with hidden elements and comments
    kept_chars: int = 0
    lost_chars: int = 0

    @property
    def lost_fraction(self) -> float:
        total = self.kept_chars + self.lost_chars
        return self.lost_chars / total if total else 0.0

    def summary(self) -> str:
        parts = [f"{n} {what}{'s' if n != 1 else ''}" for n, what in
                 ((self.tags, "tag"), (self.comments, "comment"), (self.entities, "entity"))]
        parts = [p.replace("entitys", "entities") for p in parts if not p.startswith("0 ")]
        if self.lost_chars:
            parts.append(f"{self.lost_chars} character{'s' if self.lost_chars != 1 else ''} of hidden content or comments")
        return ", ".join(parts)


def strip_html_counted(text: str, link_urls: bool = False) -> MarkupStripped:
    """:func:`strip_html`, with counts of what was removed."""
    tokens = _markup_tokens(text)
    if not tokens:
        return MarkupStripped(text, kept_chars=len(text))
    # a document with only the checked markup: everything else escaped, so the parser
    # can neither take it for markup nor decode something that only looks like an entity
    doc: list[str] = []
    at = 0
    counts = Counter()
    for m in tokens:
        doc.append(html_escape(text[at:m.start()], quote=False))
        at = m.end()
        if m.group("cdata") is not None:
            doc.append(html_escape(m.group("cdata"), quote=False))  # literal text
            counts["tags"] += 1
        elif m.group("decl"):
            counts["tags"] += 1
        elif m.group("comment") is not None:
            doc.append(m.group(0))
            counts["comments"] += 1
        elif m.group("start") or m.group("end"):
            doc.append(m.group(0))
            counts["tags"] += 1
        else:
            decoded = html_unescape(m.group(0))
            doc.append(" " if decoded == "\u00a0" else m.group(0))  # &nbsp; is a plain space
            counts["entities"] += 1
    doc.append(html_escape(text[at:], quote=False))
    parser = _TextExtractor(link_urls)
    parser.feed("".join(doc))
    visible = parser.text()
    return MarkupStripped(visible, kept_chars=parser.kept, lost_chars=parser.lost, **counts)


def strip_html(text: str, link_urls: bool = False) -> str:
    """Visible text of HTML/XML: tags removed, entities decoded (``&nbsp;`` becomes a
    plain space), script/style content dropped, <br>/<p>/<div>... as line breaks. Only
    what :func:`_markup_tokens` accepts as markup is touched; the rest stays as it was."""
    return strip_html_counted(text, link_urls).text


# markdown-ish syntax, each with the group that holds the visible text
_MD_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)")
_MD_LINK = re.compile(r"\[([^\]\n]+)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"\n]*\")?\s*\)")
# strong emphasis as CommonMark delimits it: the opening run not after a word character
# and not before a space, the closing run the other way round, so "f(*args, **kwargs):
# g(**kwargs)" is no emphasis; a __dunder__ name (no spaces) is kept as an identifier
_MD_STRONG = re.compile(r"(?<![\w*])(\*\*)(?=[^\s*])(.+?)(?<=[^\s*])\*\*(?![\w*])|(?<![\w_])(__)(?=[^\s_])(.+?)(?<=[^\s_])__(?![\w_])")
_MD_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])|(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_IDENTIFIER = re.compile(r"\w+")
_MD_CODE = re.compile(r"`([^`\n]+)`")
_MD_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)[^\n]*\n?", re.MULTILINE)
# a fenced code block with its closing fence: its content is code, kept as written
_MD_FENCED_BLOCK = re.compile(r"^[ \t]{0,3}(```+|~~~+)[^\n]*\n(.*?)^[ \t]{0,3}\1[ \t]*(?:\n|$)", re.MULTILINE | re.DOTALL)
_CODE_MARK = "\ue000"  # private-use: stands for a protected code span while the rest is stripped
_MD_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.MULTILINE)
_MD_QUOTE = re.compile(r"^[ \t]{0,3}>[ \t]?", re.MULTILINE)
_MD_RULE = re.compile(r"^[ \t]{0,3}([-*_])([ \t]*\1){2,}[ \t]*$", re.MULTILINE)


def strip_markdown(text: str, link_urls: bool = False) -> str:
    """Markdown emphasis, code, headings, quotes, rules, links and images, as plain text.
    The content of code spans and fenced code blocks is kept exactly as written (a "#"
    comment in a fence is no heading, "a*b*c" in backticks no emphasis)."""
    protected: list[str] = []
    if _CODE_MARK not in text:

        def protect(code: str) -> str:
            protected.append(code)
            return f"{_CODE_MARK}{len(protected) - 1}{_CODE_MARK}"

        # the block's last newline stays outside the mark, so the next line still starts a line
        text = _MD_FENCED_BLOCK.sub(lambda m: protect(m.group(2)[:-1]) + "\n" if m.group(2) else "", text)
        text = _MD_CODE.sub(lambda m: protect(m.group(1)), text)
    text = _MD_IMAGE.sub(r"\1", text)
    text = _MD_LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})" if link_urls else m.group(1), text)
    text = _MD_FENCE.sub("", text)  # an unclosed fence
    text = _MD_CODE.sub(r"\1", text)
    text = _MD_STRONG.sub(
        lambda m: m.group(0) if m.group(3) and _IDENTIFIER.fullmatch(m.group(4)) else m.group(2) or m.group(4), text
    )
    text = _MD_EMPHASIS.sub(lambda m: m.group(1) or m.group(2), text)
    text = _MD_HEADING.sub(r"\1", text)
    text = _MD_RULE.sub("", text)
    text = _MD_QUOTE.sub("", text)
    if protected:
        text = re.sub(f"{_CODE_MARK}(\\d+){_CODE_MARK}", lambda m: protected[int(m.group(1))], text)
    return text


@dataclass
class StripMarkupConfig:
    #: text columns to clean; empty = every canonical text column present (prompt, completion, text, ...)
    fields: list[str] = field(default_factory=list)
    #: remove HTML/XML tags, comments and <script>/<style> content; decode entities
    html: bool = True
    #: also strip markdown-ish syntax (**bold**, _em_, `code`, # headings, > quotes, [text](url)); off
    #: by default because * and _ also occur in plain text
    markdown: bool = False
    #: keep a link's target after its text, "text (url)"; off keeps the link text only
    link_urls: bool = False
    #: a row whose field would lose more than this fraction of its text (content of hidden
    #: elements and comments; tags themselves do not count) is not shortened but set aside
    #: for review: dropped, with the original in quarantine.jsonl. 1.0 never sets a row aside
    max_removed_fraction: float = 0.5


class StripMarkup(Cleaner):
    """Strips HTML/XML (and optionally markdown) markup, keeping the visible text with line breaks."""

    def __init__(self, config: StripMarkupConfig):
        super().__init__(config)
        if not (config.html or config.markdown):
            raise ValueError("strip_markup: set strip_markup.html or strip_markup.markdown to true (both are false)")
        if not 0.0 <= config.max_removed_fraction <= 1.0:
            raise ValueError(
                f"strip_markup.max_removed_fraction must be between 0 and 1 (1 never sets a row aside), "
                f"got {config.max_removed_fraction!r}"
            )

    def clean(self, text: str) -> str:
        return self._clean(text)[0]

    def _clean(self, text: str) -> tuple[str, dict[str, int], EditNote | None]:
        note: EditNote = {}
        if self.config.html:
            stripped = strip_html_counted(text, self.config.link_urls)
            if stripped.text != text:
                note["removed"] = stripped.summary()
            if stripped.lost_fraction > self.config.max_removed_fraction:
                note["hold"] = (
                    f"removing the markup would drop {stripped.lost_fraction:.0%} of the text ({stripped.summary()}), "
                    f"more than max_removed_fraction={self.config.max_removed_fraction}; the row is set aside for "
                    "review instead of shortened. If the markup is real, raise "
                    "pipeline.params.strip_markup.max_removed_fraction"
                )
            text = stripped.text
        if self.config.markdown:
            plain = strip_markdown(text, self.config.link_urls)
            if plain != text:
                note["removed"] = ", ".join(filter(None, (note.get("removed"), "markdown syntax")))
            text = plain
        return text, {}, note or None

    def apply(self, data, ctx: StageContext):
        fields = text_fields(data, self.config.fields, "strip_markup")
        return edit_text_columns(
            data, ctx, fields, self._clean, step="strip_markup", what="markup stripped",
            hold_reason=f"markup would remove over {self.config.max_removed_fraction:.0%} of the text: set aside for review",
        )


# --- numbers, dates, currency -----------------------------------------------------

_DIGIT = re.compile(r"\d")
_LOCALE_SEPARATORS = {"en": (",", "."), "eu": (".", ",")}  # (thousands, decimal)
# a number with optional thousands groups and decimals; the lookarounds keep it away
# from identifiers, versions, IPs, times, phone and order numbers (NW-123456, 192.0.2.1)
_NUMBER_BODY = r"\d{1,3}(?:[.,]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?"
_NUMBER = re.compile(rf"(?<![\w.,:/@#+\-$€£¥₹])(?:{_NUMBER_BODY})(?![\w%]|[.,:/\-]\d)")


def parse_number(raw: str, locale_hint: str, money: bool = False) -> str | None:
    """A written number in plain form (digits, "." as the decimal mark, no grouping; the
    digits themselves are kept as written), or None when its separators are ambiguous.

    Both separators present: the last one is the decimal mark ("1,234.5", "1.234,5").
    One separator used more than once: thousands ("1,234,567"). One separator used once:
    before exactly 3 digits it is a thousands separator if the locale uses it so, and
    ambiguous otherwise ("1,234" is 1234 in en; in eu it would be 1.234, so it is left
    alone); before other digit counts it is a decimal mark unless the locale uses it for
    thousands ("12,5" is left alone in en). With ``money``, a mark before 1-2 digits is
    always a decimal mark ("€5,00", "$9.99"), since prices are never grouped that way.
    """
    thousands, decimal_mark = _LOCALE_SEPARATORS.get(locale_hint, (None, None))
    marks = [c for c in raw if c in ".,"]
    if not marks:
        return raw
    frac = ""
    if len(set(marks)) == 2:
        decimal_mark = marks[-1]
        if marks.count(decimal_mark) != 1:
            return None
        whole, frac = raw.split(decimal_mark)
        groups = whole.split("," if decimal_mark == "." else ".")
    elif len(marks) > 1:
        groups = raw.split(marks[0])
    else:
        head, tail = raw.split(marks[0])
        if len(tail) == 3:
            if marks[0] != thousands:
                return None
            groups = [head, tail]
        elif money and len(tail) <= 2 or marks[0] != thousands:
            return f"{head}.{tail}"
        else:
            return None
    if not 1 <= len(groups[0]) <= 3 or any(len(g) != 3 for g in groups[1:]):
        return None
    if len(groups) > 1 and groups[0].startswith("0"):
        return None  # "01,234" is not a grouped number
    return "".join(groups) + (f".{frac}" if frac else "")


_MONTHS = {
    name: number
    for number, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
         ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
         ("november", "nov"), ("december", "dec")],
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_ORDINAL = r"(?:st|nd|rd|th)?"
_DATE_EDGE_BEFORE = r"(?<![\w.,/\-:])"
_DATE_EDGE_AFTER = r"(?![\w]|[.,/\-:]\d)"
_DATE_PATTERNS = [
    # 2024-03-05, 2024/3/5, 2024.03.05 (year first is never ambiguous)
    re.compile(rf"{_DATE_EDGE_BEFORE}(?P<year>\d{{4}})(?P<sep>[-/.])(?P<a>\d{{1,2}})(?P=sep)(?P<b>\d{{1,2}}){_DATE_EDGE_AFTER}"),
    # 05/03/2024, 5.3.2024, 05-03-2024: day and month order decided by dayfirst
    re.compile(rf"{_DATE_EDGE_BEFORE}(?P<a>\d{{1,2}})(?P<sep>[-/.])(?P<b>\d{{1,2}})(?P=sep)(?P<year>\d{{4}}){_DATE_EDGE_AFTER}"),
    # March 5, 2024 / Mar. 5th 2024
    re.compile(rf"(?<!\w){_MONTH}\s+(?P<day>\d{{1,2}}){_ORDINAL},?\s+(?P<year>\d{{4}}){_DATE_EDGE_AFTER}", re.IGNORECASE),
    # 5 March 2024 / 5th of March, 2024 / 05-Mar-2024
    re.compile(
        rf"{_DATE_EDGE_BEFORE}(?P<day>\d{{1,2}}){_ORDINAL}(?:\s+of\s+|\s+|-){_MONTH}(?:,?\s+|-)(?P<year>\d{{4}}){_DATE_EDGE_AFTER}",
        re.IGNORECASE,
    ),
]


def _iso_date(year: int, month: int, day: int) -> str | None:
    import datetime

    if not 1000 <= year <= 2999:
        return None
    try:
        return datetime.date(year, month, day).isoformat()
    except ValueError:
        return None


# currency: symbol/code -> ISO code ("$" is resolved by the dollar_code option)
_CURRENCY_SYMBOLS = {"US$": "USD", "CA$": "CAD", "C$": "CAD", "AU$": "AUD", "A$": "AUD", "NZ$": "NZD",
                     "$": None, "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
_CURRENCY_CODES = ("USD", "EUR", "GBP", "JPY", "CAD", "AUD", "NZD", "CHF", "CNY", "INR", "SEK", "NOK", "DKK", "PLN", "CZK", "MXN", "BRL")
_CURRENCY_WORDS = {"dollar": None, "dollars": None, "bucks": None, "euro": "EUR", "euros": "EUR",
                   "yen": "JPY", "pounds sterling": "GBP"}
_MINOR_UNITS = {"JPY": 0}
_SYMBOL = "|".join(re.escape(s) for s in sorted(_CURRENCY_SYMBOLS, key=len, reverse=True))
_CODE = "|".join(_CURRENCY_CODES)
_WORD = "|".join(sorted(_CURRENCY_WORDS, key=len, reverse=True))
_AMOUNT = rf"(?P<amount>{_NUMBER_BODY})"
# not a range ("$5-10"), a magnitude ("$5 million", "$5k") or part of a longer number
_AMOUNT_END = r"(?![\w%]|[.,]\d|\s?[-–]\s?[$€£¥]?\d|\s+(?:k|m|bn|thousand|million|billion|trillion)\b)"
_CURRENCY_PATTERNS = [
    # $5, US$ 5.99, €5,00, EUR 5, USD5 (and "$5 USD": the code wins)
    re.compile(
        rf"(?<![\w$€£¥₹.,])(?:(?P<symbol>{_SYMBOL})|(?P<code>{_CODE})\s?)\s?{_AMOUNT}{_AMOUNT_END}(?:\s(?P<code_after>{_CODE})\b)?"
    ),
    # 5 USD, 5€, 6,95 $, 5 euros, 10 dollars
    re.compile(
        rf"(?<![\w$€£¥₹.,\-]){_AMOUNT}\s?(?:(?P<code>{_CODE})\b|(?P<symbol>€|\$|£|¥|₹)|(?P<word>{_WORD})\b)(?![\w$])",
        re.IGNORECASE,
    ),
]


@dataclass
class StandardizeFormatsConfig:
    #: text columns to rewrite; empty = every canonical text column present (prompt, completion, text, ...)
    fields: list[str] = field(default_factory=list)
    #: drop thousands separators and use "." as the decimal mark ("1,234.5" -> "1234.5")
    numbers: bool = True
    #: rewrite dates with a 4-digit year as ISO 8601 ("March 5, 2024", "05/03/2024" -> "2024-03-05")
    dates: bool = True
    #: rewrite amounts of money as "<amount with minor units> <ISO code>" ("$5", "5 euros" -> "5.00 USD", "5.00 EUR")
    currency: bool = True
    #: how numbers are written: en ("1,234.5"), eu ("1.234,5"), or auto (only unmistakable forms)
    locale_hint: str = "en"
    #: order of numeric dates: true = day/month/year, false = month/day/year, null = convert
    #: only dates whose order is unmistakable (a part above 12, or day == month)
    dayfirst: bool | None = None
    #: ISO code for a bare "$" or "dollars" (the text rarely says which dollar)
    dollar_code: str = "USD"


class StandardizeFormats(Cleaner):
    """Writes numbers, dates (ISO 8601) and amounts of money in one canonical form; unparseable text stays."""

    KINDS = ("currency_standardized", "dates_standardized", "numbers_standardized")

    def __init__(self, config: StandardizeFormatsConfig):
        super().__init__(config)
        if config.locale_hint not in ("en", "eu", "auto"):
            raise ValueError(f"standardize_formats.locale_hint must be en, eu or auto, got {config.locale_hint!r}")
        if not re.fullmatch(r"[A-Z]{3}", config.dollar_code or ""):
            raise ValueError(
                f"standardize_formats.dollar_code must be a 3-letter ISO 4217 code such as USD or CAD, got {config.dollar_code!r}"
            )
        if not (config.numbers or config.dates or config.currency):
            raise ValueError("standardize_formats: numbers, dates and currency are all false; enable at least one")

    # each rewriter returns the new text and how many values it rewrote
    def _currency(self, text: str) -> tuple[str, int]:
        rewritten = 0

        def replace(match: re.Match) -> str:
            nonlocal rewritten
            parts = match.groupdict()
            code = parts.get("code_after") or parts.get("code")
            if code:
                code = code.upper()
            elif parts.get("symbol"):
                code = _CURRENCY_SYMBOLS[parts["symbol"]] or self.config.dollar_code
            else:
                code = _CURRENCY_WORDS[parts["word"].lower()] or self.config.dollar_code
            plain = parse_number(parts["amount"], self.config.locale_hint, money=True)
            minor = _MINOR_UNITS.get(code, 2)
            if plain is None or len(plain.partition(".")[2]) > minor:
                return match.group(0)  # ambiguous, or more decimals than the currency has
            value = Decimal(plain)
            canonical = f"{value:.{minor}f} {code}"
            if canonical != match.group(0):
                rewritten += 1
            return canonical

        for pattern in _CURRENCY_PATTERNS:
            text = pattern.sub(replace, text)
        return text, rewritten

    def _dates(self, text: str) -> tuple[str, int]:
        rewritten = 0

        def replace(match: re.Match) -> str:
            nonlocal rewritten
            parts = match.groupdict()
            year = int(parts["year"])
            if parts.get("month"):
                iso = _iso_date(year, _MONTHS[parts["month"].lower()], int(parts["day"]))
            elif match.re is _DATE_PATTERNS[0]:
                iso = _iso_date(year, int(parts["a"]), int(parts["b"]))
            else:
                a, b = int(parts["a"]), int(parts["b"])
                dayfirst = self.config.dayfirst
                if dayfirst is None:
                    if a > 12 >= b:
                        dayfirst = True
                    elif b > 12 >= a:
                        dayfirst = False
                    elif a == b:
                        dayfirst = True
                    else:
                        return match.group(0)  # 05/03/2024: March 5 or May 3?
                day, month = (a, b) if dayfirst else (b, a)
                iso = _iso_date(year, month, day)
            if iso is None:
                return match.group(0)  # February 30th, year 0999, ...
            if iso != match.group(0):
                rewritten += 1
            return iso

        for pattern in _DATE_PATTERNS:
            text = pattern.sub(replace, text)
        return text, rewritten

    def _numbers(self, text: str) -> tuple[str, int]:
        rewritten = 0

        def replace(match: re.Match) -> str:
            nonlocal rewritten
            raw = match.group(0)
            plain = parse_number(raw, self.config.locale_hint)
            if plain is None:
                return raw
            if plain != raw:
                rewritten += 1
            return plain

        return _NUMBER.sub(replace, text), rewritten

    def standardize(self, text: str) -> tuple[str, dict[str, int]]:
        counts: dict[str, int] = {}
        if not _DIGIT.search(text):
            return text, counts  # every format rewritten here has a digit in it
        # currency first (its amounts must not be rewritten as bare numbers), then
        # dates (so "05.03.2024" is never read as numbers)
        for enabled, kind, rewrite in (
            (self.config.currency, "currency_standardized", self._currency),
            (self.config.dates, "dates_standardized", self._dates),
            (self.config.numbers, "numbers_standardized", self._numbers),
        ):
            if enabled:
                text, n = rewrite(text)
                counts[kind] = n
        return text, counts

    def apply(self, data, ctx: StageContext):
        fields = text_fields(data, self.config.fields, "standardize_formats")
        return edit_text_columns(
            data, ctx, fields, self.standardize, step="standardize_formats", what="formats standardized", kinds=self.KINDS
        )


# --- missing values ---------------------------------------------------------------

_MISSING_POLICIES = ("drop", "impute", "flag")


@dataclass
class MissingValuesConfig:
    #: column -> what to do when its value is missing: drop (remove the row; ledger reason
    #: "missing <column>"), impute (fill in values[column]), flag (keep the row and add a
    #: boolean column <column>_missing). Columns not listed are left alone.
    policies: dict[str, str] = field(default_factory=lambda: {PROMPT: "drop", COMPLETION: "drop"})
    #: column -> the value put in place of a missing one (needed for every impute column)
    values: dict[str, Any] = field(default_factory=dict)
    #: count strings that are empty or only whitespace as missing, not just None
    blank_is_missing: bool = True


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


class MissingValues(Cleaner):
    """Per-column policy for missing values: drop the row, impute a default, or flag it in a new column."""

    def __init__(self, config: MissingValuesConfig):
        super().__init__(config)
        if not config.policies:
            raise ValueError("missing_values.policies is empty; map at least one column to drop, impute or flag")
        for column, policy in config.policies.items():
            if policy not in _MISSING_POLICIES:
                raise ValueError(
                    f"missing_values.policies.{column} must be drop, impute or flag, got {policy!r}"
                )
            if policy == "impute" and (column not in config.values or config.values[column] is None):
                raise ValueError(
                    f"missing_values.policies.{column} is impute but missing_values.values.{column} is not set; "
                    f"give the value to fill in, e.g. +pipeline.params.missing_values.values.{column}=unknown"
                )
        unused = sorted(set(config.values) - {c for c, p in config.policies.items() if p == "impute"})
        if unused:
            raise ValueError(f"missing_values.values names {unused}, whose policy is not impute; remove them or set their policy to impute")

    def _is_missing(self, value: Any) -> bool:
        if value is None:
            return True
        return self.config.blank_is_missing and isinstance(value, str) and not value.strip()

    def _fill_value(self, data: Any, column: str) -> Any:
        """The configured value, converted to the column's type (a clear error when it cannot be)."""
        value = self.config.values[column]
        dtype = getattr(data.features[column], "dtype", None)
        converters: dict[str, Callable[[Any], Any]] = {"string": str, "large_string": str, "bool": _as_bool}
        convert = converters.get(dtype or "") or (
            int if dtype and dtype.startswith(("int", "uint")) else float if dtype and dtype.startswith("float") else None
        )
        if convert is None:
            if dtype == "null" or isinstance(value, (str, int, float, bool)):
                return value
            raise ValueError(f"missing_values: cannot impute into column '{column}' of type {data.features[column]}")
        try:
            return convert(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"missing_values.values.{column}={value!r} does not fit column '{column}' of type {dtype}; "
                "give a value of that type"
            ) from None

    def apply(self, data, ctx: StageContext):
        policies = self.config.policies
        require_columns(data, list(policies), "missing_values")
        flagged = [f"{c}_missing" for c, p in policies.items() if p == "flag"]
        clash = [c for c in flagged if c in data.column_names]
        if clash:
            raise ValueError(f"missing_values: the flag column(s) {clash} already exist; rename them or use another policy")

        ids, *values = columns_as_lists(data, ROW_ID, *policies)
        missing = {c: [self._is_missing(v) for v in column] for c, column in zip(policies, values)}
        keep: list[int] = []
        dropped: dict[str, list[str]] = {}
        for i, row_id in enumerate(ids):
            first = next((c for c, p in policies.items() if p == "drop" and missing[c][i]), None)
            if first is None:
                keep.append(i)
            else:
                dropped.setdefault(first, []).append(row_id)
        for column, row_ids in dropped.items():
            ctx.drop(row_ids, f"missing {column}")

        fills = {c: self._fill_value(data, c) for c, p in policies.items() if p == "impute"}
        flags = [c for c, p in policies.items() if p == "flag"]
        if keep and (fills or flags):
            for column in fills:
                rows = [ids[i] for i in keep if missing[column][i]]
                ctx.modified(rows, f"imputed {column}")
            for column in flags:
                ctx.count(f"flagged {column}_missing", sum(missing[column][i] for i in keep))

            def fill(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
                for column, value in fills.items():
                    batch[column] = [value if missing[column][i] else v for v, i in zip(batch[column], indices)]
                for column in flags:
                    batch[f"{column}_missing"] = [missing[column][i] for i in indices]
                return batch

            data = data.map(fill, batched=True, with_indices=True, desc="missing_values")
        return take_rows(data, keep) if len(keep) != len(data) else data


def _procs(ctx: StageContext, data: Any) -> int | None:
    # worker processes only pay off on larger data
    return ctx.num_proc if ctx.num_proc > 1 and len(data) >= 10_000 else None


COMPONENTS = [
    ("cleaner", Component("normalize", Normalize, NormalizeConfig)),
    ("cleaner", Component("drop_missing", DropMissing, DropMissingConfig)),
    ("cleaner", Component("exact_dedup", ExactDedup, ExactDedupConfig)),
    ("cleaner", Component("strip_markup", StripMarkup, StripMarkupConfig)),
    ("cleaner", Component("standardize_formats", StandardizeFormats, StandardizeFormatsConfig)),
    ("cleaner", Component("missing_values", MissingValues, MissingValuesConfig)),
]
