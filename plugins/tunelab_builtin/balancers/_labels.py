"""The balancers' label column and the rows of each class (rows without a label are left out)."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Optional

from tunelab.api import StageContext

log = logging.getLogger(__name__)


def label_column_of(data: Any, configured: Optional[str], ctx: StageContext, step: str) -> str:
    column = configured or ctx.label_column
    if column not in data.column_names:
        raise ValueError(
            f"{step}: label column '{column}' not in the data (columns: {data.column_names}); "
            f"set pipeline.label_column or pipeline.params.{step}.label_column"
        )
    return column


def label_column_or_none(data: Any, configured: Optional[str], ctx: StageContext, step: str) -> Optional[str]:
    """The label column, or None when the data has no ``pipeline.label_column`` and the step
    names none of its own: unlabelled data has nothing to balance, as with rows whose label
    is blank. A column the step names itself must exist."""
    if configured is None and ctx.label_column not in data.column_names:
        log.warning(
            "%s: no label column '%s' in the data (columns: %s); rows pass unchanged. "
            "Set pipeline.label_column to balance by another column, or pipeline.balance=[] to drop the step",
            step,
            ctx.label_column,
            data.column_names,
        )
        ctx.metadata["skipped"] = f"no label column '{ctx.label_column}'"
        return None
    return label_column_of(data, configured, ctx, step)


def members_by_label(data: Any, column: str) -> dict[str, list[int]]:
    """Row indices per label; rows with no label are left out."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(data[column]):
        if label is None or (isinstance(label, str) and not label.strip()):
            continue
        by_label[str(label)].append(i)
    return dict(by_label)


def class_counts(by_label: dict[str, list[int]]) -> dict[str, int]:
    return {label: len(members) for label, members in sorted(by_label.items())}


def check_ratio(step: str, ratio: float) -> None:
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"{step}.target_ratio must be in (0, 1], got {ratio}")
