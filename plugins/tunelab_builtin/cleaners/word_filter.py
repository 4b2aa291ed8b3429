"""The cleaner ``word_filter``: whole-word, case-insensitive matching against word lists
(built-in profanity/toxicity lists, or your own files); drops the rows (the reason names
the list and term, ``word list profanity_en: damn``) or masks the matches."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.api import ROW_ID, Cleaner, StageContext
from tunelab_builtin._lib.rows import take_rows
from tunelab_builtin.cleaners._columns import CHANGED, columns_as_lists, procs, record_changes, text_fields

_LISTS = "__tunelab_lists"
WORDLIST_DIR = Path(__file__).resolve().parent.parent / "data" / "wordlists"


# leetspeak characters and the letter they stand for; only folded inside tokens that
# have a letter, so "$5", "2024" and "100%" are never read as words
_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "8": "b",
        "@": "a",
        "$": "s",
        "!": "i",
        "|": "l",
        "+": "t",
    }
)
# a token with at least one leetspeak character in it (plain words need no folding)
_LEET_TOKEN = re.compile(r"[\w@$!|+]*[0-9@$!|+][\w@$!|+]*")
_WORD = re.compile(r"\w+")


def fold_leetspeak(text: str) -> str:
    """``text`` with leetspeak spelled out ("sh1t" -> "shit", "$cum" -> "scum"), same length,
    so match positions carry over to the original. A trailing "!" stays punctuation."""

    def fold(match: re.Match) -> str:
        token = match.group(0)
        if not any(ch.isalpha() for ch in token):
            return token
        body = token.rstrip("!")
        return body.translate(_LEET) + token[len(body) :]

    return _LEET_TOKEN.sub(fold, text)


def terms_pattern(terms: list[str]) -> re.Pattern:
    """One case-insensitive regex matching any of ``terms`` as whole words (a space in a
    term matches any run of whitespace). Built as a trie, so at each position the regex
    follows one branch instead of trying every term in turn."""
    trie: dict[str, dict] = {}
    for term in terms:
        node = trie
        for char in term:
            node = node.setdefault(char, {})
        node[""] = {}  # a term ends here

    def branch(node: dict[str, dict]) -> str:
        alternatives = [
            (r"\s+" if ch == " " else re.escape(ch)) + branch(child) for ch, child in sorted(node.items()) if ch
        ]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
        return f"(?:{body})?" if "" in node else body

    # "\b" lets the regex engine skip to word starts quickly; it only means "not after a
    # word character" when every term starts with one
    start = r"\b" if all(_WORD.match(term) for term in terms) else r"(?<!\w)"
    return re.compile(rf"{start}{branch(trie)}(?!\w)", re.IGNORECASE)


def read_word_list(path: Path) -> list[str]:
    """Terms of a word-list file: one per line, lower-cased, '#' comments and blanks skipped."""
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"word_filter: word list {path} is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise ValueError(f"word_filter: cannot read word list {path}: {exc.strerror}") from None
    terms = [
        " ".join(line.split()).lower()
        for line in raw.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not terms:
        raise ValueError(f"word_filter: word list {path} has no terms (one term per line; '#' starts a comment)")
    return terms


def builtin_word_lists() -> list[str]:
    return sorted(p.stem for p in WORDLIST_DIR.glob("*.txt"))


@dataclass
class WordFilterConfig:
    #: text columns to search; empty = every canonical text column present
    fields: list[str] = field(default_factory=list)
    #: built-in word lists to use (profanity_en, toxicity_en)
    lists: list[str] = field(default_factory=lambda: ["profanity_en", "toxicity_en"])
    #: your own word-list files: UTF-8, one word or phrase per line, '#' starts a comment
    word_lists: list[str] = field(default_factory=list)
    #: drop (remove rows with more than max_hits matches; reason names the list and term) or
    #: mask (replace every match with `mask`, keep the row)
    action: str = "drop"
    #: matches a row may have and still be kept (action drop only)
    max_hits: int = 0
    #: also match leetspeak spellings ("sh1t", "@ss", "$cum")
    leetspeak: bool = False
    #: what a match is replaced with when action is mask
    mask: str = "***"


class WordFilter(Cleaner):
    """Whole-word, case-insensitive matching against profanity/toxicity word lists; drops or masks."""

    def __init__(self, config: WordFilterConfig):
        super().__init__(config)
        if config.action not in ("drop", "mask"):
            raise ValueError(f"word_filter.action must be drop or mask, got {config.action!r}")
        if config.max_hits < 0:
            raise ValueError(f"word_filter.max_hits must be 0 or more, got {config.max_hits}")
        known = builtin_word_lists()
        unknown = [name for name in config.lists if name not in known]
        if unknown:
            raise ValueError(f"word_filter.lists: no built-in word list {unknown}; built-in lists: {known}")
        missing = [p for p in config.word_lists if not Path(p).expanduser().is_file()]
        if missing:
            raise ValueError(f"word_filter.word_lists: file(s) not found: {missing} (give paths to UTF-8 text files)")
        if not config.lists and not config.word_lists:
            raise ValueError("word_filter: no word lists; set word_filter.lists and/or word_filter.word_lists")

    def _terms(self) -> dict[str, str]:
        """Every term -> the first list that has it."""
        sources = [(name, WORDLIST_DIR / f"{name}.txt") for name in self.config.lists]
        sources += [(Path(p).stem, Path(p).expanduser()) for p in self.config.word_lists]
        terms: dict[str, str] = {}
        for name, path in sources:
            for term in read_word_list(path):
                terms.setdefault(term, name)
        return terms

    def apply(self, data, ctx: StageContext):
        c = self.config
        fields = text_fields(data, c.fields, "word_filter")
        terms = self._terms()
        pattern = terms_pattern(list(terms))

        def matches(text: str) -> list[tuple[int, int, str, str]]:
            """(start, end, list, term) of every match, in text order."""
            searched = fold_leetspeak(text) if c.leetspeak else text
            found = []
            for m in pattern.finditer(searched):
                term = " ".join(m.group(0).lower().split())
                if term not in terms:  # a case-insensitive match that lower() spells differently
                    term = next(
                        t for t in terms if re.fullmatch(r"\s+".join(map(re.escape, t.split())), m.group(0), re.I)
                    )
                found.append((m.start(), m.end(), terms[term], term))
            return found

        ids, *columns = columns_as_lists(data, ROW_ID, *fields)
        hits_per_list: Counter[str] = Counter()
        if c.action == "drop":
            keep: list[int] = []
            dropped: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
            for i, row_id in enumerate(ids):
                found = [(f, m) for f, col in zip(fields, columns) if isinstance(col[i], str) for m in matches(col[i])]
                hits_per_list.update(m[2] for _, m in found)
                if len(found) <= c.max_hits:
                    keep.append(i)
                    continue
                first_field, (_, _, name, term) = found[0]
                row_ids, details = dropped.setdefault(f"word list {name}: {term}", ([], []))
                row_ids.append(row_id)
                details.append(
                    {
                        "list": name,
                        "term": term,
                        "field": first_field,
                        "hits": len(found),
                        "terms": sorted({m[3] for _, m in found}),
                    }
                )
            for reason, (row_ids, details) in sorted(dropped.items()):
                ctx.drop(row_ids, reason, details)
            ctx.metadata.update({"hits_per_list": dict(hits_per_list), "rows_dropped": len(ids) - len(keep)})
            return take_rows(data, keep) if len(keep) != len(data) else data

        def mask_batch(batch: dict[str, list]) -> dict[str, list]:
            n = len(batch[ROW_ID])
            masked = [0] * n
            lists: list[list[str]] = [[] for _ in range(n)]  # names of the lists that matched
            for column in fields:
                out = []
                for i, value in enumerate(batch[column]):
                    if isinstance(value, str):
                        pieces, last = [], 0
                        for start, end, name, _ in matches(value):
                            if start < last:
                                continue  # overlaps a match from another list
                            pieces += [value[last:start], c.mask]
                            last = end
                            masked[i] += 1
                            lists[i].append(name)
                        value = "".join(pieces) + value[last:] if pieces else value
                    out.append(value)
                batch[column] = out
            batch[CHANGED] = masked
            # one string per row: a list column could change type between batches (empty lists)
            batch[_LISTS] = ["\n".join(names) for names in lists]
            return batch

        out = data.map(mask_batch, batched=True, num_proc=procs(ctx, data), desc="word_filter")
        masked, list_names = columns_as_lists(out, CHANGED, _LISTS)
        edited = [i for i, k in enumerate(masked) if k]
        for names in list_names:
            hits_per_list.update(filter(None, names.split("\n")))
        record_changes(ctx, data, out, ids, edited, "words masked", fields)
        ctx.count("words_masked", sum(masked))
        ctx.metadata.update({"hits_per_list": dict(hits_per_list), "rows_masked": len(edited)})
        return out.remove_columns([CHANGED, _LISTS])
