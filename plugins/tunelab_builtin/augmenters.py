"""Augmenters: derived rows that keep ``parent_id``.

Every augmenter except ``template`` shares one skeleton, :class:`RowAugmenter`: it
picks rows (``fraction``, or ``class_fractions`` per label, decided per row from the
seed and the row id so the choice does not depend on row order), asks the subclass
for ``per_row`` rewritten copies of the ``fields`` in one bulk call, keeps the copies
that differ from their parent and from their siblings, and appends them with the id
``<parent>~<op><k>`` and ``parent_id`` = the parent.

Rule-based augmenters (``eda``, ``synonym``, ``char_noise``) rewrite one text at a time
with a generator seeded by (seed, parent id, copy, column). Model-based ones
(``back_translation``, ``paraphrase``) generate in batches.
"""

from __future__ import annotations

import logging
import os
import random
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from tunelab.api import (
    CANONICAL_TEXT_COLUMNS,
    PARENT_ID,
    PROMPT,
    ROW_ID,
    Augmenter,
    Component,
    StageContext,
)

from tunelab_builtin._lib.rows import append_rows, row_rng, take_rows

log = logging.getLogger(__name__)

# --- shared skeleton ---------------------------------------------------------------


@dataclass
class AugmentConfig:
    #: text columns to rewrite; every other column is copied from the parent row
    fields: list[str] = field(default_factory=lambda: [PROMPT])
    #: fraction of the eligible rows that get augmented copies (chosen per row from the seed and the row id)
    fraction: float = 0.2
    #: per-label fractions that override ``fraction`` for those labels (labels from pipeline.label_column), e.g. {billing: 1.0}
    class_fractions: dict[str, float] = field(default_factory=dict)
    #: augmented copies made per selected row
    per_row: int = 1
    #: augment original rows only (parent_id empty), never rows an earlier step derived
    only_originals: bool = True


@dataclass
class Rewrite:
    """One text to rewrite: column ``column`` of row ``parent``, for copy ``copy``."""

    parent: str
    #: the number in the new row's id ``<parent>~<op><copy>``
    copy: int
    column: str
    text: str


