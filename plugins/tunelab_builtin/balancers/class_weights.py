"""The ``class_weights`` balancer: per-class loss weights for the trainer, rows unchanged.

The formula is :func:`tunelab_builtin._lib.class_weights.class_weights`, shared with the
classifier methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tunelab.api import Balancer, StageContext
from tunelab_builtin._lib.class_weights import class_weights
from tunelab_builtin.balancers._labels import class_counts, label_column_of, members_by_label

WEIGHT_METHODS = ("balanced", "inverse_sqrt")


@dataclass
class ClassWeightsConfig:
    #: balanced: n / (k * count); inverse_sqrt: the square root of that (a milder correction)
    method: str = "balanced"
    #: label column; None uses pipeline.label_column
    label_column: Optional[str] = None


class ClassWeights(Balancer):
    """Computes per-class loss weights for the trainer (metadata class_weights); rows unchanged."""

    def __init__(self, config: ClassWeightsConfig):
        super().__init__(config)
        if config.method not in WEIGHT_METHODS:
            raise ValueError(f"class_weights.method must be one of {', '.join(WEIGHT_METHODS)}, got {config.method!r}")

    def apply(self, data, ctx: StageContext):
        column = label_column_of(data, self.config.label_column, ctx, "class_weights")
        counts = class_counts(members_by_label(data, column))
        ctx.metadata["class_weights"] = class_weights(counts, self.config.method)
        ctx.metadata["class_counts"] = counts
        ctx.metadata["method"] = self.config.method
        ctx.count("classes", len(counts))
        return data
