"""The ``feature`` method: feature-based training (linear probing) of a head (torch, or a
scikit-learn LogisticRegression) on mean-pooled embeddings of a frozen encoder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List  # noqa: UP035 (field types are printed as written: List[...] stays)

from tunelab.api import PROMPT, TEXT, Method, TrainJob, TrainOutcome
from tunelab.train.classifier_head import HEAD_FILE, feature_classifier
from tunelab_builtin._lib.choices import check_choice
from tunelab_builtin._lib.train_inputs import check_text_columns, label_indices, text_column
from tunelab_builtin.methods._classifier import (
    CLASS_WEIGHT_MODES,
    resolve_class_weights,
    write_labels_file,
)

FEATURE_HEADS = ("torch", "sklearn")


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
        check_choice("feature.head", config.head, FEATURE_HEADS)
        check_text_columns("feature.text_columns", config.text_columns)
        check_choice("feature.class_weights", config.class_weights, CLASS_WEIGHT_MODES)
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
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()},
                str(saved_to / HEAD_FILE),
            )
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

    def _fit_sklearn_head(
        self, head: Any, x: Any, y: Any, classes: int, weights: list[float] | None, seed: int
    ) -> list[float]:
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
