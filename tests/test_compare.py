"""The comparison report (tunelab.compare): grouping by seed, statistics, the paired
permutation test, Pareto fronts, failed/partial sweeps, the HTML page; and one real sweep."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest

from conftest import read_metrics, run_cli
from tunelab import compare
from tunelab.compare import (
    approach_of,
    best_indices,
    build_comparison,
    direction,
    holm,
    paired_permutation_test,
    pareto_front,
    summarize,
    t_quantile,
    write_comparison,
)


def make_run(root: Path, name: str, overrides: list[str], metrics: dict | None, scores: dict | None = None) -> Path:
    """A job directory as a sweep leaves it: .hydra/overrides.yaml, metrics.json (unless
    None: a job that never finished) and example_scores.jsonl (id -> {score: value})."""
    run_dir = root / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if metrics is not None:
        payload = {"run": ",".join(overrides), "group": "sweep", "overrides": overrides, "metrics": metrics}
        (run_dir / "metrics.json").write_text(json.dumps(payload))
    if scores is not None:
        lines = [json.dumps({"id": i, **values}) for i, values in scores.items()]
        (run_dir / "example_scores.jsonl").write_text("\n".join(lines) + "\n")
    return run_dir


def correct_scores(pattern: list[int]) -> dict[str, dict]:
    return {f"row:{i}": {"correct": c, "loss": 0.1 if c else 2.0} for i, c in enumerate(pattern)}


def ok(accuracy: float, params: int, seconds: float, co2: float, **more) -> dict:
    return {
        "status": "ok",
        "test_accuracy": accuracy,
        "test_loss": 1 - accuracy,
        "trainable_params": params,
        "train_seconds": seconds,
        "co2_g": co2,
        "data_test": 40,
        "data_key": "k",
        **more,
    }


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Three approaches × 3 seeds (one lora seed failed, one prompt_tuning seed never finished)."""
    root = tmp_path / "sweep"
    strong = [1] * 36 + [0] * 4  # 90% correct
    weak = [1] * 20 + [0] * 20  # 50% correct
    job = 0
    for seed, acc in enumerate((0.70, 0.74, 0.78)):
        make_run(
            root,
            str(job),
            ["experiment=smoke", "peft=none", f"seed={seed}"],
            ok(acc, 1000, 10.0 + seed, 0.5),
            correct_scores(strong),
        )
        job += 1
    for seed, acc in enumerate((0.60, 0.62)):
        make_run(
            root,
            str(job),
            ["experiment=smoke", "peft=lora", f"seed={seed}"],
            ok(acc, 100, 5.0, 0.2),
            correct_scores(weak),
        )
        job += 1
    failed = {"status": "failed", "error": "RuntimeError: CUDA out of memory", "data_test": 40}
    make_run(root, str(job), ["experiment=smoke", "peft=lora", "seed=2"], failed)
    job += 1
    make_run(
        root,
        str(job),
        ["experiment=smoke", "peft=prompt_tuning", "seed=0"],
        ok(0.30, 10, 20.0, 0.9),
        correct_scores(weak),
    )
    job += 1
    make_run(root, str(job), ["experiment=smoke", "peft=prompt_tuning", "seed=1"], None)
    return root


# --- statistics ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "df, expected",
    [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (5, 2.5706), (10, 2.2281), (30, 2.0423), (100, 1.9840)],
)
def test_t_quantile_matches_the_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)


def test_t_quantile_other_levels_symmetry_and_the_normal_limit():
    assert t_quantile(0.995, 1) == pytest.approx(63.6567, abs=1e-3)
    assert t_quantile(0.95, 10) == pytest.approx(1.8125, abs=1e-4)
    assert t_quantile(0.025, 4) == pytest.approx(-t_quantile(0.975, 4))
    assert t_quantile(0.5, 3) == 0.0
    assert t_quantile(0.975, 1e9) == pytest.approx(1.959964, abs=1e-6)
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)


def test_t_quantile_agrees_with_scipy_when_installed():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 7, 19, 50, 2.5):
        for p in (0.6, 0.9, 0.975, 0.999):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-7)


def test_summarize_mean_sample_std_and_t_interval():
    s = summarize([0.70, 0.74, 0.78])
    assert s.n == 3 and s.mean == pytest.approx(0.74)
    assert s.std == pytest.approx(0.04)  # sqrt((0.04² + 0 + 0.04²) / 2)
    half = 4.302653 * 0.04 / math.sqrt(3)
    assert s.ci_low == pytest.approx(0.74 - half, abs=1e-6) and s.ci_high == pytest.approx(0.74 + half, abs=1e-6)
    one = summarize([0.5])
    assert (one.mean, one.std, one.ci_low, one.ci_high) == (0.5, None, None, None)