def _check_fraction(value: Any, param: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{param} must be a number between 0 and 1, got {value!r}")


def _check_choices(values: list[str], allowed: tuple[str, ...], param: str) -> None:
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise ValueError(f"{param} must be a non-empty subset of [{', '.join(allowed)}], got {list(values)}")


def _with_lineage(data: Any, op: str) -> Any:
    """``data`` with its id columns checked, and ``parent_id`` typed as text even when
    every value is None (so derived rows can be appended)."""
    missing = [c for c in (ROW_ID, PARENT_ID) if c not in data.column_names]
    if missing:
        raise ValueError(f"{op}: the data lacks the column(s) {missing}; augmenters need row ids and parent ids")
    if getattr(data.features[PARENT_ID], "dtype", None) == "null":
        from datasets import Value

        data = data.cast_column(PARENT_ID, Value("string"))
    return data


class RowAugmenter(Augmenter):
    """Base of the augmenters that derive copies of existing rows (not a component)."""

    #: the id tag of derived rows, ``<parent>~<op><k>``; also the prefix of error messages
    op: str = ""

    def __init__(self, config: AugmentConfig):
        super().__init__(config)
        c = config
        if not c.fields or not all(isinstance(f, str) and f for f in c.fields):
            raise ValueError(f"{self.op}.fields must list at least one column name, got {c.fields!r}")
        _check_fraction(c.fraction, f"{self.op}.fraction")
        for label, value in c.class_fractions.items():
            _check_fraction(value, f"{self.op}.class_fractions.{label}")
        if c.per_row < 1:
            raise ValueError(f"{self.op}.per_row must be at least 1, got {c.per_row}")

    # subclasses implement this: one output per request, None where no rewrite was made
    def rewrite(self, requests: list[Rewrite], ctx: StageContext) -> list[Optional[str]]:  # pragma: no cover
        raise NotImplementedError

    def rng(self, ctx: StageContext, request: Rewrite) -> random.Random:
        return row_rng(ctx.seed, request.parent, self.op, request.copy, request.column)

    def check_columns(self, data: Any) -> None:
        missing = [f for f in self.config.fields if f not in data.column_names]
        if missing:
            raise ValueError(
                f"{self.op}: column(s) {missing} not in the data (columns: {data.column_names}); "
                f"set pipeline.params.{self.op}.fields to text columns that exist"
            )
        for column in self.config.fields:
            dtype = getattr(data.features[column], "dtype", None)
            if dtype not in ("string", "large_string", "null"):  # null: every value is None
                raise ValueError(
                    f"{self.op}: column '{column}' holds {data.features[column]}, not text; "
                    f"augmenters rewrite text columns only, so remove '{column}' from pipeline.params.{self.op}.fields"
                )

    def select(self, data: Any, ctx: StageContext) -> list[tuple[int, list[int]]]:
        """The rows to augment and the copy numbers each gets (numbers whose ids are free)."""
        c = self.config
        ids = list(data[ROW_ID])
        parents = list(data[PARENT_ID])
        labels: list[Any] | None = None
        if c.class_fractions:
            if ctx.label_column not in data.column_names:
                raise ValueError(
                    f"{self.op}.class_fractions needs the label column '{ctx.label_column}', which the data lacks "
                    f"(columns: {data.column_names}); set pipeline.label_column or remove class_fractions"
                )
            labels = [None if v is None else str(v) for v in data[ctx.label_column]]
            unused = sorted(set(c.class_fractions) - set(labels))
            if unused:
                log.warning("%s: class_fractions names labels not in the data: %s", self.op, unused)
                ctx.metadata["class_fractions_unused"] = unused
        taken = set(ids)
        plan = []
        for index, row_id in enumerate(ids):
            if c.only_originals and parents[index] is not None:
                continue
            fraction = c.fraction
            if labels is not None and labels[index] in c.class_fractions:
                fraction = c.class_fractions[labels[index]]
            if row_rng(ctx.seed, row_id, self.op, "pick").random() >= fraction:
                continue
            copies = []
            number = 0
            while len(copies) < c.per_row:
                number += 1
                # an earlier step of the same component (an alias) may hold the low numbers
                if f"{row_id}~{self.op}{number}" not in taken:
                    copies.append(number)
            plan.append((index, copies))
        return plan

    def apply(self, data: Any, ctx: StageContext) -> Any:
        data = _with_lineage(data, self.op)
        self.check_columns(data)
        fields = self.config.fields
        plan = self.select(data, ctx)
        ids = list(data[ROW_ID])
        columns = {column: list(data[column]) for column in fields}
        requests: list[Rewrite] = []
        blank = 0
        for index, copies in plan:
            for column in fields:
                text = columns[column][index]
                if text is None or not text.strip():
                    blank += 1  # nothing to rewrite; the column stays as the parent has it
                    continue
                requests += [Rewrite(ids[index], copy, column, text) for copy in copies]
        outputs = self.rewrite(requests, ctx) if requests else []
        if len(outputs) != len(requests):  # a broken subclass, not bad input
            raise RuntimeError(f"{self.op}: rewrite() returned {len(outputs)} texts for {len(requests)} requests")
        produced: dict[tuple[str, int], dict[str, str]] = {}
        for request, output in zip(requests, outputs):
            if output is not None:
                produced.setdefault((request.parent, request.copy), {})[request.column] = output

        children: list[dict[str, Any]] = []
        identical = duplicates = 0
        by_label: Counter[str] = Counter()
        rows = take_rows(data, [index for index, _ in plan]).to_list() if plan else []
        for (index, copies), row in zip(plan, rows):
            siblings: set[tuple[Any, ...]] = set()
            for copy in copies:
                changes = {k: v for k, v in produced.get((ids[index], copy), {}).items() if v != row[k]}
                if not changes:
                    if (ids[index], copy) in produced:
                        identical += 1
                    continue
                child = {**row, **changes}
                signature = tuple(child[f] for f in fields)
                if signature in siblings:
                    duplicates += 1
                    continue
                siblings.add(signature)
                child[ROW_ID] = f"{ids[index]}~{self.op}{copy}"
                child[PARENT_ID] = ids[index]
                children.append(child)
                first = next(f for f in fields if f in changes)
                ctx.example(child[ROW_ID], row[first], child[first])
                if ctx.label_column in row:
                    by_label[str(row[ctx.label_column])] += 1
        ctx.count("rows_selected", len(plan))
        ctx.count("rows_augmented", len(children))
        for name, n in (("skipped_identical", identical), ("skipped_duplicate", duplicates), ("skipped_blank", blank)):
            if n:
                ctx.count(name, n)
        if by_label:
            ctx.metadata["augmented_by_label"] = dict(sorted(by_label.items()))
        return append_rows(data, children)


class TextAugmenter(RowAugmenter):
    """A rule-based augmenter: rewrites one text at a time with its own seeded generator."""

    def rewrite_text(self, text: str, rng: random.Random) -> str:  # pragma: no cover - contract
        raise NotImplementedError

    def rewrite(self, requests: list[Rewrite], ctx: StageContext) -> list[Optional[str]]:
        return [self.rewrite_text(r.text, self.rng(ctx, r)) for r in requests]


# --- spans that noise must not touch ------------------------------------------------

_PROTECTED = re.compile(
    r"(?:https?://|www\.)\S+"  # links
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail addresses
    r"|\S*\d\S*"  # anything with a digit: order numbers, prices, dates, model names
)


# a run of non-space characters this long is no word (junk, base64, a long link): matching
# _PROTECTED inside it backtracks quadratically (minutes for a 100 kB run), so it is judged whole
_LONG_RUN = 64
_LONG_TOKEN = re.compile(r"\S{%d,}" % _LONG_RUN)
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


@dataclass
class SynonymConfig(AugmentConfig):
    #: words replaced per text (ignored when alpha is set)
    n: int = 1
    #: replace this fraction of the words instead of n (at least one word); None uses n
    alpha: Optional[float] = None
    #: parts of speech whose synonyms may be used: any of noun, verb, adj, adv
    pos: list[str] = field(default_factory=lambda: list(POS_NAMES))
    #: senses per part of speech whose lemmas count as synonyms, most frequent first; 0 = all
    max_senses: int = 3
    #: WordNet database directory (or NLTK wordnet.zip); None = /usr/share/wordnet, then $NLTK_DATA and ~/nltk_data
    wordnet_dir: Optional[str] = None


class Synonym(TextAugmenter):
    """WordNet synonym replacement from an offline WordNet database (no nltk needed)."""

    op = "synonym"

    def __init__(self, config: SynonymConfig):
        super().__init__(config)
        if config.n < 1:
            raise ValueError(f"synonym.n must be at least 1, got {config.n}")
        if config.alpha is not None and not 0.0 < config.alpha <= 1.0:
            raise ValueError(f"synonym.alpha must be in (0, 1] or null, got {config.alpha}")
        _check_choices(config.pos, POS_NAMES, "synonym.pos")
        if config.max_senses < 0:
            raise ValueError(f"synonym.max_senses must be 0 (all) or more, got {config.max_senses}")
        self.synonyms = SynonymSource(config.wordnet_dir, config.pos, config.max_senses, "synonym.wordnet_dir")

    def candidates(self, word: str) -> list[str]:
        """The synonyms ``word`` may be replaced with."""
        return self.synonyms(word.lower())

    def rewrite_text(self, text: str, rng: random.Random) -> str:
        count = self.config.n
        if self.config.alpha is not None:
            count = max(1, round(self.config.alpha * len(text.split())))
        return replace_synonyms(text, count, rng, self.synonyms)


# --- EDA ----------------------------------------------------------------------------

EDA_OPERATIONS = ("swap", "delete", "insert", "synonym")


@dataclass
class EdaConfig(AugmentConfig):
    #: fraction of the words each operation touches (EDA's alpha)
    alpha: float = 0.1
    #: any of swap, delete, insert (a word from the same text), synonym (WordNet; needs a WordNet database)
    operations: list[str] = field(default_factory=lambda: ["swap", "delete", "insert"])
    #: WordNet directory for the synonym operation; None = auto-detect (see the synonym augmenter)
    wordnet_dir: Optional[str] = None


class Eda(TextAugmenter):
    """Easy Data Augmentation: random swap, deletion, insertion and (with WordNet) synonym replacement."""

    op = "eda"

    def __init__(self, config: EdaConfig):
        super().__init__(config)
        _check_choices(config.operations, EDA_OPERATIONS, "eda.operations")
        if not 0.0 < config.alpha <= 1.0:
            raise ValueError(f"eda.alpha must be in (0, 1], got {config.alpha}")
        self.synonyms: SynonymSource | None = None
        if "synonym" in config.operations:
            self.synonyms = SynonymSource(config.wordnet_dir, list(POS_NAMES), 3, "eda.wordnet_dir")

    def rewrite_text(self, text: str, rng: random.Random) -> str:
        words = text.split()
        if len(words) < 2:
            return text
        n = max(1, int(round(self.config.alpha * len(words))))
        operation = rng.choice(self.config.operations)
        if operation == "synonym":
            assert self.synonyms is not None  # set whenever the operation is configured
            return replace_synonyms(text, n, rng, self.synonyms)
        for _ in range(n):
            if operation == "swap":
                i, j = rng.sample(range(len(words)), 2)
                words[i], words[j] = words[j], words[i]
            elif operation == "delete" and len(words) > 1:
                del words[rng.randrange(len(words))]
            elif operation == "insert":
                words.insert(rng.randrange(len(words) + 1), rng.choice(words))
        return " ".join(words)


# --- character noise ----------------------------------------------------------------

_KEY_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    """Keys next to each key on a QWERTY keyboard, letters for letters and digits for
    digits (a typo must not turn a word into a number). Rows are staggered: key i of a
    row touches keys i and i+1 of the row above and i-1 and i of the row below."""
    neighbours: dict[str, str] = {}
    for r, row in enumerate(_KEY_ROWS):
        for i, key in enumerate(row):
            near = [row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)]
            if r > 0:
                near += [_KEY_ROWS[r - 1][j] for j in (i, i + 1) if j < len(_KEY_ROWS[r - 1])]
            if r + 1 < len(_KEY_ROWS):
                near += [_KEY_ROWS[r + 1][j] for j in (i - 1, i) if 0 <= j < len(_KEY_ROWS[r + 1])]
            neighbours[key] = "".join(k for k in near if k.isdigit() == key.isdigit())
    return neighbours


