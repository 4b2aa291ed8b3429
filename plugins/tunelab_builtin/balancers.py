"""Balancers: change the label distribution by adding or dropping rows."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

from tunelab.api import PARENT_ID, ROW_ID, Balancer, Component, StageContext

from tunelab_builtin.derive import append_rows


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
        return append_rows(data, children)




COMPONENTS = [("balancer", Component("oversample", Oversample, OversampleConfig))]