def test_permutation_test_identical_different_and_deterministic():
    import numpy as np

    rng = np.random.default_rng(3)
    a = (rng.random(400) < 0.6).astype(float)
    same = paired_permutation_test(a, a)
    assert same.p_value == 1.0 and same.mean_difference == 0.0
    better = np.where(rng.random(400) < 0.3, 1.0, a)  # a's hits plus about 30% more
    different = paired_permutation_test(better, a)
    assert different.p_value < 0.01 and different.mean_difference > 0
    assert different.method == "monte carlo" and different.resamples == 10_000
    assert paired_permutation_test(better, a).p_value == different.p_value  # fixed RNG seed
    noise = rng.normal(size=300)
    first, second = paired_permutation_test(noise, np.zeros(300)), paired_permutation_test(noise, np.zeros(300))
    assert first.p_value == second.p_value and 0.0 < first.p_value <= 1.0


def test_permutation_test_is_exact_for_few_rows():
    # three positive differences: 2 of the 8 sign patterns reach |mean| = 1 (all +, all -)
    result = paired_permutation_test([1, 1, 1], [0, 0, 0])
    assert result.method == "exact" and result.resamples == 8
    assert result.p_value == pytest.approx(0.25)


def test_permutation_test_agrees_with_scipy_on_continuous_scores():
    stats = pytest.importorskip("scipy.stats")
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    y = x + rng.normal(size=300) + 0.12
    ours = paired_permutation_test(x, y).p_value
    theirs = stats.permutation_test(
        (x - y,), np.mean, permutation_type="samples", n_resamples=10_000, random_state=0
    ).pvalue
    assert ours == pytest.approx(theirs, abs=0.02)


def test_holm_adjusted_p_values():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_pareto_front_lower_cost_higher_quality():
    points = [(10, 0.9), (1, 0.5), (5, 0.5), (3, 0.8), (20, 0.85)]
    assert pareto_front(points) == [1, 3, 0]
    # lower quality is better (a loss): (1, 0.5) is cheapest and best
    assert pareto_front(points, higher_quality=False) == [1]
    assert pareto_front([(1, 1.0), (1, 1.0)]) == [0, 1]  # equal points dominate neither


def test_directions_and_best_marking():
    assert direction("test_accuracy") == 1 and direction("test_rouge_l") == 1
    assert direction("train_tokens_per_second") == 1 and direction("test_reward_margin") == 1
    for metric in (
        "test_loss",
        "test_perplexity",
        "trainable_params",
        "train_seconds",
        "peak_rss_mb",
        "energy_kwh",
        "co2_g",
    ):
        assert direction(metric) == -1, metric
    assert direction("data_train") == 0 and direction("test_rows") == 0
    assert best_indices([0.5, 0.9, 0.9, None], 1) == {1, 2}
    assert best_indices([3.0, 1.0], -1) == {1}
    assert best_indices([1.0, 1.0], 1) == set()  # nothing to single out
    assert best_indices([1.0, 2.0], 0) == set()


def test_approach_leaves_out_seed_hydra_and_cache_dir():
    assert approach_of(["peft=lora", "seed=3", "hydra.sweep.dir=x", "cache_dir=/tmp/c", "+train.max_steps=5"]) == (
        "peft=lora,+train.max_steps=5",
        "3",
    )
    assert approach_of(["seed=1"]) == ("default", "1")
    assert approach_of(
        ["peft=lora", "tracker=[csv,wandb]", "tracker.wandb.log_model=true", "num_proc=2", "resume=false"]
    ) == (
        "peft=lora",
        None,
    )
    assert approach_of(["peft=lora", "data_seed=2"]) == ("peft=lora", "2")
    assert approach_of(["seed=1", "peft=lora", "data_seed=2"]) == ("peft=lora", "seed=1,data_seed=2")


# --- the report --------------------------------------------------------------------------


