"""The ``undersample`` balancer: drops rows of the majority classes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from tunelab.api import Balancer, StageContext
from tunelab_builtin.balancers._labels import check_ratio, class_counts, label_column_or_none, members_by_label
from tunelab_builtin.balancers._resample import drop_undersampled, excess


@dataclass
class UndersampleConfig:
    #: label column; None uses pipeline.label_column
    label_column: Optional[str] = None
    #: afterwards the smallest class is at least this fraction of the largest:
    #: each class is cut to smallest/target_ratio rows
    target_ratio: float = 1.0
    #: cut every class to at most this many rows instead (overrides target_ratio)
    max_per_class: Optional[int] = None
    #: drop derived rows (augmented, oversampled) before original rows
    prefer_originals: bool = True


class Undersample(Balancer):
    """Random undersampling of majority classes (drops are recorded as "undersampled")."""

    def __init__(self, config: UndersampleConfig):
        super().__init__(config)
        check_ratio("undersample", config.target_ratio)
        if config.max_per_class is not None and config.max_per_class < 1:
            raise ValueError(
                f"undersample.max_per_class must be a positive number of rows or null, got {config.max_per_class}"
            )

    def apply(self, data, ctx: StageContext):
        column = label_column_or_none(data, self.config.label_column, ctx, "undersample")
        by_label = members_by_label(data, column) if column else {}
        if not by_label:
            return data
        if self.config.max_per_class is not None:
            cap = self.config.max_per_class
        else:
            cap = int(math.floor(min(len(v) for v in by_label.values()) / self.config.target_ratio + 1e-9))
        dropped = excess(data, by_label, {label: cap for label in by_label}, ctx.seed, self.config.prefer_originals)
        ctx.metadata["class_counts_before"] = class_counts(by_label)
        ctx.metadata["max_per_class"] = cap
        return drop_undersampled(data, column, dropped, ctx)
