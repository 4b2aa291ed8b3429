"""The ``reward`` method: reward-model training on preference pairs, a 1-output sequence
classifier on the causal LM's backbone (TRL RewardTrainer)."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

from tunelab.api import CHOSEN, PROMPT, REJECTED, Method, TrainJob, TrainOutcome
from tunelab.train.arguments import run_trainer
from tunelab.train.formatting import tokenize_pair
from tunelab_builtin._lib.train_inputs import PAIR_COLUMNS
from tunelab_builtin.methods._pairs import finish, rendered_pairs, trainer_args


@dataclass
class RewardConfig:
    #: pulls the mean reward towards 0 (TRL center_rewards_coefficient); 0 turns it off
    center_rewards_coefficient: float = 0.0

    def __post_init__(self) -> None:
        if self.center_rewards_coefficient < 0:
            raise ValueError(f"center_rewards_coefficient must be >= 0, got {self.center_rewards_coefficient}")


def reward_model_from(causal: Any) -> Any:
    """A 1-output sequence classifier sharing the causal LM's backbone weights.

    The model loader is asked for a causal LM (any loader can do that); its backbone
    (``base_model_prefix``, e.g. ``model`` for Llama) is copied into a fresh
    AutoModelForSequenceClassification with num_labels=1; only the score head is new.
    """
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(causal.config)
    config.num_labels = 1
    config.id2label, config.label2id = {0: "reward"}, {"reward": 0}
    if config.pad_token_id is None:
        config.pad_token_id = config.eos_token_id
    model = AutoModelForSequenceClassification.from_config(config, dtype=causal.dtype)
    prefix = causal.base_model_prefix
    getattr(model, prefix).load_state_dict(getattr(causal, prefix).state_dict())
    return model


class Reward(Method):
    """Reward-model training on pairs: a 1-output sequence classifier (TRL RewardTrainer)."""

    required_columns = PAIR_COLUMNS
    produces = "reward_model"

    def train(self, job: TrainJob) -> TrainOutcome:
        from trl import RewardConfig as TrlRewardConfig
        from trl import RewardTrainer

        tokenizer = job.model.tokenizer
        model = reward_model_from(job.model.model)
        peft_config = job.peft_config
        if peft_config is not None and hasattr(peft_config, "task_type"):
            # adapters were configured for the loaded causal LM; the head must train too
            peft_config = dataclasses.replace(peft_config, task_type="SEQ_CLS")
        args = trainer_args(
            TrlRewardConfig,
            job,
            max_length=job.settings.max_length,
            center_rewards_coefficient=self.config.center_rewards_coefficient or None,
        )
        pairs = rendered_pairs(job.splits["train"], tokenizer)
        max_length = job.settings.max_length

        def tokenize(row: dict[str, str]) -> dict[str, list[int]]:
            # pre-tokenized and truncated like the evaluator scores them (TRL would drop,
            # not truncate, texts longer than max_length)
            return {
                "chosen_ids": tokenize_pair(tokenizer, row[PROMPT], row[CHOSEN], max_length)[0],
                "rejected_ids": tokenize_pair(tokenizer, row[PROMPT], row[REJECTED], max_length)[0],
            }

        rows = pairs.map(tokenize, remove_columns=pairs.column_names, desc="tokenize pairs")
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=rows,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=job.callbacks,
        )
        result = run_trainer(trainer, job)

        def save(path: str) -> None:
            # a merged, standalone classifier, so rlhf can load it with reward_model=<dir>
            trained = trainer.model
            if hasattr(trained, "merge_and_unload"):
                trained = copy.deepcopy(trained).merge_and_unload()
            trained.save_pretrained(path)

        return finish(trainer, result, job, tokenizer, len(rows), save_model=save)
