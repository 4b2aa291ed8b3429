"""The ``kfold`` and ``stratified_kfold`` splitters: k-fold cross-validation, fold ``fold``
of ``k`` is test; ``stratified_kfold`` keeps the class proportions in every fold."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

from tunelab.api import Splitter, StageContext
from tunelab_builtin._lib.rows import row_rng
from tunelab_builtin.splitters._assign import assemble, fraction_counts, strata_of
from tunelab_builtin.splitters._config import SplitSafetyConfig, check_safety


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
        check_safety(name, config)
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
            raise ValueError(
                f"{self.component_name}: k={c.k} folds need at least {c.k} original rows, found {n}; lower k"
            )
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
