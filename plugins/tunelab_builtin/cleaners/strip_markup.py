"""The cleaner ``strip_markup``: HTML/XML (and optionally markdown) markup removed, the
visible text kept with its line breaks; a row that would lose too much is set aside."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from html import entities as html_entities
from html import escape as html_escape
from html import unescape as html_unescape
from html.parser import HTMLParser
from typing import Any

from tunelab.api import Cleaner, StageContext
from tunelab_builtin.cleaners._columns import text_fields
from tunelab_builtin.cleaners._edits import EditNote, edit_text_columns

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
    {
        "br",
        "div",
        "li",
        "tr",
        "dt",
        "dd",
        "section",
        "article",
        "header",
        "footer",
        "nav",
        "aside",
        "main",
        "form",
        "fieldset",
        "address",
        "caption",
        "details",
        "summary",
        "figcaption",
    }
)
# inline HTML elements: their text runs on; any other (unknown, XML) element separates words
_INLINE_ELEMENTS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "bdi",
        "bdo",
        "big",
        "cite",
        "code",
        "data",
        "del",
        "dfn",
        "em",
        "font",
        "i",
        "img",
        "ins",
        "kbd",
        "label",
        "mark",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "time",
        "tt",
        "u",
        "var",
        "wbr",
        "html",
        "body",
        "math",
        "mi",
        "mn",
        "mo",
        "ms",
        "mtext",
        "mrow",
        "nobr",
    }
)
_WS = " \t\n\r\f"  # HTML whitespace
_NAME = r"[A-Za-z][\w.:-]*"
# an attribute: name, name=value, name="value"; spaces around "=" only before a quoted value
# (so "a<b then x = 5 and y>z" is not a tag); quoted values are bounded to keep scans linear
_ATTR = (
    r"""\s+[A-Za-z_:@][-\w:.@]*"""
    r"""(?:=(?:"[^"]{0,4000}"|'[^']{0,4000}'|[^\s"'=<>`]+)"""
    r"""|\s*=\s*(?:"[^"]{0,4000}"|'[^']{0,4000}'))?"""
)
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
    a field that has unmistakable markup (unclosed ``<html>``/``<body>`` only in a whole page).
    Hidden elements (script, style, ...) count only paired.
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
        parts = [
            f"{n} {what}{'s' if n != 1 else ''}"
            for n, what in ((self.tags, "tag"), (self.comments, "comment"), (self.entities, "entity"))
        ]
        parts = [p.replace("entitys", "entities") for p in parts if not p.startswith("0 ")]
        if self.lost_chars:
            parts.append(
                f"{self.lost_chars} character{'s' if self.lost_chars != 1 else ''} of hidden content or comments"
            )
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
        doc.append(html_escape(text[at : m.start()], quote=False))
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
_MD_STRONG = re.compile(
    r"(?<![\w*])(\*\*)(?=[^\s*])(.+?)(?<=[^\s*])\*\*(?![\w*])|(?<![\w_])(__)(?=[^\s_])(.+?)(?<=[^\s_])__(?![\w_])"
)
_MD_EMPHASIS = re.compile(
    r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])|(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"
)
_IDENTIFIER = re.compile(r"\w+")
_MD_CODE = re.compile(r"`([^`\n]+)`")
_MD_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)[^\n]*\n?", re.MULTILINE)
# a fenced code block with its closing fence: its content is code, kept as written
_MD_FENCED_BLOCK = re.compile(
    r"^[ \t]{0,3}(```+|~~~+)[^\n]*\n(.*?)^[ \t]{0,3}\1[ \t]*(?:\n|$)", re.MULTILINE | re.DOTALL
)
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
            data,
            ctx,
            fields,
            self._clean,
            step="strip_markup",
            what="markup stripped",
            hold_reason=(
                f"markup would remove over {self.config.max_removed_fraction:.0%} of the text: set aside for review"
            ),
        )
