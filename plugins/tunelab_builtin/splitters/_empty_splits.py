"""Splits that came out too small: how many rows a stratum needs for every split, and why
an evaluation split is empty with a fix (warning and ``metadata.empty_splits``)."""

from __future__ import annotations

from typing import Any

from tunelab.api import StageContext
from tunelab_builtin.splitters._assign import fraction_counts
from tunelab_builtin.splitters._config import EVAL_SPLITS


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
        leaked = sum(
            int((leakage.get(kind) or {}).get(split, 0))
            for kind in ("exact_duplicate", "near_duplicate", "derived_across_splits")
        )
        if leaked:
            why = f"the leakage check dropped all {leaked} rows dealt to it (duplicates of train rows)"
            fix = (
                f"remove the duplicates before the split (exact_dedup and near_dedup in pipeline.clean) or keep "
                f"them with ++pipeline.params.{step}.leakage=report"
            )
        elif n_originals < 2:
            why = (
                f"there {'is' if n_originals == 1 else 'are'} {n_originals} "
                f"original row{'s' if n_originals != 1 else ''}, which training needs"
            )
            fix = "collect more data"
        elif strata is not None and len(strata) > 1:
            largest = max(len(m) for m in strata.values())
            n_val, n_test = fraction_counts(n_originals, validation, test)
            unstratified = n_val if split == "validation" else n_test
            why = (
                f"a stratified split cuts each class on its own, and {f} of every class (the largest has {largest} "
                f"original rows) rounds down to 0 rows"
            )
            needed = fraction_needed(largest, split, validation, test)
            options = []
            if unstratified:
                options.append(
                    f"pipeline.split=random (no stratification: {f} of all {n_originals} original rows "
                    f"gives it {unstratified})"
                )
            if needed is not None:
                smallest = next(
                    n
                    for n in range(1, largest + 1)
                    if fraction_counts(n, *((needed, test) if split == "validation" else (validation, needed)))[
                        split == "test"
                    ]
                )
                options.append(
                    f"++pipeline.params.{step}.{split}={needed} (one row from each class of at least "
                    f"{smallest} original rows)"
                )
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
