"""Which transformers Auto class loads a model for a task: shared by the model loaders
and ``tunelab.predict``."""

from __future__ import annotations

from typing import Any

from tunelab.api import ModelRequest


def auto_model_class(request: ModelRequest | None) -> Any:
    """The transformers Auto class for a request's task."""
    import transformers

    task = request.task if request else "causal_lm"
    classes = {
        "causal_lm": transformers.AutoModelForCausalLM,
        "sequence_classification": transformers.AutoModelForSequenceClassification,
        "encoder": transformers.AutoModel,
        "masked_lm": transformers.AutoModelForMaskedLM,
    }
    if task not in classes:
        raise ValueError(f"unknown model task {task!r}; known: {', '.join(classes)}")
    return classes[task]
