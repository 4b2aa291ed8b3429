"""End to end through the CLI, in process, with the tiny model."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from conftest import read_metrics, run_cli
from wandb_offline import read_offline_run


def test_smoke_run_writes_a_complete_run_directory(smoke_args, tmp_path, isolated_cache):
    # full fine-tuning with a high learning rate: the loss must go down within a few steps
    assert run_cli([*smoke_args, "peft=none", "train.max_steps=8", "train.learning_rate=3e-3"]) == 0
    run_dir = tmp_path / "run"
    for name in ("config.yaml", "data_report.md", "ledger.jsonl", "quarantine.jsonl", "metrics.json", "metrics.csv"):
        assert (run_dir / name).is_file(), name
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "ok"
    assert metrics["train_steps"] == 8
    assert metrics["train_loss_last"] < metrics["train_loss_first"]
    assert metrics["trainable_params"] == metrics["total_params"]  # peft=none trains everything
    assert metrics["test_perplexity"] > 1 and 0 <= metrics["test_token_accuracy"] <= 1
    assert metrics["peak_rss_mb"] > 0 and metrics["train_seconds"] > 0

    # the saved model reloads and scores exactly what the trained one scored
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab.api import LoadedModel, TrainJob, TrainOutcome, TrainSettings
    from tunelab_builtin.evaluators.lm import LmEvalConfig, LmEvaluator

    model = AutoModelForCausalLM.from_pretrained(run_dir / "model")
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "model")
    splits = dict(load_from_disk(str(isolated_cache / "prepared" / metrics["data_key"] / "splits")))
    job = TrainJob(LoadedModel(model, tokenizer, "tiny"), splits, None, TrainSettings(max_length=128), run_dir, 0)
    scores = LmEvaluator(LmEvalConfig(max_generate=0)).evaluate(job, TrainOutcome(model, tokenizer))
    assert scores["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-4)
    csv_text = (run_dir / "metrics.csv").read_text()
    assert "train,1,train/loss" in csv_text and "final,,test_loss" in csv_text


def test_lora_run_trains_only_the_adapter_and_saves_it(smoke_args, tmp_path):
    assert run_cli([*smoke_args, "peft=lora", "peft.r=4"]) == 0
    run_dir = tmp_path / "run"
    metrics = read_metrics(run_dir)
    assert 0 < metrics["trainable_params"] < metrics["total_params"] * 0.5
    adapter = json.loads((run_dir / "model" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["peft_type"] == "LORA"

    from peft import PeftModel

    from tunelab_builtin.models.tiny import TinyModel, TinyModelConfig

    base = TinyModel(TinyModelConfig()).load({}, tmp_path).model
    reloaded = PeftModel.from_pretrained(base, run_dir / "model")
    trainable_in_adapter = sum(p.numel() for n, p in reloaded.named_parameters() if "lora_" in n)
    assert trainable_in_adapter == metrics["trainable_params"]


def test_prepare_only_and_second_run_uses_the_cache(tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    assert run_cli(["prepare", "experiment=smoke", f"hydra.run.dir={first}"]) == 0
    assert run_cli(["prepare", "experiment=smoke", f"hydra.run.dir={second}"]) == 0
    assert read_metrics(first)["data_cache_hit"] is False
    assert read_metrics(second)["data_cache_hit"] is True
    assert not (first / "model").exists()
    assert "data report" in capsys.readouterr().err


def test_multirun_two_jobs_share_data_and_end_in_a_comparison(tmp_path, isolated_cache):
    sweep = tmp_path / "sweep"
    assert run_cli(["-m", "experiment=smoke", "peft=none,lora", f"hydra.sweep.dir={sweep}"]) == 0
    jobs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert len(jobs) == 2
    runs = {read_metrics(j)["trainable_params"] for j in jobs}
    assert len(runs) == 2  # full and LoRA train different parameter counts
    assert (sweep / "comparison.md").is_file() and (sweep / "comparison.csv").is_file()
    table = (sweep / "comparison.md").read_text()
    assert "peft=none" in table and "peft=lora" in table
    preparations = (isolated_cache / "prepared" / "preparations.log").read_text().splitlines()
    assert len(preparations) == 1


def test_seed_sweep_shares_one_split_unless_the_data_seed_follows_the_seed(tmp_path, isolated_cache):
    log = isolated_cache / "prepared" / "preparations.log"
    assert run_cli(["prepare", "-m", "experiment=smoke", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'shared'}"]) == 0
    assert len(log.read_text().splitlines()) == 1  # both seeds test on the same rows
    keys = {read_metrics(tmp_path / "shared" / str(n))["data_key"] for n in (0, 1)}
    assert len(keys) == 1
    tied = [
        "prepare",
        "-m",
        "experiment=smoke",
        "seed=0,1",
        "data_seed=${seed}",
        f"hydra.sweep.dir={tmp_path / 'tied'}",
    ]
    assert run_cli(tied) == 0
    assert len(log.read_text().splitlines()) == 2  # seed 0 reused the shared split; seed 1 made its own


def test_compare_command_prints_the_table(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for i, loss in enumerate((2.5, 1.5)):
        (sweep / str(i)).mkdir(parents=True)
        (sweep / str(i) / "metrics.json").write_text(
            json.dumps({"run": f"peft=p{i}", "metrics": {"status": "ok", "test_loss": loss}})
        )
    assert run_cli(["compare", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "peft=p0" in out and "1.5" in out
    assert (sweep / "comparison.csv").read_text().splitlines()[0].startswith("run,status,test_loss")


def test_wandb_tracker_writes_an_offline_run_with_config_and_metrics(smoke_args, tmp_path):
    assert run_cli([*smoke_args, "tracker=[csv,wandb]", "tracker.wandb.project=tunelab-tests"]) == 0
    run_dir = tmp_path / "run"
    logged = read_offline_run(run_dir / "wandb")
    assert logged["run"]["job_type"] == "train"
    assert logged["run"]["name"].startswith("experiment=smoke")
    assert logged["config"]["peft"]["name"] == "lora"
    assert logged["config"]["train"]["max_steps"] == 4
    assert "tunelab" in logged["config"]["tunelab_plugins"]
    assert any("train/loss" in h for h in logged["history"])
    metrics = read_metrics(run_dir)
    assert logged["summary"]["test_loss"] == pytest.approx(metrics["test_loss"])
    assert logged["summary"]["status"] == "ok"
    assert logged["exit"] == 0


def test_help_is_fast_because_nothing_heavy_is_imported():
    code = (
        "import sys, contextlib, io\n"
        "from tunelab.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'tunelab prepare' in out.getvalue(), out.getvalue()\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets', 'wandb') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_failed_run_is_recorded_and_reported(smoke_args, tmp_path, capsys):
    # a test fraction too small for the data: the split is empty once the data is prepared,
    # which is found before the model is loaded (not after training, by the evaluator)
    with pytest.raises(SystemExit) as exit_info:
        run_cli([*smoke_args, "pipeline.params.stratified.test=0.001"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "config error: eval.split is 'test' but the prepared data has no 'test' rows" in err
    assert "Traceback" not in err
    metrics = read_metrics(tmp_path / "run")
    assert metrics["status"] == "failed" and "no 'test' rows" in metrics["error"]
    assert metrics["data_test"] == 0 and metrics["data_train"] > 0
    assert not any(key.startswith("train_") for key in metrics)  # nothing was trained
    assert "ConfigError" in (tmp_path / "run" / "error.txt").read_text()


def test_evaluating_a_split_the_splitter_does_not_make_is_refused_before_any_work(smoke_args, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli([*smoke_args, "eval.split=holdout"])
    assert exit_info.value.code == 2
    assert (
        "eval.split is 'holdout', a split the splitter 'stratified' does not make; it makes train, validation, "
        "test: set eval.split to one of those (eval.split=test)"
    ) in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_compare_of_a_data_only_sweep_shows_split_sizes(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for i, train in enumerate((357, 434)):
        (sweep / str(i)).mkdir(parents=True)
        payload = {
            "run": f"augment=a{i}",
            "metrics": {"status": "ok", "data_train": train, "data_test": 38, "data_cache_hit": False},
        }
        (sweep / str(i) / "metrics.json").write_text(json.dumps(payload))
    assert run_cli(["compare", str(sweep)]) == 0
    header = (sweep / "comparison.csv").read_text().splitlines()[0].split(",")
    assert header == ["run", "status", "data_test", "data_train"]


def test_the_readme_comparison_experiment_with_the_tiny_encoder(tmp_path, isolated_cache, capsys):
    """experiment=minilm_compare as `make demo` runs it, on the in-process tiny encoder and
    with two of its three seeds (a command-line value replaces the preset's sweep values):
    4 approaches x 2 seeds, one data preparation, the table printed at the end."""
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "experiment=minilm_compare",
        "model=tiny_encoder",
        "train.max_steps=3",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
    ]
    assert run_cli(args) == 0
    runs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    assert len(runs) == 8 and {r["metrics"]["status"] for r in runs} == {"ok"}
    approaches = sorted(r["run"].split(",")[0] for r in runs)
    assert approaches == [
        f"approach={a}"
        for a in ("feature", "feature", "full", "full", "lora", "lora", "prompt_tuning", "prompt_tuning")
    ]
    assert len((isolated_cache / "prepared" / "preparations.log").read_text().splitlines()) == 1
    table = capsys.readouterr().out
    assert "test_accuracy" in table and all(
        f"approach={a}" in table for a in ("feature", "full", "lora", "prompt_tuning")
    )
    rows = list(csv.DictReader((sweep / "comparison_approaches.csv").open()))
    assert {row["n_seeds"] for row in rows} == {"2"} and len(rows) == 4
