"""Splitters: partition the prepared rows into train/validation/test.

Every splitter assigns *original* rows (rows without ``parent_id``) to splits; a
derived row follows the root of its parent chain, so an augmented or oversampled copy
never sits in another split than the text it was made from. By default derived rows
whose root landed in validation/test are dropped: evaluation data stays original.

After the assignment every splitter runs the same leakage check
(:func:`check_leakage`): validation/test rows that are exact or near duplicates of a
train row, or derived from a row in another split, are dropped (``leakage: fix``) or
only counted (``leakage: report``).
"""

from __future__ import annotations

import random
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

from tunelab.api import (
    CANONICAL_TEXT_COLUMNS,
    COMPLETION,
    MESSAGES,
    PARENT_ID,
    PROMPT,
    ROW_ID,
    TEXT,
    Component,
    Splitter,
    StageContext,
)

from tunelab_builtin.derive import row_rng, take_rows

SPLITS = ("train", "validation", "test")
EVAL_SPLITS = ("validation", "test")
LEAKAGE_MODES = ("fix", "report", "off")
#: how many leaking pairs the metadata lists as examples
_LEAK_EXAMPLES = 10


# --- shared config --------------------------------------------------------------


@dataclass
class SplitSafetyConfig:
    #: derived rows whose root landed in validation/test: drop (evaluate on originals only) or keep them there
    eval_derived: str = "drop"
    #: train/evaluation leakage: fix (drop the leaking validation/test row), report (count only), off
    leakage: str = "fix"
    #: text columns compared by the leakage check; empty: prompt+completion, else text, whichever exist
    leakage_fields: list[str] = field(default_factory=list)
    #: estimated Jaccard similarity from which a validation/test row is a near duplicate of a train row; 0 skips that check
    near_duplicate_threshold: float = 0.8


def _check_safety(name: str, c: SplitSafetyConfig) -> None:
    if c.eval_derived not in ("drop", "keep"):
        raise ValueError(f"{name}.eval_derived must be 'drop' or 'keep', got {c.eval_derived!r}")
    if c.leakage not in LEAKAGE_MODES:
        raise ValueError(f"{name}.leakage must be one of {', '.join(LEAKAGE_MODES)}, got {c.leakage!r}")
    if not 0.0 <= c.near_duplicate_threshold <= 1.0:
        raise ValueError(
            f"{name}.near_duplicate_threshold must be in [0, 1] (0 turns the near-duplicate check off), "
            f"got {c.near_duplicate_threshold}"
        )


def _check_fractions(name: str, validation: float, test: float) -> None:
    if validation < 0 or test < 0 or validation + test >= 1:
        raise ValueError(
            f"{name}: validation and test fractions must be >= 0 and sum to less than 1 "
            f"(got validation={validation}, test={test})"
        )


# --- shared helpers ----------------------------------------------------------------


def root_ids(ids: list[str], parents: list[Optional[str]]) -> list[str]:
    """The root of each row's parent chain (a row without parent is its own root).

    A chain whose top was dropped by an earlier step ends at the missing id; such rows
    share that id as root and so stay together.
    """
    parent_of = dict(zip(ids, parents))
    memo: dict[str, str] = {}

    def root(row_id: str) -> str:
        chain = []
        seen = set()
        while row_id not in memo and parent_of.get(row_id) is not None and row_id not in seen:
            seen.add(row_id)
            chain.append(row_id)
            row_id = parent_of[row_id]  # type: ignore[assignment]
        top = memo.get(row_id, row_id)
        for link in chain:
            memo[link] = top
        return top

    return [root(i) for i in ids]


def originals(data: Any) -> list[int]:
    """Indices of the rows that derive from nothing (the units splitters assign)."""
    return [i for i, parent in enumerate(data[PARENT_ID]) if parent is None]


def fraction_counts(n: int, validation: float, test: float) -> tuple[int, int]:
    """(n_validation, n_test) for ``n`` rows; at least one row stays for training."""
    n_test = int(round(test * n))
    n_val = int(round(validation * n))
    overflow = n_test + n_val - max(0, n - 1)
    if overflow > 0:  # a group this small still needs a training example: shrink validation first
        cut = min(overflow, n_val)
        n_val -= cut
        n_test = max(0, n_test - (overflow - cut))
    return n_val, n_test


