"""Per-class loss weights, shared by the ``class_weights`` balancer and the classifier methods."""

from __future__ import annotations

import math


def class_weights(counts: dict[str, int], method: str = "balanced") -> dict[str, float]:
    """Weight per class: ``n / (k * count)`` (balanced; 1.0 for every class when they are
    equal), or its square root (inverse_sqrt)."""
    total, k = sum(counts.values()), len(counts)
    weights = {}
    for label, count in counts.items():
        weight = total / (k * count)
        weights[label] = round(math.sqrt(weight) if method == "inverse_sqrt" else weight, 6)
    return weights