KEYBOARD_NEIGHBOURS = _keyboard_neighbours()
CHAR_OPERATIONS = ("keyboard", "insert", "delete", "transpose", "case")


@dataclass
class CharNoiseConfig(AugmentConfig):
    #: edits per eligible character (at least one edit per text); ignored when n > 0
    rate: float = 0.03
    #: exact number of edits per text; 0 = use rate
    n: int = 0
    #: any of keyboard (a QWERTY neighbour), insert (a neighbour after the key), delete, transpose (with the next letter), case (flip)
    operations: list[str] = field(default_factory=lambda: list(CHAR_OPERATIONS))
    #: leave links, e-mail addresses and words with digits (order numbers, prices) untouched, and edit letters only
    protect_entities: bool = True


class CharNoise(TextAugmenter):
    """Character noise and keyboard typos: neighbour-key substitution, insertion, deletion, transposition, case flips."""

    op = "char_noise"

    def __init__(self, config: CharNoiseConfig):
        super().__init__(config)
        _check_choices(config.operations, CHAR_OPERATIONS, "char_noise.operations")
        if not 0.0 < config.rate <= 1.0:
            raise ValueError(f"char_noise.rate must be in (0, 1], got {config.rate}")
        if config.n < 0:
            raise ValueError(f"char_noise.n must be 0 (use rate) or more, got {config.n}")

    def eligible(self, text: str) -> list[int]:
        """Positions that may be edited: keys of the keyboard map, outside protected spans."""
        if not self.config.protect_entities:
            return [i for i, ch in enumerate(text) if ch.lower() in KEYBOARD_NEIGHBOURS]
        mask = protected_mask(text)
        return [i for i, ch in enumerate(text) if ch.isalpha() and ch.lower() in KEYBOARD_NEIGHBOURS and not mask[i]]

    def rewrite_text(self, text: str, rng: random.Random) -> str:
        positions = self.eligible(text)
        if not positions:
            return text
        count = self.config.n or max(1, round(self.config.rate * len(positions)))
        chosen = sorted(rng.sample(positions, min(count, len(positions))), reverse=True)
        chars = list(text)
        # kept in step with chars, so a transposition never pulls in a protected character
        editable = [False] * len(text)
        for i in positions:
            editable[i] = True
        # right to left, so an edit never shifts a position still to be edited
        for i in chosen:
            operation = rng.choice(self.config.operations)
            key = chars[i]
            if operation == "transpose" and i + 1 < len(chars) and editable[i + 1] and chars[i + 1] != key:
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
            elif operation == "delete":
                del chars[i], editable[i]
            elif operation == "case" and key.isalpha():
                chars[i] = key.swapcase()
            else:  # keyboard and insert, and the fallback when transpose or case cannot apply
                neighbour = match_case(key, rng.choice(KEYBOARD_NEIGHBOURS[key.lower()]))
                if operation == "insert":
                    chars.insert(i + 1, neighbour)
                    editable.insert(i + 1, False)
                else:
                    chars[i] = neighbour
        return "".join(chars)


