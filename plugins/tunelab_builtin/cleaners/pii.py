"""PII detection and anonymization: the ``pii`` cleaner.

Detectors are regular expressions followed by a validity check, so that a match is
more than a digit pattern: credit cards must pass the Luhn check, IBANs the mod-97
check and their country's length, IPv4 octets must be 0-255, IPv6 addresses must
parse, US SSNs must avoid the ranges never issued, UK NINOs the prefixes never used.
Overlapping matches are resolved longest-first (an email wins over the URL-like
domain inside it, a card number over a phone-like group inside it).

Raw PII never leaves this module except in the returned data when nothing is to be
redacted: report examples show the text with placeholders, drop details name entity
kinds and counts only, and the ``fake``/``hash`` replacements are derived from the
value without storing it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tunelab.api import COMPLETION, PROMPT, ROW_ID, Cleaner, StageContext
from tunelab_builtin._lib.rows import row_rng, take_rows
from tunelab_builtin.cleaners._columns import require_columns

EMAIL = "email"
PHONE = "phone"
CREDIT_CARD = "credit_card"
IBAN = "iban"
IPV4 = "ipv4"
IPV6 = "ipv6"
US_SSN = "us_ssn"
UK_NINO = "uk_nino"
URL = "url"
#: every entity, most sensitive first: a dropped row holding several kinds is dropped
#: for the first of them, and overlapping matches of equal length go to the first
ENTITIES = (CREDIT_CARD, IBAN, US_SSN, UK_NINO, PHONE, EMAIL, IPV4, IPV6, URL)
STRATEGIES = ("placeholder", "mask", "hash", "fake")
ACTIONS = ("redact", "drop")

_FOUND = "__tunelab_pii_found"
_BEFORE = "__tunelab_pii_before"
_AFTER = "__tunelab_pii_after"


class Match(NamedTuple):
    start: int
    end: int
    entity: str
    #: canonical form used for hashing and fakes (digits only, case-folded, ...), so one
    #: value written two ways gets one replacement
    key: str


# --- detectors ----------------------------------------------------------------------
# Each detector yields candidate matches; the lookarounds keep them from starting or
# ending inside a longer word or number (order numbers like NW-483920, versions 1.2.3).

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w-])"
)


def _emails(text: str) -> Iterator[Match]:
    for m in _EMAIL.finditer(text):
        yield Match(m.start(), m.end(), EMAIL, m.group().casefold())


_URL = re.compile(r"(?<![\w@/.-])(?:https?://|www\.)[^\s<>\"'`]{2,2000}", re.IGNORECASE)
_URL_TRAILING = ".,;:!?'\")]}&"
_HTML_ESCAPE = re.compile(r"&(?:quot|apos|lt|gt|#34|#39|#x22|#x27);", re.IGNORECASE)


def _urls(text: str) -> Iterator[Match]:
    for m in _URL.finditer(text):
        # an HTML-escaped quote or bracket ends the URL (href=&quot;https://...&quot;)
        url = _HTML_ESCAPE.split(m.group(), 1)[0]
        # sentence punctuation after a URL is not part of it; a ")" is kept only when it
        # closes a "(" inside the URL (Wikipedia-style links)
        while url and url[-1] in _URL_TRAILING and not (url[-1] == ")" and url.count("(") >= url.count(")")):
            url = url[:-1]
        if len(url) > len("www.") and re.search(r"[A-Za-z0-9]\.[A-Za-z]{2,}|//[^/]", url):
            yield Match(m.start(), m.start() + len(url), URL, url.casefold())


# phone numbers: international (+CC ...), North American, and UK national formats.
# Bare digit runs are never phones: they are order numbers, amounts and ids too often.
_PHONE_INTL = re.compile(r"(?<![\w+])\+[1-9]\d{0,2}(?:[ .\-]?\(?\d{1,5}\)?){1,6}(?!\w|[.\-]\d)")
_PHONE_NANP = re.compile(
    r"(?<![\w+\-./])(?:1[ .\-])?(?:\([2-9]\d{2}\)[ .\-]?|[2-9]\d{2}[ .\-])[2-9]\d{2}[ .\-]\d{4}(?!\w|[.\-/]\d)"
)
_PHONE_UK = re.compile(r"(?<![\w+\-./])\(?0[1-9]\d{1,3}\)?[ \-]?\d{3,4}[ \-]?\d{3,4}(?!\w|[.\-/]\d)")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _phones(text: str) -> Iterator[Match]:
    for m in _PHONE_INTL.finditer(text):
        groups = re.split(r"([ .\-])", m.group())
        # E.164 allows 15 digits with the country code: "+44 20 7946 0958 2024" is a
        # number followed by a year, so drop trailing groups until it fits
        for cut in range(len(groups), 0, -2):
            candidate = "".join(groups[:cut])
            digits = _digits(candidate)
            if len(digits) <= 15:
                if len(digits) >= 8:
                    yield Match(m.start(), m.start() + len(candidate), PHONE, "+" + digits)
                break
    for m in _PHONE_NANP.finditer(text):
        digits = _digits(m.group())
        yield Match(m.start(), m.end(), PHONE, "+1" + digits[-10:])
    for m in _PHONE_UK.finditer(text):
        digits = _digits(m.group())
        if len(digits) in (10, 11):
            yield Match(m.start(), m.end(), PHONE, "+44" + digits[1:])


# up to 40 digits: a run may hold a card after another number, which _cards finds
_CARD = re.compile(r"(?<![\w+\-.])\d(?:[ \-]?\d){12,39}(?!\w|[.\-]\d)")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum used by payment card numbers."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _cards(text: str) -> Iterator[Match]:
    for m in _CARD.finditer(text):
        groups = re.split(r"([ \-])", m.group())
        # try the whole run, then shorter runs of whole digit groups: "4111 1111 1111
        # 1111 12" is a card followed by a number; and runs starting at a later group:
        # "001-01-0001 4111 1111 1111 1111" is a number followed by a card
        first = 0
        while first < len(groups):
            offset = m.start() + len("".join(groups[:first]))
            for cut in range(len(groups), first, -2):
                candidate = "".join(groups[first:cut])
                digits = _digits(candidate)
                # 2-6: the first digit of Mastercard (2-series and 5), Amex/Diners/JCB (3),
                # Visa (4) and Discover/Maestro (6); other leading digits are not cards
                if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits):
                    yield Match(offset, offset + len(candidate), CREDIT_CARD, digits)
                    first = cut - 2  # go on after this card
                    break
            first += 2


#: IBAN length by country (ISO 13616 registry); a country not listed is not matched
IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VG": 24,
    "XK": 20,
}
_IBAN = re.compile(r"(?<![\w-])([A-Za-z]{2})(\d{2})((?: ?[A-Za-z0-9]){11,30})")


def iban_valid(iban: str) -> bool:
    """ISO 13616 check: known country and length, and mod-97 of the rearranged number is 1."""
    iban = iban.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _ibans(text: str) -> Iterator[Match]:
    for m in _IBAN.finditer(text):
        country = m.group(1).upper()
        length = IBAN_LENGTHS.get(country)
        if length is None:
            continue
        # take exactly the country's length (the regex may run into a following word)
        taken, end = 0, m.start()
        while end < m.end() and taken < length:
            if text[end] != " ":
                taken += 1
            end += 1
        candidate = text[m.start() : end]
        if taken == length and iban_valid(candidate) and not (end < len(text) and text[end].isalnum()):
            yield Match(m.start(), end, IBAN, candidate.replace(" ", "").upper())


_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)"
)
# a word of its own: "dev 10.0.0.5" is an address, "v1.2.3.4" and "version 1.2.3.4" are not
_VERSION_BEFORE = re.compile(r"\b(?:version|ver\.?|release|build|v)\s*$", re.IGNORECASE)


def _ipv4s(text: str) -> Iterator[Match]:
    for m in _IPV4.finditer(text):
        if _VERSION_BEFORE.search(text, max(0, m.start() - 10), m.start()):
            continue  # "version 1.2.3.4" is a version, not an address
        yield Match(m.start(), m.end(), IPV4, m.group())


_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f:][0-9A-Fa-f:.]{1,44}(?:%[\w.]{1,16})?(?![\w:])")


def _ipv6s(text: str) -> Iterator[Match]:
    for m in _IPV6.finditer(text):
        candidate = m.group().rstrip(".")
        if candidate.count(":") < 2 or sum(ch.isalnum() for ch in candidate) < 3:
            continue
        try:
            address = ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield Match(m.start(), m.start() + len(candidate), IPV6, address.compressed)


_SSN = re.compile(r"(?<![\w\-])(\d{3})-(\d{2})-(\d{4})(?![\w\-]|\.\d)")


def _ssns(text: str) -> Iterator[Match]:
    for m in _SSN.finditer(text):
        area, group, serial = m.groups()
        # never issued: area 000, 666 and 900-999, group 00, serial 0000
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        yield Match(m.start(), m.end(), US_SSN, area + group + serial)


# first letter not D F I Q U V, second not D F I O Q U V; prefixes BG GB KN NK NT TN ZZ
# are never issued. QQ is HMRC's own example prefix, so sample data using it is caught too.
_NINO = re.compile(r"(?<![\w-])(QQ|[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])(?![\w-])")
_NINO_NEVER = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def _ninos(text: str) -> Iterator[Match]:
    for m in _NINO.finditer(text):
        if m.group(1) in _NINO_NEVER:
            continue
        yield Match(m.start(), m.end(), UK_NINO, "".join(m.groups()))


_DETECTORS: dict[str, Callable[[str], Iterator[Match]]] = {
    EMAIL: _emails,
    PHONE: _phones,
    CREDIT_CARD: _cards,
    IBAN: _ibans,
    US_SSN: _ssns,
    UK_NINO: _ninos,
    IPV4: _ipv4s,
    IPV6: _ipv6s,
    URL: _urls,
}
# cheap test that a text could hold any entity at all: most rows hold none
_MAYBE_PII = re.compile(r"[\d@:]|www\.", re.IGNORECASE)
# cheaper still per detector: the character each kind cannot do without
_NEEDS: dict[str, Callable[[str], bool]] = {
    EMAIL: lambda text: "@" in text,
    IPV4: lambda text: text.count(".") >= 3,
    IPV6: lambda text: text.count(":") >= 2,
    URL: lambda text: "//" in text or "www." in text.lower(),
}
# phones (8+ digits), cards (13+) and SSNs (9) all hold 7 digits in a row, give or take
# separators; one scan for that spares their three slower patterns on most texts
_DIGIT_RUN = re.compile(r"\d(?:[ .\-()/]{0,2}\d){6}")
_NEED_DIGIT_RUN = {PHONE, CREDIT_CARD, US_SSN}


def _candidates(text: str, entities: tuple[str, ...]) -> list[Match]:
    """Every detector's matches in ``text``, overlapping ones included."""
    if not _MAYBE_PII.search(text):
        return []
    digit_run = _DIGIT_RUN.search(text) is not None
    found = []
    for entity in entities:
        if (entity in _NEED_DIGIT_RUN and not digit_run) or (entity in _NEEDS and not _NEEDS[entity](text)):
            continue
        found += _DETECTORS[entity](text)
    return found


