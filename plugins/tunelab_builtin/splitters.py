"""Splitters: partition the prepared rows into train/validation/test."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

from tunelab.api import PARENT_ID, ROW_ID, Component, Splitter, StageContext


@dataclass
class StratifiedSplitConfig:
    validation: float = 0.1
    test: float = 0.1
    #: keep class proportions equal across splits (when the label column exists)
    stratify: bool = True
    #: label column; None uses pipeline.label_column
    label_column: Optional[str] = None
    #: derived rows whose original landed in validation/test: drop (default) or keep there
    eval_derived: str = "drop"


class StratifiedSplit(Splitter):
    """Train/validation/test split by class; a row and everything derived from it stay together."""

    def split(self, data, ctx: StageContext):
        c = self.config
        if c.eval_derived not in ("drop", "keep"):
            raise ValueError("stratified.eval_derived must be 'drop' or 'keep'")
        if c.validation < 0 or c.test < 0 or c.validation + c.test >= 1:
            raise ValueError("stratified: validation and test fractions must be >= 0 and sum to less than 1")
        ids = data[ROW_ID]
        parents = data[PARENT_ID]
        parent_of = dict(zip(ids, parents))

        def root(row_id: str) -> str:
            seen = set()
            while parent_of.get(row_id) is not None and row_id not in seen:
                seen.add(row_id)
                row_id = parent_of[row_id]
            return row_id

        roots = [root(i) for i in ids]
        column = c.label_column or ctx.label_column
        labels = data[column] if c.stratify and column in data.column_names else [None] * len(ids)
        label_of_root = {row_id: str(label) for row_id, parent, label in zip(ids, parents, labels) if parent is None}
        strata: dict[str, list[str]] = defaultdict(list)
        for row_id, parent in zip(ids, parents):
            if parent is None:
                strata[label_of_root[row_id]].append(row_id)
        assignment: dict[str, str] = {}
        rng = random.Random(ctx.seed)
        for label in sorted(strata):
            members = sorted(strata[label])
            rng.shuffle(members)
            n = len(members)
            n_test = int(round(c.test * n))
            n_val = int(round(c.validation * n))
            if n - n_test - n_val < 1:  # a class this small still needs a training example
                n_test, n_val = min(n_test, max(0, n - 1)), 0
                n_val = min(n_val, max(0, n - 1 - n_test))
            for row_id in members[:n_test]:
                assignment[row_id] = "test"
            for row_id in members[n_test : n_test + n_val]:
                assignment[row_id] = "validation"
            for row_id in members[n_test + n_val :]:
                assignment[row_id] = "train"
        indices: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
        dropped: list[str] = []
        for i, (row_id, parent, row_root) in enumerate(zip(ids, parents, roots)):
            split = assignment[row_root]
            if parent is not None and split != "train" and c.eval_derived == "drop":
                dropped.append(row_id)
                continue
            indices[split].append(i)
        ctx.drop(dropped, "derived from a validation/test row")
        return {name: data.select(idx) for name, idx in indices.items()}


COMPONENTS = [("splitter", Component("stratified", StratifiedSplit, StratifiedSplitConfig))]