def test_runs_that_differ_only_by_seed_are_aggregated(sweep):
    comp = write_comparison(sweep)
    assert [a.label for a in comp.approaches] == ["peft=none", "peft=lora", "peft=prompt_tuning"]
    assert comp.shared == ["experiment=smoke"]
    none, lora, prompt = comp.approaches
    assert (none.n_seeds, lora.n_seeds, prompt.n_seeds) == (3, 2, 1)
    assert lora.status == {"ok": 2, "failed": 1} and prompt.status == {"ok": 1, "missing": 1}
    assert comp.primary == "test_accuracy" and comp.best is none
    with (sweep / "comparison_approaches.csv").open() as fh:
        rows = {r["approach"]: r for r in csv.DictReader(fh)}
    row = rows["experiment=smoke,peft=none"]
    assert row["n_seeds"] == "3" and row["n_ok"] == "3"
    assert float(row["test_accuracy_mean"]) == pytest.approx(0.74)
    assert float(row["test_accuracy_std"]) == pytest.approx(0.04)
    assert float(row["test_accuracy_ci_high"]) == pytest.approx(0.74 + 4.302653 * 0.04 / math.sqrt(3), abs=1e-6)
    assert float(row["train_seconds_mean"]) == pytest.approx(11.0)
    lora_row = rows["experiment=smoke,peft=lora"]
    assert lora_row["n_failed"] == "1" and float(lora_row["test_accuracy_mean"]) == pytest.approx(0.61)
    assert rows["experiment=smoke,peft=prompt_tuning"]["n_missing"] == "1"
    assert rows["experiment=smoke,peft=prompt_tuning"]["test_accuracy_std"] == ""  # one seed: no spread
    assert row["test_note"] == "best" and row["p_value_vs_best"] == ""
    # the per-run table keeps its layout: every run, one row each
    with (sweep / "comparison.csv").open() as fh:
        runs = list(csv.DictReader(fh))
    assert len(runs) == 8 and list(runs[0])[:3] == ["run", "status", "test_accuracy"]


def test_paired_tests_against_the_best_with_holm(sweep):
    comp = build_comparison(sweep)
    none, lora, prompt = comp.approaches
    assert comp.example_key == "correct"
    assert lora.test.n == 40 and lora.test.mean_difference == pytest.approx(0.4)
    assert lora.test.p_value < 0.01 and prompt.test.p_value < 0.01
    assert lora.test.p_holm >= lora.test.p_value
    assert none.test is None  # the best is not tested against itself
    md = (write_comparison(sweep).md).read_text()
    assert "paired permutation (sign-flip) test" in md and "Holm" in md
    assert re.search(r"\| `peft=lora` \| 40 \| 0\.4 \| <?0\.0", md)


