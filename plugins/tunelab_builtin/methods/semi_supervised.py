"""The ``semi_supervised`` method: self-training of a classifier on partly labelled data."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from tunelab.api import LoadedModel, TrainJob, TrainOutcome
from tunelab.train.classifier_head import class_logits
from tunelab_builtin._lib.train_inputs import text_column
from tunelab_builtin.methods.classify import Classify, ClassifyConfig

log = logging.getLogger(__name__)


@dataclass
class SemiSupervisedConfig(ClassifyConfig):
    #: self-training rounds after the first (labelled-only) training; 0 is plain classify
    rounds: int = 1
    #: accept a pseudo-label when the predicted class has at least this probability
    threshold: float = 0.9


def is_unlabelled(value: Any) -> bool:
    """A missing label: None, or an empty / whitespace-only string."""
    return value is None or (isinstance(value, str) and not value.strip())


class SemiSupervised(Classify):
    """Self-training: fit on labelled rows, pseudo-label confident unlabelled rows, refit (``rounds`` times)."""

    def __init__(self, config: SemiSupervisedConfig):
        super().__init__(config)
        if not isinstance(config.rounds, int) or config.rounds < 0:
            raise ValueError(f"semi_supervised.rounds must be an integer >= 0, got {config.rounds!r}")
        if not 0.0 < config.threshold <= 1.0:
            raise ValueError(f"semi_supervised.threshold must be in (0, 1], got {config.threshold!r}")

    def train(self, job: TrainJob) -> TrainOutcome:
        import torch
        from datasets import concatenate_datasets

        if job.settings.save_steps or job.resume_from is not None:
            # several trainings in one output directory: a checkpoint would not say which round it is of
            log.warning(
                "semi_supervised: train.save_steps is ignored (its rounds are not checkpointed); "
                "a killed job starts over"
            )
            job = dataclasses.replace(job, resume_from=None, settings=dataclasses.replace(job.settings, save_steps=0))
        train = job.splits["train"]
        labels = [label for label in job.request.labels if not is_unlabelled(label)]
        values = train[job.label_column]
        labelled_idx = [i for i, v in enumerate(values) if not is_unlabelled(v)]
        unlabelled_idx = [i for i, v in enumerate(values) if is_unlabelled(v)]
        labelled, unlabelled = train.select(labelled_idx), train.select(unlabelled_idx)
        column = text_column(train, self.config.text_columns)
        metrics: dict[str, float] = {"semi_labelled": len(labelled), "semi_unlabelled": len(unlabelled)}
        final = job.settings
        settings = dataclasses.replace(final, save_model=False) if self.config.rounds else final
        outcome = Classify.train(
            self, dataclasses.replace(job, splits={**job.splits, "train": labelled}, settings=settings)
        )
        steps = outcome.metrics.get("train_steps", 0)
        for k in range(1, self.config.rounds + 1):
            accepted = labelled.select([])
            if len(unlabelled):
                logits = class_logits(outcome.model, job.model.tokenizer, unlabelled[column], final.max_length)
                probs = torch.softmax(logits, dim=-1)
                confidence, predicted = probs.max(dim=-1)
                # the model's outputs are in request.labels order (the head the loader built)
                names = list(job.request.labels)
                keep = [i for i in range(len(unlabelled)) if float(confidence[i]) >= self.config.threshold]
                pseudo = [names[int(predicted[i])] for i in keep]
                accepted = unlabelled.select(keep).remove_columns(job.label_column).add_column(job.label_column, pseudo)
                accepted = accepted.cast(labelled.features)
            metrics[f"semi_round_{k}_accepted"] = len(accepted)
            round_settings = final if k == self.config.rounds else settings
            # keep training the same (possibly PEFT-wrapped) model: no new adapter
            model = LoadedModel(outcome.model, job.model.tokenizer, job.model.name, job.model.source, job.model.task)
            round_job = dataclasses.replace(
                job,
                model=model,
                peft_config=None,
                splits={**job.splits, "train": concatenate_datasets([labelled, accepted])},
                settings=round_settings,
            )
            outcome = Classify.train(self, round_job)
            steps += outcome.metrics.get("train_steps", 0)
        outcome.metrics.update(metrics)
        outcome.metrics["semi_total_steps"] = steps
        outcome.metrics["train_classes"] = len(labels)
        return outcome
