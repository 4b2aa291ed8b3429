"""``lora_attention_only``: LoRA on the attention projections and nothing else.

tunelab's ``peft=lora`` adapts every linear layer (``target_modules: all-linear``). This
variant puts the low-rank updates only on the query/key/value/output projections of the
attention blocks, the placement of the original LoRA paper: fewer trainable parameters,
and a sweep ``peft=lora,lora_attention_only`` measures what the MLP adapters add.

The projections are found by name in the loaded model, so one config works across
architectures (Llama/Qwen/SmolLM ``q_proj``..., BERT ``query``..., DistilBERT ``q_lin``...,
GPT-2's fused ``c_attn``). The result is a ``peft.LoraConfig`` whose ``task_type``
follows the task the model was loaded for; a classifier's new head is trained fully
(``modules_to_save``), or its outputs would stay random.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunelab.api import LoadedModel, PeftMethod

#: attention role -> module-name suffixes that play it, across common architectures
ATTENTION_MODULES: dict[str, tuple[str, ...]] = {
    "query": ("q_proj", "query", "q_lin"),
    "key": ("k_proj", "key", "k_lin"),
    "value": ("v_proj", "value", "v_lin"),
    "output": ("o_proj", "out_proj", "out_lin", "attention.output.dense", "attn.c_proj"),
}
#: fused query/key/value projections; adapted whole when any of query, key, value is chosen
FUSED_QKV = ("qkv_proj", "c_attn", "query_key_value", "Wqkv")

#: tunelab model task -> peft.TaskType member
TASK_TYPES = {
    "causal_lm": "CAUSAL_LM",
    "sequence_classification": "SEQ_CLS",
    "encoder": "FEATURE_EXTRACTION",
}

#: names of classification heads (Llama-style: score; BERT-style: classifier)
HEAD_NAMES = ("score", "classifier", "classification_head")


@dataclass
class LoraAttentionOnlyConfig:
    #: rank of the low-rank update
    r: int = 8
    #: scaling numerator: the update is scaled by alpha / r
    alpha: int = 16
    #: dropout on the adapter's input
    dropout: float = 0.05
    #: which attention projections get an adapter: any of query, key, value, output
    projections: list[str] = field(default_factory=lambda: ["query", "key", "value", "output"])


def _is_linear(module: Any) -> bool:
    """A layer LoRA can wrap: torch Linear, or transformers' Conv1D (GPT-2)."""
    import torch

    return isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"


def _matches(name: str, suffix: str) -> bool:
    return name == suffix or name.endswith("." + suffix)


def attention_targets(model: Any, projections: list[str]) -> list[str]:
    """The module-name suffixes (PEFT ``target_modules``) of the chosen attention
    projections that ``model`` has; empty when it has none of them."""
    suffixes = [s for role in projections for s in ATTENTION_MODULES[role]]
    if set(projections) & {"query", "key", "value"}:
        suffixes += FUSED_QKV
    found: set[str] = set()
    for name, module in model.named_modules():
        if not _is_linear(module):
            continue
        for suffix in suffixes:
            if _matches(name, suffix):
                found.add(suffix)
    return sorted(found)


def head_modules(model: LoadedModel) -> list[str] | None:
    """The classification head to train next to the adapter (None unless a classifier)."""
    if model.task != "sequence_classification":
        return None
    for name, _ in model.model.named_modules():
        last = name.rsplit(".", 1)[-1]
        if last in HEAD_NAMES:
            return [last]
    raise ValueError(
        f"peft=lora_attention_only: the classifier {model.name} has no module named {' or '.join(HEAD_NAMES)}, "
        "so its head cannot be trained; use peft=lora with peft.target_modules set by hand"
    )


class LoraAttentionOnly(PeftMethod):
    """LoRA on the attention projections only (q/k/v/o), not the MLP (PEFT LoraConfig)."""

    #: the model tasks it can adapt; tunelab refuses other combinations before any work
    tasks = tuple(TASK_TYPES)

    def __init__(self, config: LoraAttentionOnlyConfig):
        super().__init__(config)
        c = config
        if isinstance(c.r, bool) or not isinstance(c.r, int) or c.r < 1:
            raise ValueError(f"peft.r must be an integer >= 1; got {c.r!r}")
        if isinstance(c.alpha, bool) or not isinstance(c.alpha, (int, float)) or c.alpha <= 0:
            raise ValueError(f"peft.alpha must be a positive number; got {c.alpha!r}")
        if isinstance(c.dropout, bool) or not isinstance(c.dropout, (int, float)) or not 0 <= c.dropout < 1:
            raise ValueError(f"peft.dropout must be in [0, 1); got {c.dropout!r}")
        unknown = [p for p in c.projections if p not in ATTENTION_MODULES]
        if unknown or not c.projections:
            raise ValueError(
                f"peft.projections must be a non-empty subset of [{', '.join(ATTENTION_MODULES)}]; "
                f"got {list(c.projections)!r}"
            )

    def peft_config(self, model: LoadedModel) -> Any:
        from peft import LoraConfig, TaskType

        if model.task not in TASK_TYPES:
            raise ValueError(
                f"peft=lora_attention_only adapts models loaded as {', '.join(TASK_TYPES)}, not {model.task!r}"
            )
        targets = attention_targets(model.model, list(self.config.projections))
        if not targets:
            linear = sorted(
                {name.rsplit(".", 1)[-1] for name, module in model.model.named_modules() if _is_linear(module)}
            )
            raise ValueError(
                f"peft=lora_attention_only found no attention projections ({', '.join(self.config.projections)}) in "
                f"model {model.name}; its linear layers are named {', '.join(linear[:12]) or '(none)'}. "
                "Use peft=lora with peft.target_modules=[...] naming the layers to adapt"
            )
        c = self.config
        return LoraConfig(
            task_type=TaskType[TASK_TYPES[model.task]],
            r=c.r,
            lora_alpha=c.alpha,
            lora_dropout=c.dropout,
            target_modules=targets,
            bias="none",
            modules_to_save=head_modules(model),
        )
