"""The data report: what each step did to how many rows, and why."""

from __future__ import annotations

import base64
import html
import json
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


def _metadata_section(step: str, key: str, value: Any) -> list[str]:
    """A table for a flat mapping (agreement metrics, PII counts, class weights), JSON otherwise."""
    title = key.replace("_", " ")
    if not isinstance(value, (dict, list)) or (
        isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value)
    ):
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        return ["", f"- {step}: {title}: {shown}"]
    out = ["", f"### {title} ({step})", ""]
    if isinstance(value, dict) and value and all(not isinstance(v, (dict, list)) for v in value.values()):
        out += _table(["", "value"], [[k, f"{v:.4g}" if isinstance(v, float) else v] for k, v in value.items()])
    else:
        out += ["```json", json.dumps(value, indent=2, ensure_ascii=False, default=str)[:4000], "```"]
    return out


def render_data_report(summary: dict[str, Any], plots: dict[str, str] | None = None) -> str:
    """The report as Markdown; ``plots`` maps a title to a PNG file name next to it."""
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
    if summary.get("warnings"):
        out += ["", "## Warnings", ""]
        out += [f"- {w}" for w in summary["warnings"]]
    out += ["", "## Steps", ""]
    out += _table(
        ["stage", "step", "component", "rows in", "rows out", "added", "dropped", "seconds"],
        [
            [
                s["stage"],
                s["step"],
                s["component"],
                s["rows_in"],
                s["rows_out"],
                s["added"],
                s["dropped_total"],
                f"{s['seconds']:.3f}",
            ]
            for s in summary["steps"]
        ],
    )
    reasons = [[s["step"], reason, n] for s in summary["steps"] for reason, n in s["dropped"].items()]
    if reasons:
        out += ["", "## Removals by reason", ""]
        out += _table(["step", "reason", "rows"], reasons)
    counters = [[s["step"], name, n] for s in summary["steps"] for name, n in s["counters"].items()]
    if counters:
        out += ["", "## Edits and counts", ""]
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
    merges = (summary.get("label_normalisation") or {}).get("merges")
    if merges:
        case = summary["label_normalisation"].get("case", "keep")
        out += ["", f"## Label spellings merged (`{label}`, pipeline.label_case={case})", ""]
        out += _table(
            ["variant", "label", "rows", "why"],
            [[_escape(repr(m["variant"])), _escape(repr(m["label"])), m["rows"], m["why"]] for m in merges],
        )
    if summary.get("lengths_before"):
        out += ["", "## Lengths in characters (collected → before split)", ""]
        rows = []
        for column, before in summary["lengths_before"].items():
            after = summary.get("lengths_after", {}).get(column, {})
            rows.append(
                [column] + [f"{before.get(k, '')} → {after.get(k, '')}" for k in ("rows", "mean", "p50", "p95", "max")]
            )
        out += _table(["column", "rows", "mean", "median", "p95", "max"], rows)
    metadata = summary.get("metadata") or {}
    if metadata:
        out += ["", "## Step results"]
        for step, values in metadata.items():
            for key, value in values.items():
                out += _metadata_section(step, key, value)
    if plots:
        out += ["", "## Plots", ""]
        out += [f"![{title}]({name})" for title, name in plots.items()]
    out += [
        "",
        "Every row's fate — dropped, quarantined, edited, added, or kept in a split — is in `ledger.jsonl`; "
        "`tunelab explain ROW_ID` tells one row's story.",
        "",
    ]
    return "\n".join(out)


def write_plots(summary: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Label and length distributions before/after as PNG files; returns title -> file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    plots: dict[str, str] = {}
    if summary.get("labels_before"):
        names = sorted(set(summary["labels_before"]) | set(summary["labels_after"]))
        x = np.arange(len(names))
        fig, ax = plt.subplots(figsize=(max(5, len(names) * 0.9), 3.2))
        ax.bar(x - 0.2, [summary["labels_before"].get(n, 0) for n in names], 0.4, label="collected")
        ax.bar(x + 0.2, [summary["labels_after"].get(n, 0) for n in names], 0.4, label="before split")
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_ylabel("rows")
        ax.set_title("Label distribution")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "plot_labels.png", dpi=100)
        plt.close(fig)
        plots["Label distribution"] = "plot_labels.png"
    columns = list(summary.get("lengths_before") or {})
    if columns:
        fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3), squeeze=False)
        for ax, column in zip(axes[0], columns):
            before = summary["lengths_before"][column]
            after = summary.get("lengths_after", {}).get(column)
            labels = [f"<{b}" for b in before["bins"][1:]] + [f"≥{before['bins'][-1]}"]
            x = np.arange(len(labels))
            ax.bar(x - 0.2, before["histogram"], 0.4, label="collected")
            if after:
                ax.bar(x + 0.2, after["histogram"], 0.4, label="before split")
            ax.set_xticks(x, labels, rotation=60, fontsize=7)
            ax.set_title(f"{column} length (chars)")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "plot_lengths.png", dpi=100)
        plt.close(fig)
        plots["Length distribution"] = "plot_lengths.png"
    return plots


def render_html(markdown: str, out_dir: Path) -> str:
    """A self-contained HTML page of the Markdown report: tables, code blocks and the
    plots (embedded as data URIs, so the file can be mailed or attached as is)."""
    body: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip().replace("\\|", "|") for c in lines[i].strip().strip("|").split(" | ")]
                rows.append(cells)
                i += 1
            header, data = rows[0], [r for r in rows[2:]]
            body.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr>")
            body += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in data]
            body.append("</table>")
            continue
        if line.startswith("```"):
            block = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                block.append(lines[i])
                i += 1
            body.append("<pre>" + html.escape("\n".join(block)) + "</pre>")
        elif line.startswith("!["):
            title, name = line[2:].split("](", 1)
            name = name.rstrip(")")
            data = base64.b64encode((out_dir / name).read_bytes()).decode()
            body.append(
                f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(title)}</figcaption></figure>"
            )
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
        i += 1
    style = (
        "body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}"
        "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;"
        "font-size:.9rem;vertical-align:top}th{background:#f3f3f3}pre{background:#f7f7f7;padding:.5rem;overflow:auto}"
        "img{max-width:100%}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>tunelab data report</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_data_report(summary: dict[str, Any], out_dir: Path) -> None:
    """Write data_report.md, data_report.html and the PNG plots into ``out_dir``."""
    plots = write_plots(summary, out_dir)
    markdown = render_data_report(summary, plots)
    (out_dir / "data_report.md").write_text(markdown, encoding="utf-8")
    (out_dir / "data_report.html").write_text(render_html(markdown, out_dir), encoding="utf-8")