def detect(text: str, entities: tuple[str, ...] = ENTITIES) -> list[Match]:
    """Non-overlapping PII matches in ``text``, in text order."""
    found = _candidates(text, entities)
    # longest first; on equal length the entity listed first in ENTITIES wins
    found.sort(key=lambda m: (-(m.end - m.start), ENTITIES.index(m.entity), m.start))
    taken: list[Match] = []
    for m in found:
        if all(m.end <= t.start or m.start >= t.end for t in taken):
            taken.append(m)
    return sorted(taken)


# Names (files, folders, columns, ids made from them) glue words together where text has a
# space: export_john.doe@example.com_555-867-5309.jsonl, ssn123-45-6789, report-10.0.0.5.csv.
# The detectors' lookarounds, right for prose, see "_555" as the inside of a word.
_NAME_SEPARATORS = str.maketrans({"_": " ", "/": " ", "\\": " "})
_NAME_JOINERS = "-.,=~"


def _name_views(name: str) -> Iterator[tuple[str, list[int | None]]]:
    """Ways to read a name as text, each with the position in ``name`` of every character
    (None for an inserted space): as written, with ``_ / \\`` as spaces (and each dash), and also split
    where letters meet digits, ``(`` or ``+`` (a joiner that is not inside a word or a
    number, such as the dash of ``report-555`` or ``0001-(200)``, is a space)."""
    yield name, list(range(len(name)))
    spaced = name.translate(_NAME_SEPARATORS)
    yield spaced, list(range(len(name)))
    # a dash may end an address (john@corp-it.com-export: a domain cannot end in one): read the
    # name once with each dash as a space (a name holds only a few)
    dashes = [i for i, ch in enumerate(spaced) if ch == "-"]
    if len(dashes) <= _MAX_JOINTS:
        for i in dashes:
            yield spaced[:i] + " " + spaced[i + 1 :], list(range(len(name)))
    chars: list[str] = []
    origin: list[int | None] = []
    for i, ch in enumerate(spaced):
        before, after = spaced[i - 1] if i else "", spaced[i + 1] if i + 1 < len(spaced) else ""
        # a joiner inside a word (corp-it.co.uk) or a number (555-0199) stays; between a word
        # and a number, or before "(" and "+", it separates them
        if (
            ch in _NAME_JOINERS
            and before
            and after
            and not (before.isalpha() and after.isalpha())
            and not (before.isdigit() and after.isdigit())
        ):
            ch = " "
        chars.append(ch)
        origin.append(i)
        if (
            (ch.isalpha() and after.isdigit())
            or (ch.isalnum() and after and after in "(+")
            or ((ch.isdigit() or ch == ")") and after.isalpha())
        ):
            chars.append(" ")
            origin.append(None)
    split, split_origin = "".join(chars), origin
    yield split, split_origin
    # a joiner between two digit runs may end an entity (report-555-867-5309-2024.csv): read
    # the name once with each such joiner as a space (a name holds only a few)
    joints = [
        i
        for i, ch in enumerate(split)
        if ch in _NAME_JOINERS and 0 < i < len(split) - 1 and split[i - 1].isdigit() and split[i + 1].isdigit()
    ]
    if len(joints) <= _MAX_JOINTS:
        for i in joints:
            yield split[:i] + " " + split[i + 1 :], split_origin


