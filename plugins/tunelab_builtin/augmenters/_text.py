"""Text helpers of the rule-based augmenters: the spans noise must not touch (links,
e-mail addresses, words with digits), stop words, and WordNet synonym replacement (used
by ``synonym`` and by ``eda``'s synonym operation).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from typing import Optional

# --- spans that noise must not touch ------------------------------------------------

_PROTECTED = re.compile(
    r"(?:https?://|www\.)\S+"  # links
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail addresses
    r"|\S*\d\S*"  # anything with a digit: order numbers, prices, dates, model names
)


# a run of non-space characters this long is no word (junk, base64, a long link): matching
# _PROTECTED inside it backtracks quadratically (minutes for a 100 kB run), so it is judged whole
_LONG_RUN = 64
_LONG_TOKEN = re.compile(rf"\S{{{_LONG_RUN},}}")
_TOKEN = re.compile(r"\S+")
_PROTECT_WHOLE = re.compile(r"\d|@|https?://|www\.")


def _protected_spans(text: str) -> Iterator[tuple[int, int]]:
    if _LONG_TOKEN.search(text) is None:
        yield from (match.span() for match in _PROTECTED.finditer(text))
        return
    # no match of _PROTECTED spans white space, so token by token finds the same spans
    for token in _TOKEN.finditer(text):
        start, word = token.start(), token.group()
        if len(word) < _LONG_RUN:
            yield from ((start + m.start(), start + m.end()) for m in _PROTECTED.finditer(word))
        elif _PROTECT_WHOLE.search(word):
            yield token.span()


def protected_mask(text: str) -> list[bool]:
    """True for every character inside a link, an e-mail address or a word with a digit
    (a run of 64 or more non-space characters holding any of them is protected whole)."""
    mask = [False] * len(text)
    for start, end in _protected_spans(text):
        mask[start:end] = [True] * (end - start)
    return mask


# --- WordNet synonyms ---------------------------------------------------------------

#: frequent function words: replacing them changes grammar, not wording
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    also get got hi hello hey please thanks thank yes ok okay one two still even way well much many""".split()
)

POS_NAMES = ("noun", "verb", "adj", "adv")

# a word standing alone: not part of a contraction (don't), a hyphenated or a numbered token
_WORD = re.compile(r"(?<![\w'’-])[A-Za-z]+(?![\w'’-])")


def match_case(original: str, replacement: str) -> str:
    """``replacement`` written with the capitalisation of ``original``."""
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def replace_synonyms(text: str, count: int, rng: random.Random, synonyms: Callable[[str], list[str]]) -> str:
    """Replace up to ``count`` words of ``text`` that have synonyms, chosen at random;
    spacing, punctuation, links and numbered words stay as they are."""
    mask = protected_mask(text)
    slots = []
    for match in _WORD.finditer(text):
        word = match.group().lower()
        if len(word) < 3 or word in STOP_WORDS or mask[match.start()]:
            continue
        options = synonyms(word)
        if options:
            slots.append((match.start(), match.end(), options))
    rng.shuffle(slots)
    for start, end, options in sorted(slots[:count], reverse=True):
        text = text[:start] + match_case(text[start:end], rng.choice(options)) + text[end:]
    return text


class SynonymSource:
    """Synonym lookup restricted to some parts of speech; WordNet located at construction
    (cheap: a few file checks) and read on first use."""

    def __init__(self, wordnet_dir: Optional[str], pos: list[str], max_senses: int, param: str):
        from tunelab_builtin._lib.wordnet import locate

        self.location = locate(wordnet_dir, param)
        self.pos = tuple(pos)
        self.max_senses = max_senses

    def __call__(self, word: str) -> list[str]:
        from tunelab_builtin._lib.wordnet import open_wordnet

        return open_wordnet(self.location).synonyms(word, self.pos, self.max_senses)
