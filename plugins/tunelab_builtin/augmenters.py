"""Augmenters: derived rows that keep ``parent_id``."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tunelab.api import PARENT_ID, PROMPT, ROW_ID, Augmenter, Component, StageContext

from tunelab_builtin.derive import append_rows, row_rng


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
        return append_rows(data, children)




COMPONENTS = [("augmenter", Component("eda", Eda, EdaConfig))]
