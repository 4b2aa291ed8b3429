"""LoRA and its variants: ``lora``, ``dora`` (LoRA with use_dora) and ``qlora`` (LoRA on a
base model loaded in 4-bit)."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import Any

from tunelab.api import LoadedModel, PeftMethod
from tunelab_builtin._lib.choices import check_choice
from tunelab_builtin.peft._common import check_modules, head_modules, task_type

log = logging.getLogger(__name__)


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"peft.{name} must be a positive number; got {value!r}")


@dataclass
class LoraConfig:
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
        check_modules("target_modules", c.target_modules, allow_str=True)
        check_choice("peft.bias", c.bias, ("none", "all", "lora_only"))

    def peft_config(self, model: LoadedModel) -> Any:
        from peft import LoraConfig as PeftLoraConfig

        c = self.config
        targets = c.target_modules if isinstance(c.target_modules, str) else list(c.target_modules)
        return PeftLoraConfig(
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
class QloraConfig(LoraConfig):
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
        check_choice("peft.quant_type", config.quant_type, ("nf4", "fp4"))
        check_choice("peft.compute_dtype", config.compute_dtype, ("bfloat16", "float16", "float32"))

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