def deal_by_fraction(
    strata: dict[str, list[str]], validation: float, test: float, rng: random.Random
) -> dict[str, str]:
    """Shuffle each stratum and cut it into test/validation/train by fraction."""
    assignment: dict[str, str] = {}
    for key in sorted(strata):
        members = sorted(strata[key])
        rng.shuffle(members)
        n_val, n_test = fraction_counts(len(members), validation, test)
        for row_id in members[:n_test]:
            assignment[row_id] = "test"
        for row_id in members[n_test : n_test + n_val]:
            assignment[row_id] = "validation"
        for row_id in members[n_test + n_val :]:
            assignment[row_id] = "train"
    return assignment


def strata_of(data: Any, column: Optional[str]) -> dict[str, list[str]]:
    """Original row ids grouped by their value in ``column`` (one stratum when None)."""
    ids = data[ROW_ID]
    keys = data[column] if column is not None else None
    strata: dict[str, list[str]] = defaultdict(list)
    for i in originals(data):
        strata[str(keys[i]) if keys is not None else ""].append(ids[i])
    return dict(strata)


def assemble(data: Any, ctx: StageContext, assignment: dict[str, str], config: SplitSafetyConfig) -> dict[str, Any]:
    """Turn an assignment of original ids into splits: derived rows follow their root,
    eval-derived rows are dropped (unless ``eval_derived: keep``), then the leakage check."""
    ids = data[ROW_ID]
    parents = data[PARENT_ID]
    roots = root_ids(ids, parents)
    indices: dict[str, list[int]] = {name: [] for name in SPLITS}
    derived_in_eval: list[str] = []
    orphans = 0
    for i, (row_id, parent, root) in enumerate(zip(ids, parents, roots)):
        split = assignment.get(root)
        if split is None:
            # the original was dropped earlier (e.g. undersampled): what is left of it is
            # derived text, which is only ever used for training
            split = "train"
            orphans += 1
        if parent is not None and split != "train" and config.eval_derived == "drop":
            derived_in_eval.append(row_id)
            continue
        indices[split].append(i)
    ctx.drop(derived_in_eval, "derived from a validation/test row")
    if orphans:
        ctx.count("derived rows without their original (kept in train)", orphans)
    indices = check_leakage(
        data,
        indices,
        ctx,
        mode=config.leakage,
        fields=config.leakage_fields,
        near_threshold=config.near_duplicate_threshold,
    )
    return {name: take_rows(data, idx) for name, idx in indices.items()}


# --- leakage --------------------------------------------------------------------------


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # chat transcripts: compare the contents
        return " ".join(_as_text(v.get("content") if isinstance(v, dict) else v) for v in value)
    return str(value)


