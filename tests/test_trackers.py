"""Trackers end to end: one tiny sweep with every tracker on, read back from what each
tracker wrote (the offline W&B transaction logs, TensorBoard event files, the MLflow
SQLite store); plus missing libraries, the sweep-end tracker selection and lazy imports."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from conftest import read_metrics, run_cli, validate
from wandb_offline import read_offline_run, read_table


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tunelab -m peft=none,lora`` with csv, wandb (with artifacts), tensorboard and mlflow."""
    root = tmp_path_factory.mktemp("trackers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNELAB_CACHE_DIR", str(root / "cache"))
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_DATA_DIR", str(root / "wandb-data"))  # artifact staging, not ~/.local
        mp.setenv("WANDB_CACHE_DIR", str(root / "wandb-cache"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        from tunelab.plugins import get_plugins

        get_plugins(reload=True)
        code = run_cli(
            [
                "-m",
                "experiment=smoke",
                "peft=none,lora",
                "train.max_steps=2",
                "eval.max_generate=0",
                "tracker=[csv,wandb,tensorboard,mlflow]",
                "tracker.wandb.project=tunelab-tests",
                "tracker.wandb.log_dataset=true",
                "tracker.wandb.log_model=true",
                "tracker.mlflow.experiment=tunelab-tests",
                f"hydra.sweep.dir={root / 'sweep'}",
            ]
        )
    assert code == 0
    return root / "sweep"


def _jobs(sweep: Path) -> list[Path]:
    jobs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert len(jobs) == 2
    return jobs


def _peft(job: Path) -> str:
    return json.loads((job / "metrics.json").read_text())["run"].split("peft=")[1].split(",")[0]


def _group(sweep: Path) -> str:
    return "_".join(sweep.parts[-2:])


def _csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as fh:
        lines = list(csv.reader(fh))
    return lines[0], lines[1:]


def _same(cell: str, value: Any) -> bool:
    """A CSV cell and the value a tracker logged for it."""
    if cell == "":
        return value is None
    try:
        return value == pytest.approx(float(cell), rel=1e-9)
    except ValueError:
        return value == cell


def test_sweep_counts_each_job_once(sweep):
    # no tracker may leave a second metrics.json under the sweep (MLflow's artifacts live there)
    assert list(sweep.rglob("metrics.json")) == [job / "metrics.json" for job in _jobs(sweep)]
    _, rows = _csv_rows(sweep / "comparison.csv")
    assert len(rows) == 2


def test_wandb_job_runs_hold_the_resolved_config_plugins_and_metrics(sweep):
    for job in _jobs(sweep):
        logged = read_offline_run(job / "wandb")
        metrics = read_metrics(job)
        assert logged["run"]["job_type"] == "train"
        assert logged["run"]["group"] == _group(sweep)
        assert logged["config"]["peft"]["name"] == _peft(job)
        assert logged["config"]["train"]["max_steps"] == 2
        assert logged["config"]["tracker"]["wandb"]["log_model"] is True
        assert logged["config"]["tunelab_plugins"]["tunelab"] == version("tunelab")
        assert f"peft={_peft(job)}" in logged["config"]["tunelab_overrides"]
        steps = [h["_step"] for h in logged["history"] if "train/loss" in h]
        assert steps == [1, 2]
        assert logged["summary"]["test_loss"] == pytest.approx(metrics["test_loss"])
        assert logged["summary"]["prepare/splits/train"] == metrics["data_train"]
        assert logged["summary"]["status"] == "ok" and logged["exit"] == 0


def test_wandb_artifacts_share_one_dataset_version_and_record_each_model(sweep):
    datasets = []
    for job in _jobs(sweep):
        logged = read_offline_run(job / "wandb")
        metrics = read_metrics(job)
        by_type = {a["type"]: a for a in logged["artifacts"]}
        dataset = by_type["dataset"]
        assert dataset["name"] == f"data-{metrics['data_key']}"
        assert {"data_report.md", "ledger.jsonl", "splits/dataset_dict.json"} <= set(dataset["files"])
        assert not [f for f in dataset["files"] if "/cache-" in f]  # datasets' map caches are left out
        assert dataset["metadata"]["splits"]["train"] == metrics["data_train"]
        datasets.append(dataset)

        model = by_type["model"]
        assert model["name"] == f"model-experiment-smoke-peft-{_peft(job)}-train.max_steps-2-eval.max_generate-0"
        lora = _peft(job) == "lora"
        expected = (
            {"adapter_config.json", "adapter_model.safetensors"} if lora else {"config.json", "model.safetensors"}
        )
        assert expected <= set(model["files"])
        assert model["metadata"]["trainable_params"] == metrics["trainable_params"]
        assert model["metadata"]["data_key"] == metrics["data_key"]
        assert _group(sweep) in model["aliases"]
    # both jobs logged the same files: W&B stores one version of the dataset artifact
    assert datasets[0]["digest"] == datasets[1]["digest"]
    assert datasets[0]["files"].keys() == datasets[1]["files"].keys()


def test_wandb_comparison_run_logs_the_tables_report_and_files(sweep):
    logged = read_offline_run(sweep / "wandb")
    assert logged["run"] == {"group": _group(sweep), "job_type": "comparison", "name": f"comparison {_group(sweep)}"}
    assert logged["exit"] == 0

    header, rows = _csv_rows(sweep / "comparison_approaches.csv")
    table = read_table(logged, "comparison/approaches")
    assert table["columns"] == header
    assert len(table["data"]) == len(rows) == 2
    for row, logged_row in zip(rows, table["data"]):
        assert all(_same(cell, value) for cell, value in zip(row, logged_row, strict=True)), (row, logged_row)
    assert {row[0] for row in table["data"]} == {r[0] for r in rows}
    assert any("p_value_vs_best" == c for c in table["columns"])

    header, rows = _csv_rows(sweep / "comparison.csv")
    runs = read_table(logged, "comparison/runs")
    assert runs["columns"] == header and len(runs["data"]) == 2
    assert {r[header.index("status")] for r in runs["data"]} == {"ok"}

    assert any(h.get("comparison/report/_type") == "html-file" for h in logged["history"])
    assert logged["summary"]["runs"] == 2 and logged["summary"]["failed_runs"] == 0
    assert logged["summary"]["best_approach"] in {r[0] for r in table["data"]}
    (comparison,) = [a for a in logged["artifacts"] if a["type"] == "comparison"]
    assert comparison["name"] == f"comparison-{_group(sweep)}"
    assert {"comparison.md", "comparison.html", "comparison_approaches.csv", "comparison.csv"} <= set(
        comparison["files"]
    )


def test_tensorboard_event_files_hold_curves_final_metrics_and_hparams(sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    for job in _jobs(sweep):
        metrics = read_metrics(job)
        events = EventAccumulator(str(job / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
        events.Reload()
        loss = events.Scalars("train/loss")
        assert [e.step for e in loss] == [1, 2]
        assert loss[0].value == pytest.approx(metrics["train_loss_first"], rel=1e-5)
        assert loss[-1].value == pytest.approx(metrics["train_loss_last"], rel=1e-5)
        (final,) = events.Scalars("test_loss")
        assert final.step == 2 and final.value == pytest.approx(metrics["test_loss"], rel=1e-5)
        assert events.Scalars("prepare/splits/train")[0].value == metrics["data_train"]
        config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
        assert f"name: {_peft(job)}" in config

        hparams = events.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"])
        values = start.session_start_info.hparams
        assert values["peft"].string_value == _peft(job)
        assert values["train.max_steps"].number_value == 2
        experiment = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/experiment"])
        assert "test_loss" in {m.name.tag for m in experiment.experiment.metric_infos}

    events = EventAccumulator(str(sweep / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    text = events.Tensors("comparison/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text == (sweep / "comparison.md").read_text()
    assert events.Scalars("comparison/runs")[0].value == 2


def test_mlflow_store_holds_runs_params_metrics_and_the_comparison(sweep):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{sweep / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tunelab-tests")
    assert experiment is not None
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert len(runs) == 3
    for job in _jobs(sweep):
        metrics = read_metrics(job)
        run = runs[json.loads((job / "metrics.json").read_text())["run"]]
        assert run.info.status == "FINISHED"
        assert run.data.tags["tunelab.group"] == _group(sweep)
        assert run.data.tags["tunelab.job_type"] == "train"
        assert run.data.tags["tunelab.status"] == "ok"
        params = run.data.params
        assert params["peft.name"] == _peft(job)
        assert params["train.max_steps"] == "2"
        assert params["seed"] == "0"
        assert params["tunelab_plugins.tunelab"] == version("tunelab")
        history = client.get_metric_history(run.info.run_id, "train/loss")
        assert sorted(m.step for m in history) == [1, 2]
        assert run.data.metrics["test_loss"] == pytest.approx(metrics["test_loss"])
        assert run.data.metrics["prepare/splits/train"] == metrics["data_train"]
        assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"config.yaml", "data_report.md"}

    comparison = runs[f"comparison {_group(sweep)}"]
    assert comparison.data.tags["tunelab.job_type"] == "comparison"
    assert comparison.data.tags["tunelab.group"] == _group(sweep)
    assert comparison.data.metrics["runs"] == 2
    primary = comparison.data.tags["tunelab.primary_metric"]
    header, rows = _csv_rows(sweep / "comparison_approaches.csv")
    means = sorted(float(r[header.index(f"{primary}_mean")]) for r in rows)
    logged = sorted(
        v for k, v in comparison.data.metrics.items() if k.startswith("approach/") and k.endswith(f"/{primary}_mean")
    )
    assert logged == pytest.approx(means)
    artifacts = {a.path for a in client.list_artifacts(comparison.info.run_id)}
    assert {"comparison.md", "comparison.html", "comparison_approaches.csv"} <= artifacts


def test_missing_tracker_libraries_warn_naming_the_extra(tmp_path, monkeypatch):
    from tunelab.api import RunInfo
    from tunelab_builtin.trackers.mlflow import MlflowTracker, MlflowTrackerConfig
    from tunelab_builtin.trackers.tensorboard import TensorboardTracker, TensorboardTrackerConfig
    from tunelab_builtin.trackers.wandb import WandbTracker, WandbTrackerConfig

    for module in ("torch.utils.tensorboard", "mlflow", "mlflow.tracking", "wandb"):
        monkeypatch.setitem(sys.modules, module, None)  # "import x" now raises ImportError
    info = RunInfo(run_dir=tmp_path, name="peft=lora", group="g", job_type="train", config={"seed": 0})
    trackers = [
        (TensorboardTracker(TensorboardTrackerConfig()), "tensorboard"),
        (MlflowTracker(MlflowTrackerConfig()), "mlflow"),
        (WandbTracker(WandbTrackerConfig(mode="offline")), "wandb"),
    ]
    for tracker, extra in trackers:
        with pytest.warns(UserWarning, match=rf"tracker={extra} needs .*pip install 'tunelab\[{extra}\]'"):
            tracker.tunelab_run_start(run=info)
        # the run goes on: the other hooks do nothing
        tracker.tunelab_metrics(run=info, metrics={"train/loss": 1.0}, step=1)
        tracker.tunelab_run_end(run=info, status="ok", metrics={}, error=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_tracker_settings_are_validated_with_the_key_and_the_fix():
    from tunelab.config import ConfigError

    with pytest.raises(
        ConfigError, match=r"tracker.tensorboard.logdir must not be empty; e.g. tracker.tensorboard.logdir="
    ):
        validate(["experiment=smoke", "tracker=[tensorboard]", "tracker.tensorboard.logdir= "])
    with pytest.raises(ConfigError, match=r"unknown key 'tracker.mlflow.uri'.*tracking_uri"):
        validate(["experiment=smoke", "tracker=[mlflow]", "+tracker.mlflow.uri=x"])
    rc = validate(["experiment=smoke", "tracker=[wandb,mlflow]", "tracker.wandb.log_dataset=true"])
    assert [s.name for s in rc.trackers] == ["wandb", "mlflow"]
    assert rc.trackers[0].config.log_dataset is True and rc.trackers[0].config.log_model is False


def test_sweep_end_registers_the_sweep_trackers_and_those_only_jobs_selected(tmp_path, caplog):
    from omegaconf import OmegaConf

    from tunelab.app import SweepEnd
    from tunelab.plugins import get_plugins

    for job, section in (
        ("0", {"wandb": {"project": "p0"}}),
        ("1", {"wandb": {"project": "p1"}, "mlflow": {"nope": 1}}),
    ):
        (tmp_path / job).mkdir()
        (tmp_path / job / "config.yaml").write_text(OmegaConf.to_yaml({"tracker": section}))
    config = OmegaConf.create({"tracker": {"csv": {"filename": "m.csv"}}})
    found = SweepEnd.trackers(config, tmp_path, [{"dir": "0"}, {"dir": "1"}], get_plugins().registry)
    assert [name for name, _ in found] == ["csv", "wandb"]
    assert found[0][1].config.filename == "m.csv"
    assert found[1][1].config.project == "p0"  # the first job that selected it
    assert "tracker 'mlflow' is not told about the sweep" in caplog.text and "tracker.mlflow.nope" in caplog.text


def test_help_and_plugin_loading_import_no_tracker_library():
    code = (
        "import sys, contextlib, io\n"
        "from tunelab.cli import main\n"
        "from tunelab.plugins import get_plugins\n"
        "names = get_plugins().registry.names('tracker')\n"
        "assert {'csv', 'wandb', 'tensorboard', 'mlflow'} <= set(names), names\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print([m for m in ('wandb', 'tensorboard', 'torch', 'mlflow') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
