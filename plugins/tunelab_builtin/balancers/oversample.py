"""The ``oversample`` balancer: copies rows of the minority classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from tunelab.api import ROW_ID, Balancer, StageContext
from tunelab_builtin._lib.rows import append_rows
from tunelab_builtin.balancers._labels import check_ratio, label_column_or_none, members_by_label
from tunelab_builtin.balancers._resample import copies, copy_sources


@dataclass
class OversampleConfig:
    #: label column; None uses pipeline.label_column
    label_column: Optional[str] = None
    #: every class is raised to at least this fraction of the largest class
    target_ratio: float = 1.0


class Oversample(Balancer):
    """Random oversampling of minority classes (copies keep parent_id)."""

    def __init__(self, config: OversampleConfig):
        super().__init__(config)
        check_ratio("oversample", config.target_ratio)

    def apply(self, data, ctx: StageContext):
        column = label_column_or_none(data, self.config.label_column, ctx, "oversample")
        by_label = members_by_label(data, column) if column else {}
        if not by_label:
            return data
        target = int(self.config.target_ratio * max(len(v) for v in by_label.values()))
        taken = set(data[ROW_ID])
        children: list[dict[str, Any]] = []
        for label in sorted(by_label):
            missing = target - len(by_label[label])
            if missing > 0:
                children += copies(data, copy_sources(data, by_label[label], ctx.seed), missing, taken)
        ctx.count("rows_oversampled", len(children))
        return append_rows(data, children)
