"""Preference objectives (TRL): dpo, kto, orpo, reward-model training and online RL
(rlhf), the built-in reward functions, and the ``preference`` evaluator.

Every method trains on prompt/chosen/rejected rows. Prompts and completions are rendered
with :func:`tunelab.train.formatting.render_pair` (chat template when there is one), the
same rendering the evaluator scores, so training and evaluation see the same tokens.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

from tunelab.api import CHOSEN, PROMPT, REJECTED, Component, Evaluator, Method, TrainJob, TrainOutcome
from tunelab.api import evaluation_split, write_example_scores
from tunelab.train.arguments import common_training_arguments, loss_metrics, run_trainer, save_trained
from tunelab.train.formatting import render_pair, tokenize_pair

PAIR_COLUMNS = (PROMPT, CHOSEN, REJECTED)

DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard",
    "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def rendered_pairs(split: Any, tokenizer: Any) -> Any:
    """prompt/chosen/rejected rendered as model text (chosen/rejected end in EOS)."""

    def render(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {PROMPT: [], CHOSEN: [], REJECTED: []}
        for p, c, r in zip(batch[PROMPT], batch[CHOSEN], batch[REJECTED]):
            prompt_text, chosen_text = render_pair(tokenizer, p or "", c or "")
            out[PROMPT].append(prompt_text)
            out[CHOSEN].append(chosen_text)
            out[REJECTED].append(render_pair(tokenizer, p or "", r or "")[1])
        return out

    return split.map(render, batched=True, remove_columns=split.column_names, desc="render pairs")


def trainer_args(config_cls: type, job: TrainJob, **extra: Any) -> Any:
    """A TRL config with the run's shared settings (same choices as every objective);
    ``extra`` adds the objective's own arguments and may override a shared one."""
    return config_cls(**{**common_training_arguments(job), **extra})


def reference_copy(job: TrainJob) -> Any:
    """The frozen reference for full fine-tuning: a copy of the loaded model.

    With a peft_config TRL uses the adapter-disabled base instead (None here). TRL's own
    fallback reloads the model from its hub id, which in-process models (tiny) lack.
    """
    if job.peft_config is not None:
        return None
    reference = copy.deepcopy(job.model.model)
    reference.requires_grad_(False)
    return reference.eval()


def finish(trainer: Any, result: Any, job: TrainJob, tokenizer: Any, rows: int, save_model: Any = None) -> TrainOutcome:
    """Metrics in the sft method's shape, and the model saved under output_dir/model."""
    metrics: dict[str, float] = {**loss_metrics(trainer, result), "train_rows": rows}
    # the last logged preference statistics (DPO/KTO/ORPO/reward: rewards/accuracies, margins...)
    for entry in reversed(trainer.state.log_history):
        stats = {k: v for k, v in entry.items() if k.startswith(("rewards/", "accuracy", "margin", "reward"))}
        if stats:
            metrics.update({"train_" + k.replace("/", "_"): float(v) for k, v in stats.items() if isinstance(v, (int, float))})
            break
    saved_to = save_trained(trainer, tokenizer, job, save_model)
    return TrainOutcome(model=trainer.model, tokenizer=tokenizer, metrics=metrics, saved_to=saved_to)


class PairObjective(Method):
    """The shared shape of dpo, kto and orpo: render the train pairs, build the TRL trainer
    with the run's settings, train, and report like every objective.

    A subclass states only what differs: :meth:`trl_classes` (TRL's trainer and config
    classes), :meth:`trl_arguments` (its own config fields, as TRL config arguments),
    :meth:`rows` (the dataset shape TRL wants) and whether the trainer takes a frozen
    reference model (:attr:`uses_reference`).
    """

    required_columns = PAIR_COLUMNS
    #: pass the trainer a frozen reference (``ref_model``, see :func:`reference_copy`)
    uses_reference: ClassVar[bool] = True

    def trl_classes(self) -> tuple[type, type]:  # pragma: no cover - contract
        """(trainer class, config class)."""
        raise NotImplementedError

    def trl_arguments(self) -> dict[str, Any]:  # pragma: no cover - contract
        """The objective's own arguments of the TRL config (besides the run's shared settings)."""
        raise NotImplementedError

    def rows(self, pairs: Any, job: TrainJob) -> Any:
        """The train dataset from the rendered prompt/chosen/rejected pairs."""
        return pairs

    def train(self, job: TrainJob) -> TrainOutcome:
        trainer_cls, config_cls = self.trl_classes()
        tokenizer = job.model.tokenizer
        args = trainer_args(config_cls, job, max_length=job.settings.max_length, **self.trl_arguments())
        rows = self.rows(rendered_pairs(job.splits["train"], tokenizer), job)
        reference = {"ref_model": reference_copy(job)} if self.uses_reference else {}
        trainer = trainer_cls(
            model=job.model.model, **reference, args=args, train_dataset=rows, processing_class=tokenizer,
            peft_config=job.peft_config, callbacks=job.callbacks,
        )
        result = run_trainer(trainer, job)
        return finish(trainer, result, job, tokenizer, len(rows))


