"""Resume: rerunning a sweep in the same hydra.sweep.dir skips the jobs that finished,
matched by their resolved config (tunelab.run), with any launcher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import read_metrics, run_cli
from tunelab.run import RESUME_MARKER, config_fingerprint, find_finished_run


def _stamp(run_dir: Path) -> tuple[int, str]:
    path = run_dir / "metrics.json"
    return path.stat().st_mtime_ns, path.read_text()


def test_rerun_trains_only_the_job_whose_metrics_are_missing(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "experiment=smoke",
        "train.max_steps=2",
        "eval.max_generate=0",
        "train.learning_rate=1e-3,2e-3",
        f"hydra.sweep.dir={sweep}",
    ]
    assert run_cli(args) == 0
    kept = _stamp(sweep / "0")
    kept_curve = (sweep / "0" / "metrics.csv").stat().st_mtime_ns
    (sweep / "1" / "metrics.json").unlink()  # as if the sweep had been stopped during job 1

    assert run_cli(args) == 0
    assert _stamp(sweep / "0") == kept  # job 0 did not run again ...
    assert (sweep / "0" / "metrics.csv").stat().st_mtime_ns == kept_curve  # ... nor log a training curve
    assert (sweep / "0" / RESUME_MARKER).read_text().splitlines()[0] == f"resumed_from: {sweep / '0'}"
    assert (
        read_metrics(sweep / "1")["status"] == "ok" and read_metrics(sweep / "1")["train_steps"] == 2
    )  # job 1 trained
    assert not (sweep / "1" / RESUME_MARKER).exists()
    assert len(list(sweep.rglob("metrics.json"))) == 2  # the comparison counts each job once
    assert "2 runs" in (sweep / "comparison.md").read_text()


def test_jobs_are_matched_by_config_not_by_job_number(tmp_path):
    sweep = tmp_path / "sweep"
    assert (
        run_cli(["prepare", "-m", "experiment=smoke", "train.learning_rate=1e-3,2e-3", f"hydra.sweep.dir={sweep}"]) == 0
    )
    before = {n: _stamp(sweep / n) for n in ("0", "1")}
    # the same jobs in the other order: job 0 is now what job 1 was, and the other way round
    assert (
        run_cli(["prepare", "-m", "experiment=smoke", "train.learning_rate=2e-3,1e-3", f"hydra.sweep.dir={sweep}"]) == 0
    )
    assert {n: _stamp(sweep / n) for n in ("0", "1")} == before
    assert (sweep / "0" / RESUME_MARKER).read_text().startswith(f"resumed_from: {sweep / '1'}\n")
    assert (sweep / "1" / RESUME_MARKER).read_text().startswith(f"resumed_from: {sweep / '0'}\n")


def test_resume_false_runs_every_job_again(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["prepare", "-m", "experiment=smoke", "seed=0", f"hydra.sweep.dir={sweep}"]
    assert run_cli(args) == 0
    before = _stamp(sweep / "0")
    assert run_cli([*args, "++resume=false"]) == 0
    assert _stamp(sweep / "0") != before and not (sweep / "0" / RESUME_MARKER).exists()
    assert run_cli([*args, "++resume=true"]) == 0  # on again: skipped
    assert (sweep / "0" / RESUME_MARKER).is_file()


def test_a_single_run_never_resumes(smoke_args, tmp_path):
    assert run_cli(["prepare", *smoke_args]) == 0
    before = _stamp(tmp_path / "run")
    assert run_cli(["prepare", *smoke_args]) == 0
    assert _stamp(tmp_path / "run") != before and not (tmp_path / "run" / RESUME_MARKER).exists()
    assert "fingerprint" in json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_a_bad_resume_value_names_the_key_and_the_fix(smoke_args, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli([*smoke_args, "++resume=sometimes"])
    assert info.value.code == 2
    assert "resume must be true or false" in capsys.readouterr().err


def test_fingerprint_ignores_where_things_are_kept_but_not_what_is_computed():
    config = {
        "seed": 0,
        "train": {"max_steps": 4},
        "peft": {"name": "lora"},
        "cache_dir": "/a",
        "num_proc": 1,
        "tracker": {},
    }
    fingerprint = config_fingerprint(config, "train")
    same = {**config, "cache_dir": "/b", "num_proc": 4, "tracker": {"wandb": {}}, "hydra": {"x": 1}}
    assert config_fingerprint(same, "train") == fingerprint
    assert config_fingerprint({**config, "seed": 1}, "train") != fingerprint
    assert config_fingerprint({**config, "train": {"max_steps": 5}}, "train") != fingerprint
    assert config_fingerprint(config, "prepare") != fingerprint


def test_only_finished_jobs_with_the_same_fingerprint_are_reused(tmp_path):
    def job(name: str, fingerprint: str, status: str) -> Path:
        (tmp_path / name).mkdir()
        payload = {"run": name, "fingerprint": fingerprint, "metrics": {"status": status}}
        (tmp_path / name / "metrics.json").write_text(json.dumps(payload))
        return tmp_path / name

    job("0", "abc", "failed")
    job("1", "other", "ok")
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "metrics.json").write_text("{half written")
    assert find_finished_run(tmp_path, "abc") is None
    done = job("3", "abc", "ok")
    assert find_finished_run(tmp_path, "abc")[0] == done
    mine = job("4", "abc", "ok")
    assert find_finished_run(tmp_path, "abc", prefer=mine)[0] == mine