#: names with more digit-joiner-digit places than this are read without splitting at them
_MAX_JOINTS = 16


#: file suffixes read apart from the name: in export_a@b.com.json the address ends before .json
_DATA_SUFFIX = re.compile(
    r"(?:\.(?:jsonl|json|ndjson|csv|tsv|tab|txt|text|md|parquet|arrow|html?|xhtml|pdf|db|sqlite3?|xml|ya?ml)"
    r"(?:\.gz)?|\.gz)$",
    re.IGNORECASE,
)


def _name_matches(name: str, entities: tuple[str, ...]) -> list[Match]:
    found: list[Match] = []
    for view, origin in _name_views(name):
        for m in _candidates(view, entities):
            kept = [origin[i] for i in range(m.start, m.end) if origin[i] is not None]
            if kept:
                found.append(Match(kept[0], kept[-1] + 1, m.entity, m.key))
    return found


def _merged(found: list[Match]) -> list[Match]:
    """Overlapping matches as one (the kind of the longest): in a name, readings disagree on
    where one value ends (a card number across two phone numbers), and all of each goes."""
    out: list[Match] = []
    for m in sorted(found, key=lambda m: (m.start, -(m.end - m.start))):
        if out and m.start < out[-1].end:
            last = out[-1]
            longer = last if last.end - last.start >= m.end - m.start else m
            out[-1] = Match(last.start, max(last.end, m.end), longer.entity, longer.key)
        else:
            out.append(m)
    return out


