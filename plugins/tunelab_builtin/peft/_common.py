"""What the adaptation methods share: the ``peft.TaskType`` for the loaded model's task, the
classification head to train next to an adapter, and the checks of their config values."""

from __future__ import annotations

from typing import Any

from tunelab.api import LoadedModel

#: LoadedModel.task -> name of the peft.TaskType member (None: PEFT has none; the plain
#: PeftModel wraps the model, which works for adapters such as LoRA but not prompt learning)
TASK_TYPES = {
    "causal_lm": "CAUSAL_LM",
    "sequence_classification": "SEQ_CLS",
    "encoder": "FEATURE_EXTRACTION",
    "masked_lm": None,
}

#: names of classification heads in transformers models (Llama-style: score; BERT-style: classifier)
HEAD_NAMES = ("score", "classifier", "classification_head")


def task_type(model: LoadedModel) -> Any:
    """The ``peft.TaskType`` for the task the model was loaded for."""
    from peft import TaskType

    if model.task not in TASK_TYPES:
        raise ValueError(f"unknown model task {model.task!r}; known: {', '.join(TASK_TYPES)}")
    member = TASK_TYPES[model.task]
    return TaskType[member] if member else None


def head_modules(model: LoadedModel) -> list[str] | None:
    """Names of the classification head to train fully next to an adapter (None unless a classifier).

    A freshly initialised head has to be trained (and saved with the adapter), or the
    classifier's outputs stay random.
    """
    if model.task != "sequence_classification":
        return None
    found: list[str] = []
    for name, _ in model.model.named_modules():
        last = name.rsplit(".", 1)[-1]
        if last in HEAD_NAMES and last not in found:
            found.append(last)
    if not found:
        raise ValueError(
            "the classifier has no module named " + " or ".join(HEAD_NAMES) + "; cannot tell which module is its head"
        )
    return found[:1]


def check_modules(name: str, value: Any, *, allow_none: bool = False, allow_str: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, str) and allow_str and value:
        return
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
        return
    allowed = ["a non-empty list of module names"]
    if allow_str:
        allowed.insert(0, '"all-linear"')
    if allow_none:
        allowed.append("null (automatic)")
    raise ValueError(f"peft.{name} must be {' or '.join(allowed)}; got {value!r}")