# --- model-based augmenters ---------------------------------------------------------

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass
class GenerationConfig(AugmentConfig):
    #: texts per generate() call
    batch_size: int = 8
    #: tokens generated per output at most
    max_new_tokens: int = 128
    #: beam search width (1 = greedy or plain sampling)
    num_beams: int = 1
    #: sample instead of greedy/beam decoding (needed for different copies when per_row > 1)
    do_sample: bool = False
    #: sampling temperature (with do_sample)
    temperature: float = 1.0
    #: nucleus sampling probability mass (with do_sample)
    top_p: float = 1.0
    #: inputs longer than this many tokens (or than the model holds) are skipped and counted as skipped_too_long, never truncated
    max_input_tokens: int = 512
    #: auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps
    device: str = "auto"


def _check_generation(config: GenerationConfig, op: str) -> None:
    for name in ("batch_size", "max_new_tokens", "num_beams", "max_input_tokens"):
        if getattr(config, name) < 1:
            raise ValueError(f"{op}.{name} must be at least 1, got {getattr(config, name)}")
    if config.temperature <= 0:
        raise ValueError(f"{op}.temperature must be above 0, got {config.temperature}")
    if not 0.0 < config.top_p <= 1.0:
        raise ValueError(f"{op}.top_p must be in (0, 1], got {config.top_p}")
    if not _DEVICE.match(config.device):
        raise ValueError(f"{op}.device must be auto, cpu, cuda, cuda:N or mps, got {config.device!r}")


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but torch sees no CUDA GPU here; use device=auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for, but torch sees no Apple GPU here; use device=auto or cpu")
    return name


