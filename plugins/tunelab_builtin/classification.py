"""Sequence classification: fine-tuning a classifier (``classify``), feature-based
training of a head on a frozen encoder (``feature``), and the ``classification`` evaluator.

The common interface between the methods, the evaluator and ``tunelab.predict``:

* ``TrainOutcome.model`` is a torch module called as
  ``model(input_ids=..., attention_mask=...)`` that returns an object with ``.logits``
  of shape ``[batch, number of classes]``. A transformers ``...ForSequenceClassification``
  model (PEFT-wrapped or not) is one; :func:`feature_classifier` builds one from a frozen
  backbone and a linear head (a torch head, or a scikit-learn LogisticRegression whose
  coefficients are copied into a ``torch.nn.Linear``).
* The class names, in the order of the logits, are :func:`labels_of` the model: the
  ``class_labels`` attribute of a feature classifier, else ``model.config.id2label``.
* :func:`class_logits` turns texts into logits; the evaluator and ``predict`` both use it,
  so a reloaded run predicts exactly what was scored.

What a run saves under ``OUTPUT_DIR/model``: the tokenizer, ``labels.json``
(:data:`LABELS_FILE`: method, labels, text column, max length, whether an adapter or only
a head was saved), and the model (``classify``: the whole model, or the PEFT adapter with
its trained head) or the head (``feature``: ``head.safetensors``; the frozen backbone is
rebuilt from the run's model config).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List

from tunelab.api import PROMPT, TEXT, Component, Evaluator, Method, TrainJob, TrainOutcome
from tunelab.api import evaluation_split, write_example_scores

LABELS_FILE = "labels.json"
HEAD_FILE = "head.safetensors"
CLASS_WEIGHT_MODES = ("none", "auto", "balanced")
FEATURE_HEADS = ("torch", "sklearn")


# --- shared helpers ---------------------------------------------------------------------


def text_column(split: Any, candidates: list[str]) -> str:
    """The first of ``candidates`` that the split has."""
    for name in candidates:
        if name in split.column_names:
            return name
    raise ValueError(f"no text column: looked for {list(candidates)}, the data has {split.column_names}")


def label_indices(values: list[Any], labels: list[str]) -> list[int]:
    """Class index of each label value (-1 for a value that is not one of ``labels``)."""
    index = {label: i for i, label in enumerate(labels)}
    return [index.get(str(v), -1) if v is not None else -1 for v in values]


def weights_from_metadata(metadata: dict[str, Any]) -> dict[str, float] | None:
    """The per-class weights a data step stored, if one did (the ``class_weights``
    balancer: ``{step: {"class_weights": {label: weight}, ...}}``); the last such step wins."""
    found = None
    for result in metadata.values():  # in pipeline order
        if isinstance(result, dict) and isinstance(result.get("class_weights"), dict):
            found = {str(k): float(v) for k, v in result["class_weights"].items()}
    return found


def resolve_class_weights(mode: str, labels: list[str], train_labels: list[Any], metadata: dict[str, Any]) -> list[float] | None:
    """Loss weight per class (in ``labels`` order), or None for an unweighted loss.

    none: unweighted. auto: the weights of the data preparation's ``class_weights`` step
    when it ran (classes it does not name get 1.0), else unweighted. balanced:
    ``n / (k * count)`` from the train split's labels.
    """
    if mode not in CLASS_WEIGHT_MODES:
        raise ValueError(f"class_weights must be one of {', '.join(CLASS_WEIGHT_MODES)}, got {mode!r}")
    if mode == "none":
        return None
    if mode == "auto":
        weights = weights_from_metadata(metadata)
        return None if weights is None else [weights.get(label, 1.0) for label in labels]
    from tunelab_builtin._lib.class_weights import class_weights

    counts: dict[str, int] = {}
    for value in train_labels:
        if value is not None:
            counts[str(value)] = counts.get(str(value), 0) + 1
    weights = class_weights(counts, "balanced")
    return [weights.get(label, 1.0) for label in labels]


def labels_of(model: Any) -> list[str]:
    """Class names in the order of the model's logits."""
    labels = getattr(model, "class_labels", None)
    if labels is not None:
        return list(labels)
    id2label = model.config.id2label
    return [str(id2label[i]) for i in sorted(int(k) for k in id2label)]


def class_logits(model: Any, tokenizer: Any, texts: list[str], max_length: int, batch_size: int = 32) -> Any:
    """Logits ``[len(texts), classes]`` (float32, on the CPU) of a classifier module."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(
                [t or "" for t in texts[start : start + batch_size]],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            logits = model(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device)).logits
            out.append(logits.float().cpu())
    if not out:
        return torch.zeros((0, len(labels_of(model))))
    return torch.cat(out)


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """Mean of the token states, padding excluded."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


