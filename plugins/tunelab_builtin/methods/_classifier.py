"""What the classification methods (``classify``, ``feature``, ``semi_supervised``) share:
the class weights of the loss, the ``labels.json`` a run saves next to its model, and the
check of choice-valued config fields. The classifier interface itself (logits, class
names, the feature classifier) is :mod:`tunelab.train.classifier_head`.

What a run saves under ``OUTPUT_DIR/model``: the tokenizer, ``labels.json``
(:data:`LABELS_FILE`: method, labels, text column, max length, whether an adapter or only
a head was saved), and the model (``classify``: the whole model, or the PEFT adapter with
its trained head) or the head (``feature``: ``head.safetensors``; the frozen backbone is
rebuilt from the run's model config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LABELS_FILE = "labels.json"
CLASS_WEIGHT_MODES = ("none", "auto", "balanced")


def weights_from_metadata(metadata: dict[str, Any]) -> dict[str, float] | None:
    """The per-class weights a data step stored, if one did (the ``class_weights``
    balancer: ``{step: {"class_weights": {label: weight}, ...}}``); the last such step wins."""
    found = None
    for result in metadata.values():  # in pipeline order
        if isinstance(result, dict) and isinstance(result.get("class_weights"), dict):
            found = {str(k): float(v) for k, v in result["class_weights"].items()}
    return found


def resolve_class_weights(
    mode: str, labels: list[str], train_labels: list[Any], metadata: dict[str, Any]
) -> list[float] | None:
    """Loss weight per class (in ``labels`` order), or None for an unweighted loss.

    none: unweighted. auto: the weights of the data preparation's ``class_weights`` step
    when it ran (classes it does not name get 1.0), else unweighted. balanced:
    ``n / (k * count)`` from the train split's labels.
    """
    if mode not in CLASS_WEIGHT_MODES:
        raise ValueError(f"class_weights must be one of {', '.join(CLASS_WEIGHT_MODES)}, got {mode!r}")
    if mode == "none":
        return None
    if mode == "auto":
        weights = weights_from_metadata(metadata)
        return None if weights is None else [weights.get(label, 1.0) for label in labels]
    from tunelab_builtin._lib.class_weights import class_weights

    counts: dict[str, int] = {}
    for value in train_labels:
        if value is not None:
            counts[str(value)] = counts.get(str(value), 0) + 1
    weights = class_weights(counts, "balanced")
    return [weights.get(label, 1.0) for label in labels]


def write_labels_file(directory: Path, **info: Any) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / LABELS_FILE).write_text(json.dumps(info, indent=2))
