"""Augmentation (EDA), balancing (random oversampling) and the stratified splitter.

Derived rows get a new id ``<parent>~<op><n>`` and ``parent_id`` = the row they came
from. Randomness is seeded per row (seed + row id), so results do not depend on row
order or worker count.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

from tunelab.api import PARENT_ID, PROMPT, ROW_ID, Augmenter, Balancer, Splitter, StageContext


def row_rng(seed: int, *parts: Any) -> random.Random:
    digest = hashlib.blake2b(":".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _concat(data: Any, children: list[dict[str, Any]]) -> Any:
    from datasets import Dataset, concatenate_datasets

    if not children:
        return data
    extra = Dataset.from_list(children, features=data.features)
    return concatenate_datasets([data, extra])


# --- EDA ------------------------------------------------------------------------------


@dataclass
class EdaConfig:
    #: text columns to perturb
    fields: list[str] = field(default_factory=lambda: [PROMPT])
    #: fraction of original rows that get augmented copies
    fraction: float = 0.2
    #: augmented copies per selected row
    per_row: int = 1
    #: fraction of the words each operation touches (EDA's alpha)
    alpha: float = 0.1
    #: any of swap, delete, insert (random insertion of a word from the same text)
    operations: list[str] = field(default_factory=lambda: ["swap", "delete", "insert"])


class Eda(Augmenter):
    """Easy Data Augmentation without a thesaurus: random swap, deletion and insertion."""

    def __init__(self, config: EdaConfig):
        super().__init__(config)
        unknown = set(config.operations) - {"swap", "delete", "insert"}
        if unknown or not config.operations:
            raise ValueError(f"eda.operations must be a non-empty subset of [swap, delete, insert], got {config.operations}")
        if not 0.0 <= config.fraction <= 1.0 or not 0.0 < config.alpha <= 1.0:
            raise ValueError("eda.fraction must be in [0, 1] and eda.alpha in (0, 1]")

    def perturb(self, text: str, rng: random.Random) -> str:
        words = text.split()
        if len(words) < 2:
            return text
        n = max(1, int(round(self.config.alpha * len(words))))
        operation = rng.choice(self.config.operations)
        for _ in range(n):
            if operation == "swap":
                i, j = rng.sample(range(len(words)), 2)
                words[i], words[j] = words[j], words[i]
            elif operation == "delete" and len(words) > 1:
                del words[rng.randrange(len(words))]
            elif operation == "insert":
                words.insert(rng.randrange(len(words) + 1), rng.choice(words))
        return " ".join(words)

    def apply(self, data, ctx: StageContext):
        missing = [f for f in self.config.fields if f not in data.column_names]
        if missing:
            raise ValueError(f"eda: column(s) {missing} not in the data (columns: {data.column_names})")
        children = []
        for row in data:
            if row[PARENT_ID] is not None:
                continue  # augment originals only
            if row_rng(ctx.seed, row[ROW_ID], "pick").random() >= self.config.fraction:
                continue
            for k in range(1, self.config.per_row + 1):
                rng = row_rng(ctx.seed, row[ROW_ID], k)
                child = dict(row)
                for column in self.config.fields:
                    if isinstance(row[column], str):
                        child[column] = self.perturb(row[column], rng)
                if all(child[c] == row[c] for c in self.config.fields):
                    continue  # too short to change: a copy would only duplicate
                child[ROW_ID] = f"{row[ROW_ID]}~eda{k}"
                child[PARENT_ID] = row[ROW_ID]
                children.append(child)
                if len(children) <= 3:
                    ctx.example(child[ROW_ID], str(row[self.config.fields[0]]), str(child[self.config.fields[0]]))
        ctx.count("rows_augmented", len(children))
        return _concat(data, children)


# --- random oversampling ----------------------------------------------------------------


@dataclass
class OversampleConfig:
    #: label column; None uses pipeline.label_column
    label_column: Optional[str] = None
    #: every class is raised to at least this fraction of the largest class
    target_ratio: float = 1.0


class Oversample(Balancer):
    """Random oversampling of minority classes (copies keep parent_id)."""

    def apply(self, data, ctx: StageContext):
        column = self.config.label_column or ctx.label_column
        if column not in data.column_names:
            raise ValueError(f"oversample: label column '{column}' not in the data (columns: {data.column_names})")
        if not 0.0 < self.config.target_ratio <= 1.0:
            raise ValueError("oversample.target_ratio must be in (0, 1]")
        by_label: dict[str, list[int]] = defaultdict(list)
        for i, label in enumerate(data[column]):
            if label is not None:
                by_label[str(label)].append(i)
        if not by_label:
            return data
        target = int(self.config.target_ratio * max(len(v) for v in by_label.values()))
        rng = random.Random(ctx.seed)
        ids = data[ROW_ID]
        copies: dict[str, int] = defaultdict(int)
        picks: list[int] = []
        for label in sorted(by_label):
            members = by_label[label]
            picks += [rng.choice(members) for _ in range(max(0, target - len(members)))]
        children = []
        for i in picks:
            row = data[i]
            copies[ids[i]] += 1
            row[ROW_ID] = f"{ids[i]}~dup{copies[ids[i]]}"
            row[PARENT_ID] = ids[i]
            children.append(row)
        ctx.count("rows_oversampled", len(children))
        return _concat(data, children)


# --- stratified, group-aware split --------------------------------------------------------


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