def _token_counts(tokenizer: Any, texts: list[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(texts)["input_ids"]] if texts else []


def input_limit(model: Any, tokenizer: Any, requested: int, reserve: int = 0) -> int:
    """The longest input (in tokens) worth sending: ``requested``, lowered to what the
    model's position embeddings hold (minus ``reserve`` tokens for the continuation of a
    causal LM) so that a long row is skipped instead of crashing inside the model."""
    limits = [requested]
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions - reserve)
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < 1_000_000:  # huge values mean "not set"
        limits.append(declared - reserve)
    return max(1, min(limits))


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    config: GenerationConfig,
    seed: int,
    salt: str,
    decoder_only: bool,
    budgets: Optional[list[int]] = None,
) -> list[str]:
    """Generate one output per prompt, ``batch_size`` prompts at a time; sampling is
    seeded per batch from (seed, salt, batch start), so a rerun gives the same texts.
    ``budgets`` caps the new tokens per prompt (a batch gets the largest cap in it)."""
    import torch

    outputs: list[str] = []
    device = next(model.parameters()).device
    options: dict[str, Any] = {"num_beams": config.num_beams}
    if config.do_sample:
        options.update(do_sample=True, temperature=config.temperature, top_p=config.top_p)
    else:
        options["do_sample"] = False
    for start in range(0, len(prompts), config.batch_size):
        batch = prompts[start : start + config.batch_size]
        limit = config.max_new_tokens
        if budgets:
            limit = max(1, min(limit, max(budgets[start : start + config.batch_size])))
        torch.manual_seed(row_rng(seed, salt, start).getrandbits(63))
        encoded = tokenizer(batch, return_tensors="pt", padding=True, return_token_type_ids=False).to(device)
        with torch.no_grad():
            generated = model.generate(**encoded, pad_token_id=tokenizer.pad_token_id, max_new_tokens=limit, **options)
        if decoder_only:  # a causal LM returns the prompt followed by the continuation
            generated = generated[:, encoded["input_ids"].shape[1] :]
        outputs += [text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]
        log.info("%s: generated %d/%d", salt, min(start + config.batch_size, len(prompts)), len(prompts))
    return outputs


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


