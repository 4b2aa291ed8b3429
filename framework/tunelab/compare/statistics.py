"""The statistics of the comparison report: Student's t (quantiles via the regularized
incomplete beta function), mean/std/confidence interval of a metric over seeds, the paired
permutation (sign-flip) test with Holm-Bonferroni adjustment, Pareto fronts, and which
direction of a metric is better. Pure Python plus numpy (for the permutation test).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Metric-name fragments: higher is better / lower is better (checked in that order: lower first).
LOWER_IS_BETTER = ("loss", "perplexity", "seconds", "params", "trainable_pct", "_mb", "memory", "energy", "kwh", "co2")
HIGHER_IS_BETTER = ("accuracy", "f1", "rouge", "exact_match", "preference", "margin", "per_second")

#: The permutation test: random sign flips (with this RNG seed), or every sign pattern
#: when there are at most EXACT_MAX_ROWS paired rows.
RESAMPLES = 10_000
PERMUTATION_SEED = 0
EXACT_MAX_ROWS = 16
CONFIDENCE = 0.95


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
