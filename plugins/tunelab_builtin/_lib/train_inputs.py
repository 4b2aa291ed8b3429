"""What the training methods and the evaluators read from a split, shared by both kinds:
the input text of a classifier (:func:`text_column`, :func:`check_text_columns`), class
indices of labels (:func:`label_indices`), the raw text of a row (:func:`documents`: cpt
and the masked_lm evaluator) and the columns of preference pairs (:data:`PAIR_COLUMNS`)."""

from __future__ import annotations

from typing import Any

from tunelab.api import CHOSEN, PROMPT, REJECTED, TEXT

PAIR_COLUMNS = (PROMPT, CHOSEN, REJECTED)


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


def check_text_columns(name: str, columns: list[str]) -> None:
    if not columns or not all(isinstance(c, str) and c for c in columns):
        raise ValueError(f"{name} must be a non-empty list of column names, got {columns!r}")


def documents(split: Any, text_fields: list[str], separator: str, where: str) -> list[str]:
    """The raw text of each row: ``text``, else ``text_fields`` joined by ``separator``."""
    if TEXT in split.column_names:
        return [t or "" for t in split[TEXT]]
    missing = [c for c in text_fields if c not in split.column_names]
    if missing:
        raise ValueError(
            f"{where}: the data has no 'text' column and lacks text_fields {missing} (it has {split.column_names})"
        )
    columns = [split[c] for c in text_fields]
    return [separator.join(v or "" for v in values) for values in zip(*columns)]
