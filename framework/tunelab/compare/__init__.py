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

The modules: :mod:`~tunelab.compare.statistics` (t intervals, the permutation test, Holm,
Pareto fronts), :mod:`~tunelab.compare.runs` (collecting a sweep's runs),
:mod:`~tunelab.compare.comparison` (approaches and their tests) and
:mod:`~tunelab.compare.render` (Markdown, HTML, CSV, plots, the terminal table).
This package re-exports their public names.
"""

from tunelab.compare.comparison import (
    APPROACHES_CSV,
    COST_PLOTS,
    EXAMPLE_SCORE_OF,
    HTML,
    MARKDOWN,
    PRIMARY,
    RUNS_CSV,
    UNUSABLE,
    Approach,
    Comparison,
    build_comparison,
    load_example_scores,
)
from tunelab.compare.render import render_markdown, render_terminal, write_comparison, write_plots
from tunelab.compare.runs import NOT_APPROACH_KEYS, PREFERRED, SEED_KEYS, approach_of, collect_runs
from tunelab.compare.statistics import (
    CONFIDENCE,
    EXACT_MAX_ROWS,
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    PERMUTATION_SEED,
    RESAMPLES,
    PairedTest,
    Stat,
    best_indices,
    betainc,
    direction,
    holm,
    paired_permutation_test,
    pareto_front,
    summarize,
    t_quantile,
    t_sf,
)

__all__ = [
    "APPROACHES_CSV",
    "CONFIDENCE",
    "COST_PLOTS",
    "EXACT_MAX_ROWS",
    "EXAMPLE_SCORE_OF",
    "HIGHER_IS_BETTER",
    "HTML",
    "LOWER_IS_BETTER",
    "MARKDOWN",
    "NOT_APPROACH_KEYS",
    "PERMUTATION_SEED",
    "PREFERRED",
    "PRIMARY",
    "RESAMPLES",
    "RUNS_CSV",
    "SEED_KEYS",
    "UNUSABLE",
    "Approach",
    "Comparison",
    "PairedTest",
    "Stat",
    "approach_of",
    "best_indices",
    "betainc",
    "build_comparison",
    "collect_runs",
    "direction",
    "holm",
    "load_example_scores",
    "paired_permutation_test",
    "pareto_front",
    "render_markdown",
    "render_terminal",
    "summarize",
    "t_quantile",
    "t_sf",
    "write_comparison",
    "write_plots",
]
