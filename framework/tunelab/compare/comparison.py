"""The comparison model: runs grouped into approaches (:class:`Approach`), their statistics,
the best approach by the primary metric, the paired tests against it on the per-example
scores (:data:`tunelab.api.EXAMPLE_SCORES_FILE`) and the Pareto fronts of quality against
each cost (:func:`build_comparison`, which writes nothing).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.api import EXAMPLE_SCORES_FILE
from tunelab.compare.runs import collect_runs, is_number, metric_columns, split_top
from tunelab.compare.statistics import (
    PairedTest,
    Stat,
    direction,
    holm,
    paired_permutation_test,
    pareto_front,
    summarize,
)

#: The primary (quality) metric: the first of these that any approach has.
PRIMARY = ("test_accuracy", "test_macro_f1", "test_preference_accuracy", "test_rouge_l", "test_loss")
#: The per-example score (a key of ``example_scores.jsonl``) the paired test uses for each
#: primary metric. Macro-F1 does not decompose per example: its test uses ``correct``.
EXAMPLE_SCORE_OF = {
    "test_accuracy": "correct",
    "test_macro_f1": "correct",
    "test_preference_accuracy": "correct",
    "test_rouge_l": "rouge_l",
    "test_loss": "loss",
}
#: Statuses of runs that contribute no numbers.
UNUSABLE = ("failed", "missing", "unreadable")

#: The plots: cost metric, axis label, log scale, file name.
COST_PLOTS = (
    ("trainable_params", "trainable parameters", True, "comparison_quality_vs_params.png"),
    ("train_seconds", "train time (s)", False, "comparison_quality_vs_time.png"),
    ("co2_g", "CO2e of training (g)", False, "comparison_quality_vs_co2.png"),
)

#: File names (in the compared directory).
MARKDOWN = "comparison.md"
HTML = "comparison.html"
RUNS_CSV = "comparison.csv"
APPROACHES_CSV = "comparison_approaches.csv"


@dataclass
class Approach:
    """The runs of one approach (its seeds) and their statistics."""

    name: str
    runs: list[dict[str, Any]]
    #: shorter name for tables and plots: the overrides not shared by every approach
    label: str = ""
    stats: dict[str, Stat] = field(default_factory=dict)
    test: PairedTest | None = None
    #: why there is no test (when there is none and this is not the best approach)
    note: str = ""

    @property
    def usable(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r["status"] not in UNUSABLE]

    @property
    def n_seeds(self) -> int:
        return len(self.usable)

    @property
    def status(self) -> Counter:
        return Counter(r["status"] for r in self.runs)


@dataclass
class Comparison:
    """Everything the report shows; :func:`write_comparison` fills ``files`` and ``plots``."""

    root: Path
    runs: list[dict[str, Any]]
    approaches: list[Approach]
    #: metric columns, in display order
    columns: list[str]
    primary: str | None = None
    best: Approach | None = None
    #: the per-example score the paired tests use
    example_key: str | None = None
    #: overrides every approach shares (left out of the labels)
    shared: list[str] = field(default_factory=list)
    #: cost metric -> names of the approaches on the Pareto front (quality vs that cost)
    pareto: dict[str, list[str]] = field(default_factory=dict)
    plots: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def md(self) -> Path:
        return self.files.get("md", self.root / MARKDOWN)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r["status"] != "ok"]


def _labels(approaches: list[Approach]) -> list[str]:
    """Overrides shared by all approaches; sets each approach's label to the rest."""
    parts = {a.name: split_top(a.name) if a.name != "default" else [] for a in approaches}
    shared = (
        [p for p in parts[approaches[0].name] if all(p in ps for ps in parts.values())] if len(approaches) > 1 else []
    )
    for a in approaches:
        a.label = ",".join(p for p in parts[a.name] if p not in shared) or (
            a.name if not shared else "(shared overrides only)"
        )
    return shared


