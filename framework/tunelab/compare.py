"""The comparison report of the runs under a (multirun) directory.

Runs are grouped into *approaches*: a run's overrides minus the seed axis (``seed=...``)
and minus ``hydra.*``/``cache_dir`` overrides, so runs that differ only by seed are
aggregated (mean, sample std, Student's t 95% confidence interval of the mean). The best
approach by the primary metric is compared with every other one by a paired permutation
(sign-flip) test on the per-example scores each evaluator writes
(:data:`tunelab.api.EXAMPLE_SCORES_FILE`), with Holm-Bonferroni adjusted p-values.

Written into the directory: ``comparison.md``, ``comparison.html`` (self-contained),
``comparison.csv`` (one row per run), ``comparison_approaches.csv`` (one row per
approach) and, when matplotlib is installed, quality-vs-cost plots with the Pareto front.
Pure Python plus numpy (for the permutation test); nothing else is required.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

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
#: Metric-name fragments: higher is better / lower is better (checked in that order: lower first).
LOWER_IS_BETTER = ("loss", "perplexity", "seconds", "params", "trainable_pct", "_mb", "memory", "energy", "kwh", "co2")
HIGHER_IS_BETTER = ("accuracy", "f1", "rouge", "exact_match", "preference", "margin", "per_second")
#: Override keys that are the seed axis (aggregated over, not an approach).
SEED_KEYS = ("seed", "data_seed")
#: Override keys that do not change what a run computes (tunelab.run.VOLATILE_KEYS).
NOT_APPROACH_KEYS = frozenset({"hydra", "tracker", "cache_dir", "num_proc", "resume"})
#: Statuses of runs that contribute no numbers.
UNUSABLE = ("failed", "missing", "unreadable")

#: The permutation test: random sign flips (with this RNG seed), or every sign pattern
#: when there are at most EXACT_MAX_ROWS paired rows.
RESAMPLES = 10_000
PERMUTATION_SEED = 0
EXACT_MAX_ROWS = 16
CONFIDENCE = 0.95

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
EXAMPLE_SCORES = "example_scores.jsonl"  # tunelab.api.EXAMPLE_SCORES_FILE (not imported: api pulls in pluggy)


# --- statistics -------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            delta = d * c
            h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom, e.g.
    ``t_quantile(0.975, 4) == 2.776...``; the normal quantile beyond df = 1e7."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if not df > 0:
        raise ValueError(f"df must be positive, got {df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if df > 1e7:
        from statistics import NormalDist

        return NormalDist().inv_cdf(p)
    target = 1.0 - p
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > target:
        lo, hi = hi, hi * 2.0
    for _ in range(200):  # bisection: t_sf is decreasing in t
        mid = 0.5 * (lo + hi)
        if t_sf(mid, df) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


@dataclass
class Stat:
    """Mean, sample standard deviation and the t confidence interval of the mean of ``n`` values."""

    n: int
    mean: float
    std: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Stat:
    """Mean, sample std (n - 1) and ``mean ± t((1 + confidence) / 2, n - 1) · std / √n``;
    std and the interval are None for a single value."""
    n = len(values)
    if n == 0:
        raise ValueError("summarize() needs at least one value")
    mean = math.fsum(values) / n
    if n == 1:
        return Stat(1, mean)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile((1.0 + confidence) / 2.0, n - 1) * std / math.sqrt(n)
    return Stat(n, mean, std, mean - half, mean + half)


@dataclass
class PairedTest:
    """The paired permutation test of one approach against the best one."""

    #: paired rows (test-set ids both approaches scored)
    n: int
    #: mean over the paired rows of (best - this approach)
    mean_difference: float
    p_value: float
    #: "exact" (every sign pattern) or "monte carlo" (random sign flips)
    method: str
    resamples: int
    p_holm: float | None = None


def paired_permutation_test(
    best: Sequence[float], other: Sequence[float], resamples: int = RESAMPLES, seed: int = PERMUTATION_SEED
) -> PairedTest:
    """Two-sided paired permutation (sign-flip) test of the mean difference ``best - other``.

    Under the null hypothesis (the two approaches are exchangeable on each example) every
    per-example difference is as likely to have either sign. The statistic is |mean(d)|;
    with at most :data:`EXACT_MAX_ROWS` rows all 2^n sign patterns are enumerated (exact
    p), otherwise ``resamples`` random patterns from a fixed seed give
    ``p = (1 + #{|T*| >= |T|}) / (1 + resamples)`` (never 0; deterministic).
    """
    import numpy as np

    d = np.asarray(best, dtype=np.float64) - np.asarray(other, dtype=np.float64)
    n = int(d.size)
    if n == 0:
        raise ValueError("paired_permutation_test() needs at least one pair")
    observed = abs(float(d.mean()))
    tolerance = 1e-12 * max(1.0, float(np.abs(d).max()))
    threshold = n * (observed - tolerance)  # compare |sum| to avoid a division per resample
    if n <= EXACT_MAX_ROWS:
        patterns = ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float64)
        sums = d.sum() - 2.0 * (patterns @ d)  # flipping the rows whose bit is set
        p = float(np.count_nonzero(np.abs(sums) >= threshold)) / 2**n
        return PairedTest(n, float(d.mean()), min(1.0, p), "exact", 2**n)
    rng = np.random.default_rng(seed)
    values, counts = np.unique(d[d != 0.0], return_counts=True)
    if values.size <= 256:
        # few distinct differences (0/1 scores): the sum over the rows sharing a value v is
        # v · (m - 2·Binomial(m, 1/2)), the same distribution as flipping each row's sign
        flipped = rng.binomial(counts[None, :], 0.5, size=(resamples, values.size))
        sums = (counts[None, :] - 2.0 * flipped) @ values
        hits = int(np.count_nonzero(np.abs(sums) >= threshold))
    else:
        hits, done, total = 0, 0, float(d.sum())
        weights = d.astype(np.float32)
        chunk = max(8, min(resamples, 8_000_000 // n)) // 8 * 8
        while done < resamples:
            k = min(chunk, resamples - done)
            raw = np.frombuffer(rng.bytes((k * n + 7) // 8), dtype=np.uint8)
            bits = np.unpackbits(raw, count=k * n).reshape(k, n).astype(np.float32)  # 1: flip this row's sign
            hits += int(np.count_nonzero(np.abs(total - 2.0 * (bits @ weights).astype(np.float64)) >= threshold))
            done += k
    return PairedTest(n, float(d.mean()), (1 + hits) / (1 + resamples), "monte carlo", resamples)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down; monotone; capped at 1)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def pareto_front(points: Sequence[tuple[float, float]], higher_quality: bool = True) -> list[int]:
    """Indices of the points (cost, quality) no other point dominates (cost as low or
    lower and quality as good or better, one of them strictly), in order of cost."""
    sign = 1.0 if higher_quality else -1.0
    front = []
    for i, (cost, quality) in enumerate(points):
        q = sign * quality
        dominated = any(
            c2 <= cost and sign * q2 >= q and (c2 < cost or sign * q2 > q)
            for j, (c2, q2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -sign * points[i][1]))


def direction(metric: str) -> int:
    """+1 when higher is better, -1 when lower is better, 0 when neither (counts, sizes)."""
    if metric.startswith("data_") or metric.endswith(("_rows", "_steps", "_classes", "_tokens", "_generated")):
        return 0
    if any(part in metric for part in LOWER_IS_BETTER):
        return -1
    if any(part in metric for part in HIGHER_IS_BETTER):
        return 1
    return 0


def best_indices(values: Sequence[float | None], sense: int) -> set[int]:
    """Positions of the best value (ties included); empty when ``sense`` is 0 or when
    fewer than two values differ."""
    present = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if sense == 0 or len({v for _, v in present}) < 2:
        return set()
    target = max(v for _, v in present) if sense > 0 else min(v for _, v in present)
    return {i for i, v in present if v == target}


# --- runs and approaches -------------------------------------------------------------------


def _split_top(text: str) -> list[str]:
    """Split ``a=1,b=[x,y]`` at the commas outside brackets and quotes."""
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p]


def approach_of(overrides: Iterable[str]) -> tuple[str, str | None]:
    """(approach name, seed) of a run's overrides: the seed axes (``seed``, ``data_seed``) and
    the settings that do not change results (``hydra``, ``tracker``, ``cache_dir``,
    ``num_proc``, ``resume`` and their sub-keys) are not part of the approach. With both seed axes swept
    the seed is ``seed=S,data_seed=D``; with one, its value."""
    kept, seeds = [], []
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key.split(".", 1)[0] in NOT_APPROACH_KEYS or key.split("/", 1)[0] == "hydra":
            continue
        if key in SEED_KEYS:
            seeds.append((key, value))
            continue
        kept.append(override)
    if not seeds:
        seed = None
    elif len(seeds) == 1:
        seed = seeds[0][1]
    else:
        seed = ",".join(f"{key}={value}" for key, value in seeds)
    return ",".join(kept) or "default", seed


def _natural(path: str) -> list[Any]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", path) if part]


def _read_overrides(run_dir: Path) -> list[str] | None:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    try:
        import yaml

        loaded = yaml.safe_load(path.read_text())
    except Exception:  # an unreadable file only loses the name
        return None
    return [str(o) for o in loaded] if isinstance(loaded, list) else None


def collect_runs(root: Path) -> list[dict[str, Any]]:
    """One row per run below ``root``: every ``metrics.json`` (its metrics flattened into
    the row), plus every Hydra job directory without one (status ``missing``), so a partial
    sweep is accounted for in full. Each row has ``run``, ``dir``, ``status``, ``approach``
    and ``seed`` (strings) and, for failures, ``error``."""
    root = Path(root)
    found: dict[Path, Path | None] = {p.parent: p for p in root.rglob("metrics.json")}
    for hydra_dir in root.rglob(".hydra"):
        # a resumed job (resumed.txt) reused the metrics of a run that is counted where it is
        if hydra_dir.is_dir() and (hydra_dir / "overrides.yaml").is_file() and not (hydra_dir.parent / "resumed.txt").exists():
            found.setdefault(hydra_dir.parent, None)
    rows = []
    for run_dir in sorted(found, key=lambda p: _natural(str(p.relative_to(root)))):
        path = found[run_dir]
        rel = str(run_dir.relative_to(root)) or "."
        overrides = _read_overrides(run_dir)
        if path is None:
            row: dict[str, Any] = {
                "run": run_dir.name,
                "dir": rel,
                "status": "missing",
                "error": "no metrics.json: the job did not finish (killed, crashed hard, or still running)",
            }
        else:
            try:
                payload = json.loads(path.read_text())
                if not isinstance(payload, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as exc:
                payload = None
                row = {"run": run_dir.name, "dir": rel, "status": "unreadable", "error": f"metrics.json: {exc}"}
            if payload is not None:
                metrics = payload.get("metrics") if isinstance(payload.get("metrics"), dict) else {}
                row = {"run": payload.get("run") or run_dir.name, "dir": rel}
                row.update(metrics)
                row["status"] = str(metrics.get("status") or "unknown")
                if isinstance(payload.get("overrides"), list):
                    overrides = [str(o) for o in payload["overrides"]]
        if overrides is None:  # name the approach from the run name (which has no hydra.*/cache_dir overrides)
            overrides = _split_top(str(row["run"])) if path is not None and row["status"] != "unreadable" else [rel]
        row["approach"], row["seed"] = approach_of(overrides)
        if row["run"] == run_dir.name and overrides:
            row["run"] = ",".join(o for o in overrides if not o.startswith(("hydra.", "cache_dir="))) or row["run"]
        rows.append(row)
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return ["run", "status", *_metric_columns(rows)]


def _metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    numeric = {k for row in rows for k, v in row.items() if _is_number(v)}
    if any(not k.startswith("data_") for k in numeric):  # a data-only sweep shows its split sizes
        numeric -= {k for k in numeric if k.startswith("data_")}
    ordered = [c for c in PREFERRED if c in numeric]
    return [*ordered, *sorted(numeric - set(ordered))]


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
    parts = {a.name: _split_top(a.name) if a.name != "default" else [] for a in approaches}
    shared = [p for p in parts[approaches[0].name] if all(p in ps for ps in parts.values())] if len(approaches) > 1 else []
    for a in approaches:
        a.label = ",".join(p for p in parts[a.name] if p not in shared) or (a.name if not shared else "(shared overrides only)")
    return shared


def load_example_scores(run_dir: Path, key: str) -> dict[str, float] | None:
    """``id -> score`` of one run's ``example_scores.jsonl`` (finite numbers only); None
    when the file is missing or unreadable."""
    path = run_dir / EXAMPLE_SCORES
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
                if _is_number(value) and math.isfinite(value) and row.get("id") is not None:
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
            a.note = f"no per-example scores ({EXAMPLE_SCORES} with '{key}') for the best approach"
            continue
        scores, files = _approach_examples(comp.root, a, key)
        if not scores:
            a.note = f"no per-example scores ({EXAMPLE_SCORES} with '{key}')"
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
    columns = _metric_columns(usable)
    for a in approaches:
        for column in columns:
            values = [float(r[column]) for r in a.usable if _is_number(r.get(column)) and math.isfinite(r[column])]
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


# --- output --------------------------------------------------------------------------------


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
        f"{len(comp.runs)} runs ({_status(counts) or 'none'}) in {len(comp.approaches)} approach{'' if len(comp.approaches) == 1 else 'es'}. "
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
        f"`{comp.example_key}` (from `{EXAMPLE_SCORES}`), best minus this approach, on the test rows both "
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
            rows.append([f"`{a.label}`", str(t.n), _fmt(t.mean_difference), _fmt_p(t.p_value), _fmt_p(t.p_holm), a.note])
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
    rows = [[r["run"], r["dir"], r.get("seed") or "", r["status"], *(_fmt(r.get(c)) for c in columns)] for r in comp.runs]
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
                x.mean, y.mean, xerr=xerr, yerr=yerr, fmt="o", capsize=3,
                color="tab:red" if on_front else "tab:blue", ecolor="0.6", markersize=7 if on_front else 5, zorder=3,
            )
            ax.annotate(a.label, (x.mean, y.mean), textcoords="offset points", xytext=(6, 4), fontsize=7)
        ordered = [a for name in comp.pareto.get(cost, []) for a in members if a.name == name]
        if ordered:
            ax.plot(
                [a.stats[cost].mean for a in ordered], [a.stats[primary].mean for a in ordered],
                "-", color="tab:red", alpha=0.6, zorder=2, label="Pareto front",
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
        row += [_cell(a.stats.get(m)) + ((" " + _ci(a.stats.get(m))) if m == primary and _ci(a.stats.get(m)) else "") for m in metrics]
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
        lines.append(f"{len(failed)} run(s) not ok: " + "; ".join(f"{r['dir']} ({r['status']})" for r in failed[:5]) + (" ..." if len(failed) > 5 else ""))
    return "\n".join(lines)
