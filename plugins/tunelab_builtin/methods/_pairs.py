"""What the preference methods (dpo, kto, orpo, reward, rlhf) share: the rendering of the
train pairs, TRL config arguments, the frozen reference model, the metrics and save of a
finished run, and :class:`PairObjective`, the shape of dpo, kto and orpo.

Every method trains on prompt/chosen/rejected rows. Prompts and completions are rendered
with :func:`tunelab.train.formatting.render_pair` (chat template when there is one), the
same rendering the ``preference`` evaluator scores, so training and evaluation see the
same tokens.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from tunelab.api import CHOSEN, PROMPT, REJECTED, Method, TrainJob, TrainOutcome
from tunelab.train.arguments import common_training_arguments, loss_metrics, run_trainer, save_trained
from tunelab.train.formatting import render_pair
from tunelab_builtin._lib.train_inputs import PAIR_COLUMNS


def positive(name: str, value: float) -> None:
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
            metrics.update(
                {"train_" + k.replace("/", "_"): float(v) for k, v in stats.items() if isinstance(v, (int, float))}
            )
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
            model=job.model.model,
            **reference,
            args=args,
            train_dataset=rows,
            processing_class=tokenizer,
            peft_config=job.peft_config,
            callbacks=job.callbacks,
        )
        result = run_trainer(trainer, job)
        return finish(trainer, result, job, tokenizer, len(rows))
