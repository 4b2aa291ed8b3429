"""Prompt learning: ``prompt_tuning`` (soft-prompt embeddings), ``prefix_tuning``
(key/value prefixes in every attention layer) and ``p_tuning`` (virtual tokens from a
small trained encoder); the model itself stays frozen."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from tunelab.api import LoadedModel, PeftMethod
from tunelab_builtin._lib.choices import check_choice
from tunelab_builtin.peft._common import task_type

log = logging.getLogger(__name__)

#: prompt learning needs PEFT's task-specific model classes
PROMPT_LEARNING_TASKS = ("causal_lm", "sequence_classification")


def _check_virtual_tokens(n: Any) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"peft.num_virtual_tokens must be an integer >= 1; got {n!r}")


@dataclass
class PromptTuningConfig:
    #: trained embeddings prepended to every input
    num_virtual_tokens: int = 20
    #: how the virtual tokens start: random, or text (the embeddings of init_text)
    init: str = "random"
    #: the text whose token embeddings initialise the virtual tokens (init=text), e.g.
    #: "Answer the support ticket politely:"; repeated or cut to num_virtual_tokens
    init_text: str = ""


class PromptTuning(PeftMethod):
    """Prompt tuning: trains only num_virtual_tokens soft-prompt embeddings; the model is frozen."""

    tasks = PROMPT_LEARNING_TASKS

    def __init__(self, config: Any):
        super().__init__(config)
        _check_virtual_tokens(config.num_virtual_tokens)
        check_choice("peft.init", config.init, ("random", "text"))
        if config.init == "text" and not (config.init_text or "").strip():
            raise ValueError("peft.init=text needs peft.init_text (the text whose embeddings start the prompt)")

    def peft_config(self, model: LoadedModel) -> Any:
        from peft import PromptTuningConfig as PeftPromptTuningConfig
        from peft import PromptTuningInit

        c = self.config
        kwargs: dict[str, Any] = {"prompt_tuning_init": PromptTuningInit.RANDOM}
        if c.init == "text":
            source = getattr(model.tokenizer, "name_or_path", "") or ""
            if source and os.path.isdir(source):
                kwargs = {
                    "prompt_tuning_init": PromptTuningInit.TEXT,
                    "prompt_tuning_init_text": c.init_text,
                    "tokenizer_name_or_path": source,
                }
            else:
                # PEFT re-loads the tokenizer by name to embed init_text; an in-process tokenizer has none.
                log.warning(
                    "peft=prompt_tuning: init=text needs a tokenizer saved on disk, model '%s' has %r; "
                    "starting from random embeddings instead",
                    model.name,
                    source,
                )
        return PeftPromptTuningConfig(task_type=task_type(model), num_virtual_tokens=c.num_virtual_tokens, **kwargs)


@dataclass
class PrefixTuningConfig:
    #: trained key/value vectors prepended in every attention layer
    num_virtual_tokens: int = 20
    #: produce the prefix through a two-layer MLP (more parameters, often more stable)
    prefix_projection: bool = False
    #: hidden size of that MLP (prefix_projection only)
    encoder_hidden_size: int = 256


class PrefixTuning(PeftMethod):
    """Prefix tuning: trains key/value prefixes for every attention layer; the model is frozen."""

    tasks = PROMPT_LEARNING_TASKS

    def __init__(self, config: Any):
        super().__init__(config)
        _check_virtual_tokens(config.num_virtual_tokens)
        if isinstance(config.encoder_hidden_size, bool) or config.encoder_hidden_size < 1:
            raise ValueError(f"peft.encoder_hidden_size must be an integer >= 1; got {config.encoder_hidden_size!r}")

    def peft_config(self, model: LoadedModel) -> Any:
        from peft import PrefixTuningConfig as PeftPrefixTuningConfig

        c = self.config
        return PeftPrefixTuningConfig(
            task_type=task_type(model),
            num_virtual_tokens=c.num_virtual_tokens,
            prefix_projection=c.prefix_projection,
            encoder_hidden_size=c.encoder_hidden_size,
        )


@dataclass
class PTuningConfig:
    #: virtual tokens produced by the prompt encoder and prepended to every input
    num_virtual_tokens: int = 20
    #: the prompt encoder: MLP or LSTM
    encoder_type: str = "MLP"
    #: hidden size of the prompt encoder
    encoder_hidden_size: int = 128
    #: layers of the prompt encoder (MLP: always 2)
    encoder_num_layers: int = 2
    #: dropout inside the prompt encoder
    encoder_dropout: float = 0.0


class PTuning(PeftMethod):
    """P-tuning: a small trained encoder (MLP or LSTM) produces the virtual-token embeddings."""

    tasks = PROMPT_LEARNING_TASKS

    def __init__(self, config: Any):
        super().__init__(config)
        _check_virtual_tokens(config.num_virtual_tokens)
        check_choice("peft.encoder_type", config.encoder_type, ("MLP", "LSTM"))
        for name in ("encoder_hidden_size", "encoder_num_layers"):
            value = getattr(config, name)
            if isinstance(value, bool) or value < 1:
                raise ValueError(f"peft.{name} must be an integer >= 1; got {value!r}")
        if not 0 <= config.encoder_dropout < 1:
            raise ValueError(f"peft.encoder_dropout must be in [0, 1); got {config.encoder_dropout!r}")

    def peft_config(self, model: LoadedModel) -> Any:
        from peft import PromptEncoderConfig, PromptEncoderReparameterizationType

        c = self.config
        return PromptEncoderConfig(
            task_type=task_type(model),
            num_virtual_tokens=c.num_virtual_tokens,
            encoder_reparameterization_type=PromptEncoderReparameterizationType[c.encoder_type],
            encoder_hidden_size=c.encoder_hidden_size,
            encoder_num_layers=c.encoder_num_layers,
            encoder_dropout=c.encoder_dropout,
        )
