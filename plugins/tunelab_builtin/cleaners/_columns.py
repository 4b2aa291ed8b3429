"""Shared by the cleaners: checking and reading the columns a step works on, the worker
processes a batched pass uses, and the bookkeeping of the rows a pass changed."""

from __future__ import annotations

from typing import Any

from tunelab.api import CANONICAL_TEXT_COLUMNS, StageContext

#: helper column in which a batched pass marks the rows it changed (a flag or a count per row)
CHANGED = "__tunelab_changed"


def require_columns(data: Any, columns: list[str], step: str) -> None:
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise ValueError(
            f"{step}: column(s) {missing} not in the data (columns: {data.column_names}); "
            f"set pipeline.params.{step}.fields to existing columns"
        )


def columns_as_lists(data: Any, *columns: str) -> list[list[Any]]:
    """Whole columns as Python lists, in one Arrow conversion. (Iterating or indexing a
    datasets ``Column`` formats one row at a time: ~20x slower on large data.)"""
    table = data.select_columns(list(dict.fromkeys(columns))).to_dict()
    return [table[c] for c in columns]


_TEXT_DTYPES = ("string", "large_string", "null")  # "null": every value is None


def text_fields(data: Any, fields: list[str], step: str) -> list[str]:
    """The text columns a step works on: ``fields``, or (when empty) every canonical
    text column the data has. Each must exist and hold strings (or only None)."""
    chosen = list(fields) or [c for c in CANONICAL_TEXT_COLUMNS if c in data.column_names]
    if not chosen:
        raise ValueError(
            f"{step}: the data has none of the text columns {list(CANONICAL_TEXT_COLUMNS)} "
            f"(columns: {data.column_names}); set pipeline.params.{step}.fields to the columns to check"
        )
    require_columns(data, chosen, step)
    for column in chosen:
        feature = data.features[column]
        if getattr(feature, "dtype", None) not in _TEXT_DTYPES:
            raise ValueError(
                f"{step}: column '{column}' holds {feature} values, not text; "
                f"set pipeline.params.{step}.fields to text columns only, or convert '{column}' to strings "
                "in the collector"
            )
    return chosen


def procs(ctx: StageContext, data: Any) -> int | None:
    # worker processes only pay off on larger data
    return ctx.num_proc if ctx.num_proc > 1 and len(data) >= 10_000 else None


def record_changes(
    ctx: StageContext,
    before: Any,
    after: Any,
    ids: list[str],
    changed: list[int],
    what: str,
    fields: list[str],
    detail: list[dict[str, Any]] | None = None,
) -> None:
    """The rows at positions ``changed`` were edited: they go to the ledger as ``what`` (with
    ``detail``, one dict per row, where given), and the first five to the step's examples,
    each showing the first of ``fields`` that differs between ``before`` and ``after``."""
    ctx.modified([ids[i] for i in changed], what, detail)
    for i in changed[:5]:
        old, new = before[i], after[i]
        column = next((c for c in fields if old[c] != new[c]), fields[0])
        ctx.example(ids[i], repr(old[column]), repr(new[column]))
