"""The comparison report's output: Markdown (and the HTML page made from it), the per-run
and per-approach CSV files, the quality-vs-cost plots (when matplotlib is installed), and the
compact terminal table; :func:`write_comparison` writes them all into the compared directory.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from tunelab.api import EXAMPLE_SCORES_FILE
from tunelab.compare.comparison import (
    APPROACHES_CSV,
    COST_PLOTS,
    HTML,
    MARKDOWN,
    PRIMARY,
    RUNS_CSV,
    UNUSABLE,
    Comparison,
    build_comparison,
)
from tunelab.compare.runs import PREFERRED, metric_columns
from tunelab.compare.statistics import (
    CONFIDENCE,
    EXACT_MAX_ROWS,
    PERMUTATION_SEED,
    RESAMPLES,
    Stat,
    best_indices,
    direction,
)


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


def _fmt_p(p: float | None) -> str:
    if p is None:
        return ""
    return "<0.0001" if p < 1e-4 else f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def _cell(stat: Stat | None) -> str:
    if stat is None:
        return ""
    return _fmt(stat.mean) if stat.std is None else f"{_fmt(stat.mean)} ± {_fmt(stat.std)}"


def _ci(stat: Stat | None) -> str:
    if stat is None or stat.ci_low is None:
        return ""
    return f"[{_fmt(stat.ci_low)}, {_fmt(stat.ci_high)}]"


def _status(counter: Counter) -> str:
    order = ["ok", *UNUSABLE]
    keys = sorted(counter, key=lambda k: (order.index(k) if k in order else len(order), k))
    return ", ".join(f"{k} {counter[k]}" for k in keys)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def clean(text: str) -> str:
        return str(text).replace("|", "/").replace("\n", " ")

    lines = ["| " + " | ".join(clean(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(clean(c) if c != "" else " " for c in row) + " |" for row in rows]


def _stat_table(comp: Comparison, columns: list[str], cell: Any, mark: bool = True) -> list[str]:
    header = ["approach", "seeds", "status", *columns]
    rows = [[f"`{a.label}`", str(a.n_seeds), _status(a.status)] for a in comp.approaches]
    for column in columns:
        stats = [a.stats.get(column) for a in comp.approaches]
        marked = best_indices([s.mean if s else None for s in stats], direction(column) if mark else 0)
        for i, (row, stat) in enumerate(zip(rows, stats)):
            text = cell(stat)
            row.append(f"**{text}**" if i in marked and text else text)
    return _md_table(header, rows)


def _sense_word(metric: str) -> str:
    return {1: "higher is better", -1: "lower is better"}.get(direction(metric), "")


def render_markdown(comp: Comparison) -> str:
    """The report as Markdown (plots referenced by file name, as in ``comp.plots``)."""
    out = [f"# Comparison: {comp.root}", ""]
    counts = Counter(r["status"] for r in comp.runs)
    out.append(
        f"{len(comp.runs)} runs ({_status(counts) or 'none'}) in {len(comp.approaches)} "
        f"approach{'' if len(comp.approaches) == 1 else 'es'}. "
        "An approach is a run's overrides without the seeds (`seed=`, `data_seed=`) and the settings that do not "
        "change results (`hydra`, `tracker`, `cache_dir`, `num_proc`, `resume`); its seeds are aggregated."
    )
    if comp.shared:
        out += ["", "Every approach shares: " + ", ".join(f"`{s}`" for s in comp.shared) + "."]
    if comp.primary and comp.best:
        out += [
            "",
            f"Primary metric: `{comp.primary}` ({_sense_word(comp.primary)}). "
            f"Best approach: **`{comp.best.label}`** ({_cell(comp.best.stats[comp.primary])}).",
        ]
    elif comp.runs:
        out += ["", "No quality metric (" + ", ".join(PRIMARY) + ") in any run: no best approach, no tests."]
    main = [c for c in comp.columns if c in PREFERRED] or comp.columns
    other = [c for c in comp.columns if c not in main]
    if comp.approaches:
        out += [
            "",
            "## Approaches",
            "",
            "Mean ± sample standard deviation over the seeds (plain mean for a single seed). "
            "**Bold**: the best value in the column (higher is better for accuracy, F1, ROUGE, exact match, "
            "preference accuracy, margin and throughput; lower for loss, perplexity, time, parameters, memory, "
            "energy and CO2e).",
            "",
        ]
        out += _stat_table(comp, main, _cell)
        if any(a.n_seeds > 1 for a in comp.approaches) and main:
            out += [
                "",
                f"## {int(CONFIDENCE * 100)}% confidence intervals",
                "",
                "Student's t interval of the mean over seeds: mean ± t(0.975, n − 1) · s / √n "
                "(blank with a single seed). Few seeds give wide intervals.",
                "",
            ]
            out += _stat_table(comp, main, _ci, mark=False)
    out += _significance_section(comp)
    out += _pareto_section(comp)
    out += _runs_section(comp)
    out += _failed_section(comp)
    if other:
        out += ["", "## Other metrics", "", "Mean ± sample standard deviation over the seeds.", ""]
        out += _stat_table(comp, other, _cell)
    out += [
        "",
        f"Files: `{MARKDOWN}`, `{HTML}`, `{APPROACHES_CSV}` (one row per approach: mean, std, CI, p-values), "
        f"`{RUNS_CSV}` (one row per run). Regenerate with `tunelab compare {comp.root}`.",
        "",
    ]
    return "\n".join(out)


def _significance_section(comp: Comparison) -> list[str]:
    if comp.best is None or len(comp.approaches) < 2:
        return []
    out = ["", "## Significance against the best approach", ""]
    out.append(
        f"Two-sided paired permutation (sign-flip) test of the mean per-example difference in "
        f"`{comp.example_key}` (from `{EXAMPLE_SCORES_FILE}`), best minus this approach, on the test rows both "
        "scored (joined on `id`; each approach's scores first averaged over its seeds). Exact over all "
        f"2^n sign patterns when n ≤ {EXACT_MAX_ROWS} rows, otherwise {RESAMPLES} random sign flips "
        f"(RNG seed {PERMUTATION_SEED}), `p = (1 + #{{|T*| ≥ |T|}}) / (1 + {RESAMPLES})` with T the mean difference. "
        "p is the chance of a difference at least this large if the two approaches were interchangeable "
        "on every example; it says nothing about seeds not run or other data. "
        "p (Holm) is adjusted for the number of comparisons (Holm-Bonferroni)."
    )
    if comp.primary == "test_macro_f1":
        out += ["", "Macro-F1 does not decompose per example: the test uses per-example correctness."]
    if comp.primary == "test_loss":
        out += ["", "Per-example loss is each row's mean token loss; `test_loss` weights rows by their token count."]
    out.append("")
    rows = []
    for a in comp.approaches:
        if a is comp.best:
            rows.append([f"`{a.label}`", "", "", "(best)", "", ""])
        elif a.test is not None:
            t = a.test
            rows.append(
                [f"`{a.label}`", str(t.n), _fmt(t.mean_difference), _fmt_p(t.p_value), _fmt_p(t.p_holm), a.note]
            )
        else:
            rows.append([f"`{a.label}`", "", "", "n/a", "", a.note])
    return out + _md_table(["approach", "paired rows", "mean difference (best − this)", "p", "p (Holm)", "note"], rows)


def _pareto_section(comp: Comparison) -> list[str]:
    if not comp.pareto and not comp.notes and not comp.plots:
        return []
    out = ["", "## Quality against cost", ""]
    labels = {a.name: a.label for a in comp.approaches}
    for cost, label, _log, _file in COST_PLOTS:
        if cost in comp.pareto:
            front = ", ".join(f"`{labels[n]}`" for n in comp.pareto[cost])
            out.append(f"- Pareto front of `{comp.primary}` against {label} (`{cost}`): {front}")
    out += [f"- {note}" for note in comp.notes]
    if comp.plots:
        out += [
            "",
            f"Points: approach means; error bars: {int(CONFIDENCE * 100)}% confidence intervals (with more than one "
            "seed); red: the Pareto front (no other approach is both cheaper and better).",
            "",
        ]
        out += [f"![{title}]({name})" for title, name in comp.plots.items()]
    return out


def _runs_section(comp: Comparison) -> list[str]:
    if not comp.runs:
        return ["", "No runs (no `metrics.json` and no Hydra job directories) found."]
    columns = [c for c in comp.columns if c in PREFERRED] or comp.columns
    rows = [
        [r["run"], r["dir"], r.get("seed") or "", r["status"], *(_fmt(r.get(c)) for c in columns)] for r in comp.runs
    ]
    return ["", "## Runs", ""] + _md_table(["run", "dir", "seed", "status", *columns], rows)


def _failed_section(comp: Comparison) -> list[str]:
    out = ["", "## Failed runs", ""]
    failed = comp.failed
    if not failed:
        return out + ["None: every run finished."]
    rows = [[r["run"], r["dir"], r["status"], str(r.get("error") or "")[:300]] for r in failed]
    return out + _md_table(["run", "dir", "status", "error"], rows)


def write_plots(comp: Comparison, out_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Quality (primary metric) against each cost, Pareto front highlighted; returns
    (title -> PNG file name, notes on plots not drawn)."""
    if comp.primary is None:
        return {}, []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}, ["Plots skipped: matplotlib is not installed (`pip install matplotlib`)."]
    plots: dict[str, str] = {}
    notes: list[str] = []
    primary = comp.primary
    for cost, label, log_scale, file_name in COST_PLOTS:
        members = [a for a in comp.approaches if primary in a.stats and cost in a.stats]
        if log_scale:
            members = [a for a in members if a.stats[cost].mean > 0]
        if not members:
            notes.append(f"No plot against {label}: no approach has both `{primary}` and `{cost}`.")
            continue
        front = set(comp.pareto.get(cost, []))
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for a in members:
            x, y = a.stats[cost], a.stats[primary]
            xerr = yerr = None
            if x.ci_low is not None:
                low = x.mean - x.ci_low
                xerr = [[min(low, 0.999 * x.mean) if log_scale else low], [x.ci_high - x.mean]]
            if y.ci_low is not None:
                yerr = [[y.mean - y.ci_low], [y.ci_high - y.mean]]
            on_front = a.name in front
            ax.errorbar(
                x.mean,
                y.mean,
                xerr=xerr,
                yerr=yerr,
                fmt="o",
                capsize=3,
                color="tab:red" if on_front else "tab:blue",
                ecolor="0.6",
                markersize=7 if on_front else 5,
                zorder=3,
            )
            ax.annotate(a.label, (x.mean, y.mean), textcoords="offset points", xytext=(6, 4), fontsize=7)
        ordered = [a for name in comp.pareto.get(cost, []) for a in members if a.name == name]
        if ordered:
            ax.plot(
                [a.stats[cost].mean for a in ordered],
                [a.stats[primary].mean for a in ordered],
                "-",
                color="tab:red",
                alpha=0.6,
                zorder=2,
                label="Pareto front",
            )
            ax.legend(fontsize=8)
        if log_scale:
            ax.set_xscale("log")
        ax.margins(x=0.15, y=0.1)  # room for the labels
        ax.set_xlabel(f"{label} ({cost}, lower is better)")
        ax.set_ylabel(f"{primary} ({_sense_word(primary)})")
        title = f"{primary} vs {label}"
        ax.set_title(title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / file_name, dpi=100)
        plt.close(fig)
        plots[title] = file_name
    return plots, notes


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return ["run", "status", *metric_columns(rows)]


