"""``greeting_prefix``: adds copies of rows whose text opens with a greeting.

Real support messages often start with "Hi!" or "Hello!"; a model trained only on bare
questions may treat the greeting as content. For a share of the original rows (chosen
per row from the seed and the row id, so the choice does not depend on row order) the
augmenter appends one copy with a greeting in front of each of ``fields``.

Every new row follows tunelab's rule for derived rows: a new ``id``
(``<parent id>~greet<n>``) and ``parent_id`` = the row it was made from, so the ledger
accounts for it and the splitter keeps it in its parent's split.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from tunelab.api import PARENT_ID, PROMPT, ROW_ID, Augmenter, StageContext
from tunelab_example.cleaners import check_text_columns

#: the id tag of derived rows: ``<parent>~greet<n>``
ID_TAG = "greet"


@dataclass
class GreetingPrefixConfig:
    #: text columns that get the greeting (the customer's side of a conversation: prompt)
    fields: list[str] = field(default_factory=lambda: [PROMPT])
    #: share of the eligible rows that get a greeted copy (0 to 1)
    fraction: float = 0.2
    #: the greetings to choose from, one per copy (chosen per row from the seed)
    greetings: list[str] = field(default_factory=lambda: ["Hi!", "Hello!", "Hi there!", "Good morning!"])
    #: greet original rows only, never rows an earlier step derived
    only_originals: bool = True


def row_rng(seed: int, row_id: str) -> random.Random:
    """A generator determined by the seed and the row id only."""
    digest = hashlib.blake2b(f"{seed}:{row_id}:{ID_TAG}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def greet(text: str, greeting: str) -> str | None:
    """``text`` with ``greeting`` in front; None when it is blank or already starts with it."""
    if text is None or not text.strip():
        return None
    if text.lstrip().casefold().startswith(greeting.casefold()):
        return None
    return f"{greeting} {text.lstrip()}"


class GreetingPrefix(Augmenter):
    """Adds copies of a share of the rows with a greeting in front of the prompt (parent_id kept)."""

    def __init__(self, config: GreetingPrefixConfig):
        super().__init__(config)
        c = config
        if not c.fields or not all(isinstance(f, str) and f for f in c.fields):
            raise ValueError(f"greeting_prefix.fields must list at least one column name, got {c.fields!r}")
        if isinstance(c.fraction, bool) or not isinstance(c.fraction, (int, float)) or not 0 <= c.fraction <= 1:
            raise ValueError(f"greeting_prefix.fraction must be a number between 0 and 1, got {c.fraction!r}")
        if not c.greetings or not all(isinstance(g, str) and g.strip() for g in c.greetings):
            raise ValueError(
                f"greeting_prefix.greetings must list at least one non-blank greeting, got {c.greetings!r}"
            )

    def apply(self, data: Any, ctx: StageContext) -> Any:
        step = ctx.step or "greeting_prefix"
        fields = list(self.config.fields)
        check_text_columns(data, fields, step)
        for column in (ROW_ID, PARENT_ID):
            if column not in data.column_names:
                raise ValueError(
                    f"{step}: the data lacks the '{column}' column; augmenters need row ids and parent ids"
                )
        if getattr(data.features[PARENT_ID], "dtype", None) == "null":  # every parent_id None: type it as text
            from datasets import Value

            data = data.cast_column(PARENT_ID, Value("string"))
        lineage = data.select_columns([ROW_ID, PARENT_ID]).to_dict()  # one Arrow conversion, not one per row
        ids, parents = lineage[ROW_ID], lineage[PARENT_ID]
        taken = set(ids)
        chosen: list[int] = []
        greetings: list[str] = []
        for index, row_id in enumerate(ids):
            if self.config.only_originals and parents[index] is not None:
                continue
            rng = row_rng(ctx.seed, row_id)
            if rng.random() >= self.config.fraction:
                continue
            chosen.append(index)
            greetings.append(rng.choice(self.config.greetings))
        if not chosen:
            ctx.count("rows_augmented", 0)
            return data
        children: list[dict[str, Any]] = []
        for row, greeting in zip(data.select(chosen).to_list(), greetings):
            changes = {column: greet(row[column], greeting) for column in fields}
            changes = {column: text for column, text in changes.items() if text is not None}
            if not changes:
                ctx.count("skipped_blank_or_greeted", 1)
                continue
            number = 1  # an earlier step of this component (an alias) may hold ~greet1
            while f"{row[ROW_ID]}~{ID_TAG}{number}" in taken:
                number += 1
            child = {**row, **changes, ROW_ID: f"{row[ROW_ID]}~{ID_TAG}{number}", PARENT_ID: row[ROW_ID]}
            taken.add(child[ROW_ID])
            children.append(child)
            first = next(iter(changes))
            ctx.example(child[ROW_ID], row[first], child[first])
        ctx.count("rows_augmented", len(children))
        if not children:
            return data
        from datasets import Dataset, concatenate_datasets

        return concatenate_datasets([data, Dataset.from_list(children, features=data.features)])