def test_best_value_per_column_is_bold(sweep):
    md = write_comparison(sweep).md.read_text()
    table = md.split("## Approaches")[1].split("##")[0]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| `")}
    assert "**0.74 ± 0.04**" in rows["`peft=none`"]  # highest accuracy
    assert "**10**" in rows["`peft=prompt_tuning`"]  # fewest trainable parameters
    assert "**5 ± 0**" in rows["`peft=lora`"]  # shortest training
    assert "**" not in rows["`peft=none`"].split("|")[-2]  # most CO2: not marked


def test_pareto_front_of_the_report(sweep):
    comp = build_comparison(sweep)
    assert comp.pareto["trainable_params"] == [
        "experiment=smoke,peft=prompt_tuning",
        "experiment=smoke,peft=lora",
        "experiment=smoke,peft=none",
    ]
    assert comp.pareto["train_seconds"] == ["experiment=smoke,peft=lora", "experiment=smoke,peft=none"]


def test_failed_missing_and_unreadable_runs_are_listed(sweep):
    (sweep / "9").mkdir()
    (sweep / "9" / "metrics.json").write_text("{not json")
    comp = write_comparison(sweep)
    assert len(comp.runs) == 9  # every job directory is accounted for
    failed = comp.md.read_text().split("## Failed runs")[1]
    assert "CUDA out of memory" in failed
    assert "peft=prompt_tuning" in failed and "missing" in failed and "no metrics.json" in failed
    assert "unreadable" in failed
    assert {r["status"] for r in comp.failed} == {"failed", "missing", "unreadable"}


def test_partial_sweep_through_the_cli(tmp_path, capsys):
    root = tmp_path / "partial"
    make_run(root, "0", ["peft=none", "seed=0"], ok(0.8, 1000, 3.0, 0.1), correct_scores([1, 1, 0, 1]))
    make_run(root, "1", ["peft=lora", "seed=0"], None)  # still running or killed
    assert run_cli(["compare", str(root)]) == 0
    out = capsys.readouterr().out
    assert str(root / "comparison.md") in out
    assert "peft=none" in out and "peft=lora" in out and "missing" in out
    md = (root / "comparison.md").read_text()
    assert "no results" in md and "## Failed runs" in md


def test_missing_or_disjoint_example_scores_are_reported_instead_of_p(tmp_path):
    root = tmp_path / "s"
    make_run(root, "0", ["peft=a"], ok(0.9, 1, 1.0, 0.1), correct_scores([1, 1, 1]))
    make_run(root, "1", ["peft=b"], ok(0.5, 1, 1.0, 0.1))  # no example_scores.jsonl
    make_run(root, "2", ["peft=c"], ok(0.4, 1, 1.0, 0.1), {"other:1": {"correct": 1}})
    comp = write_comparison(root)
    _, b, c = comp.approaches
    assert b.test is None and "no per-example scores" in b.note
    assert c.test is None and "do not overlap" in c.note
    md = comp.md.read_text()
    assert "no per-example scores" in md and "do not overlap" in md


def test_html_is_self_contained_and_has_the_plots(sweep):
    comp = write_comparison(sweep)
    page = (sweep / "comparison.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in page and "http" not in page
    assert "<strong>" in page and "Failed runs" in page
    if importlib.util.find_spec("matplotlib") is None:
        assert "Plots skipped" in page
        return
    assert len(sources) == 3 and len(comp.plots) == 3
    for name in comp.plots.values():
        assert (sweep / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_are_skipped_without_matplotlib(sweep, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    comp = write_comparison(sweep)
    assert comp.plots == {}
    assert "Plots skipped: matplotlib is not installed" in comp.md.read_text()
    assert 'src="' not in (sweep / "comparison.html").read_text()


def test_data_only_sweep_has_no_best_and_no_tests(tmp_path):
    root = tmp_path / "d"
    make_run(root, "0", ["augment=none"], {"status": "ok", "data_train": 300, "data_test": 40})
    make_run(root, "1", ["augment=eda"], {"status": "ok", "data_train": 600, "data_test": 40})
    comp = write_comparison(root)
    assert comp.primary is None and comp.best is None and comp.columns == ["data_test", "data_train"]
    assert "no best approach" in comp.md.read_text()
    assert compare.render_terminal(comp).splitlines()[0].split() == [
        "approach",
        "seeds",
        "status",
        "data_test",
        "data_train",
    ]


def test_write_example_scores_ids_and_non_finite_values(tmp_path):
    from datasets import Dataset

    from tunelab.api import TrainJob, TrainSettings, write_example_scores

    job = TrainJob(None, {}, None, TrainSettings(), tmp_path / "run", 0)
    path = write_example_scores(job, [{"loss": 0.5}, {"loss": float("nan")}], Dataset.from_dict({"id": ["a:1", "a:2"]}))
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"id": "a:1", "loss": 0.5},
        {"id": "a:2", "loss": None},
    ]
    write_example_scores(job, [{"correct": 1}, {"correct": 0, "id": 7}])  # no split: the row index
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["0", "7"]


# --- end to end ----------------------------------------------------------------------------


def test_sweep_of_two_approaches_and_two_seeds_ends_in_the_report(tmp_path):
    root = tmp_path / "sweep"
    args = [
        "-m",
        "experiment=classify_smoke",
        "method=feature",  # a head on a frozen encoder: the quickest training there is
        "method.head=torch,sklearn",
        "seed=0,1",
        f"hydra.sweep.dir={root}",
    ]
    assert run_cli(args) == 0
    jobs = sorted(p.parent for p in root.glob("*/metrics.json"))
    assert len(jobs) == 4
    for job in jobs:
        lines = [json.loads(line) for line in (job / "example_scores.jsonl").read_text().splitlines()]
        metrics = read_metrics(job)
        assert len(lines) == metrics["test_rows"]
        assert sum(line["correct"] for line in lines) / len(lines) == pytest.approx(metrics["test_accuracy"])
        assert all(isinstance(line["id"], str) and line["predicted"] and line["loss"] >= 0 for line in lines)
    for name in ("comparison.md", "comparison.html", "comparison.csv", "comparison_approaches.csv"):
        assert (root / name).is_file(), name
    with (root / "comparison_approaches.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["n_seeds"] for r in rows) == ["2", "2"]
    assert sum(r["p_value_vs_best"] != "" for r in rows) == 1
    p = next(float(r["p_value_vs_best"]) for r in rows if r["p_value_vs_best"])
    assert 0.0 < p <= 1.0
    md = (root / "comparison.md").read_text()
    assert "method.head=torch" in md and "method.head=sklearn" in md and "Significance against the best approach" in md
    assert "## Failed runs" in md
    if importlib.util.find_spec("matplotlib") is not None:
        assert (root / "comparison_quality_vs_params.png").is_file()
