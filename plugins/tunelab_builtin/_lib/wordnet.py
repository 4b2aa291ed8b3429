"""A reader for the Princeton WordNet 3.0 database files, without nltk.

WordNet ships as plain-text files per part of speech: ``index.<pos>`` maps a lemma to
the byte offsets of its synsets (most frequent sense first) and ``data.<pos>`` holds
one synset per line at that byte offset, listing its lemmas. That is all synonym
lookup needs: lemma -> synsets -> lemmas.

The files are found in a directory given by the user, in Debian's ``wordnet-base``
package (/usr/share/wordnet), or in an NLTK data directory (``corpora/wordnet`` or
``corpora/wordnet.zip``).
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Optional

#: part-of-speech names accepted in configs -> the suffix of the WordNet file
POS_FILES = {"noun": "noun", "verb": "verb", "adj": "adj", "adv": "adv"}

DEBIAN_DIR = Path("/usr/share/wordnet")

# Adjective lemmas in data.adj may carry a syntactic marker: "galore(ip)", "elect(p)".
_ADJ_MARKER = re.compile(r"\([a-z]+\)$")
# The license text at the top of every file is indented by two spaces.
_HEADER_PREFIX = "  "

# WordNet's regular inflection rules (suffix -> base ending) per part of speech; the
# irregular forms are listed in <pos>.exc.
_SUFFIX_RULES = {
    "noun": [
        ("s", ""),
        ("ses", "s"),
        ("xes", "x"),
        ("zes", "z"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("men", "man"),
        ("ies", "y"),
    ],
    "verb": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")],
    "adj": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    "adv": [],
}


def install_hint(param: str) -> str:
    return (
        "Install it with `apt-get install wordnet-base` (Debian/Ubuntu), or download the NLTK wordnet "
        f"corpus (`python -m nltk.downloader wordnet`) and set {param}=<directory holding index.noun and "
        "data.noun, or the wordnet.zip file>"
    )


def _holds_wordnet(path: Path) -> bool:
    if path.is_file() and path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                return any(name.endswith("index.noun") for name in archive.namelist())
        except (OSError, zipfile.BadZipFile):
            return False
    return (path / "index.noun").is_file() and (path / "data.noun").is_file()


def candidate_dirs() -> list[Path]:
    """Where WordNet is looked for when no directory is given, in order."""
    candidates = [DEBIAN_DIR]
    nltk_roots = [Path(p) for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    nltk_roots.append(Path.home() / "nltk_data")
    for root in nltk_roots:
        candidates += [root / "corpora" / "wordnet", root / "corpora" / "wordnet.zip"]
    return candidates


def locate(explicit: Optional[str], param: str) -> Path:
    """The WordNet directory (or NLTK zip) to read; ``explicit`` wins when given.

    Raises ValueError naming ``param`` and how to install WordNet when none is found.
    """
    if explicit:
        path = Path(explicit).expanduser()
        if _holds_wordnet(path):
            return path
        raise ValueError(
            f"{param}={explicit!r} holds no WordNet database (expected index.noun and data.noun there). "
            + install_hint(param)
        )
    for path in candidate_dirs():
        if _holds_wordnet(path):
            return path
    looked = ", ".join(str(p) for p in candidate_dirs())
    raise ValueError(f"no WordNet database found (looked in {looked}). " + install_hint(param))


class WordNet:
    """Synonym lookup over one WordNet database. Files are read on first use of a part
    of speech and kept in memory (about 60 MB for all four)."""

    def __init__(self, location: Path):
        self.location = location
        self._index: dict[str, dict[str, list[int]]] = {}
        self._data: dict[str, bytes] = {}
        self._synonyms: dict[tuple[str, tuple[str, ...], int], list[str]] = {}
        self._exceptions: dict[str, dict[str, list[str]]] = {}

    def _read(self, name: str) -> bytes:
        if self.location.suffix == ".zip":
            with zipfile.ZipFile(self.location) as archive:
                member = next((m for m in archive.namelist() if m.rsplit("/", 1)[-1] == name), None)
                if member is None:
                    raise ValueError(f"WordNet archive {self.location} has no {name}")
                return archive.read(member)
        path = self.location / name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read WordNet file {path}: {exc}") from None

    def _index_of(self, pos: str) -> dict[str, list[int]]:
        if pos not in self._index:
            index: dict[str, list[int]] = {}
            for line in self._read(f"index.{POS_FILES[pos]}").decode("utf-8", "replace").splitlines():
                if not line or line.startswith(_HEADER_PREFIX):
                    continue
                # lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt offset...
                parts = line.split()
                synset_count = int(parts[2])
                index[parts[0]] = [int(offset) for offset in parts[-synset_count:]]
            self._index[pos] = index
        return self._index[pos]

    def _exceptions_of(self, pos: str) -> dict[str, list[str]]:
        """Irregular inflections (``bought`` -> ``buy``); an absent .exc file means none."""
        if pos not in self._exceptions:
            exceptions: dict[str, list[str]] = {}
            try:
                text = self._read(f"{POS_FILES[pos]}.exc").decode("utf-8", "replace")
            except ValueError:
                text = ""
            for line in text.splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    exceptions[parts[0]] = parts[1:]
            self._exceptions[pos] = exceptions
        return self._exceptions[pos]

    def base_forms(self, word: str, pos: str) -> set[str]:
        """Lemmas of ``pos`` that ``word`` is an inflection of (``paid`` -> {pay}), not
        counting the word itself."""
        index = self._index_of(pos)
        found = {base for base in self._exceptions_of(pos).get(word, []) if base in index}
        for suffix, ending in _SUFFIX_RULES[pos]:
            if word.endswith(suffix) and len(word) > len(suffix):
                base = word[: -len(suffix)] + ending
                if base in index:
                    found.add(base)
        found.discard(word)
        return found

    def is_inflected(self, word: str, pos: Iterable[str] = tuple(POS_FILES)) -> bool:
        """Whether ``word`` can be an inflected form (days, paid, shipping): its synonyms
        would be base forms that do not fit its place in the sentence."""
        return any(self.base_forms(word.lower(), p) for p in pos)

    def _synset_lemmas(self, pos: str, offset: int) -> list[str]:
        if pos not in self._data:
            self._data[pos] = self._read(f"data.{POS_FILES[pos]}")
        data = self._data[pos]
        end = data.find(b"\n", offset)
        # offset lex_filenum ss_type w_cnt(hex) word lex_id [word lex_id...] p_cnt ...
        parts = data[offset : end if end >= 0 else None].decode("utf-8", "replace").split()
        word_count = int(parts[3], 16)
        return [_ADJ_MARKER.sub("", word) for word in parts[4 : 4 + 2 * word_count : 2]]

    def lemmas(self, pos: str) -> Iterable[str]:
        """Every lemma of a part of speech (as written in the index: lower case,
        underscores for spaces)."""
        return self._index_of(pos).keys()

    def synonyms(self, word: str, pos: Iterable[str] = tuple(POS_FILES), max_senses: int = 0) -> list[str]:
        """Single-word synonyms of ``word`` (lower case), from its first ``max_senses``
        senses per part of speech (0: all senses), most frequent sense first. None for a
        word that can be an inflected form: "paid" is also an adjective ("paid
        holidays"), but in most sentences it is the past of "pay"."""
        key = (word.lower(), tuple(pos), max_senses)
        if key not in self._synonyms:
            found: list[str] = []
            for p in () if self.is_inflected(key[0]) else key[1]:
                offsets = self._index_of(p).get(key[0], [])
                for offset in offsets[:max_senses] if max_senses else offsets:
                    for lemma in self._synset_lemmas(p, offset):
                        # proper nouns (Monday) and multi-word or hyphenated lemmas do not
                        # fit in place of a single lower-case word
                        if lemma.isalpha() and lemma.islower() and lemma != key[0] and lemma not in found:
                            found.append(lemma)
            self._synonyms[key] = found
        return list(self._synonyms[key])


@lru_cache(maxsize=4)
def open_wordnet(location: Path) -> WordNet:
    """One shared reader per location, so steps and runs in a process read the files once."""
    return WordNet(location)
