"""The ``rlhf`` method: online RL from a reward model or the built-in reward functions
(TRL's RLOOTrainer or GRPOTrainer), and those reward functions."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.api import CHOSEN, PROMPT, Method, TrainJob, TrainOutcome
from tunelab.train.arguments import run_trainer
from tunelab.train.formatting import render_pair
from tunelab_builtin._lib.train_inputs import PAIR_COLUMNS
from tunelab_builtin.methods._pairs import finish, positive, trainer_args

_WORD = re.compile(r"[a-z0-9']+")
_STOP = frozenset(
    "a an and are as at be but by can do for from has have i if in is it its me my no not of on or our so "
    "that the their then there this to up was we were will with you your".split()
)


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.casefold()) if w not in _STOP}


def _text(completion: Any) -> str:
    if isinstance(completion, list):  # conversational: [{"role": ..., "content": ...}]
        return " ".join(str(m.get("content", "")) for m in completion)
    return str(completion)


def length_penalty(prompts: list, completions: list, target_words: int = 40, **_: Any) -> list[float]:
    """1.0 for an answer of ``target_words`` words, falling linearly to 0 at 0 or 2x."""
    return [max(0.0, 1.0 - abs(len(_text(c).split()) - target_words) / target_words) for c in completions]


def keyword_overlap(prompts: list, completions: list, chosen: list | None = None, **_: Any) -> list[float]:
    """Fraction of the chosen answer's content words that the completion uses."""
    references = chosen or [""] * len(completions)
    scores = []
    for completion, reference in zip(completions, references):
        wanted = _content_words(_text(reference))
        scores.append(len(wanted & _content_words(_text(completion))) / len(wanted) if wanted else 0.0)
    return scores


#: built-in reward functions for rlhf (``reward_functions: [name, ...]``)
REWARD_FUNCTIONS: dict[str, Callable[..., list[float]]] = {
    "length_penalty": length_penalty,
    "keyword_overlap": keyword_overlap,
}


#: online RL algorithms for rlhf: TRL's trainer and config class names
RL_ALGORITHMS = {"rloo": ("RLOOTrainer", "RLOOConfig"), "grpo": ("GRPOTrainer", "GRPOConfig")}


@dataclass
class RlhfConfig:
    #: rloo (REINFORCE leave-one-out baseline) or grpo (group-normalised advantages)
    algorithm: str = "rloo"
    #: a trained reward model directory (a `method=reward` run's model/); null: use reward_functions
    reward_model: str | None = None
    #: built-in reward functions by name (length_penalty, keyword_overlap), summed
    reward_functions: list[str] = dataclasses.field(default_factory=lambda: ["keyword_overlap"])
    #: completions sampled per prompt (both baselines need at least 2)
    num_generations: int = 2
    #: longest sampled completion, in tokens (keep small on CPU)
    max_completion_length: int = 16
    #: sampling temperature
    temperature: float = 1.0
    #: KL coefficient towards the reference model (0: no reference model is kept)
    beta: float = 0.05

    def __post_init__(self) -> None:
        if self.algorithm not in RL_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(RL_ALGORITHMS)}, got {self.algorithm!r}")
        unknown = [n for n in self.reward_functions if n not in REWARD_FUNCTIONS]
        if unknown:
            raise ValueError(f"reward_functions: unknown {unknown}; available: {', '.join(REWARD_FUNCTIONS)}")
        if self.reward_model is None and not self.reward_functions:
            raise ValueError("reward_model or reward_functions: give a reward model directory or at least one function")
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2, got {self.num_generations}")
        if self.max_completion_length < 1:
            raise ValueError(f"max_completion_length must be >= 1, got {self.max_completion_length}")
        positive("temperature", self.temperature)
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")


class Rlhf(Method):
    """Online RL from a reward model or reward functions on the prompts (TRL's RLOOTrainer or GRPOTrainer)."""

    required_columns = PAIR_COLUMNS

    def train(self, job: TrainJob) -> TrainOutcome:
        import trl

        c, tokenizer = self.config, job.model.tokenizer
        trainer_name, config_name = RL_ALGORITHMS[c.algorithm]
        trainer_cls, config_cls = getattr(trl, trainer_name), getattr(trl, config_name)
        rewards: list[Any] = []
        if c.reward_model:
            path = Path(c.reward_model).expanduser()
            if not (path / "config.json").is_file():
                raise ValueError(f"reward_model: {path} is not a saved model directory (no config.json)")
            from transformers import AutoModelForSequenceClassification

            rewards.append(AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1))
        else:
            rewards += [REWARD_FUNCTIONS[name] for name in c.reward_functions]
        batch = job.settings.batch_size * job.settings.grad_accum
        generation_batch = max(c.num_generations, batch - batch % c.num_generations)
        args = trainer_args(
            config_cls,
            job,
            num_generations=c.num_generations,
            max_completion_length=c.max_completion_length,
            generation_batch_size=generation_batch,
            temperature=c.temperature,
            beta=c.beta,
        )
        split = job.splits["train"]
        rows = split.map(
            lambda r: {PROMPT: render_pair(tokenizer, r[PROMPT] or "", "")[0], CHOSEN: r[CHOSEN] or ""},
            remove_columns=[n for n in split.column_names if n not in (PROMPT, CHOSEN)],
            desc="render prompts",
        )
        model = job.model.model
        if job.peft_config is None and c.beta > 0 and not getattr(model.config, "_name_or_path", ""):
            # RLOO and GRPO reload the reference from the model's id; in-process models (tiny) have
            # none, so save the initial weights where it can find them
            reference = job.output_dir / "reference"
            model.save_pretrained(str(reference))
            model.config._name_or_path = str(reference)
        trainer = trainer_cls(
            model=model,
            reward_funcs=rewards,
            args=args,
            train_dataset=rows,
            processing_class=tokenizer,
            reward_processing_classes=[tokenizer] * len(rewards) if c.reward_model else None,
            peft_config=job.peft_config,
            callbacks=job.callbacks,
        )
        result = run_trainer(trainer, job)
        outcome = finish(trainer, result, job, tokenizer, len(rows))
        history = [e["reward"] for e in trainer.state.log_history if "reward" in e]
        if history:
            outcome.metrics["train_reward_first"] = float(history[0])
            outcome.metrics["train_reward_last"] = float(history[-1])
        return outcome
