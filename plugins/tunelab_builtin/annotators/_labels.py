"""What the annotators share: the ``label_source`` and ``label_confidence`` columns,
reading and writing label columns, and the review file a person looks at
(``review_<step>.jsonl`` in the prepared-data folder, copied into every run directory).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from tunelab.api import StageContext

LABEL_SOURCE = "label_source"
LABEL_CONFIDENCE = "label_confidence"


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def review_file_path(ctx: StageContext, configured: Optional[str], component: str) -> Path:
    # the step name (alias) is the natural file name; older contexts do not carry it
    step = getattr(ctx, "step", None) or component
    return Path(ctx.work_dir) / (configured or f"review_{step}.jsonl")


def check_file_name(step: str, name: Optional[str]) -> None:
    if name is not None and (not name or "/" in name or "\\" in name or name in (".", "..")):
        raise ValueError(
            f"{step}.review_file must be a plain file name (it is written to the prepared-data folder), got {name!r}"
        )


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def set_column(data: Any, name: str, values: list[Any], dtype: str) -> Any:
    from datasets import Value

    if name in data.column_names:
        data = data.remove_columns(name)
    return data.add_column(name, values, feature=Value(dtype))


def label_values(data: Any, column: str) -> list[Optional[str]]:
    """The label column as text (numbers become strings so model labels can join them)."""
    if column not in data.column_names:
        return [None] * len(data)
    return [None if is_empty(v) else str(v) for v in data[column]]


def existing_values(data: Any, column: str) -> list[Any]:
    return list(data[column]) if column in data.column_names else [None] * len(data)