def _approach_csv(comp: Comparison, path: Path) -> None:
    statuses = sorted({s for a in comp.approaches for s in a.status}, key=lambda s: (s != "ok", s))
    header = ["approach", "n_seeds", *(f"n_{s}" for s in statuses)]
    for column in comp.columns:
        header += [f"{column}_mean", f"{column}_std", f"{column}_ci_low", f"{column}_ci_high"]
    header += ["p_value_vs_best", "p_holm_vs_best", "mean_difference_vs_best", "paired_rows", "test_note"]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for a in comp.approaches:
            row: list[Any] = [a.name, a.n_seeds, *(a.status.get(s, 0) for s in statuses)]
            for column in comp.columns:
                s = a.stats.get(column)
                row += [s.mean, s.std, s.ci_low, s.ci_high] if s else [None] * 4
            if a is comp.best:
                row += [None, None, None, None, "best"]
            elif a.test is not None:
                row += [a.test.p_value, a.test.p_holm, a.test.mean_difference, a.test.n, a.note]
            else:
                row += [None, None, None, None, a.note]
            writer.writerow(["" if v is None else v for v in row])


def write_comparison(root: Path) -> Comparison:
    """Write the report files into ``root`` (see the module docstring); returns the comparison."""
    from tunelab.data.report import render_html

    root = Path(root)
    comp = build_comparison(root)
    with (root / RUNS_CSV).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=_columns(comp.runs), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(comp.runs)
    _approach_csv(comp, root / APPROACHES_CSV)
    comp.plots, comp.notes = write_plots(comp, root)
    markdown = render_markdown(comp)
    (root / MARKDOWN).write_text(markdown, encoding="utf-8")
    page = render_html(markdown, root)
    page = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", page)
    page = re.sub(r"`([^`<]+)`", r"<code>\1</code>", page)
    page = page.replace("<title>tunelab data report</title>", "<title>tunelab comparison</title>")
    (root / HTML).write_text(page, encoding="utf-8")
    comp.files = {
        "md": root / MARKDOWN,
        "html": root / HTML,
        "csv": root / APPROACHES_CSV,
        "runs_csv": root / RUNS_CSV,
        **{title: root / name for title, name in comp.plots.items()},
    }
    return comp