def detect_in_name(name: str, entities: tuple[str, ...] = ENTITIES) -> list[Match]:
    """PII matches in a file, folder or column name (positions in ``name``): what
    :func:`detect` finds in any of the name's readings (:func:`_name_views`), overlapping
    ones merged. The name without a data file suffix (``.jsonl``, ``.csv.gz``) is read first;
    a match of the whole name that runs into the suffix counts only where that found none
    (``a@b.md`` is an address, not a Markdown file; ``a@b.com.json`` is ``<EMAIL>.json``)."""
    if not _MAYBE_PII.search(name):
        return []
    found = _name_matches(name, entities)
    suffix = _DATA_SUFFIX.search(name)
    if suffix and suffix.start() > 0:
        stem = _name_matches(name[: suffix.start()], entities)
        found = stem + [
            m for m in found if m.end <= suffix.start() or all(m.end <= t.start or m.start >= t.end for t in stem)
        ]
    return _merged(found)


# --- replacements --------------------------------------------------------------------


def placeholder(entity: str) -> str:
    return f"<{entity.upper()}>"


_FIRST = ["alex", "sam", "jordan", "taylor", "casey", "robin", "morgan", "jamie", "riley", "quinn", "avery", "drew"]
_LAST = ["lee", "smith", "garcia", "khan", "novak", "silva", "kim", "brown", "rossi", "muller", "dubois", "ito"]
_CARD_TEST_PREFIX = {"2": "222300", "3": "378282", "4": "400000", "5": "555555", "6": "601111"}


