"""The ``classification`` evaluator: accuracy, macro-F1, F1 per class and cross-entropy of
a classifier (the interface of :mod:`tunelab.train.classifier_head`) on the test split."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, List  # noqa: UP035 (field types are printed as written: List[...] stays)

from tunelab.api import PROMPT, TEXT, Evaluator, TrainJob, TrainOutcome, evaluation_split, write_example_scores
from tunelab.train.classifier_head import class_logits, labels_of
from tunelab_builtin._lib.train_inputs import check_text_columns, label_indices, text_column


@dataclass
class ClassificationEvalConfig:
    #: candidate text columns (first present wins); keep in line with the method's
    text_columns: List[str] = field(default_factory=lambda: [TEXT, PROMPT])
    #: rows per forward pass
    batch_size: int = 32
    #: which split to score
    split: str = "test"


def metric_name(label: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", label).strip("_") or "empty"


def classification_scores(logits: Any, truth: list[int], labels: list[str], prefix: str = "test") -> dict[str, float]:
    """accuracy, macro F1, F1 per class, and mean cross-entropy (rows whose label the
    model does not know count as wrong and are left out of the loss)."""
    import torch
    from sklearn.metrics import f1_score

    predicted = logits.argmax(-1).tolist()
    truth_t = torch.tensor(truth, dtype=torch.long)
    known = truth_t >= 0
    loss = (
        float(torch.nn.functional.cross_entropy(logits[known], truth_t[known])) if bool(known.any()) else float("nan")
    )
    classes = list(range(len(labels)))
    per_class = f1_score(truth, predicted, labels=classes, average=None, zero_division=0)
    scores = {
        f"{prefix}_accuracy": sum(p == t for p, t in zip(predicted, truth)) / len(truth) if truth else float("nan"),
        f"{prefix}_macro_f1": float(per_class.mean()) if len(classes) else float("nan"),
        f"{prefix}_loss": loss,
        f"{prefix}_rows": len(truth),
        f"{prefix}_unknown_labels": int((~known).sum()),
    }
    for label, value in zip(labels, per_class):
        scores[f"{prefix}_f1_{metric_name(label)}"] = float(value)
    return scores


def example_scores(logits: Any, truth: list[int], labels: list[str]) -> list[dict[str, Any]]:
    """Per-row scores: ``correct`` (0/1), ``loss`` (cross-entropy; None for a label the
    model does not know), the ``predicted`` and the true ``label`` (class names)."""
    import torch

    predicted = logits.argmax(-1).tolist()
    truth_t = torch.tensor(truth, dtype=torch.long)
    losses = torch.nn.functional.cross_entropy(logits, truth_t.clamp(min=0), reduction="none").tolist() if truth else []
    return [
        {
            "correct": int(p == t),
            "loss": loss if t >= 0 else None,
            "predicted": labels[p] if 0 <= p < len(labels) else None,
            "label": labels[t] if t >= 0 else None,
        }
        for p, t, loss in zip(predicted, truth, losses)
    ]


class ClassificationEvaluator(Evaluator):
    """Accuracy, macro-F1, F1 per class and cross-entropy of a classifier on the test split."""

    scores = ("sequence_classification",)

    def __init__(self, config: ClassificationEvalConfig):
        super().__init__(config)
        check_text_columns("eval.text_columns", config.text_columns)
        if config.batch_size < 1:
            raise ValueError(f"eval.batch_size must be positive, got {config.batch_size}")

    def evaluate(self, job: TrainJob, outcome: TrainOutcome) -> dict[str, float]:
        c = self.config
        split = evaluation_split(job, c.split)
        if job.label_column not in split.column_names:
            raise ValueError(f"eval: the '{c.split}' split has no '{job.label_column}' column")
        labels = labels_of(outcome.model)
        column = text_column(split, c.text_columns)
        logits = class_logits(
            outcome.model, outcome.tokenizer, list(split[column]), job.settings.max_length, c.batch_size
        )
        truth = label_indices(split[job.label_column], labels)
        write_example_scores(job, example_scores(logits, truth, labels), split)
        return classification_scores(logits, truth, labels)
