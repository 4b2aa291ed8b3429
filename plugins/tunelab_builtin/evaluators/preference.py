"""The ``preference`` evaluator: preference accuracy and margin of chosen over rejected,
scored by the policy's log-probs or by a reward model. It renders pairs with
:func:`tunelab.train.formatting.render_pair`, as the preference methods train on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunelab.api import (
    CHOSEN,
    PROMPT,
    REJECTED,
    Evaluator,
    TrainJob,
    TrainOutcome,
    evaluation_split,
    write_example_scores,
)
from tunelab.train.formatting import render_pair, tokenize_pair
from tunelab_builtin._lib.train_inputs import PAIR_COLUMNS


@dataclass
class PreferenceEvalConfig:
    #: causal LMs: score a completion by the sum or the mean of its token log-probs
    score: str = "sum"
    #: which split to score
    split: str = "test"
    #: score at most this many pairs (0: all)
    max_rows: int = 0

    def __post_init__(self) -> None:
        if self.score not in ("sum", "mean"):
            raise ValueError(f"score must be sum or mean, got {self.score!r}")
        if self.max_rows < 0:
            raise ValueError(f"max_rows must be >= 0, got {self.max_rows}")


def is_reward_model(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base).__name__.endswith("ForSequenceClassification") and getattr(base.config, "num_labels", 0) == 1


class PreferenceEvaluator(Evaluator):
    """Preference accuracy and margin: chosen vs rejected scored by the policy's log-prob or the reward model."""

    scores = ("causal_lm", "reward_model")
    required_columns = PAIR_COLUMNS

    def evaluate(self, job: TrainJob, outcome: TrainOutcome) -> dict[str, float]:
        import torch

        c = self.config
        split = evaluation_split(job, c.split)
        missing = [n for n in PAIR_COLUMNS if n not in split.column_names]
        if missing:
            raise ValueError(
                f"eval=preference needs columns {list(PAIR_COLUMNS)}; the '{c.split}' split lacks {missing}"
            )
        if c.max_rows:
            split = split.select(range(min(c.max_rows, len(split))))
        model, tokenizer = outcome.model, outcome.tokenizer
        reward = is_reward_model(model)
        device = next(model.parameters()).device
        model.eval()
        max_length = job.settings.max_length

        def score(prompt: str, completion: str) -> float:
            prompt_text, completion_text = render_pair(tokenizer, prompt, completion)
            ids, prompt_len = tokenize_pair(tokenizer, prompt_text, completion_text, max_length)
            input_ids = torch.tensor([ids], device=device)
            if reward:
                return float(model(input_ids=input_ids).logits[0, 0])
            logits = model(input_ids=input_ids).logits[:, -len(ids) :, :].float()  # prompt-learning prepends tokens
            logprobs = torch.log_softmax(logits[0, :-1], dim=-1)
            targets = input_ids[0, 1:]
            token_lp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)[max(prompt_len - 1, 0) :]
            if token_lp.numel() == 0:
                return 0.0
            return float(token_lp.sum() if c.score == "sum" else token_lp.mean())

        margins = []
        with torch.no_grad():
            for p, good, bad in zip(split[PROMPT], split[CHOSEN], split[REJECTED]):
                margins.append(score(p or "", good or "") - score(p or "", bad or ""))
        write_example_scores(job, ({"correct": int(m > 0), "margin": m} for m in margins), split)
        return {
            "test_preference_accuracy": sum(m > 0 for m in margins) / len(margins),
            "test_reward_margin": sum(margins) / len(margins),
            "test_rows": len(margins),
        }