# The two models of the last back-translation step stay loaded: the jobs of a sweep run
# in one process and would otherwise load them again for every job.
@lru_cache(maxsize=2)
def _cached_translator(name: str, device: str, saved_at: int) -> tuple[Any, Any]:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    local = Path(name).expanduser().is_dir()
    path = str(Path(name).expanduser()) if local else name
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
        model = AutoModelForSeq2SeqLM.from_pretrained(path, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"back_translation cannot load translation model {name!r}: {str(exc).splitlines()[0]}. "
            "Give a local directory written by save_pretrained(), or a hub id with network access."
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer


def _load_translator(name: str, device: str) -> tuple[Any, Any]:
    # a model saved again under the same directory must not be served from the cache
    config_file = Path(name).expanduser() / "config.json"
    saved_at = config_file.stat().st_mtime_ns if config_file.is_file() else 0
    return _cached_translator(name, device, saved_at)


@dataclass
class BackTranslationConfig(GenerationConfig):
    #: translation model into the pivot language: a local directory (save_pretrained) or a hub id (downloaded by transformers)
    forward_model: str = "???"
    #: translation model from the pivot language back: a local directory or a hub id
    backward_model: str = "???"


class BackTranslation(RowAugmenter):
    """Back-translation through two local seq2seq translation models (e.g. en->de->en)."""

    op = "back_translation"

    def __init__(self, config: BackTranslationConfig):
        super().__init__(config)
        _check_generation(config, self.op)
        for name in ("forward_model", "backward_model"):
            value = getattr(config, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"back_translation.{name} must name a model directory or hub id, got {value!r}")
            if value.startswith(("/", "./", "../", "~")) and not Path(value).expanduser().is_dir():
                raise ValueError(f"back_translation.{name}: no model directory at {value}")

    def load(self, name: str) -> tuple[Any, Any]:
        """(model, tokenizer) of a translation model."""
        return _load_translator(name, _device(self.config.device))

    def translate(self, name: str, texts: list[str], seed: int, salt: str) -> list[str]:
        model, tokenizer = self.load(name)
        return generate_texts(model, tokenizer, texts, self.config, seed, salt, decoder_only=False)

    def fitting(self, name: str, texts: list[str]) -> list[bool]:
        """Whether each text is short enough for translation model ``name``."""
        model, tokenizer = self.load(name)
        limit = input_limit(model, tokenizer, self.config.max_input_tokens)
        return [n <= limit for n in _token_counts(tokenizer, texts)]

    def rewrite(self, requests: list[Rewrite], ctx: StageContext) -> list[Optional[str]]:
        c = self.config
        # sorted, so batches (and the seeded sampling in them) do not depend on row order
        order = sorted(range(len(requests)), key=lambda i: (requests[i].parent, requests[i].copy, requests[i].column))
        fits = [i for i, ok in zip(order, self.fitting(c.forward_model, [requests[i].text for i in order])) if ok]
        too_long = len(order) - len(fits)
        results: list[Optional[str]] = [None] * len(requests)
        pivots = self.translate(c.forward_model, [requests[i].text for i in fits], ctx.seed, "back_translation:forward")
        carried = [(i, pivot) for i, pivot in zip(fits, pivots) if pivot]
        if len(carried) < len(fits):
            ctx.count("rejected_empty_pivot", len(fits) - len(carried))
        fitting_pivots = self.fitting(c.backward_model, [p for _, p in carried])
        too_long += fitting_pivots.count(False)
        carried = [pair for pair, ok in zip(carried, fitting_pivots) if ok]
        if too_long:
            ctx.count("skipped_too_long", too_long)
        finals = self.translate(c.backward_model, [p for _, p in carried], ctx.seed, "back_translation:backward")
        empty = identical = 0
        for (i, _), text in zip(carried, finals):
            if not text:
                empty += 1
            elif _same_text(text, requests[i].text):
                identical += 1
            else:
                results[i] = text
        if empty:
            ctx.count("rejected_empty", empty)
        if identical:
            ctx.count("rejected_identical", identical)
        return results


DEFAULT_PARAPHRASE_TEMPLATE = (
    "Rewrite the following customer message in different words. Keep its meaning, its language "
    "and every detail such as names, numbers and links. Reply with the rewritten message only.\n\n{text}"
)

# Labels instruction-tuned models like to put before the answer.
_ANSWER_LABEL = re.compile(
    r"^\s*(?:(?:sure|okay|ok)[,!.]?\s*)?(?:here(?:'s| is) (?:a |the |one |your )?(?:possible )?"
    r"(?:paraphrase|rewrite|rewritten (?:message|version|text))[^:\n]*:|"
    r"(?:paraphrase|paraphrased|rewritten)(?: (?:message|version|text))?:)\s*",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "“": "”", "'": "'", "«": "»"}
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _is_label_line(line: str) -> bool:
    """A short line ending in a colon ("The customer message:") introduces text; it is not text."""
    stripped = line.strip()
    return stripped.endswith(":") and len(stripped.split()) <= 8


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[^\W_]+", text.casefold()) if len(w) >= 3 and w not in STOP_WORDS}


@dataclass
class ParaphraseConfig(GenerationConfig):
    #: tunelab model preset that writes the paraphrases (smollm2_135m, tiny, hf, ...)
    model: str = "smollm2_135m"
    #: parameters of that model preset (e.g. {path: /models/my-llm} for hf)
    model_params: dict[str, Any] = field(default_factory=dict)
    #: instruction with a {text} placeholder for the source text
    template: str = DEFAULT_PARAPHRASE_TEMPLATE
    #: send the instruction as a user message through the tokenizer's chat template when it has one
    use_chat_template: bool = True
    #: reject outputs shorter than this fraction of the source length (characters)
    min_length_ratio: float = 0.5
    #: reject outputs longer than this multiple of the source length (characters)
    max_length_ratio: float = 2.0
    #: reject outputs whose numbers (prices, order numbers, sizes) differ from the source's
    keep_numbers: bool = True
    #: reject outputs without a question mark when the source asks a question (an answer is not a paraphrase)
    keep_questions: bool = True
    #: reject outputs that share less than this fraction of the source's content words (0 = off)
    min_word_overlap: float = 0.2
    #: sample, so that copies differ (per_row > 1) and wording varies
    do_sample: bool = True
    #: sampling temperature: higher gives freer paraphrases and more rejections
    temperature: float = 0.7
    #: nucleus sampling probability mass
    top_p: float = 0.9
    #: tokens generated per paraphrase at most; support tickets need well under 100
    max_new_tokens: int = 96


class Paraphrase(RowAugmenter):
    """Paraphrases written by a local causal LM from a prompt template, with a quality filter."""

    op = "paraphrase"

    def __init__(self, config: ParaphraseConfig):
        super().__init__(config)
        _check_generation(config, self.op)
        if config.template.count("{text}") != 1:
            raise ValueError("paraphrase.template must contain the placeholder {text} exactly once")
        if not 0.0 <= config.min_length_ratio < 1.0 < config.max_length_ratio:
            raise ValueError(
                "paraphrase.min_length_ratio must be in [0, 1) and paraphrase.max_length_ratio above 1, "
                f"got {config.min_length_ratio} and {config.max_length_ratio}"
            )
        if not 0.0 <= config.min_word_overlap <= 1.0:
            raise ValueError(f"paraphrase.min_word_overlap must be between 0 and 1, got {config.min_word_overlap}")
        # pieces of the instruction long enough that an output containing one is an echo
        instruction = config.template.replace("{text}", "\n")
        self.template_fragments = [
            piece.strip().casefold() for piece in re.split(r"[\n.!?:]+", instruction) if len(piece.split()) >= 4
        ]
        self._loaded: Any = None

    def model(self, ctx: StageContext) -> Any:
        """The LoadedModel, built once through the model registry."""
        if self._loaded is None:
            loader = ctx.make("model", self.config.model, self.config.model_params)
            cache_dir = Path(os.environ.get("TUNELAB_CACHE_DIR") or Path.home() / ".cache" / "tunelab")
            import torch

            # a model built in-process with random weights (tiny) is then the same in every run
            torch.manual_seed(ctx.seed)
            loaded = loader.load({}, cache_dir)
            tokenizer = loaded.tokenizer
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            tokenizer.padding_side = "left"  # a causal LM continues from the right end of the prompt
            loaded.model.to(_device(self.config.device)).eval()
            self._loaded = loaded
        return self._loaded

    def prompt(self, tokenizer: Any, text: str) -> str:
        instruction = self.config.template.replace("{text}", text)
        if self.config.use_chat_template and getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True
            )
        return instruction

    @staticmethod
    def clean(output: str, source: str) -> str:
        """The paraphrase without leading labels ("Here is a paraphrase:", "Message:"),
        wrapping quotes, or notes after it (when the source is one paragraph)."""
        text = _ANSWER_LABEL.sub("", output.strip(), count=1).strip()
        lines = text.splitlines()
        while lines and (not lines[0].strip() or _is_label_line(lines[0])):
            lines.pop(0)
        text = "\n".join(lines).strip()
        if "\n\n" not in source.strip():
            text = text.split("\n\n", 1)[0].strip()
        if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1] and text.count(text[0]) <= 2:
            text = text[1:-1].strip()
        return text

    def reject_reason(self, source: str, output: str) -> Optional[str]:
        """Why an output is not a usable paraphrase of ``source`` (None: it is)."""
        c = self.config
        if not output.strip():
            return "empty"
        if _same_text(output, source):
            return "identical"
        folded = output.casefold()
        if any(fragment in folded for fragment in self.template_fragments):
            return "prompt_echo"
        ratio = len(output) / max(1, len(source))
        if not c.min_length_ratio <= ratio <= c.max_length_ratio:
            return "length"
        if c.keep_numbers and set(_NUMBER.findall(output)) != set(_NUMBER.findall(source)):
            return "numbers_changed"
        if c.keep_questions and "?" in source and "?" not in output:
            return "not_a_question"  # small models answer the question instead of rewording it
        source_words = _content_words(source)
        if source_words and len(source_words & _content_words(output)) < c.min_word_overlap * len(source_words):
            return "unrelated"
        return None

    def rewrite(self, requests: list[Rewrite], ctx: StageContext) -> list[Optional[str]]:
        loaded = self.model(ctx)
        tokenizer = loaded.tokenizer
        order = sorted(range(len(requests)), key=lambda i: (requests[i].parent, requests[i].copy, requests[i].column))
        prompts = [self.prompt(tokenizer, requests[i].text) for i in order]
        limit = input_limit(loaded.model, tokenizer, self.config.max_input_tokens, reserve=self.config.max_new_tokens)
        fits = [(i, p) for i, p, n in zip(order, prompts, _token_counts(tokenizer, prompts)) if n <= limit]
        if len(fits) < len(order):
            ctx.count("skipped_too_long", len(order) - len(fits))
        # an output longer than max_length_ratio times the source is rejected anyway: stop
        # generating there (a few tokens of slack), which saves most of the time on short rows
        source_tokens = _token_counts(tokenizer, [requests[i].text for i, _ in fits])
        budgets = [int(self.config.max_length_ratio * n) + 8 for n in source_tokens]
        outputs = generate_texts(
            loaded.model, tokenizer, [p for _, p in fits], self.config, ctx.seed, "paraphrase", decoder_only=True, budgets=budgets
        )
        results: list[Optional[str]] = [None] * len(requests)
        rejected: Counter[str] = Counter()
        for (i, _), raw in zip(fits, outputs):
            text = self.clean(raw, requests[i].text)
            reason = self.reject_reason(requests[i].text, text)
            if reason:
                rejected[reason] += 1
            else:
                results[i] = text
        for reason, n in sorted(rejected.items()):
            ctx.count(f"rejected_{reason}", n)
        return results


