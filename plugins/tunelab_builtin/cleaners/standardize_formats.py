"""The cleaner ``standardize_formats``: numbers, dates (ISO 8601) and amounts of money
written in one canonical form; text that cannot be parsed unambiguously stays."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from tunelab.api import Cleaner, StageContext
from tunelab_builtin.cleaners._columns import text_fields
from tunelab_builtin.cleaners._edits import edit_text_columns

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
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
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
    re.compile(
        rf"{_DATE_EDGE_BEFORE}(?P<year>\d{{4}})(?P<sep>[-/.])(?P<a>\d{{1,2}})(?P=sep)(?P<b>\d{{1,2}}){_DATE_EDGE_AFTER}"
    ),
    # 05/03/2024, 5.3.2024, 05-03-2024: day and month order decided by dayfirst
    re.compile(
        rf"{_DATE_EDGE_BEFORE}(?P<a>\d{{1,2}})(?P<sep>[-/.])(?P<b>\d{{1,2}})(?P=sep)(?P<year>\d{{4}}){_DATE_EDGE_AFTER}"
    ),
    # March 5, 2024 / Mar. 5th 2024
    re.compile(
        rf"(?<!\w){_MONTH}\s+(?P<day>\d{{1,2}}){_ORDINAL},?\s+(?P<year>\d{{4}}){_DATE_EDGE_AFTER}", re.IGNORECASE
    ),
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
_CURRENCY_SYMBOLS = {
    "US$": "USD",
    "CA$": "CAD",
    "C$": "CAD",
    "AU$": "AUD",
    "A$": "AUD",
    "NZ$": "NZD",
    "$": None,
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
}
_CURRENCY_CODES = (
    "USD",
    "EUR",
    "GBP",
    "JPY",
    "CAD",
    "AUD",
    "NZD",
    "CHF",
    "CNY",
    "INR",
    "SEK",
    "NOK",
    "DKK",
    "PLN",
    "CZK",
    "MXN",
    "BRL",
)
_CURRENCY_WORDS = {
    "dollar": None,
    "dollars": None,
    "bucks": None,
    "euro": "EUR",
    "euros": "EUR",
    "yen": "JPY",
    "pounds sterling": "GBP",
}
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
                "standardize_formats.dollar_code must be a 3-letter ISO 4217 code such as USD or CAD, "
                f"got {config.dollar_code!r}"
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
            data,
            ctx,
            fields,
            self.standardize,
            step="standardize_formats",
            what="formats standardized",
            kinds=self.KINDS,
        )