@functools.cache
def _feature_classifier_class() -> type:
    import torch
    from transformers.modeling_outputs import SequenceClassifierOutput

    class FeatureClassifier(torch.nn.Module):
        """A frozen encoder, mean pooling, and a trainable linear head."""

        def __init__(self, backbone: Any, head: Any, labels: list[str]):
            super().__init__()
            self.backbone = backbone
            self.head = head
            self.class_labels = list(labels)
            for param in self.backbone.parameters():
                param.requires_grad_(False)

        def embed(self, input_ids: Any, attention_mask: Any) -> Any:
            self.backbone.eval()
            with torch.no_grad():
                hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                return mean_pool(hidden, attention_mask).float()

        def forward(self, input_ids: Any, attention_mask: Any, **_: Any) -> Any:
            return SequenceClassifierOutput(logits=self.head(self.embed(input_ids, attention_mask)))

    return FeatureClassifier


def feature_classifier(backbone: Any, head: Any, labels: list[str]) -> Any:
    """A classifier module: frozen ``backbone`` → mean pooling → ``head`` (a torch Linear)."""
    return _feature_classifier_class()(backbone, head, labels)


def write_labels_file(directory: Path, **info: Any) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / LABELS_FILE).write_text(json.dumps(info, indent=2))


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _check_text_columns(name: str, columns: list[str]) -> None:
    if not columns or not all(isinstance(c, str) and c for c in columns):
        raise ValueError(f"{name} must be a non-empty list of column names, got {columns!r}")


# --- classify: fine-tune a classifier ---------------------------------------------------


@dataclass
class ClassifyConfig:
    #: candidate text columns; the first one the data has is the input text
    text_columns: List[str] = field(default_factory=lambda: [TEXT, PROMPT])
    #: none, auto (the weights of a class_weights data step, if it ran) or balanced (from the train split)
    class_weights: str = "none"


@functools.cache
def _weighted_trainer_class() -> type:
    import torch
    from transformers import Trainer

    class WeightedTrainer(Trainer):
        """A Trainer whose loss is (optionally class-weighted) cross-entropy of the logits."""

        def __init__(self, *args: Any, class_weights: list[float] | None = None, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.class_weights = class_weights
            # the loss below is a batch mean: let the Trainer scale it for gradient accumulation
            self.model_accepts_loss_kwargs = False

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: D401 - Trainer API
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs.logits.float()
            weight = None
            if self.class_weights is not None:
                weight = torch.tensor(self.class_weights, dtype=logits.dtype, device=logits.device)
            loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1), weight=weight)
            return (loss, outputs) if return_outputs else loss

    return WeightedTrainer


class Classify(Method):
    """Fine-tunes a sequence classifier (all weights, or a PEFT adapter) with optional class weights."""

    task = "sequence_classification"

    def __init__(self, config: ClassifyConfig):
        super().__init__(config)
        _check_text_columns("classify.text_columns", config.text_columns)
        _check_choice("classify.class_weights", config.class_weights, CLASS_WEIGHT_MODES)

    def train(self, job: TrainJob) -> TrainOutcome:
        from transformers import DataCollatorWithPadding, TrainingArguments

        from tunelab.train.arguments import common_training_arguments, run_trainer

        s = job.settings
        labels = list(job.request.labels)
        if len(labels) < 2:
            raise ValueError(f"method=classify needs at least two classes, the training data has {labels}")
        train = job.splits["train"]
        column = text_column(train, self.config.text_columns)
        tokenizer = job.model.tokenizer
        weights = resolve_class_weights(self.config.class_weights, labels, train[job.label_column], job.data_metadata)

        def encode(batch: dict[str, list]) -> dict[str, list]:
            enc = tokenizer([t or "" for t in batch[column]], truncation=True, max_length=s.max_length)
            return {
                "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"],
                "labels": label_indices(batch[job.label_column], labels),
            }

        dataset = train.map(encode, batched=True, remove_columns=train.column_names, desc="tokenize")
        dataset = dataset.filter(lambda row: row["labels"] >= 0)
        model = job.model.model
        if job.peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, job.peft_config)
        args = TrainingArguments(**common_training_arguments(job))
        trainer = _weighted_trainer_class()(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=job.callbacks,
            class_weights=weights,
        )
        result = run_trainer(trainer, job)
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        metrics = {
            "train_loss": float(result.training_loss),
            "train_loss_first": float(losses[0]) if losses else float("nan"),
            "train_loss_last": float(losses[-1]) if losses else float("nan"),
            "train_steps": trainer.state.global_step,
            "train_rows": len(dataset),
            "train_classes": len(labels),
            "train_class_weighted": float(weights is not None),
            "train_samples_per_second": float(result.metrics.get("train_samples_per_second", float("nan"))),
        }
        saved_to = None
        if s.save_model:
            saved_to = job.output_dir / "model"
            trainer.save_model(str(saved_to))
            tokenizer.save_pretrained(str(saved_to))
            write_labels_file(
                saved_to,
                method="classify",
                task="sequence_classification",
                labels=labels,
                text_column=column,
                max_length=s.max_length,
                adapter=job.peft_config is not None,
                class_weights=weights,
            )
        return TrainOutcome(model=trainer.model, tokenizer=tokenizer, metrics=metrics, saved_to=saved_to)