# --- template-based synthesis -------------------------------------------------------


def _placeholders(template: str, where: str) -> set[str]:
    names = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc} in {template!r} (write a literal brace as {{{{ or }}}})") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"{where}: placeholder {{{name}}} must be a plain {{slot_name}} in {template!r}")
        names.add(name)
    return names


@dataclass
class TemplateConfig:
    #: templates with {slot} placeholders: a string (fills ``column``) or a mapping column -> string (e.g. a prompt/completion pair)
    templates: list[Any] = field(default_factory=list)
    #: values of each slot (text or numbers), e.g. {item: [tent, stove], days: [14, 30]}
    slots: dict[str, list[Any]] = field(default_factory=dict)
    #: label of the generated rows; a row with this label is each one's parent. None only for data without a label column
    label: Optional[str] = None
    #: rows to generate (fewer when the templates and slots cannot make that many distinct texts)
    count: int = 10
    #: the column a plain-string template fills
    column: str = PROMPT


class Template(Augmenter):
    """Synthetic rows from templates with {slot} placeholders, for a given label."""

    op = "template"

    def __init__(self, config: TemplateConfig):
        super().__init__(config)
        if not config.templates:
            raise ValueError("template.templates must list at least one template, e.g. templates=['Where is my {item}?']")
        self.templates: list[dict[str, str]] = []
        needed: set[str] = set()
        for n, entry in enumerate(config.templates):
            where = f"template.templates[{n}]"
            mapping = {config.column: entry} if isinstance(entry, str) else entry
            if not isinstance(mapping, dict) or not mapping or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
            ):
                raise ValueError(f"{where} must be a string or a mapping of column -> string, got {entry!r}")
            for text in mapping.values():
                needed |= _placeholders(text, where)
            self.templates.append(dict(mapping))
        columns = {tuple(sorted(t)) for t in self.templates}
        if len(columns) > 1:
            raise ValueError(f"template.templates must all fill the same columns, got {sorted(columns)}")
        missing = sorted(needed - set(config.slots))
        if missing:
            raise ValueError(f"template.slots has no values for placeholder(s) {missing}; add template.slots.{missing[0]}=[...]")
        empty = sorted(name for name in needed if not config.slots[name])
        if empty:
            raise ValueError(f"template.slots.{empty[0]} is empty; give it at least one value")
        for name in needed:
            nested = [v for v in config.slots[name] if not isinstance(v, (str, int, float))]
            if nested:
                raise ValueError(f"template.slots.{name} must list text or numbers, got {nested[0]!r}")
        if config.count < 1:
            raise ValueError(f"template.count must be at least 1, got {config.count}")
        self.slot_names = sorted(needed)

    def apply(self, data: Any, ctx: StageContext) -> Any:
        data = _with_lineage(data, self.op)
        c = self.config
        filled_columns = sorted(self.templates[0])
        absent = [col for col in filled_columns if col not in data.column_names]
        if absent:
            raise ValueError(f"template: the templates fill column(s) {absent}, which the data lacks (columns: {data.column_names})")
        unfilled = [col for col in CANONICAL_TEXT_COLUMNS if col in data.column_names and col not in filled_columns]
        if unfilled:
            raise ValueError(
                f"template: the templates fill {filled_columns} but the data also has text column(s) {unfilled}; a "
                "generated row would keep its parent's text there, which does not match. Give each template as a mapping "
                "of every text column, e.g. templates=[{prompt: '...', completion: '...'}]"
            )
        ids = list(data[ROW_ID])
        parents = list(data[PARENT_ID])
        if ctx.label_column in data.column_names:
            if c.label is None:
                raise ValueError(
                    f"template.label is required: the data has the label column '{ctx.label_column}' and generated rows need one"
                )
            labels = [None if v is None else str(v) for v in data[ctx.label_column]]
            matching = [i for i, label in enumerate(labels) if label == c.label]
            if not matching:
                present = sorted({label for label in labels if label is not None})
                raise ValueError(
                    f"template: no row has label {c.label!r} in column '{ctx.label_column}', so no generated row can have "
                    f"a parent of that label (labels present: {present}); set template.label to one of them"
                )
        elif c.label is not None:
            raise ValueError(
                f"template.label is {c.label!r} but the data has no label column '{ctx.label_column}'; "
                "set pipeline.label_column to the label column, or leave template.label empty"
            )
        else:
            matching = list(range(len(ids)))
        if not matching:
            raise ValueError("template: the data has no rows, so generated rows would have no parent")
        # parents are preferably originals, and chosen by id so the row order does not matter
        pool = sorted((i for i in matching if parents[i] is None), key=ids.__getitem__) or sorted(matching, key=ids.__getitem__)
        existing = set(zip(*(list(data[col]) for col in filled_columns)))
        taken = set(ids)
        picks: list[tuple[int, dict[str, str]]] = []
        duplicates = 0
        attempt = 0
        while len(picks) < c.count and attempt < 20 * c.count:
            rng = row_rng(ctx.seed, self.op, c.label, attempt)
            attempt += 1
            template = rng.choice(self.templates)
            values = {name: str(rng.choice(c.slots[name])) for name in self.slot_names}
            filled = {col: template[col].format_map(values) for col in filled_columns}
            signature = tuple(filled[col] for col in filled_columns)
            if signature in existing:
                duplicates += 1
                continue
            existing.add(signature)
            picks.append((pool[rng.randrange(len(pool))], filled))
        rows = take_rows(data, [index for index, _ in picks]).to_list() if picks else []
        children = []
        for (index, filled), row in zip(picks, rows):
            number = 1
            while f"{ids[index]}~{self.op}{number}" in taken:
                number += 1
            child_id = f"{ids[index]}~{self.op}{number}"
            taken.add(child_id)
            children.append({**row, **filled, ROW_ID: child_id, PARENT_ID: ids[index]})
            ctx.example(child_id, "(template)", filled[filled_columns[0]])
        ctx.count("rows_generated", len(children))
        if duplicates:
            ctx.count("skipped_duplicate", duplicates)
        if len(children) < c.count:
            log.warning("template: made %d of %d rows; the templates and slots allow no more distinct texts", len(children), c.count)
        ctx.metadata["generated"] = {"label": c.label, "rows": len(children), "requested": c.count}
        return append_rows(data, children)


COMPONENTS = [
    ("augmenter", Component("eda", Eda, EdaConfig)),
    ("augmenter", Component("synonym", Synonym, SynonymConfig)),
    ("augmenter", Component("char_noise", CharNoise, CharNoiseConfig)),
    ("augmenter", Component("back_translation", BackTranslation, BackTranslationConfig)),
    ("augmenter", Component("paraphrase", Paraphrase, ParaphraseConfig)),
    ("augmenter", Component("template", Template, TemplateConfig)),
]