def normalized_text(value: Any) -> str:
    """Text as the leakage check compares it: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", _as_text(value)).casefold().split())


def leakage_columns(data: Any, fields: list[str]) -> list[str]:
    """The columns the leakage check compares (explicit ones must exist)."""
    if fields:
        missing = [f for f in fields if f not in data.column_names]
        if missing:
            raise ValueError(
                f"leakage_fields {missing} not in the data (columns: {data.column_names}); "
                "name existing text columns or leave leakage_fields empty"
            )
        return list(fields)
    for candidates in ([PROMPT, COMPLETION], [TEXT], list(CANONICAL_TEXT_COLUMNS) + [MESSAGES]):
        present = [c for c in candidates if c in data.column_names]
        if present:
            return present
    return []


def check_leakage(
    data: Any,
    indices: dict[str, list[int]],
    ctx: StageContext,
    *,
    mode: str = "fix",
    fields: list[str] | None = None,
    near_threshold: float = 0.8,
) -> dict[str, list[int]]:
    """Find validation/test rows that leak training data; drop them when ``mode`` is fix.

    Three kinds, checked in this order (a row is reported once, for the first kind):
    an exact duplicate of a train row (normalized text of the compared columns), a row
    derived from a row in another split, and a near duplicate of a train row (MinHash
    estimate of word-shingle Jaccard >= ``near_threshold``). Rows derived from a leaking
    row of the same split are reported (and dropped) with it. Counts per kind and split
    land in ``ctx.metadata["leakage"]``; ``indices`` maps split -> row indices.
    """
    if mode not in LEAKAGE_MODES:
        raise ValueError(f"leakage must be one of {', '.join(LEAKAGE_MODES)}, got {mode!r}")
    if mode == "off":
        ctx.metadata["leakage"] = {"mode": "off"}
        return indices
    columns = leakage_columns(data, list(fields or []))
    summary: dict[str, Any] = {
        "mode": mode,
        "fields": columns,
        "exact_duplicate": {s: 0 for s in EVAL_SPLITS},
        "derived_across_splits": {s: 0 for s in EVAL_SPLITS},
        "near_duplicate": {s: 0 for s in EVAL_SPLITS},
        "derived_from_leak": {s: 0 for s in EVAL_SPLITS},
        "dropped": 0,
        "examples": [],
    }
    ctx.metadata["leakage"] = summary
    ids = data[ROW_ID]
    parents = data[PARENT_ID]
    texts = [""] * len(ids)
    if columns:
        values = [data[c] for c in columns]
        texts = ["\x1f".join(normalized_text(v[i]) for v in values) for i in range(len(ids))]
    split_of = {ids[i]: name for name, idx in indices.items() for i in idx}
    roots = dict(zip(ids, root_ids(ids, parents)))
    train_by_text: dict[str, str] = {}
    for i in indices.get("train", []):
        if texts[i].strip("\x1f"):
            train_by_text.setdefault(texts[i], ids[i])

    # (split, row index) -> (kind, detail)
    leaks: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
    for split in EVAL_SPLITS:
        for i in indices.get(split, []):
            text = texts[i]
            if text.strip("\x1f") and text in train_by_text:
                leaks[(split, i)] = ("exact_duplicate", {"train_row": train_by_text[text], "split": split})
                continue
            if parents[i] is not None:
                for relative in (parents[i], roots[ids[i]]):
                    other = split_of.get(relative)
                    if other is not None and other != split:
                        leaks[(split, i)] = ("derived_across_splits", {"related_row": relative, "related_split": other, "split": split})
                        break
    if near_threshold > 0 and columns:
        _near_duplicate_leaks(ids, texts, indices, leaks, near_threshold)

    # a copy of a leaking row leaks for the same reason: report it as such, once
    leaking_ids = {ids[i] for _, i in leaks}
    for split in EVAL_SPLITS:
        for i in indices.get(split, []):
            if parents[i] is None:
                continue
            source = next((r for r in (parents[i], roots[ids[i]]) if r in leaking_ids and split_of.get(r) == split), None)
            if source is not None:
                leaks[(split, i)] = ("derived_from_leak", {"leaking_row": source, "split": split})

    dropped: set[int] = set()
    by_reason: dict[str, tuple[list[str], list[dict[str, Any]]]] = defaultdict(lambda: ([], []))
    for (split, i), (kind, detail) in sorted(leaks.items()):
        summary[kind][split] += 1
        ctx.count(f"leak_{kind}", 1)
        if len(summary["examples"]) < _LEAK_EXAMPLES:
            summary["examples"].append({"id": ids[i], "kind": kind, **detail})
        if mode == "fix":
            dropped.add(i)
            by_reason[_LEAK_REASONS[kind]][0].append(ids[i])
            by_reason[_LEAK_REASONS[kind]][1].append(detail)
    for reason, (row_ids, details) in by_reason.items():
        ctx.drop(row_ids, reason, details)
    summary["dropped"] = len(dropped)
    if dropped:
        indices = {name: [i for i in idx if i not in dropped] for name, idx in indices.items()}
    return indices


_LEAK_REASONS = {
    "exact_duplicate": "leak: exact duplicate of a train row",
    "derived_across_splits": "leak: derived from a row in another split",
    "near_duplicate": "leak: near duplicate of a train row",
    "derived_from_leak": "leak: derived from a leaking row",
}


def _near_duplicate_leaks(
    ids: list[str],
    texts: list[str],
    indices: dict[str, list[int]],
    leaks: dict[tuple[str, int], tuple[str, dict[str, Any]]],
    threshold: float,
) -> None:
    from tunelab_builtin.near_dedup import cross_duplicates

    train = [i for i in indices.get("train", []) if texts[i].strip("\x1f")]
    if not train:
        return
    train_texts = [texts[i].replace("\x1f", " ") for i in train]
    for split in EVAL_SPLITS:
        candidates = [i for i in indices.get(split, []) if (split, i) not in leaks and texts[i].strip("\x1f")]
        if not candidates:
            continue
        pairs = cross_duplicates([texts[i].replace("\x1f", " ") for i in candidates], train_texts, threshold=threshold)
        best: dict[int, tuple[float, int]] = {}
        for a, b, similarity in pairs:
            if a not in best or similarity > best[a][0]:
                best[a] = (similarity, b)
        for a, (similarity, b) in best.items():
            leaks[(split, candidates[a])] = (
                "near_duplicate",
                {"train_row": ids[train[b]], "similarity": round(float(similarity), 3), "split": split},
            )


# --- splitters -------------------------------------------------------------------------


@dataclass
class StratifiedSplitConfig(SplitSafetyConfig):
    #: fraction of the original rows (per class) that go to validation
    validation: float = 0.1
    #: fraction of the original rows (per class) that go to test
    test: float = 0.1
    #: keep class proportions equal across splits (when the label column exists)
    stratify: bool = True
    #: label column; None uses pipeline.label_column
    label_column: Optional[str] = None


class StratifiedSplit(Splitter):
    """Train/validation/test split by class; a row and everything derived from it stay together."""

    def __init__(self, config: StratifiedSplitConfig):
        super().__init__(config)
        _check_safety("stratified", config)
        _check_fractions("stratified", config.validation, config.test)

    def split(self, data, ctx: StageContext):
        c = self.config
        column = c.label_column or ctx.label_column
        stratify_by = column if c.stratify and column in data.column_names else None
        assignment = deal_by_fraction(strata_of(data, stratify_by), c.validation, c.test, random.Random(ctx.seed))
        return assemble(data, ctx, assignment, c)


@dataclass
class RandomSplitConfig(SplitSafetyConfig):
    #: fraction of the original rows that go to validation
    validation: float = 0.1
    #: fraction of the original rows that go to test
    test: float = 0.1


class RandomSplit(Splitter):
    """Seeded random train/validation/test split without stratification."""

    def __init__(self, config: RandomSplitConfig):
        super().__init__(config)
        _check_safety("random", config)
        _check_fractions("random", config.validation, config.test)

    def split(self, data, ctx: StageContext):
        c = self.config
        assignment = deal_by_fraction(strata_of(data, None), c.validation, c.test, random.Random(ctx.seed))
        return assemble(data, ctx, assignment, c)


@dataclass
class GroupSplitConfig(SplitSafetyConfig):
    #: column naming the group (customer, ticket thread, document); all rows of a group land in one split
    group_column: str = "???"
    #: target fraction of the rows in validation (approximate: groups are not cut)
    validation: float = 0.1
    #: target fraction of the rows in test (approximate: groups are not cut)
    test: float = 0.1
    #: rows with an empty group value: "own" (each is a group of its own) or "error"
    missing_group: str = "own"


class GroupSplit(Splitter):
    """Group-aware split: every row of a group (customer, thread) lands in the same split."""

    def __init__(self, config: GroupSplitConfig):
        super().__init__(config)
        _check_safety("group", config)
        _check_fractions("group", config.validation, config.test)
        if config.missing_group not in ("own", "error"):
            raise ValueError(f"group.missing_group must be 'own' or 'error', got {config.missing_group!r}")
        if not config.group_column or config.group_column == "???":
            raise ValueError("group.group_column must name the column that holds the group, e.g. customer_id")

    def split(self, data, ctx: StageContext):
        c = self.config
        if c.group_column not in data.column_names:
            raise ValueError(
                f"group: group_column '{c.group_column}' not in the data (columns: {data.column_names}); "
                f"set pipeline.params.group.group_column"
            )
        ids = data[ROW_ID]
        values = data[c.group_column]
        members: dict[str, list[str]] = defaultdict(list)
        missing: list[str] = []
        for i in originals(data):
            value = values[i]
            if value is None or (isinstance(value, str) and not value.strip()):
                missing.append(ids[i])
                members[f"\x00{ids[i]}"].append(ids[i])  # a group of its own, never equal to a real value
            else:
                members[str(value)].append(ids[i])
        if missing and c.missing_group == "error":
            raise ValueError(
                f"group: {len(missing)} rows have no value in '{c.group_column}', e.g. {missing[:3]}; "
                "fill the column or set pipeline.params.group.missing_group=own"
            )
        # the units that move are the rows with all their derived rows
        roots = root_ids(ids, data[PARENT_ID])
        unit_size: dict[str, int] = defaultdict(int)
        for root in roots:
            unit_size[root] += 1
        groups = sorted(members)
        random.Random(ctx.seed).shuffle(groups)
        total = sum(unit_size[row_id] for group in groups for row_id in members[group])
        target = {"train": (1 - c.validation - c.test) * total, "validation": c.validation * total, "test": c.test * total}
        filled = {name: 0 for name in SPLITS}
        assignment: dict[str, str] = {}
        group_counts = {name: 0 for name in SPLITS}
        for position, group in enumerate(groups):
            size = sum(unit_size[row_id] for row_id in members[group])
            # the split furthest below its target takes the group (ties: test, validation, train)
            split = max(("test", "validation", "train"), key=lambda s: target[s] - filled[s])
            if group_counts["train"] == 0 and position == len(groups) - 1:
                split = "train"  # never leave training empty
            filled[split] += size
            group_counts[split] += 1
            for row_id in members[group]:
                assignment[row_id] = split
        ctx.count("groups", len(groups))
        ctx.count("rows without a group (own group)", len(missing))
        ctx.metadata["groups"] = group_counts
        return assemble(data, ctx, assignment, c)


@dataclass
class KFoldConfig(SplitSafetyConfig):
    #: number of folds
    k: int = 5
    #: the fold used as test split, 0 .. k-1 (sweep: +pipeline.params.kfold.fold=0,1,2,3,4)
    fold: int = 0
    #: fraction of the remaining (non-test) originals held out as validation; 0: no validation rows
    validation: float = 0.1
    #: shuffle the originals before dealing them into folds (otherwise they go in id order)
    shuffle: bool = True
    #: seed of the fold assignment; None uses the run seed (fix it to vary the seed on the same folds)
    shuffle_seed: Optional[int] = None


@dataclass
class StratifiedKFoldConfig(KFoldConfig):
    #: label column whose class proportions every fold keeps; None uses pipeline.label_column
    label_column: Optional[str] = None


class KFold(Splitter):
    """K-fold cross-validation: fold `fold` of `k` is test, validation comes from the rest."""

    #: the registered name, for messages
    component_name = "kfold"

    def __init__(self, config: KFoldConfig):
        super().__init__(config)
        name = self.component_name
        _check_safety(name, config)
        if config.k < 2:
            raise ValueError(f"{name}.k must be at least 2, got {config.k}")
        if not 0 <= config.fold < config.k:
            raise ValueError(f"{name}.fold must be in 0 .. k-1 = 0 .. {config.k - 1}, got {config.fold}")
        if not 0.0 <= config.validation < 1.0:
            raise ValueError(f"{name}.validation must be in [0, 1), got {config.validation}")

    def stratify_column(self, data, ctx: StageContext) -> Optional[str]:
        return None

    def split(self, data, ctx: StageContext):
        c = self.config
        seed = ctx.seed if c.shuffle_seed is None else c.shuffle_seed
        strata = strata_of(data, self.stratify_column(data, ctx))
        n = sum(len(m) for m in strata.values())
        if n < c.k:
            raise ValueError(f"{self.component_name}: k={c.k} folds need at least {c.k} original rows, found {n}; lower k")
        fold_of = assign_folds(strata, c.k, random.Random(seed) if c.shuffle else None)
        assignment: dict[str, str] = {}
        remaining: dict[str, list[str]] = defaultdict(list)
        for key, members in strata.items():
            for row_id in members:
                if fold_of[row_id] == c.fold:
                    assignment[row_id] = "test"
                else:
                    remaining[key].append(row_id)
        for key in sorted(remaining):
            # a stable per-row draw: which rows validate does not depend on row order
            pool = sorted(remaining[key], key=lambda row_id: (row_rng(seed, row_id, "validation").random(), row_id))
            n_val, _ = fraction_counts(len(pool), c.validation, 0.0)
            for position, row_id in enumerate(pool):
                assignment[row_id] = "validation" if position < n_val else "train"
        sizes = [0] * c.k
        for f in fold_of.values():
            sizes[f] += 1
        ctx.metadata["folds"] = {"k": c.k, "fold": c.fold, "fold_sizes": sizes}
        return assemble(data, ctx, assignment, c)


def assign_folds(strata: dict[str, list[str]], k: int, rng: Optional[random.Random]) -> dict[str, int]:
    """Deal original ids into ``k`` folds, stratum after stratum, round robin: every fold
    gets the same share of each stratum (+-1) and fold sizes differ by at most one."""
    fold_of: dict[str, int] = {}
    position = 0
    for key in sorted(strata):
        members = sorted(strata[key])
        if rng is not None:
            rng.shuffle(members)
        for row_id in members:
            fold_of[row_id] = position % k
            position += 1
    return fold_of


class StratifiedKFold(KFold):
    """K-fold cross-validation with class proportions kept in every fold."""

    component_name = "stratified_kfold"

    def stratify_column(self, data, ctx: StageContext) -> Optional[str]:
        column = self.config.label_column or ctx.label_column
        if column not in data.column_names:
            raise ValueError(
                f"stratified_kfold: label column '{column}' not in the data (columns: {data.column_names}); "
                "set pipeline.params.stratified_kfold.label_column, or use pipeline.split=kfold"
            )
        return column


COMPONENTS = [
    ("splitter", Component("stratified", StratifiedSplit, StratifiedSplitConfig)),
    ("splitter", Component("random", RandomSplit, RandomSplitConfig)),
    ("splitter", Component("group", GroupSplit, GroupSplitConfig)),
    ("splitter", Component("kfold", KFold, KFoldConfig)),
    ("splitter", Component("stratified_kfold", StratifiedKFold, StratifiedKFoldConfig)),
]
