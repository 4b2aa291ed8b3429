"""The ``orpo`` method: odds-ratio preference optimization without a reference model (TRL
experimental ORPOTrainer); registered only when the installed TRL ships it
(:func:`orpo_available`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab_builtin.methods._pairs import PairObjective, positive


@dataclass
class OrpoConfig:
    #: weight of the odds-ratio term added to the NLL loss of chosen (lambda in the paper)
    beta: float = 0.1

    def __post_init__(self) -> None:
        positive("beta", self.beta)


def orpo_available() -> bool:
    """Whether the installed TRL ships ORPO (looked up on disk: importing trl is slow)."""
    import importlib.util

    spec = importlib.util.find_spec("trl")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return any((Path(loc) / "experimental" / "orpo").is_dir() for loc in locations)


class Orpo(PairObjective):
    """Odds-ratio preference optimization, no reference model (TRL experimental ORPOTrainer)."""

    uses_reference = False
    # found by scripts/compat_matrix.py: ORPOTrainer lines logits up with labels position by
    # position, and the virtual tokens these methods prepend shift them (prefix_tuning is fine)
    unsupported_peft = {
        name: "TRL's ORPO trainer does not account for the virtual tokens it prepends to every input"
        for name in ("prompt_tuning", "p_tuning")
    }

    def trl_classes(self) -> tuple[type, type]:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental" notice
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        return counting_input_tokens(ORPOTrainer), ORPOConfig

    def trl_arguments(self) -> dict[str, Any]:
        # the trainer's own count looks for input_ids, which ORPO's batches lack (it warned at
        # every step and counted nothing); counting_input_tokens counts instead
        return {"beta": self.config.beta, "include_num_input_tokens_seen": "no"}


def counting_input_tokens(trainer_cls: type) -> type:
    """``trainer_cls`` counting the tokens the model reads per step into
    ``state.num_input_tokens_seen`` (what ``train_tokens``, tokens/s and the
    ``train.max_train_tokens`` budget read) for batches of ``chosen_input_ids`` and
    ``rejected_input_ids``: both sequences, padded to the longer one, as the trainer
    concatenates them. Padding counts, as in the other objectives' counts."""
    import torch

    class CountingTrainer(trainer_cls):
        def training_step(self, model, inputs, *args, **kwargs):
            chosen, rejected = inputs.get("chosen_input_ids"), inputs.get("rejected_input_ids")
            if chosen is not None and rejected is not None:
                read = 2 * chosen.shape[0] * max(chosen.shape[1], rejected.shape[1])
                read = torch.as_tensor(read, device=self.args.device, dtype=torch.int64)
                self.state.num_input_tokens_seen += int(self.accelerator.gather(read).sum().item())
            return super().training_step(model, inputs, *args, **kwargs)

    CountingTrainer.__name__ = CountingTrainer.__qualname__ = f"TokenCounting{trainer_cls.__name__}"
    return CountingTrainer
