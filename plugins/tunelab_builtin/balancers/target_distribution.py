"""The ``target_distribution`` balancer: reaches given label shares by copying and dropping rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from tunelab.api import ROW_ID, Balancer, StageContext
from tunelab_builtin._lib.rows import append_rows
from tunelab_builtin.balancers._labels import class_counts, label_column_of, members_by_label
from tunelab_builtin.balancers._resample import copies, copy_sources, drop_undersampled, excess

TOTAL_POLICIES = ("keep", "grow", "shrink")


@dataclass
class TargetDistributionConfig:
    #: wanted share of each label, e.g. {billing: 0.3, privacy: 0.1}; covers every label in the data and sums to 1
    #: (0 removes a class)
    distribution: dict[str, float] = field(default_factory=dict)
    #: size of the result: keep (as many labelled rows as now), grow (only add rows), shrink (only drop rows),
    #: or a number of rows
    total: str = "keep"
    #: label column; None uses pipeline.label_column
    label_column: Optional[str] = None
    #: when dropping, drop derived rows (augmented, oversampled) before original rows
    prefer_originals: bool = True


class TargetDistribution(Balancer):
    """Reaches a given label distribution by oversampling and/or undersampling."""

    def __init__(self, config: TargetDistributionConfig):
        super().__init__(config)
        shares = config.distribution
        if not shares:
            raise ValueError(
                "target_distribution.distribution must map each label to its share, e.g. {billing: 0.5, privacy: 0.5}"
            )
        bad = {label: share for label, share in shares.items() if not isinstance(share, (int, float)) or share < 0}
        if bad:
            raise ValueError(f"target_distribution.distribution shares must be numbers >= 0, got {bad}")
        if abs(sum(shares.values()) - 1.0) > 1e-3:
            raise ValueError(
                f"target_distribution.distribution shares must sum to 1, they sum to {sum(shares.values()):.4g}"
            )
        total = str(config.total)
        if total not in TOTAL_POLICIES and not (total.isdigit() and int(total) > 0):
            raise ValueError(
                f"target_distribution.total must be one of {', '.join(TOTAL_POLICIES)} or a positive number of rows, "
                f"got {config.total!r}"
            )

    def targets(self, counts: dict[str, int]) -> dict[str, int]:
        shares = {str(k): float(v) for k, v in self.config.distribution.items()}
        total = str(self.config.total)
        positive = {label: share for label, share in shares.items() if share > 0}
        if total == "keep":
            size = float(sum(counts.values()))
        elif total == "grow":  # the smallest size at which no class has to lose rows
            size = max(counts.get(label, 0) / share for label, share in positive.items())
        elif total == "shrink":  # the largest size at which no class needs copies
            size = min(counts.get(label, 0) / share for label, share in positive.items())
        else:
            size = float(int(total))
        out = {label: int(round(share * size)) for label, share in shares.items()}
        if total == "grow":
            out = {label: max(n, counts.get(label, 0)) if shares[label] > 0 else 0 for label, n in out.items()}
        elif total == "shrink":
            out = {label: min(n, counts.get(label, 0)) for label, n in out.items()}
        return out

    def apply(self, data, ctx: StageContext):
        column = label_column_of(data, self.config.label_column, ctx, "target_distribution")
        by_label = members_by_label(data, column)
        shares = {str(k): float(v) for k, v in self.config.distribution.items()}
        unlisted = sorted(set(by_label) - set(shares))
        if unlisted:
            raise ValueError(
                f"target_distribution: labels {unlisted} are in the data but not in distribution; "
                "give each a share (0 removes the class)"
            )
        empty = sorted(label for label, share in shares.items() if share > 0 and label not in by_label)
        if empty:
            raise ValueError(
                f"target_distribution: labels {empty} have a share but no rows in the data, so they cannot be "
                "oversampled; fix the label names or give them share 0"
            )
        counts = class_counts(by_label)
        targets = self.targets(counts)
        dropped = excess(data, by_label, targets, ctx.seed, self.config.prefer_originals)
        taken = set(data[ROW_ID])
        children: list[dict[str, Any]] = []
        for label in sorted(by_label):
            missing = targets[label] - counts[label]
            if missing > 0:
                children += copies(data, copy_sources(data, by_label[label], ctx.seed), missing, taken)
        ctx.count("rows_oversampled", len(children))
        ctx.metadata["class_counts_before"] = counts
        ctx.metadata["class_targets"] = dict(sorted(targets.items()))
        data = drop_undersampled(data, column, dropped, ctx)
        return append_rows(data, children)
