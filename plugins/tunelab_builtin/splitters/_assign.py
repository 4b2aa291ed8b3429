"""Split assignment: original rows dealt into train/validation/test by fraction (per
stratum), and the splits built from such an assignment (derived rows follow their root,
then the leakage check)."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, Optional

from tunelab.api import PARENT_ID, ROW_ID, StageContext
from tunelab_builtin._lib.rows import take_rows
from tunelab_builtin.splitters._config import SPLITS, SplitSafetyConfig
from tunelab_builtin.splitters._leakage import check_leakage
from tunelab_builtin.splitters._lineage import originals, root_ids


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
