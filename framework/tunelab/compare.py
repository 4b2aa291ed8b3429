"""The comparison table of the runs under a (multirun) directory."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

#: Columns shown first, when present; any other numeric metric follows.
PREFERRED = [
    "test_accuracy",
    "test_macro_f1",
    "test_preference_accuracy",
    "test_reward_margin",
    "test_loss",
    "test_perplexity",
    "test_token_accuracy",
    "test_exact_match",
    "test_token_f1",
    "test_rouge_l",
    "trainable_params",
    "trainable_pct",
    "train_seconds",
    "train_tokens_per_second",
    "peak_rss_mb",
    "peak_gpu_mb",
    "energy_kwh",
    "co2_g",
]


def collect_runs(root: Path) -> list[dict[str, Any]]:
    """One row per ``metrics.json`` below ``root`` (partial sweeps included)."""
    rows = []
    for path in sorted(root.rglob("metrics.json")):
        try:
            payload = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            rows.append({"run": str(path.parent.relative_to(root)), "status": f"unreadable: {exc}"})
            continue
        metrics = payload.get("metrics", {})
        row = {"run": payload.get("run") or path.parent.name, "dir": str(path.parent.relative_to(root)) or "."}
        row.update(metrics)
        rows.append(row)
    return rows


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    numeric = {k for row in rows for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if any(not k.startswith("data_") for k in numeric):  # a data-only sweep shows its split sizes
        numeric -= {k for k in numeric if k.startswith("data_")}
    ordered = [c for c in PREFERRED if c in numeric]
    return ["run", "status", *ordered, *sorted(numeric - set(ordered))]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def write_comparison(root: Path) -> tuple[list[dict[str, Any]], Path]:
    """Write ``comparison.md`` and ``comparison.csv`` in ``root``; return rows and the md path."""
    rows = collect_runs(root)
    columns = _columns(rows)
    with (root / "comparison.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Comparison: {root}", "", f"{len(rows)} runs.", ""]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    md = root / "comparison.md"
    md.write_text("\n".join(lines) + "\n")
    return rows, md


def render_terminal(rows: list[dict[str, Any]]) -> str:
    columns = _columns(rows)
    table = [columns] + [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in table)
