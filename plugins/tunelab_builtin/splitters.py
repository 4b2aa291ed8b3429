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
from tunelab.data.labels import fold_key

from tunelab_builtin._lib.rows import row_rng, take_rows

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


# --- classes and splits too small ------------------------------------------------------

#: values of ``stratified.rare_classes``
RARE_CLASS_POLICIES = ("keep", "drop")


def rows_needed(validation: float, test: float, limit: int = 100_000) -> int:
    """The fewest rows a stratum needs so that every split with a fraction > 0 gets one
    (fractions round per stratum, and one row always stays for training)."""
    for n in range(1, limit):
        n_val, n_test = fraction_counts(n, validation, test)
        if (n_val or not validation) and (n_test or not test):
            return n
    return limit


def fraction_needed(n: int, split: str, validation: float, test: float) -> float | None:
    """The smallest fraction (in steps of 0.01) that gives ``split`` a row out of ``n``,
    the other fraction unchanged; None when no fraction can (one row is train's)."""
    other = test if split == "validation" else validation
    for hundredths in range(1, 100):
        f = hundredths / 100
        if f + other >= 1:
            return None
        n_val, n_test = fraction_counts(n, f, other) if split == "validation" else fraction_counts(n, other, f)
        if (n_val if split == "validation" else n_test) > 0:
            return f
    return None


