"""The ``dpo`` method: direct preference optimization (TRL DPOTrainer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunelab_builtin.methods._pairs import PairObjective, positive

DPO_LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)


@dataclass
class DpoConfig:
    #: strength of the KL pull towards the reference model (higher: stay closer)
    beta: float = 0.1
    #: TRL loss: sigmoid (DPO), ipo, hinge, robust, apo_zero, ... (see docs)
    loss_type: str = "sigmoid"
    #: label smoothing of the sigmoid loss (conservative DPO), in [0, 0.5)
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        positive("beta", self.beta)
        if self.loss_type not in DPO_LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {', '.join(DPO_LOSS_TYPES)}; got {self.loss_type!r}")
        if not 0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")


class Dpo(PairObjective):
    """Direct preference optimization on prompt/chosen/rejected pairs (TRL DPOTrainer)."""

    def trl_classes(self) -> tuple[type, type]:
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer, DPOConfig

    def trl_arguments(self) -> dict[str, Any]:
        c = self.config
        return {"beta": c.beta, "loss_type": [c.loss_type], "label_smoothing": c.label_smoothing}