def load_example_scores(run_dir: Path, key: str) -> dict[str, float] | None:
    """``id -> score`` of one run's ``example_scores.jsonl`` (finite numbers only); None
    when the file is missing or unreadable."""
    path = run_dir / EXAMPLE_SCORES_FILE
    if not path.is_file():
        return None
    scores: dict[str, float] = {}
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                row = json.loads(line)
                value = row.get(key) if isinstance(row, dict) else None
                if is_number(value) and math.isfinite(value) and row.get("id") is not None:
                    scores[str(row["id"])] = float(value)
    except (OSError, ValueError):
        return None
    return scores


def _approach_examples(root: Path, approach: Approach, key: str) -> tuple[dict[str, float], int]:
    """Per-example scores of an approach, averaged over its seeds; and how many runs had a file."""
    sums: dict[str, float] = {}
    counts: Counter = Counter()
    with_file = 0
    for run in approach.usable:
        scores = load_example_scores(root / run["dir"], key)
        if scores is None:
            continue
        with_file += 1
        for i, v in scores.items():
            sums[i] = sums.get(i, 0.0) + v
            counts[i] += 1
    return {i: sums[i] / counts[i] for i in sums}, with_file


def _run_tests(comp: Comparison) -> None:
    best, key = comp.best, comp.example_key
    if best is None or key is None:
        return
    best_scores, best_files = _approach_examples(comp.root, best, key)
    tested = []
    for a in comp.approaches:
        if a is best:
            continue
        if comp.primary not in a.stats:
            a.note = "no results" if not a.usable else f"no {comp.primary}"
            continue
        if not best_scores:
            a.note = f"no per-example scores ({EXAMPLE_SCORES_FILE} with '{key}') for the best approach"
            continue
        scores, files = _approach_examples(comp.root, a, key)
        if not scores:
            a.note = f"no per-example scores ({EXAMPLE_SCORES_FILE} with '{key}')"
            continue
        shared = sorted(set(best_scores) & set(scores))
        if not shared:
            a.note = "no shared test rows (example ids do not overlap)"
            continue
        a.test = paired_permutation_test([best_scores[i] for i in shared], [scores[i] for i in shared])
        notes = []
        if {r.get("data_key") for r in a.usable} != {r.get("data_key") for r in best.usable}:
            notes.append("different prepared data (data_key) than the best approach")
        if len(shared) < max(len(best_scores), len(scores)):
            notes.append(f"{len(shared)} of {max(len(best_scores), len(scores))} rows shared")
        if files < a.n_seeds or best_files < best.n_seeds:
            notes.append("some seeds lack per-example scores")
        a.note = "; ".join(notes)
        tested.append(a)
    for a, adjusted in zip(tested, holm([a.test.p_value for a in tested])):
        a.test.p_holm = adjusted


def build_comparison(root: Path) -> Comparison:
    """Collect the runs under ``root``, group them into approaches and compute the statistics
    and tests (writes nothing)."""
    root = Path(root)
    runs = collect_runs(root)
    groups: dict[str, Approach] = {}
    for run in runs:
        groups.setdefault(run["approach"], Approach(run["approach"], [])).runs.append(run)
    approaches = list(groups.values())
    usable = [r for a in approaches for r in a.usable]
    columns = metric_columns(usable)
    for a in approaches:
        for column in columns:
            values = [float(r[column]) for r in a.usable if is_number(r.get(column)) and math.isfinite(r[column])]
            if values:
                a.stats[column] = summarize(values)
    comp = Comparison(root=root, runs=runs, approaches=approaches, columns=columns)
    if approaches:
        comp.shared = _labels(approaches)
    comp.primary = next((m for m in PRIMARY if any(m in a.stats for a in approaches)), None)
    if comp.primary is not None:
        sense = direction(comp.primary)
        ranked = [a for a in approaches if comp.primary in a.stats]
        comp.best = (max if sense > 0 else min)(ranked, key=lambda a: a.stats[comp.primary].mean)
        comp.example_key = EXAMPLE_SCORE_OF.get(comp.primary)
        _run_tests(comp)
        for cost, *_ in COST_PLOTS:
            members = [a for a in ranked if cost in a.stats]
            if members:
                points = [(a.stats[cost].mean, a.stats[comp.primary].mean) for a in members]
                comp.pareto[cost] = [members[i].name for i in pareto_front(points, higher_quality=sense > 0)]
    return comp
