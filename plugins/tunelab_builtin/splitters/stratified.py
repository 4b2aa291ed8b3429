"""The ``stratified`` splitter: train/validation/test by class, with the warning (or the
drop, ``rare_classes: drop``) for classes too small to reach every split."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Optional

from tunelab.api import PARENT_ID, ROW_ID, Splitter, StageContext
from tunelab.data.labels import fold_key
from tunelab_builtin._lib.rows import take_rows
from tunelab_builtin.splitters._assign import assemble, deal_by_fraction, fraction_counts, strata_of
from tunelab_builtin.splitters._config import SplitSafetyConfig, check_fractions, check_safety
from tunelab_builtin.splitters._empty_splits import explain_empty_splits, rows_needed
from tunelab_builtin.splitters._lineage import root_ids

#: values of ``stratified.rare_classes``
RARE_CLASS_POLICIES = ("keep", "drop")


def _labelled(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def short_classes(
    data: Any, column: str, strata: dict[str, list[str]], validation: float, test: float
) -> dict[str, dict[str, Any]]:
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
        missing = [
            name for name, rows, f in (("validation", n_val, validation), ("test", n_test, test)) if f > 0 and not rows
        ]
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
    ctx: StageContext,
    step: str,
    short: dict[str, dict[str, Any]],
    all_classes: list[str],
    validation: float,
    test: float,
    dropped: bool,
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
        hint = (
            " "
            + "; ".join(" and ".join(map(repr, group)) for group in folds)
            + " differ only by case or spacing: pipeline.label_case=fold merges them."
        )
    ctx.warn(
        f"{len(short)} class{'es have' if len(short) != 1 else ' has'} too few original rows to reach every split and "
        f"{'are' if len(short) != 1 else 'is'} in train only: {_class_list(short)}. No evaluation scores "
        f"{'them' if len(short) != 1 else 'it'}, "
        "and copies a balancer made (oversample) repeat the same text in train. "
        f"With validation={validation} and test={test} a class needs at least {needed} original rows.{hint} "
        "Fix: collect "
        f"at least {needed} rows per class, relabel these rows into another class, or drop these classes with "
        f"++pipeline.params.{step}.rare_classes=drop"
    )


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
        check_safety("stratified", config)
        check_fractions("stratified", config.validation, config.test)
        if config.rare_classes not in RARE_CLASS_POLICIES:
            raise ValueError(
                f"stratified.rare_classes must be one of {', '.join(RARE_CLASS_POLICIES)}, got {config.rare_classes!r}"
            )

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
            warn_short_classes(
                ctx, step, short, sorted(strata) + sorted(short), c.validation, c.test, c.rare_classes == "drop"
            )
        assignment = deal_by_fraction(strata, c.validation, c.test, random.Random(ctx.seed))
        splits = assemble(data, ctx, assignment, c)
        explain_empty_splits(
            ctx,
            step,
            splits,
            {"validation": c.validation, "test": c.test},
            sum(len(m) for m in strata.values()),
            strata if stratify_by is not None else None,
        )
        return splits

    @staticmethod
    def _drop_classes(data: Any, ctx: StageContext, column: str, classes: set[str]) -> Any:
        """Drop the rows of ``classes`` and every row derived from one (rare_classes=drop)."""
        ids, parents, labels = data[ROW_ID], data[PARENT_ID], data[column]
        rare_roots = {
            row_id
            for row_id, parent, label in zip(ids, parents, labels)
            if parent is None and _labelled(label) and str(label) in classes
        }
        roots = root_ids(ids, parents)
        drop = [
            i
            for i, (label, root) in enumerate(zip(labels, roots))
            if root in rare_roots or (_labelled(label) and str(label) in classes)
        ]
        ctx.drop(
            [ids[i] for i in drop],
            "class too small for validation/test (rare_classes=drop)",
            [{"label": str(labels[i])} for i in drop],
        )
        dropped = set(drop)
        return take_rows(data, [i for i in range(len(data)) if i not in dropped])
