"""The ``ia3`` adaptation method: one trained scaling vector per targeted activation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from tunelab.api import LoadedModel, PeftMethod
from tunelab_builtin.peft._common import check_modules, head_modules, task_type

#: IA3 defaults for Llama-style models: attention keys/values, and the MLP's down projection
#: (scaled on its input, which makes it a "feedforward" module)
IA3_LLAMA_TARGETS = ["k_proj", "v_proj", "down_proj"]
IA3_LLAMA_FEEDFORWARD = ["down_proj"]


@dataclass
class Ia3Config:
    #: modules whose activations are rescaled; null: automatic (Llama-style: k_proj, v_proj, down_proj)
    target_modules: Optional[list[str]] = None
    #: the subset of target_modules scaled on their input; null: automatic (Llama-style: down_proj),
    #: or none when target_modules is set
    feedforward_modules: Optional[list[str]] = None


class Ia3(PeftMethod):
    """IA3: trains one scaling vector per targeted activation, far fewer weights than LoRA."""

    def __init__(self, config: Any):
        super().__init__(config)
        check_modules("target_modules", config.target_modules, allow_none=True)
        if config.feedforward_modules is not None:
            if not isinstance(config.feedforward_modules, (list, tuple)) or not all(
                isinstance(v, str) and v for v in config.feedforward_modules
            ):
                raise ValueError(
                    "peft.feedforward_modules must be a list of module names or null; "
                    f"got {config.feedforward_modules!r}"
                )
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