def render_terminal(comp: Comparison) -> str:
    """A compact table: one line per approach (primary metric, p vs best, main costs)."""
    primary = comp.primary
    if primary:
        metrics = [primary, *(c for c, *_ in COST_PLOTS if c in comp.columns)]
    else:
        metrics = comp.columns[:5]
    header = ["approach", "seeds", "status", *metrics]
    if primary and len(comp.approaches) > 1:
        header += ["p vs best", "p (Holm)"]
    table = [header]
    for a in comp.approaches:
        row = [a.label, str(a.n_seeds), _status(a.status)]
        row += [
            _cell(a.stats.get(m)) + ((" " + _ci(a.stats.get(m))) if m == primary and _ci(a.stats.get(m)) else "")
            for m in metrics
        ]
        if len(header) > len(row):
            if a is comp.best:
                row += ["best", ""]
            elif a.test is not None:
                row += [_fmt_p(a.test.p_value), _fmt_p(a.test.p_holm)]
            else:
                row += ["n/a", ""]
        table.append(row)
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    if comp.shared:
        lines.append("shared by all: " + ",".join(comp.shared))
    failed = comp.failed
    if failed:
        lines.append(
            f"{len(failed)} run(s) not ok: "
            + "; ".join(f"{r['dir']} ({r['status']})" for r in failed[:5])
            + (" ..." if len(failed) > 5 else "")
        )
    return "\n".join(lines)
