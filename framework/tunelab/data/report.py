"""The data report: what each step did to how many rows, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any


#: columns whose lengths (in characters) the report profiles, when present
LENGTH_COLUMNS = ("prompt", "completion", "text", "chosen", "rejected")
LENGTH_BINS = (0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def length_profile(data: Any) -> dict[str, dict[str, Any]]:
    """Character-length statistics and a histogram per text column."""
    import numpy as np

    profile: dict[str, dict[str, Any]] = {}
    for column in LENGTH_COLUMNS:
        if column not in data.column_names:
            continue
        lengths = np.array([len(v) if isinstance(v, str) else 0 for v in data[column]])
        if lengths.size == 0:
            continue
        counts, _ = np.histogram(lengths, bins=[*LENGTH_BINS, max(LENGTH_BINS[-1] + 1, int(lengths.max()) + 1)])
        profile[column] = {
            "rows": int(lengths.size),
            "mean": round(float(lengths.mean()), 1),
            "p50": int(np.percentile(lengths, 50)),
            "p95": int(np.percentile(lengths, 95)),
            "max": int(lengths.max()),
            "bins": list(LENGTH_BINS),
            "histogram": [int(c) for c in counts],
        }
    return profile


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _escape(text: str, limit: int = 160) -> str:
    text = text if len(text) <= limit else text[:limit] + "…"
    return text.replace("|", "\\|").replace("\n", "⏎")


def render_data_report(summary: dict[str, Any]) -> str:
    out = ["# Data report", ""]
    out.append(
        f"{summary['rows_read']} records read, {summary['rows_quarantined']} quarantined, "
        f"{summary['rows_added']} rows added, {summary['rows_dropped']} dropped in all "
        f"(quarantine included), {summary['rows_final']} in the splits: "
        + ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
        + "."
    )
    out.append("")
    out.append(
        f"Accounting: {summary['rows_read']} read + {summary['rows_added']} added = "
        f"{summary['rows_final']} kept + {summary['rows_dropped']} dropped."
    )
    out += ["", "## Steps", ""]
    out += _table(
        ["stage", "step", "component", "rows in", "rows out", "added", "dropped", "seconds"],
        [
            [s["stage"], s["step"], s["component"], s["rows_in"], s["rows_out"], s["added"], s["dropped_total"], f"{s['seconds']:.3f}"]
            for s in summary["steps"]
        ],
    )
    reasons = [[s["step"], reason, n] for s in summary["steps"] for reason, n in s["dropped"].items()]
    if reasons:
        out += ["", "## Removals by reason", ""]
        out += _table(["step", "reason", "rows"], reasons)
    counters = [[s["step"], name, n] for s in summary["steps"] for name, n in s["counters"].items()]
    if counters:
        out += ["", "## Edits", ""]
        out += _table(["step", "what", "rows"], counters)
    examples = [(s["step"], e) for s in summary["steps"] for e in s.get("examples", [])]
    if examples:
        out += ["", "## Examples of edits", ""]
        out += _table(
            ["step", "row", "before", "after"],
            [[step, e["id"], _escape(e["before"]), _escape(e["after"])] for step, e in examples],
        )
    label = summary.get("label_column", "label")
    if summary.get("labels_before"):
        out += ["", f"## Label distribution (`{label}`)", ""]
        names = sorted(set(summary["labels_before"]) | set(summary["labels_after"]))
        split_names = list(summary.get("split_labels", {}))
        out += _table(
            ["label", "collected", "before split", *split_names],
            [
                [
                    name,
                    summary["labels_before"].get(name, 0),
                    summary["labels_after"].get(name, 0),
                    *(summary["split_labels"][s].get(name, 0) for s in split_names),
                ]
                for name in names
            ],
        )
    out += ["", "Every dropped, added or quarantined row is listed with its reason in `ledger.jsonl`.", ""]
    return "\n".join(out)


def write_data_report(summary: dict[str, Any], path: Path) -> None:
    path.write_text(render_data_report(summary), encoding="utf-8")