def _luhn_complete(body: str) -> str:
    """``body`` plus the check digit that makes it Luhn-valid."""
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable: one check digit always fits")


def _reshape(digits: str, layout: str) -> str:
    """Put ``digits`` into the original's layout (its separators and their places)."""
    out, pending = [], iter(digits)
    for ch in layout:
        out.append(next(pending) if ch.isdigit() else ch)
    return "".join(out)


def fake_value(entity: str, original: str, key: str, seed: int) -> str:
    """A realistic stand-in from reserved or test ranges, the same for the same value
    (same ``key``) and seed, in the original's format where it has one."""
    rng = row_rng(seed, "pii-fake", entity, key)
    if entity == EMAIL:
        domain = rng.choice(["example.com", "example.org", "example.net"])
        return f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{rng.randrange(10, 100)}@{domain}"
    if entity == PHONE:
        if key.startswith("+44"):  # Ofcom's drama range 020 7946 0000-0999
            local = f"20 7946 0{rng.randrange(1000):03d}"
            return f"+44 {local}" if original.lstrip("(").startswith("+") else f"0{local}"
        number = f"555-01{rng.randrange(100):02d}"  # NANP's fictional 555-0100..0199
        if original.lstrip().startswith("("):
            return f"(555) {number}"
        return f"+1 555-{number}" if original.startswith("+") else f"555-{number}"
    if entity == CREDIT_CARD:
        prefix = _CARD_TEST_PREFIX.get(key[0], "400000")
        body = prefix + "".join(str(rng.randrange(10)) for _ in range(len(key) - len(prefix) - 1))
        return _reshape(_luhn_complete(body), original)
    if entity == IBAN:
        # no IBAN range is reserved for examples: keep country, length and the letter/
        # digit pattern, randomize the account part and recompute the check digits
        bban = "".join(
            rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") if ch.isalpha() else str(rng.randrange(10)) for ch in key[4:]
        )
        check = 98 - int("".join(str(int(ch, 36)) for ch in bban + key[:2] + "00")) % 97
        fake = f"{key[:2]}{check:02d}{bban}"
        return " ".join(fake[i : i + 4] for i in range(0, len(fake), 4)) if " " in original else fake
    if entity == IPV4:  # RFC 5737 documentation ranges
        return f"{rng.choice(['192.0.2', '198.51.100', '203.0.113'])}.{rng.randrange(1, 255)}"
    if entity == IPV6:  # RFC 3849 documentation prefix
        return f"2001:db8:{rng.randrange(1, 0xFFFF):x}::{rng.randrange(1, 0xFFFF):x}"
    if entity == US_SSN:  # 987-65-4320..4329: reserved by the SSA for advertising
        return f"987-65-432{rng.randrange(10)}"
    if entity == UK_NINO:  # QQ: HMRC's example prefix, never issued
        digits = f"{rng.randrange(10**6):06d}"
        letter = rng.choice("ABCD")
        if " " in original:
            return f"QQ {digits[:2]} {digits[2:4]} {digits[4:]} {letter}"
        return f"QQ{digits}{letter}"
    if entity == URL:
        scheme = "https://" if original.lower().startswith("http") else ""
        return f"{scheme}www.example.com/page-{rng.randrange(16**6):06x}"
    raise ValueError(f"no fake for entity {entity!r}")


