"""The ``kto`` method: Kahneman-Tversky optimization on pairs split into desirable and
undesirable rows (TRL KTOTrainer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunelab.api import CHOSEN, PROMPT, REJECTED, TrainJob
from tunelab_builtin.methods._pairs import PairObjective, positive


@dataclass
class KtoConfig:
    #: strength of the KL pull towards the reference model
    beta: float = 0.1
    #: loss weight of desirable (chosen) completions
    desirable_weight: float = 1.0
    #: loss weight of undesirable (rejected) completions
    undesirable_weight: float = 1.0

    def __post_init__(self) -> None:
        positive("beta", self.beta)
        positive("desirable_weight", self.desirable_weight)
        positive("undesirable_weight", self.undesirable_weight)


def unpaired(rows: Any) -> Any:
    """Each pair becomes two KTO rows: (prompt, chosen, True) and (prompt, rejected, False)."""

    def split(batch: dict[str, list]) -> dict[str, list]:
        n = len(batch[PROMPT])
        return {
            PROMPT: batch[PROMPT] * 2,
            "completion": batch[CHOSEN] + batch[REJECTED],
            "label": [True] * n + [False] * n,
        }

    return rows.map(split, batched=True, remove_columns=rows.column_names, desc="unpair")


class Kto(PairObjective):
    """Kahneman-Tversky optimization on pairs split into desirable/undesirable rows (TRL KTOTrainer)."""

    def trl_classes(self) -> tuple[type, type]:
        from trl import KTOConfig, KTOTrainer

        return KTOTrainer, KTOConfig

    def trl_arguments(self) -> dict[str, Any]:
        c = self.config
        return {"beta": c.beta, "desirable_weight": c.desirable_weight, "undesirable_weight": c.undesirable_weight}

    def rows(self, pairs: Any, job: TrainJob) -> Any:
        return unpaired(pairs).shuffle(seed=job.seed)