# --- DPO --------------------------------------------------------------------------------


@dataclass
class DpoConfig:
    #: strength of the KL pull towards the reference model (higher: stay closer)
    beta: float = 0.1
    #: TRL loss: sigmoid (DPO), ipo, hinge, robust, apo_zero, ... (see docs)
    loss_type: str = "sigmoid"
    #: label smoothing of the sigmoid loss (conservative DPO), in [0, 0.5)
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        _positive("beta", self.beta)
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


# --- KTO ----------------------------------------------------------------------------------


@dataclass
class KtoConfig:
    #: strength of the KL pull towards the reference model
    beta: float = 0.1
    #: loss weight of desirable (chosen) completions
    desirable_weight: float = 1.0
    #: loss weight of undesirable (rejected) completions
    undesirable_weight: float = 1.0

    def __post_init__(self) -> None:
        _positive("beta", self.beta)
        _positive("desirable_weight", self.desirable_weight)
        _positive("undesirable_weight", self.undesirable_weight)


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


# --- ORPO (trl.experimental) ---------------------------------------------------------------


@dataclass
class OrpoConfig:
    #: weight of the odds-ratio term added to the NLL loss of chosen (lambda in the paper)
    beta: float = 0.1

    def __post_init__(self) -> None:
        _positive("beta", self.beta)


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


# --- reward model -----------------------------------------------------------------------


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


def is_reward_model(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base).__name__.endswith("ForSequenceClassification") and getattr(base.config, "num_labels", 0) == 1


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
            TrlRewardConfig, job, max_length=job.settings.max_length,
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
            model=model, args=args, train_dataset=rows, processing_class=tokenizer,
            peft_config=peft_config, callbacks=job.callbacks,
        )
        result = run_trainer(trainer, job)

        def save(path: str) -> None:
            # a merged, standalone classifier, so rlhf can load it with reward_model=<dir>
            trained = trainer.model
            if hasattr(trained, "merge_and_unload"):
                trained = copy.deepcopy(trained).merge_and_unload()
            trained.save_pretrained(path)

        return finish(trainer, result, job, tokenizer, len(rows), save_model=save)


# --- online RL ----------------------------------------------------------------------------

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
        _positive("temperature", self.temperature)
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
            config_cls, job, num_generations=c.num_generations, max_completion_length=c.max_completion_length,
            generation_batch_size=generation_batch, temperature=c.temperature, beta=c.beta,
        )
        split = job.splits["train"]
        rows = split.map(
            lambda r: {PROMPT: render_pair(tokenizer, r[PROMPT] or "", "")[0], CHOSEN: r[CHOSEN] or ""},
            remove_columns=[n for n in split.column_names if n not in (PROMPT, CHOSEN)], desc="render prompts",
        )
        model = job.model.model
        if job.peft_config is None and c.beta > 0 and not getattr(model.config, "_name_or_path", ""):
            # RLOO and GRPO reload the reference from the model's id; in-process models (tiny) have
            # none, so save the initial weights where it can find them
            reference = job.output_dir / "reference"
            model.save_pretrained(str(reference))
            model.config._name_or_path = str(reference)
        trainer = trainer_cls(
            model=model, reward_funcs=rewards, args=args, train_dataset=rows,
            processing_class=tokenizer, reward_processing_classes=[tokenizer] * len(rewards) if c.reward_model else None,
            peft_config=job.peft_config, callbacks=job.callbacks,
        )
        result = run_trainer(trainer, job)
        outcome = finish(trainer, result, job, tokenizer, len(rows))
        history = [e["reward"] for e in trainer.state.log_history if "reward" in e]
        if history:
            outcome.metrics["train_reward_first"] = float(history[0])
            outcome.metrics["train_reward_last"] = float(history[-1])
        return outcome


# --- evaluation ---------------------------------------------------------------------------


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
            raise ValueError(f"eval=preference needs columns {list(PAIR_COLUMNS)}; the '{c.split}' split lacks {missing}")
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


COMPONENTS = [
    ("method", Component("dpo", Dpo, DpoConfig)),
    ("method", Component("kto", Kto, KtoConfig)),
    ("method", Component("reward", Reward, RewardConfig)),
    ("method", Component("rlhf", Rlhf, RlhfConfig)),
    ("evaluator", Component("preference", PreferenceEvaluator, PreferenceEvalConfig)),
]
if orpo_available():
    COMPONENTS.append(("method", Component("orpo", Orpo, OrpoConfig)))
