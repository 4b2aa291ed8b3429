"""Adaptation methods (``peft=``): what is trained while the objective runs.

Every method returns a ``peft.PeftConfig`` (or None: full fine-tuning) whose
``task_type`` follows the task the model was loaded for. The objective (e.g. ``sft``)
applies it. Constructors only check values; ``peft`` is imported in ``peft_config``.
"""

from tunelab.api import Component, NoConfig
from tunelab_builtin.peft.custom import Custom, CustomConfig
from tunelab_builtin.peft.full import FullFineTuning
from tunelab_builtin.peft.ia3 import Ia3, Ia3Config
from tunelab_builtin.peft.lora import Dora, Lora, LoraConfig, Qlora, QloraConfig
from tunelab_builtin.peft.prompt_learning import (
    PrefixTuning,
    PrefixTuningConfig,
    PromptTuning,
    PromptTuningConfig,
    PTuning,
    PTuningConfig,
)

COMPONENTS = [
    Component("none", FullFineTuning, NoConfig),
    Component("lora", Lora, LoraConfig),
    Component("qlora", Qlora, QloraConfig),
    Component("dora", Dora, LoraConfig),
    Component("ia3", Ia3, Ia3Config),
    Component("prompt_tuning", PromptTuning, PromptTuningConfig),
    Component("prefix_tuning", PrefixTuning, PrefixTuningConfig),
    Component("p_tuning", PTuning, PTuningConfig),
    Component("custom", Custom, CustomConfig),
]
