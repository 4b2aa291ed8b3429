"""What the trackers share: numbers out of nested statistics, the data statistics logged as
``prepare/...`` metrics, the warning for a missing tracker library, names W&B accepts,
and the files and headline numbers of a sweep's comparison."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any


def flat_numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, bool):
            out[prefix + key] = float(value)
        elif isinstance(value, (int, float)):
            out[prefix + key] = value
        elif isinstance(value, dict):
            out.update(flat_numbers(value, f"{prefix}{key}/"))
    return out


#: The data statistics TensorBoard and MLflow log as ``prepare/...`` metrics (the rest of the
#: prepare stage's statistics, e.g. per-step metadata, is in the run's data report).
DATA_STATS = (
    "rows_read",
    "rows_quarantined",
    "rows_added",
    "rows_dropped",
    "rows_final",
    "splits",
    "labels_after",
    "cache_hit",
    "seconds",
)


def warn_missing(tracker: str, package: str, consequence: str) -> None:
    """Warn (not fail) that a tracker's library is not installed, naming the extra to install."""
    warnings.warn(
        f"tracker={tracker} needs the {package} package: pip install 'tunelab[{tracker}]'; {consequence}",
        stacklevel=3,
    )


def slug(text: str, limit: int = 100) -> str:
    """``peft=lora,seed=0`` -> ``peft-lora-seed-0``: a name W&B accepts for an artifact or alias."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:limit] or "run"


def comparison_files(comparison: Any, sweep_dir: Path) -> dict[str, Path]:
    """The report files of a comparison (name -> path), existing ones only."""
    from tunelab.compare import APPROACHES_CSV, HTML, MARKDOWN, RUNS_CSV

    files = {
        "md": sweep_dir / MARKDOWN,
        "html": sweep_dir / HTML,
        "csv": sweep_dir / APPROACHES_CSV,
        "runs_csv": sweep_dir / RUNS_CSV,
    }
    files.update({k: Path(v) for k, v in (getattr(comparison, "files", None) or {}).items()})
    return {k: v for k, v in files.items() if v.is_file()}


def comparison_summary(comparison: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Headline numbers of a sweep: counts, the primary metric and the best approach's means."""
    approaches = list(getattr(comparison, "approaches", None) or [])
    out: dict[str, Any] = {
        "runs": len(rows),
        "failed_runs": sum(1 for r in rows if r.get("status") != "ok"),
        "approaches": len(approaches),
    }
    primary = getattr(comparison, "primary", None)
    best = getattr(comparison, "best", None)
    if primary:
        out["primary_metric"] = primary
    if best is not None:
        out["best_approach"] = best.name
        for metric, stat in best.stats.items():
            out[f"best/{metric}_mean"] = stat.mean
    return out
