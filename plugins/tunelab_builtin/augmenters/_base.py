"""The skeleton of every augmenter except ``template``: :class:`RowAugmenter` picks rows
(``fraction``, or ``class_fractions`` per label, decided per row from the seed and the row
id so the choice does not depend on row order), asks the subclass for ``per_row``
rewritten copies of the ``fields`` in one bulk call, keeps the copies that differ from
their parent and from their siblings, and appends them with the id ``<parent>~<op><k>``
and ``parent_id`` = the parent. :class:`TextAugmenter` is its rule-based form, which
rewrites one text at a time with a generator seeded by (seed, parent id, copy, column).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

from tunelab.api import PARENT_ID, PROMPT, ROW_ID, Augmenter, StageContext
from tunelab_builtin._lib.rows import append_rows, row_rng, take_rows

log = logging.getLogger(__name__)


@dataclass
class AugmentConfig:
    #: text columns to rewrite; every other column is copied from the parent row
    fields: list[str] = field(default_factory=lambda: [PROMPT])
    #: fraction of the eligible rows that get augmented copies (chosen per row from the seed and the row id)
    fraction: float = 0.2
    #: per-label fractions that override ``fraction`` for those labels (labels from pipeline.label_column),
    #: e.g. {billing: 1.0}
    class_fractions: dict[str, float] = field(default_factory=dict)
    #: augmented copies made per selected row
    per_row: int = 1
    #: augment original rows only (parent_id empty), never rows an earlier step derived
    only_originals: bool = True


@dataclass
class Rewrite:
    """One text to rewrite: column ``column`` of row ``parent``, for copy ``copy``."""

    parent: str
    #: the number in the new row's id ``<parent>~<op><copy>``
    copy: int
    column: str
    text: str


def _check_fraction(value: Any, param: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{param} must be a number between 0 and 1, got {value!r}")


def check_choices(values: list[str], allowed: tuple[str, ...], param: str) -> None:
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise ValueError(f"{param} must be a non-empty subset of [{', '.join(allowed)}], got {list(values)}")


def with_lineage(data: Any, op: str) -> Any:
    """``data`` with its id columns checked, and ``parent_id`` typed as text even when
    every value is None (so derived rows can be appended)."""
    missing = [c for c in (ROW_ID, PARENT_ID) if c not in data.column_names]
    if missing:
        raise ValueError(f"{op}: the data lacks the column(s) {missing}; augmenters need row ids and parent ids")
    if getattr(data.features[PARENT_ID], "dtype", None) == "null":
        from datasets import Value

        data = data.cast_column(PARENT_ID, Value("string"))
    return data


class RowAugmenter(Augmenter):
    """Base of the augmenters that derive copies of existing rows (not a component)."""

    #: the id tag of derived rows, ``<parent>~<op><k>``; also the prefix of error messages
    op: str = ""

    def __init__(self, config: AugmentConfig):
        super().__init__(config)
        c = config
        if not c.fields or not all(isinstance(f, str) and f for f in c.fields):
            raise ValueError(f"{self.op}.fields must list at least one column name, got {c.fields!r}")
        _check_fraction(c.fraction, f"{self.op}.fraction")
        for label, value in c.class_fractions.items():
            _check_fraction(value, f"{self.op}.class_fractions.{label}")
        if c.per_row < 1:
            raise ValueError(f"{self.op}.per_row must be at least 1, got {c.per_row}")

    # subclasses implement this: one output per request, None where no rewrite was made
    def rewrite(self, requests: list[Rewrite], ctx: StageContext) -> list[Optional[str]]:  # pragma: no cover
        raise NotImplementedError

    def rng(self, ctx: StageContext, request: Rewrite) -> random.Random:
        return row_rng(ctx.seed, request.parent, self.op, request.copy, request.column)

    def check_columns(self, data: Any) -> None:
        missing = [f for f in self.config.fields if f not in data.column_names]
        if missing:
            raise ValueError(
                f"{self.op}: column(s) {missing} not in the data (columns: {data.column_names}); "
                f"set pipeline.params.{self.op}.fields to text columns that exist"
            )
        for column in self.config.fields:
            dtype = getattr(data.features[column], "dtype", None)
            if dtype not in ("string", "large_string", "null"):  # null: every value is None
                raise ValueError(
                    f"{self.op}: column '{column}' holds {data.features[column]}, not text; "
                    f"augmenters rewrite text columns only, so remove '{column}' from pipeline.params.{self.op}.fields"
                )

    def select(self, data: Any, ctx: StageContext) -> list[tuple[int, list[int]]]:
        """The rows to augment and the copy numbers each gets (numbers whose ids are free)."""
        c = self.config
        ids = list(data[ROW_ID])
        parents = list(data[PARENT_ID])
        labels: list[Any] | None = None
        if c.class_fractions:
            if ctx.label_column not in data.column_names:
                raise ValueError(
                    f"{self.op}.class_fractions needs the label column '{ctx.label_column}', which the data lacks "
                    f"(columns: {data.column_names}); set pipeline.label_column or remove class_fractions"
                )
            labels = [None if v is None else str(v) for v in data[ctx.label_column]]
            unused = sorted(set(c.class_fractions) - set(labels))
            if unused:
                log.warning("%s: class_fractions names labels not in the data: %s", self.op, unused)
                ctx.metadata["class_fractions_unused"] = unused
        taken = set(ids)
        plan = []
        for index, row_id in enumerate(ids):
            if c.only_originals and parents[index] is not None:
                continue
            fraction = c.fraction
            if labels is not None and labels[index] in c.class_fractions:
                fraction = c.class_fractions[labels[index]]
            if row_rng(ctx.seed, row_id, self.op, "pick").random() >= fraction:
                continue
            copies = []
            number = 0
            while len(copies) < c.per_row:
                number += 1
                # an earlier step of the same component (an alias) may hold the low numbers
                if f"{row_id}~{self.op}{number}" not in taken:
                    copies.append(number)
            plan.append((index, copies))
        return plan

    def apply(self, data: Any, ctx: StageContext) -> Any:
        data = with_lineage(data, self.op)
        self.check_columns(data)
        fields = self.config.fields
        plan = self.select(data, ctx)
        ids = list(data[ROW_ID])
        columns = {column: list(data[column]) for column in fields}
        requests: list[Rewrite] = []
        blank = 0
        for index, copies in plan:
            for column in fields:
                text = columns[column][index]
                if text is None or not text.strip():
                    blank += 1  # nothing to rewrite; the column stays as the parent has it
                    continue
                requests += [Rewrite(ids[index], copy, column, text) for copy in copies]
        outputs = self.rewrite(requests, ctx) if requests else []
        if len(outputs) != len(requests):  # a broken subclass, not bad input
            raise RuntimeError(f"{self.op}: rewrite() returned {len(outputs)} texts for {len(requests)} requests")
        produced: dict[tuple[str, int], dict[str, str]] = {}
        for request, output in zip(requests, outputs):
            if output is not None:
                produced.setdefault((request.parent, request.copy), {})[request.column] = output

        children: list[dict[str, Any]] = []
        identical = duplicates = 0
        by_label: Counter[str] = Counter()
        rows = take_rows(data, [index for index, _ in plan]).to_list() if plan else []
        for (index, copies), row in zip(plan, rows):
            siblings: set[tuple[Any, ...]] = set()
            for copy in copies:
                changes = {k: v for k, v in produced.get((ids[index], copy), {}).items() if v != row[k]}
                if not changes:
                    if (ids[index], copy) in produced:
                        identical += 1
                    continue
                child = {**row, **changes}
                signature = tuple(child[f] for f in fields)
                if signature in siblings:
                    duplicates += 1
                    continue
                siblings.add(signature)
                child[ROW_ID] = f"{ids[index]}~{self.op}{copy}"
                child[PARENT_ID] = ids[index]
                children.append(child)
                first = next(f for f in fields if f in changes)
                ctx.example(child[ROW_ID], row[first], child[first])
                if ctx.label_column in row:
                    by_label[str(row[ctx.label_column])] += 1
        ctx.count("rows_selected", len(plan))
        ctx.count("rows_augmented", len(children))
        for name, n in (("skipped_identical", identical), ("skipped_duplicate", duplicates), ("skipped_blank", blank)):
            if n:
                ctx.count(name, n)
        if by_label:
            ctx.metadata["augmented_by_label"] = dict(sorted(by_label.items()))
        return append_rows(data, children)


class TextAugmenter(RowAugmenter):
    """A rule-based augmenter: rewrites one text at a time with its own seeded generator."""

    def rewrite_text(self, text: str, rng: random.Random) -> str:  # pragma: no cover - contract
        raise NotImplementedError

    def rewrite(self, requests: list[Rewrite], ctx: StageContext) -> list[Optional[str]]:
        return [self.rewrite_text(r.text, self.rng(ctx, r)) for r in requests]
