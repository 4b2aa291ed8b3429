"""Adaptation methods (``peft=``): what is trained while the objective runs.

Every method returns a ``peft.PeftConfig`` (or None: full fine-tuning) whose
``task_type`` follows the task the model was loaded for. The objective (e.g. ``sft``)
applies it. Constructors only check values; ``peft`` is imported in ``peft_config``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from tunelab.api import Component, LoadedModel, NoConfig, PeftMethod

log = logging.getLogger(__name__)

#: LoadedModel.task -> name of the peft.TaskType member (None: PEFT has none; the plain
#: PeftModel wraps the model, which works for adapters such as LoRA but not prompt learning)
TASK_TYPES = {
    "causal_lm": "CAUSAL_LM",
    "sequence_classification": "SEQ_CLS",
    "encoder": "FEATURE_EXTRACTION",
    "masked_lm": None,
}

#: prompt learning needs PEFT's task-specific model classes
PROMPT_LEARNING_TASKS = ("causal_lm", "sequence_classification")

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


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"peft.{name} must be one of {', '.join(allowed)}; got {value!r}")


def _check_modules(name: str, value: Any, *, allow_none: bool = False, allow_str: bool = False) -> None:
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


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"peft.{name} must be a positive number; got {value!r}")


# --- full fine-tuning -------------------------------------------------------------------


class FullFineTuning(PeftMethod):
    """Full fine-tuning: every weight of the model is trained."""

    def peft_config(self, model: LoadedModel) -> None:
        return None


# --- LoRA and its variants ----------------------------------------------------------------


@dataclass
class LoraSettings:
    #: rank of the low-rank update
    r: int = 8
    #: scaling numerator: the update is scaled by alpha / r
    alpha: int = 16
    #: dropout on the adapter's input
    dropout: float = 0.05
    #: "all-linear", or a list of module names such as [q_proj, v_proj]
    target_modules: Any = "all-linear"
    #: which biases to train: none, all or lora_only
    bias: str = "none"


class Lora(PeftMethod):
    """LoRA: trains low-rank updates of the chosen linear layers (PEFT LoraConfig)."""

    #: LoraConfig(use_dora=...)
    use_dora = False

    def __init__(self, config: Any):
        super().__init__(config)
        c = config
        if isinstance(c.r, bool) or not isinstance(c.r, int) or c.r < 1:
            raise ValueError(f"peft.r must be an integer >= 1; got {c.r!r}")
        _check_positive("alpha", c.alpha)
        if not 0 <= c.dropout < 1:
            raise ValueError(f"peft.dropout must be in [0, 1); got {c.dropout!r}")
        _check_modules("target_modules", c.target_modules, allow_str=True)
        _check_choice("bias", c.bias, ("none", "all", "lora_only"))

    def peft_config(self, model: LoadedModel) -> Any:
        from peft import LoraConfig

        c = self.config
        targets = c.target_modules if isinstance(c.target_modules, str) else list(c.target_modules)
        return LoraConfig(
            task_type=task_type(model),
            r=c.r,
            lora_alpha=c.alpha,
            lora_dropout=c.dropout,
            target_modules=targets,
            bias=c.bias,
            use_dora=self.use_dora,
            modules_to_save=head_modules(model),
        )


class Dora(Lora):
    """DoRA: LoRA on the direction of each weight plus a trained magnitude vector (LoraConfig use_dora)."""

    use_dora = True


@dataclass
class QloraSettings(LoraSettings):
    #: 4-bit data type of the frozen base weights: nf4 or fp4
    quant_type: str = "nf4"
    #: also quantize the quantization constants (saves about 0.4 bit per weight)
    double_quant: bool = True
    #: dtype the 4-bit weights are dequantized to for matmuls: bfloat16, float16 or float32
    compute_dtype: str = "bfloat16"


class Qlora(Lora):
    """QLoRA: LoRA on a base model loaded in 4-bit (bitsandbytes); needs a CUDA GPU."""

    #: read by model loaders: the base weights must be loaded in 4-bit (see :meth:`quantization_kwargs`)
    load_in_4bit = True

    def __init__(self, config: Any):
        super().__init__(config)
        _check_choice("quant_type", config.quant_type, ("nf4", "fp4"))
        _check_choice("compute_dtype", config.compute_dtype, ("bfloat16", "float16", "float32"))

    def quantization_kwargs(self) -> dict[str, Any]:
        """Arguments for ``transformers.BitsAndBytesConfig`` (compute dtype by name)."""
        c = self.config
        return {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": c.quant_type,
            "bnb_4bit_use_double_quant": c.double_quant,
            "bnb_4bit_compute_dtype": c.compute_dtype,
        }

    @staticmethod
    def unavailable_reason() -> str | None:
        """Why QLoRA cannot run here, or None when it can."""
        import torch

        if torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None:
            return None
        return (
            "peft=qlora needs a CUDA GPU and bitsandbytes (pip install bitsandbytes); "
            "this machine has none — use peft=lora"
        )

    def peft_config(self, model: LoadedModel) -> Any:
        reason = self.unavailable_reason()
        if reason:
            raise ValueError(reason)
        if not _is_4bit(model.model):
            log.warning(
                "peft=qlora: the base model '%s' is not loaded in 4-bit (its model loader ignored "
                "Qlora.load_in_4bit); this trains plain LoRA on the unquantized base",
                model.name,
            )
        return super().peft_config(model)


def _is_4bit(model: Any) -> bool:
    if getattr(model, "is_loaded_in_4bit", False):
        return True
    quant = getattr(getattr(model, "config", None), "quantization_config", None)
    if quant is None:
        return False
    if isinstance(quant, dict):
        return bool(quant.get("load_in_4bit"))
    return bool(getattr(quant, "load_in_4bit", False))


# --- IA3 ------------------------------------------------------------------------------------

#: IA3 defaults for Llama-style models: attention keys/values, and the MLP's down projection
#: (scaled on its input, which makes it a "feedforward" module)
IA3_LLAMA_TARGETS = ["k_proj", "v_proj", "down_proj"]
IA3_LLAMA_FEEDFORWARD = ["down_proj"]


@dataclass
class Ia3Settings:
    #: modules whose activations are rescaled; null: automatic (Llama-style: k_proj, v_proj, down_proj)
    target_modules: Optional[list[str]] = None
    #: the subset of target_modules scaled on their input; null: automatic (Llama-style: down_proj),
    #: or none when target_modules is set
    feedforward_modules: Optional[list[str]] = None


class Ia3(PeftMethod):
    """IA3: trains one scaling vector per targeted activation, far fewer weights than LoRA."""

    def __init__(self, config: Any):
        super().__init__(config)
        _check_modules("target_modules", config.target_modules, allow_none=True)
        if config.feedforward_modules is not None:
            if not isinstance(config.feedforward_modules, (list, tuple)) or not all(
                isinstance(v, str) and v for v in config.feedforward_modules
            ):
                raise ValueError(f"peft.feedforward_modules must be a list of module names or null; got {config.feedforward_modules!r}")
            if config.target_modules is None:
                raise ValueError("peft.feedforward_modules needs peft.target_modules (it must be a subset of them)")
            extra = [m for m in config.feedforward_modules if m not in config.target_modules]
            if extra:
                raise ValueError(
                    f"peft.feedforward_modules must be a subset of peft.target_modules {list(config.target_modules)}; "
                    f"not in it: {extra}"
                )

    def modules(self, model: LoadedModel) -> tuple[list[str] | None, list[str] | None]:
        c = self.config
        if c.target_modules is not None:
            return list(c.target_modules), list(c.feedforward_modules or [])
        names = {name.rsplit(".", 1)[-1] for name, _ in model.model.named_modules()}
        if all(m in names for m in IA3_LLAMA_TARGETS):
            return list(IA3_LLAMA_TARGETS), list(IA3_LLAMA_FEEDFORWARD)
        return None, None  # PEFT's own table by model type (it says so when it has none)

    def peft_config(self, model: LoadedModel) -> Any:
        from peft import IA3Config

        targets, feedforward = self.modules(model)
        return IA3Config(
            task_type=task_type(model),
            target_modules=targets,
            feedforward_modules=feedforward,
            modules_to_save=head_modules(model),
        )


# --- prompt learning ----------------------------------------------------------------------


def _check_virtual_tokens(n: Any) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"peft.num_virtual_tokens must be an integer >= 1; got {n!r}")


@dataclass
class PromptTuningSettings:
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
        _check_choice("init", config.init, ("random", "text"))
        if config.init == "text" and not (config.init_text or "").strip():
            raise ValueError("peft.init=text needs peft.init_text (the text whose embeddings start the prompt)")

    def peft_config(self, model: LoadedModel) -> Any:
        from peft import PromptTuningConfig, PromptTuningInit

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
        return PromptTuningConfig(task_type=task_type(model), num_virtual_tokens=c.num_virtual_tokens, **kwargs)


@dataclass
class PrefixTuningSettings:
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
        from peft import PrefixTuningConfig

        c = self.config
        return PrefixTuningConfig(
            task_type=task_type(model),
            num_virtual_tokens=c.num_virtual_tokens,
            prefix_projection=c.prefix_projection,
            encoder_hidden_size=c.encoder_hidden_size,
        )


@dataclass
class PTuningSettings:
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
        _check_choice("encoder_type", config.encoder_type, ("MLP", "LSTM"))
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


# --- any PEFT config by name --------------------------------------------------------------

#: PeftConfig fields that tunelab or PEFT set; not accepted in ``args``
RESERVED_ARGS = ("task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision", "inference_mode")
#: base classes in the peft package that are not methods
_ABSTRACT_CONFIGS = ("PeftConfig", "PromptLearningConfig")


@dataclass
class CustomSettings:
    #: name of a PEFT config class, e.g. LoHaConfig, LoKrConfig, AdaLoraConfig, VeraConfig
    peft_type: str = "???"
    #: keyword arguments of that class, e.g. {r: 8, target_modules: [q_proj, v_proj]}
    args: dict[str, Any] = field(default_factory=dict)


def peft_config_classes() -> dict[str, type]:
    """Every method config class the installed ``peft`` exports, by name."""
    import peft

    found = {}
    for name in dir(peft):
        obj = getattr(peft, name, None)
        if isinstance(obj, type) and issubclass(obj, peft.PeftConfig) and name not in _ABSTRACT_CONFIGS:
            found[name] = obj
    return found


class Custom(PeftMethod):
    """Any PEFT method by config class name (peft_type) and its keyword arguments (args)."""

    def __init__(self, config: Any):
        super().__init__(config)
        if not isinstance(config.peft_type, str) or not config.peft_type.isidentifier():
            raise ValueError(f"peft.peft_type must be the name of a PEFT config class such as LoHaConfig; got {config.peft_type!r}")
        if not isinstance(config.args, dict):
            raise ValueError(f"peft.args must be a mapping of {config.peft_type} arguments; got {config.args!r}")
        reserved = [k for k in config.args if k in RESERVED_ARGS]
        if reserved:
            raise ValueError(f"peft.args: {', '.join(reserved)} cannot be set (tunelab sets task_type from the model's task)")

    def check(self) -> type:
        """The PEFT config class, after checking the name and ``args`` against it (imports peft)."""
        c = self.config
        classes = peft_config_classes()
        cls = classes.get(c.peft_type)
        if cls is None:
            raise ValueError(
                f"peft.peft_type: {c.peft_type!r} is not a PEFT config class in peft "
                f"{_peft_version()}; valid names: {', '.join(sorted(classes))}"
            )
        valid = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in RESERVED_ARGS]
        unknown = [k for k in c.args if k not in valid]
        if unknown:
            raise ValueError(
                f"peft.args: unknown argument(s) {', '.join(repr(k) for k in unknown)} for {c.peft_type}; "
                f"valid: {', '.join(valid)}"
            )
        return cls

    def peft_config(self, model: LoadedModel) -> Any:
        cls = self.check()
        args = dict(self.config.args)
        names = {f.name for f in dataclasses.fields(cls)}
        head = head_modules(model)
        if head and "modules_to_save" in names and args.get("modules_to_save") is None:
            args["modules_to_save"] = head
        try:
            return cls(task_type=task_type(model), **args)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"peft=custom ({self.config.peft_type}): {exc}") from None


def _peft_version() -> str:
    import importlib.metadata as md

    return md.version("peft")


COMPONENTS = [
    ("peft", Component("none", FullFineTuning, NoConfig)),
    ("peft", Component("lora", Lora, LoraSettings)),
    ("peft", Component("qlora", Qlora, QloraSettings)),
    ("peft", Component("dora", Dora, LoraSettings)),
    ("peft", Component("ia3", Ia3, Ia3Settings)),
    ("peft", Component("prompt_tuning", PromptTuning, PromptTuningSettings)),
    ("peft", Component("prefix_tuning", PrefixTuning, PrefixTuningSettings)),
    ("peft", Component("p_tuning", PTuning, PTuningSettings)),
    ("peft", Component("custom", Custom, CustomSettings)),
]
