"""The ``custom`` adaptation method: any PEFT config class by name, with its arguments."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tunelab.api import LoadedModel, PeftMethod
from tunelab_builtin.peft._common import head_modules, task_type

#: PeftConfig fields that tunelab or PEFT set; not accepted in ``args``
RESERVED_ARGS = (
    "task_type",
    "peft_type",
    "auto_mapping",
    "peft_version",
    "base_model_name_or_path",
    "revision",
    "inference_mode",
)
#: base classes in the peft package that are not methods
_ABSTRACT_CONFIGS = ("PeftConfig", "PromptLearningConfig")


@dataclass
class CustomConfig:
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
            raise ValueError(
                f"peft.peft_type must be the name of a PEFT config class such as LoHaConfig; got {config.peft_type!r}"
            )
        if not isinstance(config.args, dict):
            raise ValueError(f"peft.args must be a mapping of {config.peft_type} arguments; got {config.args!r}")
        reserved = [k for k in config.args if k in RESERVED_ARGS]
        if reserved:
            raise ValueError(
                f"peft.args: {', '.join(reserved)} cannot be set (tunelab sets task_type from the model's task)"
            )

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
