"""The cleaner ``quality_filter``: heuristic quality rules (Gopher/C4-style).

It drops rows with a ledger reason that names the rule (``quality:max_digit_ratio``) and
a detail saying which column failed, the measured value and the limit.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tunelab.api import ROW_ID, Cleaner, StageContext
from tunelab_builtin._lib.rows import take_rows
from tunelab_builtin.cleaners._columns import CHANGED, columns_as_lists, procs, record_changes, text_fields

_VERDICT = "__tunelab_verdict"


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]
_BULLETS = ("-", "*", "•", "●", "◦", "▪", "‣", "∙", "·", "–")
_ELLIPSES = ("...", "…")
_TERMINAL_PUNCTUATION = (".", "!", "?", '"', "'", "”", "’", "…")
# "#" that is not a number sign ("order #4521" is fine; "#sale #deal" and "### heading" are not)
_HASH_SYMBOL = re.compile(r"#(?!\d)")
_LOREM = re.compile(r"lorem ipsum", re.IGNORECASE)


def top_ngram_fraction(words: list[str], n: int, total_chars: int) -> float:
    """Share of the characters taken by the most frequent n-gram, counting every
    occurrence; 0 when no n-gram occurs twice (Gopher's top n-gram rule, made safe for
    short texts, where every n-gram is "the most frequent")."""
    counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not counts or total_chars == 0:
        return 0.0
    gram, count = counts.most_common(1)[0]
    return count * sum(map(len, gram)) / total_chars if count > 1 else 0.0


def duplicate_ngram_fraction(words: list[str], n: int, total_chars: int) -> float:
    """Share of the characters inside n-grams that already occurred earlier in the text."""
    if len(words) < n or total_chars == 0:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    covered = [False] * len(words)
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        if gram in seen:
            covered[i : i + n] = [True] * n
        else:
            seen.add(gram)
    return sum(len(w) for w, hit in zip(words, covered) if hit) / total_chars


@dataclass
class QualityFilterConfig:
    #: text columns to check; empty = every canonical text column present (prompt, completion, text, chosen, rejected)
    fields: list[str] = field(default_factory=list)
    #: a None or blank value in a checked column: drop (reason quality:missing), keep (not checked) or error
    on_missing: str = "drop"
    #: fewest characters a text may have; catches "???", "test", "ok thx" (0 = rule off, as for every rule below)
    min_chars: int = 8
    #: most characters a text may have
    max_chars: int = 50_000
    #: fewest tokens: whitespace-separated words, or tokenizer tokens when `tokenizer` is set
    min_tokens: int = 2
    #: most tokens
    max_tokens: int = 10_000
    #: local tokenizer directory or model id already in the Hugging Face cache, to count tokens
    #: instead of words ("" = whitespace words); never downloaded
    tokenizer: str = ""
    #: the ratio and word rules below judge only texts with at least this many words: one
    #: number or "#" in a three-word question says nothing about its quality
    ratio_min_words: int = 5
    #: most "#" (except before a digit) and ellipses per word (Gopher: 0.1)
    max_symbol_word_ratio: float = 0.1
    #: largest share of characters that are digits
    max_digit_ratio: float = 0.3
    #: smallest share of words with a letter in them (Gopher: 0.8; lower here because support
    #: messages carry order numbers, prices and phone numbers)
    min_alpha_word_fraction: float = 0.5
    #: shortest mean word length, in characters (Gopher: 3)
    min_mean_word_length: float = 2.5
    #: longest mean word length, in characters (Gopher: 10)
    max_mean_word_length: float = 12.0
    #: fewest distinct stop words (from stop_words) a text must contain (Gopher: 2; off by
    #: default because short questions such as "refund status?" have none)
    min_stop_words: int = 0
    #: the stop words counted by min_stop_words (Gopher's list)
    stop_words: list[str] = field(default_factory=lambda: list(GOPHER_STOP_WORDS))
    #: the line rules below judge only texts with at least this many non-empty lines
    line_rules_min_lines: int = 3
    #: largest share of lines starting with a bullet (Gopher: 0.9)
    max_bullet_line_fraction: float = 0.9
    #: largest share of lines ending with an ellipsis (Gopher: 0.3)
    max_ellipsis_line_fraction: float = 0.3
    #: largest share of lines that repeat an earlier line (Gopher: 0.3)
    max_duplicate_line_fraction: float = 0.3
    #: the repetition rules below judge only texts with at least this many words (Gopher's
    #: documents have 50 or more; in a two-sentence answer one repeated name is most of the text)
    repetition_min_words: int = 50
    #: for n = 2, 3, 4: largest share of characters in the most frequent repeated n-gram (Gopher); [] = off
    max_top_ngram_fraction: list[float] = field(default_factory=lambda: [0.20, 0.18, 0.16])
    #: for n = 5 ... 10: largest share of characters in n-grams seen earlier in the text (Gopher); [] = off
    max_duplicate_ngram_fraction: list[float] = field(default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10])
    #: C4 line rules: off; filter (remove lines without terminal punctuation, with fewer than
    #: c4_min_words_per_line words, or mentioning javascript; a text left empty drops the row);
    #: or drop (drop the row when any line fails)
    c4_lines: str = "off"
    #: fewest words a line needs under the C4 line rules
    c4_min_words_per_line: int = 3
    #: drop texts containing "lorem ipsum" (C4)
    c4_no_lorem_ipsum: bool = False
    #: drop texts containing "{", a sign of code (C4)
    c4_no_curly_braces: bool = False


class QualityFilter(Cleaner):
    """Heuristic quality rules (length, symbol/digit ratios, repetition, Gopher, C4); each rule is its own drop reason."""  # noqa: E501 (the first line is the `tunelab plugins` description)

    def __init__(self, config: QualityFilterConfig):
        super().__init__(config)
        c = config
        if c.on_missing not in ("drop", "keep", "error"):
            raise ValueError(f"quality_filter.on_missing must be drop, keep or error, got {c.on_missing!r}")
        if c.c4_lines not in ("off", "filter", "drop"):
            raise ValueError(f"quality_filter.c4_lines must be off, filter or drop, got {c.c4_lines!r}")
        for name in (
            "min_chars",
            "max_chars",
            "min_tokens",
            "max_tokens",
            "ratio_min_words",
            "min_stop_words",
            "line_rules_min_lines",
            "repetition_min_words",
            "c4_min_words_per_line",
        ):
            if getattr(c, name) < 0:
                raise ValueError(f"quality_filter.{name} must be 0 (off) or a positive count, got {getattr(c, name)}")
        fractions = [
            "max_digit_ratio",
            "min_alpha_word_fraction",
            "max_bullet_line_fraction",
            "max_ellipsis_line_fraction",
            "max_duplicate_line_fraction",
        ]
        for name in fractions:
            if not 0.0 <= getattr(c, name) <= 1.0:
                raise ValueError(f"quality_filter.{name} must be between 0 (off) and 1, got {getattr(c, name)}")
        for name in ("max_symbol_word_ratio", "min_mean_word_length", "max_mean_word_length"):
            if getattr(c, name) < 0:
                raise ValueError(f"quality_filter.{name} must be 0 (off) or positive, got {getattr(c, name)}")
        for name, low, high in (
            ("chars", c.min_chars, c.max_chars),
            ("tokens", c.min_tokens, c.max_tokens),
            ("mean_word_length", c.min_mean_word_length, c.max_mean_word_length),
        ):
            if low and high and low > high:
                raise ValueError(f"quality_filter.min_{name} ({low}) is above quality_filter.max_{name} ({high})")
        if len(c.max_top_ngram_fraction) > 3:
            raise ValueError("quality_filter.max_top_ngram_fraction takes at most 3 values (for n = 2, 3, 4)")
        if len(c.max_duplicate_ngram_fraction) > 6:
            raise ValueError("quality_filter.max_duplicate_ngram_fraction takes at most 6 values (for n = 5 ... 10)")
        if any(not 0.0 <= v <= 1.0 for v in [*c.max_top_ngram_fraction, *c.max_duplicate_ngram_fraction]):
            raise ValueError("quality_filter n-gram fractions must be between 0 (off) and 1")
        self._stop_words = {w.lower() for w in c.stop_words}

    # -- the rules ----------------------------------------------------------------

    def limits(self) -> dict[str, Any]:
        """The rules that are on, with their limits (for the report)."""
        c = self.config
        on = {
            name: getattr(c, name)
            for name in (
                "min_chars",
                "max_chars",
                "min_tokens",
                "max_tokens",
                "max_symbol_word_ratio",
                "max_digit_ratio",
                "min_alpha_word_fraction",
                "min_mean_word_length",
                "max_mean_word_length",
                "min_stop_words",
                "max_bullet_line_fraction",
                "max_ellipsis_line_fraction",
                "max_duplicate_line_fraction",
            )
            if getattr(c, name)
        }
        on.update({f"max_top_{n}gram_fraction": v for n, v in enumerate(c.max_top_ngram_fraction, 2) if v})
        on.update({f"max_duplicate_{n}gram_fraction": v for n, v in enumerate(c.max_duplicate_ngram_fraction, 5) if v})
        if c.c4_lines != "off":
            on["c4_lines"] = c.c4_lines
        on.update({name: True for name in ("c4_no_lorem_ipsum", "c4_no_curly_braces") if getattr(c, name)})
        return on

    def c4_line_failure(self, line: str) -> str | None:
        """Why a line fails the C4 line rules (None when it passes)."""
        if "javascript" in line.lower():
            return "c4_javascript"
        if not line.rstrip().endswith(_TERMINAL_PUNCTUATION):
            return "c4_terminal_punctuation"
        if len(line.split()) < self.config.c4_min_words_per_line:
            return "c4_min_words_per_line"
        return None

    def judge(self, text: str, n_tokens: int | None = None) -> tuple[str, float, Any] | None:
        """The first rule ``text`` fails, as (rule, measured value, limit); None if it passes."""
        c = self.config
        n_chars = len(text)
        if c.min_chars and n_chars < c.min_chars:
            return "min_chars", n_chars, c.min_chars
        if c.max_chars and n_chars > c.max_chars:
            return "max_chars", n_chars, c.max_chars
        words = text.split()
        tokens = len(words) if n_tokens is None else n_tokens
        if c.min_tokens and tokens < c.min_tokens:
            return "min_tokens", tokens, c.min_tokens
        if c.max_tokens and tokens > c.max_tokens:
            return "max_tokens", tokens, c.max_tokens

        if c.c4_no_lorem_ipsum and _LOREM.search(text):
            return "c4_lorem_ipsum", 1, 0
        if c.c4_no_curly_braces and "{" in text:
            return "c4_curly_brace", text.count("{"), 0
        if c.c4_lines == "drop":
            for line in filter(str.strip, text.split("\n")):
                failed = self.c4_line_failure(line)
                if failed:
                    return failed, 1, 0

        if words and len(words) >= c.ratio_min_words:
            symbols = len(_HASH_SYMBOL.findall(text)) + sum(text.count(e) for e in _ELLIPSES)
            lengths = [len(w) for w in words]
            mean_length = sum(lengths) / len(words)
            checks = (
                ("max_symbol_word_ratio", symbols / len(words), c.max_symbol_word_ratio, max),
                ("max_digit_ratio", sum(ch.isdigit() for ch in text) / n_chars, c.max_digit_ratio, max),
                (
                    "min_alpha_word_fraction",
                    sum(any(ch.isalpha() for ch in w) for w in words) / len(words),
                    c.min_alpha_word_fraction,
                    min,
                ),
                ("min_mean_word_length", mean_length, c.min_mean_word_length, min),
                ("max_mean_word_length", mean_length, c.max_mean_word_length, max),
            )
            for rule, value, limit, kind in checks:
                if limit and (value > limit if kind is max else value < limit):
                    return rule, round(value, 3), limit
            if c.min_stop_words:
                found = len({w.strip(".,!?;:\"'()").lower() for w in words} & self._stop_words)
                if found < c.min_stop_words:
                    return "min_stop_words", found, c.min_stop_words

        lines = [line.strip() for line in text.split("\n") if line.strip()]
        if c.line_rules_min_lines and len(lines) >= c.line_rules_min_lines:
            checks_lines = (
                (
                    "max_bullet_line_fraction",
                    sum(line.startswith(_BULLETS) for line in lines),
                    c.max_bullet_line_fraction,
                ),
                (
                    "max_ellipsis_line_fraction",
                    sum(line.endswith(_ELLIPSES) for line in lines),
                    c.max_ellipsis_line_fraction,
                ),
                ("max_duplicate_line_fraction", len(lines) - len(set(lines)), c.max_duplicate_line_fraction),
            )
            for rule, count, limit in checks_lines:
                if limit and count / len(lines) > limit:
                    return rule, round(count / len(lines), 3), limit

        if len(words) < c.repetition_min_words:
            return None
        folded = [w.lower() for w in words]
        total = sum(len(w) for w in folded)
        for n, limit in enumerate(c.max_top_ngram_fraction, 2):
            if limit and len(folded) >= n:
                value = top_ngram_fraction(folded, n, total)
                if value > limit:
                    return f"max_top_{n}gram_fraction", round(value, 3), limit
        for n, limit in enumerate(c.max_duplicate_ngram_fraction, 5):
            if limit and len(folded) >= n:
                value = duplicate_ngram_fraction(folded, n, total)
                if value > limit:
                    return f"max_duplicate_{n}gram_fraction", round(value, 3), limit
        return None

    def filter_c4_lines(self, text: str) -> tuple[str, int]:
        """``text`` without the lines failing the C4 line rules, and how many were removed."""
        kept, removed = [], 0
        for line in text.split("\n"):
            if line.strip() and self.c4_line_failure(line):
                removed += 1
            else:
                kept.append(line)
        return ("\n".join(kept).strip() if removed else text), removed

    # -- the step -----------------------------------------------------------------

    def _token_counter(self):
        """A function texts -> token counts, or None for whitespace words."""
        if not self.config.tokenizer:
            return None
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.config.tokenizer, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"quality_filter.tokenizer: cannot load '{self.config.tokenizer}' without a download ({exc}); "
                "give a local tokenizer directory or a model that is already in the Hugging Face cache, or '' for words"
            ) from None

        def count(texts: list[str]) -> list[int]:
            if not texts:
                return []
            ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
            return [len(i) for i in ids]

        return count

    def apply(self, data, ctx: StageContext):
        c = self.config
        fields = text_fields(data, c.fields, "quality_filter")
        count_tokens = self._token_counter()

        def judge_batch(batch: dict[str, list]) -> dict[str, list]:
            n = len(batch[ROW_ID])
            verdicts: list[str] = [""] * n
            changed = [0] * n
            for column in fields:
                values = list(batch[column])
                emptied: set[int] = set()  # rows whose every line the C4 filter removed
                if c.c4_lines == "filter":
                    for i, value in enumerate(values):
                        if isinstance(value, str):
                            values[i], removed = self.filter_c4_lines(value)
                            changed[i] += removed
                            if removed and not values[i] and value.strip():
                                emptied.add(i)
                    batch[column] = values
                present = [i for i, v in enumerate(values) if not _blank(v)]
                tokens = dict(zip(present, count_tokens([values[i] for i in present]))) if count_tokens else {}
                for i, value in enumerate(values):
                    if verdicts[i]:
                        continue
                    if i in emptied:
                        verdicts[i] = json.dumps({"rule": "c4_no_lines_left", "field": column, "value": 0, "limit": 1})
                        continue
                    if _blank(value):
                        if c.on_missing == "error":
                            raise ValueError(
                                f"quality_filter: column '{column}' is empty in row {batch[ROW_ID][i]!r}; "
                                "run drop_missing or missing_values first, "
                                "or set quality_filter.on_missing to drop or keep"
                            )
                        if c.on_missing == "drop":
                            verdicts[i] = json.dumps({"rule": "missing", "field": column, "value": None, "limit": None})
                        continue
                    failure = self.judge(value, tokens.get(i))
                    if failure:
                        rule, measured, limit = failure
                        verdicts[i] = json.dumps({"rule": rule, "field": column, "value": measured, "limit": limit})
            batch[_VERDICT] = verdicts
            batch[CHANGED] = changed
            return batch

        judged = data.map(judge_batch, batched=True, num_proc=procs(ctx, data), desc="quality_filter")
        ids, verdicts, removed = columns_as_lists(judged, ROW_ID, _VERDICT, CHANGED)
        keep = [i for i, v in enumerate(verdicts) if not v]
        by_rule: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
        for i, verdict in enumerate(verdicts):
            if verdict:
                detail = json.loads(verdict)
                row_ids, details = by_rule.setdefault(detail["rule"], ([], []))
                row_ids.append(ids[i])
                details.append(detail)
        for rule, (row_ids, details) in sorted(by_rule.items()):
            ctx.drop(row_ids, f"quality:{rule}", details)
        if c.c4_lines == "filter":
            edited = [i for i in keep if removed[i]]
            record_changes(ctx, data, judged, ids, edited, "c4 lines removed", fields)
            ctx.count("c4_lines_removed", sum(removed[i] for i in keep))
        ctx.metadata.update(
            {
                "fields": fields,
                "rules_on": self.limits(),
                "dropped_by_rule": {rule: len(v[0]) for rule, v in sorted(by_rule.items())},
            }
        )
        out = judged.remove_columns([_VERDICT, CHANGED])
        return take_rows(out, keep) if len(keep) != len(out) else out