def _labelled(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def short_classes(data: Any, column: str, strata: dict[str, list[str]], validation: float, test: float) -> dict[str, dict[str, Any]]:
    """Classes whose original rows are too few for a validation/test row of their own:
    label -> {"originals", "copies" (derived rows of the class), "missing" (split names)}.
    Rows without a label are not a class and are not listed."""
    labels = [v for v in data[column] if _labelled(v)]
    copies: dict[str, int] = defaultdict(int)
    for value, parent in zip(data[column], data[PARENT_ID]):
        if parent is not None and _labelled(value):
            copies[str(value)] += 1
    classes = {str(v) for v in labels}
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(classes & set(strata)):
        n_val, n_test = fraction_counts(len(strata[key]), validation, test)
        missing = [name for name, rows, f in (("validation", n_val, validation), ("test", n_test, test)) if f > 0 and not rows]
        if missing:
            out[key] = {"originals": len(strata[key]), "copies": copies.get(key, 0), "missing": missing}
    return out


def _class_list(short: dict[str, dict[str, Any]], limit: int = 10) -> str:
    parts = []
    for label, info in list(short.items())[:limit]:
        rows = f"{info['originals']} original row{'s' if info['originals'] != 1 else ''}"
        if info["copies"]:
            rows += f" + {info['copies']} derived cop{'ies' if info['copies'] != 1 else 'y'}"
        parts.append(f"{label!r} ({rows}; not in {' or '.join(info['missing'])})")
    more = f" and {len(short) - limit} more" if len(short) > limit else ""
    return ", ".join(parts) + more


def warn_short_classes(
    ctx: StageContext, step: str, short: dict[str, dict[str, Any]], all_classes: list[str], validation: float, test: float, dropped: bool
) -> None:
    """Warn (log and data report) about the classes :func:`short_classes` found, naming
    them, the splits they miss and fixes that change that."""
    if not short:
        return
    ctx.metadata["classes_only_in_train" if not dropped else "classes_dropped"] = {k: v for k, v in short.items()}
    needed = rows_needed(validation, test)
    spellings: dict[str, list[str]] = {}  # a short class with its case/spacing variants: label_case=fold merges them
    for label in dict.fromkeys(all_classes):
        spellings.setdefault(fold_key(label), []).append(label)
    folds = [sorted(group) for group in spellings.values() if len(group) > 1 and any(label in short for label in group)]
    if dropped:
        ctx.warn(
            f"{len(short)} classes had too few original rows for validation/test and were dropped with every row "
            f"derived from them (rare_classes=drop): {_class_list(short)}"
        )
        return
    hint = ""
    if folds:
        hint = " " + "; ".join(" and ".join(map(repr, group)) for group in folds) + \
            " differ only by case or spacing: pipeline.label_case=fold merges them."
    ctx.warn(
        f"{len(short)} class{'es have' if len(short) != 1 else ' has'} too few original rows to reach every split and "
        f"{'are' if len(short) != 1 else 'is'} in train only: {_class_list(short)}. No evaluation scores "
        f"{'them' if len(short) != 1 else 'it'}, and copies a balancer made (oversample) repeat the same text in train. "
        f"With validation={validation} and test={test} a class needs at least {needed} original rows.{hint} Fix: collect "
        f"at least {needed} rows per class, relabel these rows into another class, or drop these classes with "
        f"++pipeline.params.{step}.rare_classes=drop"
    )


def explain_empty_splits(
    ctx: StageContext,
    step: str,
    splits: dict[str, Any],
    fractions: dict[str, float],
    n_originals: int,
    strata: dict[str, list[str]] | None = None,
) -> None:
    """For each evaluation split with a fraction > 0 that came out empty: why, and a fix
    that would give it rows (``ctx.metadata["empty_splits"]`` and a warning). Found at
    prepare time, so a training run does not learn it after the model is loaded."""
    empty: dict[str, dict[str, str]] = {}
    leakage = ctx.metadata.get("leakage") or {}
    validation, test = fractions.get("validation", 0.0), fractions.get("test", 0.0)
    for split in EVAL_SPLITS:
        f = fractions.get(split, 0.0)
        if f <= 0 or len(splits.get(split, [])):
            continue
        leaked = sum(int((leakage.get(kind) or {}).get(split, 0)) for kind in ("exact_duplicate", "near_duplicate", "derived_across_splits"))
        if leaked:
            why = f"the leakage check dropped all {leaked} rows dealt to it (duplicates of train rows)"
            fix = (f"remove the duplicates before the split (exact_dedup and near_dedup in pipeline.clean) or keep "
                   f"them with ++pipeline.params.{step}.leakage=report")
        elif n_originals < 2:
            why = f"there {'is' if n_originals == 1 else 'are'} {n_originals} original row{'s' if n_originals != 1 else ''}, which training needs"
            fix = "collect more data"
        elif strata is not None and len(strata) > 1:
            largest = max(len(m) for m in strata.values())
            n_val, n_test = fraction_counts(n_originals, validation, test)
            unstratified = n_val if split == "validation" else n_test
            why = (f"a stratified split cuts each class on its own, and {f} of every class (the largest has {largest} "
                   f"original rows) rounds down to 0 rows")
            needed = fraction_needed(largest, split, validation, test)
            options = []
            if unstratified:
                options.append(f"pipeline.split=random (no stratification: {f} of all {n_originals} original rows "
                               f"gives it {unstratified})")
            if needed is not None:
                smallest = next(n for n in range(1, largest + 1) if fraction_counts(
                    n, *((needed, test) if split == "validation" else (validation, needed)))[split == "test"])
                options.append(f"++pipeline.params.{step}.{split}={needed} (one row from each class of at least "
                               f"{smallest} original rows)")
            options.append(f"collect at least {rows_needed(validation, test)} original rows per class")
            fix = ", or ".join(options)
        else:
            needed = fraction_needed(n_originals, split, validation, test)
            why = f"{f} of the {n_originals} original rows rounds down to 0 rows"
            fix = f"++pipeline.params.{step}.{split}={needed}" if needed is not None else "collect more data"
            fix += " or collect more data" if needed is not None else ""
        empty[split] = {"why": why, "fix": fix}
        ctx.warn(f"the '{split}' split is empty: {why}. Fix: {fix}")
    if empty:
        ctx.metadata["empty_splits"] = empty


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
    from tunelab_builtin._lib.minhash import cross_duplicates

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
    #: a class with too few original rows for a validation/test row: keep (in train only, with a warning) or drop it
    rare_classes: str = "keep"


class StratifiedSplit(Splitter):
    """Train/validation/test split by class; a row and everything derived from it stay together."""

    def __init__(self, config: StratifiedSplitConfig):
        super().__init__(config)
        _check_safety("stratified", config)
        _check_fractions("stratified", config.validation, config.test)
        if config.rare_classes not in RARE_CLASS_POLICIES:
            raise ValueError(f"stratified.rare_classes must be one of {', '.join(RARE_CLASS_POLICIES)}, got {config.rare_classes!r}")

    def split(self, data, ctx: StageContext):
        c = self.config
        step = ctx.step or "stratified"
        column = c.label_column or ctx.label_column
        stratify_by = column if c.stratify and column in data.column_names else None
        strata = strata_of(data, stratify_by)
        if stratify_by is not None:
            short = short_classes(data, stratify_by, strata, c.validation, c.test)
            if short and c.rare_classes == "drop":
                data = self._drop_classes(data, ctx, stratify_by, set(short))
                strata = {key: members for key, members in strata.items() if key not in short}
            warn_short_classes(ctx, step, short, sorted(strata) + sorted(short), c.validation, c.test, c.rare_classes == "drop")
        assignment = deal_by_fraction(strata, c.validation, c.test, random.Random(ctx.seed))
        splits = assemble(data, ctx, assignment, c)
        explain_empty_splits(ctx, step, splits, {"validation": c.validation, "test": c.test},
                             sum(len(m) for m in strata.values()), strata if stratify_by is not None else None)
        return splits

    @staticmethod
    def _drop_classes(data: Any, ctx: StageContext, column: str, classes: set[str]) -> Any:
        """Drop the rows of ``classes`` and every row derived from one (rare_classes=drop)."""
        ids, parents, labels = data[ROW_ID], data[PARENT_ID], data[column]
        rare_roots = {row_id for row_id, parent, label in zip(ids, parents, labels) if parent is None and _labelled(label) and str(label) in classes}
        roots = root_ids(ids, parents)
        drop = [i for i, (label, root) in enumerate(zip(labels, roots)) if root in rare_roots or (_labelled(label) and str(label) in classes)]
        ctx.drop([ids[i] for i in drop], "class too small for validation/test (rare_classes=drop)", [{"label": str(labels[i])} for i in drop])
        dropped = set(drop)
        return take_rows(data, [i for i in range(len(data)) if i not in dropped])


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
        strata = strata_of(data, None)
        assignment = deal_by_fraction(strata, c.validation, c.test, random.Random(ctx.seed))
        splits = assemble(data, ctx, assignment, c)
        explain_empty_splits(ctx, ctx.step or "random", splits, {"validation": c.validation, "test": c.test},
                             sum(len(m) for m in strata.values()))
        return splits


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
