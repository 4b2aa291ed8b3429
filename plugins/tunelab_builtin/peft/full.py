"""The ``none`` adaptation method: full fine-tuning (no PEFT config)."""

from __future__ import annotations

from tunelab.api import LoadedModel, PeftMethod


class FullFineTuning(PeftMethod):
    """Full fine-tuning: every weight of the model is trained."""

    def peft_config(self, model: LoadedModel) -> None:
        return None
