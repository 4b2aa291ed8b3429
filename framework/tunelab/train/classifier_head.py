"""What a sequence classifier is to tunelab: the common interface between the
classification methods (``classify``, ``feature``, ``semi_supervised``), the
``classification`` evaluator and ``tunelab.predict``.

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

What a run saves under ``OUTPUT_DIR/model``: the tokenizer, ``labels.json`` (method,
labels, text column, max length, whether an adapter or only a head was saved), and the
model (``classify``: the whole model, or the PEFT adapter with its trained head) or the
head (``feature``: :data:`HEAD_FILE`; the frozen backbone is rebuilt from the run's model
config).
"""

from __future__ import annotations

import functools
from typing import Any

HEAD_FILE = "head.safetensors"


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
            logits = model(
                input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device)
            ).logits
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