# --- the cleaner ---------------------------------------------------------------------


@dataclass
class PiiConfig:
    #: text columns to scan (strings, None, or chat transcripts: lists of {role, content})
    fields: list[str] = field(default_factory=lambda: [PROMPT, COMPLETION])
    #: entity kinds to detect (default: all of email, phone, credit_card, iban, us_ssn, uk_nino, ipv4, ipv6, url)
    entities: list[str] = field(default_factory=lambda: list(ENTITIES))
    #: redact (replace PII in place) or drop (remove rows holding PII; reason "pii:<entity>")
    action: str = "redact"
    #: how redact replaces a value: placeholder (<EMAIL>), mask (****), hash (salted SHA-256 prefix),
    #: fake (realistic, consistent)
    strategy: str = "placeholder"
    #: mask character for strategy=mask
    mask_char: str = "*"
    #: mask length for strategy=mask; 0 keeps the original's length
    mask_length: int = 0
    #: secret salt for strategy=hash (required there: unsalted hashes of phone numbers are reversible);
    #: keep it out of shared configs, e.g. salt=${oc.env:TUNELAB_PII_SALT}
    salt: str = ""
    #: hex characters of the salted hash kept for strategy=hash
    hash_length: int = 12


class Pii(Cleaner):
    """Finds emails, phones, cards (Luhn), IBANs (mod-97), IPs, SSNs/NINOs and URLs; redacts or drops rows."""

    def __init__(self, config: PiiConfig):
        super().__init__(config)
        c = config
        unknown = [e for e in c.entities if e not in ENTITIES]
        if unknown or not c.entities:
            raise ValueError(f"pii.entities must be a non-empty list from {list(ENTITIES)}, got {list(c.entities)}")
        if c.action not in ACTIONS:
            raise ValueError(f"pii.action must be one of {list(ACTIONS)}, got {c.action!r}")
        if c.strategy not in STRATEGIES:
            raise ValueError(f"pii.strategy must be one of {list(STRATEGIES)}, got {c.strategy!r}")
        if len(c.mask_char) != 1:
            raise ValueError(f"pii.mask_char must be exactly one character, got {c.mask_char!r}")
        if c.mask_length < 0:
            raise ValueError(f"pii.mask_length must be 0 (original length) or a positive length, got {c.mask_length}")
        if not 4 <= c.hash_length <= 64:
            raise ValueError(f"pii.hash_length must be from 4 to 64 hex characters, got {c.hash_length}")
        if c.action == "redact" and c.strategy == "hash" and not c.salt:
            raise ValueError(
                "pii.salt must be set when pii.strategy=hash: unsalted hashes of phone numbers or card numbers "
                "can be reversed by trying every value. Set pipeline.params.pii.salt (e.g. from an environment "
                "variable: ${oc.env:TUNELAB_PII_SALT})"
            )
        if not c.fields:
            raise ValueError("pii.fields must name at least one column, e.g. [prompt, completion]")
        self.entities = tuple(e for e in ENTITIES if e in c.entities)

    def replacement(self, match: Match, original: str, seed: int) -> str:
        c = self.config
        if c.strategy == "placeholder":
            return placeholder(match.entity)
        if c.strategy == "mask":
            return c.mask_char * (c.mask_length or len(original))
        if c.strategy == "hash":
            material = f"{c.salt}\x1f{match.entity}\x1f{match.key}".encode("utf-8", "surrogatepass")
            return f"<{match.entity.upper()}:{hashlib.sha256(material).hexdigest()[: c.hash_length]}>"
        # a fake that is the original (say a 555-01xx number drawn again) would leave
        # the value in the data: compare letters and digits only, so "555.555.0187"
        # cannot come back as "555-555-0187"
        attempt = match.key
        while True:
            fake = fake_value(match.entity, original, attempt, seed)
            if _canonical(fake) != _canonical(original):
                return fake
            attempt += "~"

    def scrub(self, text: str) -> str:
        """``text`` with placeholders (``<EMAIL>``) for the entities this step detects. The engine
        runs what the steps before this one record for files (the quarantine, report examples,
        drop details) through it, so no raw value is written before the data is redacted."""
        return self.redact(text, 0, replace=False)[2] if isinstance(text, str) else text

    def scrub_name(self, name: str) -> str:
        """A file, folder, column or row-id name with placeholders for the entities this step
        detects, also where the name glues them to its words (``export_<EMAIL>_<PHONE>.jsonl``
        for ``export_john.doe@example.com_555-867-5309.jsonl``). The engine renames sources,
        ids, quarantine records and columns with it right after collection."""
        if not isinstance(name, str):
            return name
        matches = detect_in_name(name, self.entities)
        out, last = [], 0
        for m in matches:
            out += [name[last : m.start], placeholder(m.entity)]
            last = m.end
        return "".join(out) + name[last:]

    def redact(self, text: str, seed: int, replace: bool = True) -> tuple[str, list[Match], str]:
        """``(redacted text, matches, text with placeholders)`` for one string; with
        ``replace=False`` (the drop action) the text comes back unchanged."""
        matches = detect(text, self.entities)
        if not matches:
            return text, matches, text
        redacted, preview, last = [], [], 0
        for m in matches:
            if replace:
                redacted += [text[last : m.start], self.replacement(m, text[m.start : m.end], seed)]
            preview += [text[last : m.start], placeholder(m.entity)]
            last = m.end
        preview.append(text[last:])
        if not replace:
            return text, matches, "".join(preview)
        redacted.append(text[last:])
        return "".join(redacted), matches, "".join(preview)

    def _value(
        self, value: Any, column: str, row_id: str, seed: int, edit: bool
    ) -> tuple[Any, list[Match], tuple[str, str] | None]:
        """``(new value, matches, (before, after) excerpts around the first match))``;
        *before* shows placeholders where the PII was."""
        if value is None:
            return value, [], None
        if isinstance(value, str):
            text, matches, preview = self.redact(value, seed, replace=edit)
            if not matches:
                return text, matches, None
            # the texts agree up to the first match, so one offset centres both excerpts
            return text, matches, (_excerpt(preview, matches[0].start), _excerpt(text, matches[0].start))
        if isinstance(value, list) and all(
            isinstance(m, dict) and isinstance(m.get("content"), (str, type(None))) for m in value
        ):
            messages, found, first = [], [], None
            for message in value:
                content, matches, shown = self._value(message.get("content"), column, row_id, seed, edit)
                messages.append({**message, "content": content})
                found += matches
                first = first or shown
            return messages, found, first
        raise ValueError(
            f"pii: column '{column}' holds a {type(value).__name__} in row {row_id!r}; pii scans text "
            f"(strings, or chat messages with a 'content' string). List only text columns in pipeline.params.pii.fields"
        )

    def _batch(self, batch: dict[str, list], seed: int) -> dict[str, list]:
        edit = self.config.action == "redact"
        n = len(batch[ROW_ID])
        found: list[list[str]] = [[] for _ in range(n)]
        befores: list[str | None] = [None] * n
        afters: list[str | None] = [None] * n
        for column in self.config.fields:
            out = []
            for i, value in enumerate(batch[column]):
                new, matches, shown = self._value(value, column, batch[ROW_ID][i], seed, edit)
                out.append(new)
                found[i] += [m.entity for m in matches]
                if shown and befores[i] is None:
                    befores[i], afters[i] = shown
            if edit:
                batch[column] = out
        batch[_FOUND] = found
        batch[_BEFORE] = befores
        batch[_AFTER] = afters
        return batch

    def apply(self, data, ctx: StageContext):
        import numpy as np

        require_columns(data, self.config.fields, "pii")
        procs = ctx.num_proc if ctx.num_proc > 1 and len(data) >= 10_000 else None
        from datasets import Features, List, Value

        # typed helper columns: a first batch without PII would otherwise fix them as null
        features = Features(
            {**data.features, _FOUND: List(Value("string")), _BEFORE: Value("string"), _AFTER: Value("string")}
        )
        scanned = data.map(
            self._batch, batched=True, num_proc=procs, fn_kwargs={"seed": ctx.seed}, features=features, desc="pii"
        )
        found = scanned[_FOUND][:]
        counts = {entity: 0 for entity in self.entities}
        rows_with: list[int] = []
        for i, entities in enumerate(found):
            if entities:
                rows_with.append(i)
                for entity in entities:
                    counts[entity] += 1
        for entity, n in counts.items():
            if n:
                ctx.count(f"pii_{entity}", n)
        ctx.metadata["pii_counts"] = counts
        ctx.metadata["rows_with_pii"] = len(rows_with)
        ids = data[ROW_ID][:]
        examples = [(ids[i], scanned[i][_BEFORE], scanned[i][_AFTER]) for i in rows_with[:3]]
        if self.config.action == "drop":
            by_reason: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
            for i in rows_with:
                present = sorted(set(found[i]), key=ENTITIES.index)
                reason_ids, details = by_reason.setdefault(f"pii:{present[0]}", ([], []))
                reason_ids.append(ids[i])
                details.append({"entities": {e: found[i].count(e) for e in present}})
            for reason, (reason_ids, details) in by_reason.items():
                ctx.drop(reason_ids, reason, details)
            for row_id, before, _ in examples:
                ctx.example(row_id, before, "(row dropped)")
            keep = np.ones(len(data), dtype=bool)
            keep[rows_with] = False
            return take_rows(data, np.flatnonzero(keep)) if rows_with else data
        out = scanned.remove_columns([_FOUND, _BEFORE, _AFTER])
        modified = getattr(ctx, "modified", None)  # ledger entries for edits, where the engine has them
        if callable(modified) and rows_with:
            modified([ids[i] for i in rows_with], f"pii redacted ({self.config.strategy})")
        ctx.count("rows_redacted", len(rows_with))
        for row_id, before, after in examples:
            # before: placeholders stand in for the PII, so no raw value reaches the report
            ctx.example(row_id, before, after)
        return out


def _canonical(value: str) -> str:
    return re.sub(r"[\W_]", "", value).casefold()


def _excerpt(text: str, around: int, limit: int = 150) -> str:
    """At most ``limit`` characters of ``text``, starting a little before ``around``."""
    if len(text) <= limit:
        return text
    start = max(0, min(around - limit // 4, len(text) - limit))
    excerpt = text[start : start + limit]
    return ("\u2026" if start else "") + excerpt + ("\u2026" if start + limit < len(text) else "")