# --- feature: a head on a frozen encoder --------------------------------------------------


@dataclass
class FeatureConfig:
    #: torch (a linear layer trained with Adam) or sklearn (LogisticRegression)
    head: str = "torch"
    #: candidate text columns; the first one the data has is the input text
    text_columns: List[str] = field(default_factory=lambda: [TEXT, PROMPT])
    #: none, auto (the weights of a class_weights data step, if it ran) or balanced (from the train split)
    class_weights: str = "none"
    #: full-batch Adam steps of the torch head (on the precomputed embeddings)
    head_steps: int = 300
    #: learning rate of the torch head
    head_learning_rate: float = 0.01
    #: inverse regularization strength of the sklearn head
    C: float = 10.0
    #: rows per batch when computing embeddings
    embed_batch_size: int = 32


class Feature(Method):
    """Feature-based training (linear probing): a linear head on mean-pooled embeddings of a frozen encoder."""

    task = "encoder"
    produces = "sequence_classification"
    unsupported_peft = {"*": "feature-based training keeps the backbone frozen and trains only a head"}

    def __init__(self, config: FeatureConfig):
        super().__init__(config)
        _check_choice("feature.head", config.head, FEATURE_HEADS)
        _check_text_columns("feature.text_columns", config.text_columns)
        _check_choice("feature.class_weights", config.class_weights, CLASS_WEIGHT_MODES)
        for key in ("head_steps", "embed_batch_size"):
            if getattr(config, key) < 1:
                raise ValueError(f"feature.{key} must be positive, got {getattr(config, key)}")
        for key in ("head_learning_rate", "C"):
            if not getattr(config, key) > 0:
                raise ValueError(f"feature.{key} must be above 0, got {getattr(config, key)}")

    def train(self, job: TrainJob) -> TrainOutcome:
        import torch

        c, s = self.config, job.settings
        train = job.splits["train"]
        column = text_column(train, c.text_columns)
        labels = list(job.request.labels) or sorted({str(v) for v in train[job.label_column] if v is not None})
        if len(labels) < 2:
            raise ValueError(f"method=feature needs at least two classes, the training data has {labels}")
        targets = label_indices(train[job.label_column], labels)
        keep = [i for i, t in enumerate(targets) if t >= 0]
        texts = [train[column][i] for i in keep]
        y = torch.tensor([targets[i] for i in keep])
        weights = resolve_class_weights(c.class_weights, labels, train[job.label_column], job.data_metadata)

        backbone, tokenizer = job.model.model, job.model.tokenizer
        hidden = backbone.config.hidden_size
        head = torch.nn.Linear(hidden, len(labels))
        model = feature_classifier(backbone, head, labels)
        model.head.to(next(backbone.parameters()).device)
        x = self._embeddings(model, tokenizer, texts, s.max_length)
        torch.manual_seed(job.seed)
        if c.head == "torch":
            losses = self._train_torch_head(model.head, x, y, weights, job)
        else:
            losses = self._fit_sklearn_head(model.head, x, y, len(labels), weights, job.seed)
        metrics = {
            "train_loss": losses[-1],
            "train_loss_first": losses[0],
            "train_loss_last": losses[-1],
            "train_steps": c.head_steps if c.head == "torch" else 1,
            "train_rows": len(texts),
            "train_classes": len(labels),
            "train_class_weighted": float(weights is not None),
        }
        saved_to = None
        if s.save_model:
            from safetensors.torch import save_file

            saved_to = job.output_dir / "model"
            saved_to.mkdir(parents=True, exist_ok=True)
            save_file({k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}, str(saved_to / HEAD_FILE))
            tokenizer.save_pretrained(str(saved_to))
            write_labels_file(
                saved_to,
                method="feature",
                task="encoder",
                labels=labels,
                text_column=column,
                max_length=s.max_length,
                adapter=False,
                head=c.head,
                hidden_size=hidden,
                class_weights=weights,
            )
        return TrainOutcome(model=model, tokenizer=tokenizer, metrics=metrics, saved_to=saved_to)

    def _embeddings(self, model: Any, tokenizer: Any, texts: list[str], max_length: int) -> Any:
        import torch

        device = next(model.backbone.parameters()).device
        out = []
        for start in range(0, len(texts), self.config.embed_batch_size):
            enc = tokenizer(
                [t or "" for t in texts[start : start + self.config.embed_batch_size]],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            out.append(model.embed(enc["input_ids"].to(device), enc["attention_mask"].to(device)))
        return torch.cat(out)

    def _train_torch_head(self, head: Any, x: Any, y: Any, weights: list[float] | None, job: TrainJob) -> list[float]:
        import torch
        from transformers import TrainerControl, TrainerState

        weight = None if weights is None else torch.tensor(weights, device=x.device)
        y = y.to(x.device)
        optimizer = torch.optim.Adam(head.parameters(), lr=self.config.head_learning_rate)
        state, control = TrainerState(), TrainerControl()
        losses = []
        every = max(1, job.settings.logging_steps)
        for step in range(1, self.config.head_steps + 1):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(head(x), y, weight=weight)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if step % every == 0 or step == 1:
                state.global_step = step
                for callback in job.callbacks:  # the engine's log forwarder (train/loss per step)
                    callback.on_log(None, state, control, logs={"loss": losses[-1]})
        return losses

    def _fit_sklearn_head(self, head: Any, x: Any, y: Any, classes: int, weights: list[float] | None, seed: int) -> list[float]:
        import torch
        from sklearn.linear_model import LogisticRegression

        features, targets = x.cpu().numpy(), y.numpy()
        class_weight = None if weights is None else {i: w for i, w in enumerate(weights)}
        weight = None if weights is None else torch.tensor(weights)

        def loss_of() -> float:
            with torch.no_grad():
                return float(torch.nn.functional.cross_entropy(head(x.cpu()), y, weight=weight))

        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
        before = loss_of()  # the loss of the untrained (uniform) head, for train_loss_first
        clf = LogisticRegression(C=self.config.C, max_iter=2000, class_weight=class_weight, random_state=seed)
        clf.fit(features, targets)
        coef = torch.zeros((classes, features.shape[1]))
        intercept = torch.zeros(classes)
        present = [int(k) for k in clf.classes_]
        if len(present) == 2 and clf.coef_.shape[0] == 1:  # binary: logit of class 1 vs 0
            coef[present[1]] = torch.from_numpy(clf.coef_[0]).float()
            intercept[present[1]] = float(clf.intercept_[0])
        else:
            for row, k in enumerate(present):
                coef[k] = torch.from_numpy(clf.coef_[row]).float()
                intercept[k] = float(clf.intercept_[row])
        with torch.no_grad():
            head.weight.copy_(coef.to(head.weight.device))
            head.bias.copy_(intercept.to(head.bias.device))
        return [before, loss_of()]


# --- evaluation ----------------------------------------------------------------------------


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
        _check_text_columns("eval.text_columns", config.text_columns)
        if config.batch_size < 1:
            raise ValueError(f"eval.batch_size must be positive, got {config.batch_size}")

    def evaluate(self, job: TrainJob, outcome: TrainOutcome) -> dict[str, float]:
        c = self.config
        split = evaluation_split(job, c.split)
        if job.label_column not in split.column_names:
            raise ValueError(f"eval: the '{c.split}' split has no '{job.label_column}' column")
        labels = labels_of(outcome.model)
        column = text_column(split, c.text_columns)
        logits = class_logits(outcome.model, outcome.tokenizer, list(split[column]), job.settings.max_length, c.batch_size)
        truth = label_indices(split[job.label_column], labels)
        write_example_scores(job, example_scores(logits, truth, labels), split)
        return classification_scores(logits, truth, labels)


COMPONENTS = [
    ("method", Component("classify", Classify, ClassifyConfig)),
    ("method", Component("feature", Feature, FeatureConfig)),
    ("evaluator", Component("classification", ClassificationEvaluator, ClassificationEvalConfig)),
]
