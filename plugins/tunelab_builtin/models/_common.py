"""What the model loaders share: classification-head and 4-bit arguments for a request,
the ``dtype`` values, and the tasks an encoder serves."""

from __future__ import annotations

from typing import Any

from tunelab.api import ModelRequest


def label_kwargs(request: ModelRequest | None) -> dict[str, Any]:
    """from_pretrained/config arguments that size a classification head for the labels."""
    if not request or request.task != "sequence_classification":
        return {}
    if len(request.labels) < 2:
        raise ValueError(f"a classifier needs at least two labels, the training data has {request.labels}")
    return {
        "num_labels": len(request.labels),
        "id2label": dict(enumerate(request.labels)),
        "label2id": {label: i for i, label in enumerate(request.labels)},
    }


def quantization_kwargs(request: ModelRequest | None) -> dict[str, Any]:
    """from_pretrained arguments that load the base quantized (QLoRA), if requested."""
    if not request or not request.quantization:
        return {}
    import torch
    from transformers import BitsAndBytesConfig

    settings = dict(request.quantization)
    if isinstance(settings.get("bnb_4bit_compute_dtype"), str):
        settings["bnb_4bit_compute_dtype"] = getattr(torch, settings["bnb_4bit_compute_dtype"])
    return {"quantization_config": BitsAndBytesConfig(**settings), "device_map": {"": torch.cuda.current_device()}}


#: values of a loader's ``dtype``
DTYPES = ("auto", "float32", "bfloat16", "float16")


def check_dtype(name: str, key: str) -> None:
    """At validation: an unknown dtype would fail only once the model loads."""
    if name not in DTYPES:
        raise ValueError(f"{key} must be one of {', '.join(DTYPES)}, got {name!r}")


def torch_dtype(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    try:
        return getattr(torch, name)
    except AttributeError:
        raise ValueError(f"unknown dtype {name!r}; use auto, float32, bfloat16 or float16") from None


# --- encoders (classification, embeddings) -------------------------------------------

ENCODER_TASKS = ("encoder", "sequence_classification", "masked_lm")


def encoder_task(request: ModelRequest | None, name: str) -> str:
    task = request.task if request else "causal_lm"
    if task == "causal_lm":
        raise ValueError(
            f"{name} is an encoder; causal LM objectives need model=smollm2_135m, model=tiny or model=hf "
            f"(it supports the tasks {', '.join(ENCODER_TASKS)})"
        )
    if task not in ENCODER_TASKS:
        raise ValueError(f"{name} supports the tasks {', '.join(ENCODER_TASKS)}, not {task!r}")
    return task
