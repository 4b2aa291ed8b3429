"""The gpu_pool Hydra launcher (hydra_plugins.tunelab_gpu_pool) and the Slurm/Ray presets.

Unit tests check the plan and the device free list; the sweeps run the real CLI with
``hydra/launcher=gpu_pool``, each job in its own Python process."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hydra.experimental.callback import Callback

from conftest import read_metrics, run_cli
from hydra_plugins.tunelab_gpu_pool._core import (
    DevicePool,
    LauncherConfigError,
    _terminate,
    detect_gpus,
    job_environment,
    make_plan,
)

POOL = ["hydra/launcher=gpu_pool"]


class RecordJobEnv(Callback):
    """A Hydra callback (it runs inside the job's process): writes the job's device and
    thread settings and its start/end times to ``job_env.json`` in the job directory.
    With ``sleep`` set it also writes its pid and then sleeps (a job that hangs)."""

    def __init__(self, sleep: float = 0.0) -> None:
        self.sleep = sleep

    def on_job_start(self, config, **kwargs) -> None:
        out = Path(config.hydra.runtime.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        env = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")}
        (out / "job_env.json").write_text(json.dumps({**env, "start": time.time(), "pid": os.getpid()}))
        if self.sleep:
            (out / "job.pid").write_text(str(os.getpid()))
            time.sleep(self.sleep)

    def on_job_end(self, config, job_return, **kwargs) -> None:
        path = Path(config.hydra.runtime.output_dir) / "job_env.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "end": time.time()}))


RECORD_ENV = [f"+hydra.callbacks.record_env._target_={__name__}.RecordJobEnv"]


def summary(sweep: Path) -> dict:
    return json.loads((sweep / "launcher_summary.json").read_text())


# --- the plan and the free list ----------------------------------------------------------


def test_plan_gives_each_job_its_own_gpus_and_splits_the_cores():
    plan = make_plan(gpus=[0, 1, 2, 3], gpus_per_job=2, cores=16)
    assert plan.devices == ("0", "1", "2", "3") and plan.on_gpu
    assert plan.parallel == 2 and plan.threads_per_job == 8
    assert make_plan(gpus=[0, 1, 2, 3], gpus_per_job=1, workers=3, cores=16).parallel == 3
    # auto asks the detector (torch / nvidia-smi / $CUDA_VISIBLE_DEVICES) only then
    assert make_plan(gpus="auto", detect=lambda: ["0", "1"], cores=4).devices == ("0", "1")


def test_plan_without_gpus_runs_cpu_workers_with_a_share_of_the_cores_each():
    plan = make_plan(gpus=[], cores=16)
    assert not plan.on_gpu and plan.gpus_per_job == 0
    assert plan.parallel == 8 and plan.threads_per_job == 2  # default: cores // 2, at most 8
    assert make_plan(gpus="auto", detect=list, cores=2).parallel == 1
    assert make_plan(gpus="auto", detect=list, workers=2, cores=2).threads_per_job == 1
    assert make_plan(gpus=[0, 1], gpus_per_job=0, workers=3, cores=12).parallel == 3  # 0 GPUs per job: CPU
    assert make_plan(gpus=[], workers=2, threads_per_job=5, cores=4).threads_per_job == 5


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"gpus": "0,1"}, "hydra.launcher.gpus=[0,1]"),
        ({"gpus": [0, 0]}, "hydra.launcher.gpus"),
        ({"gpus": [0, 1], "gpus_per_job": 3}, "hydra.launcher.gpus_per_job=2"),
        ({"gpus": [], "workers": 0}, "hydra.launcher.workers=2"),
        ({"gpus": [], "gpus_per_job": -1}, "hydra.launcher.gpus_per_job=1"),
        ({"gpus": [], "threads_per_job": 0}, "hydra.launcher.threads_per_job"),
    ],
)
def test_bad_launcher_settings_name_the_key_and_the_fix(settings, key):
    with pytest.raises(LauncherConfigError, match="Fix") as info:
        make_plan(cores=4, **settings)
    assert key in str(info.value)


def test_device_pool_never_hands_out_a_gpu_twice():
    pool = DevicePool(["0", "1", "2"])
    a = pool.acquire(2)
    assert a == ["0", "1"] and pool.acquire(2) is None  # queued until enough are free
    b = pool.acquire(1)
    assert b == ["2"] and pool.free == []
    pool.release(a)
    assert pool.acquire(1) == ["0"]
    with pytest.raises(ValueError, match="twice"):
        pool.release(["1", "1"])
    with pytest.raises(ValueError, match="not in the pool"):
        pool.release(["7"])


def test_simulated_schedule_keeps_running_jobs_on_disjoint_gpus():
    """Drive the free list like the launcher does, with random job lengths."""
    rng = random.Random(0)
    pool, per_job, parallel = DevicePool(["0", "1", "2", "3"]), 2, 2
    queue, running, done = list(range(20)), [], []
    clock = 0.0
    while queue or running:
        while queue and len(running) < parallel and (devices := pool.acquire(per_job)) is not None:
            running.append((clock + rng.uniform(1, 5), queue.pop(0), devices))
        in_use = [d for _, _, devices in running for d in devices]
        assert len(in_use) == len(set(in_use))
        running.sort()
        clock, job, devices = running.pop(0)
        pool.release(devices)
        done.append(job)
    assert sorted(done) == list(range(20)) and pool.free == ["0", "1", "2", "3"]


def test_auto_detection_respects_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert detect_gpus() == ["2", "3"]  # a job gets GPU 2 or 3, never 0 or 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect_gpus() == []


def test_job_environment_names_only_the_jobs_gpus_and_its_threads():
    plan = make_plan(gpus=[0, 1], cores=8)
    env = job_environment(plan, ["1"], base={"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1"})
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["OMP_NUM_THREADS"] == "4" and env["PATH"] == "/bin"
    assert job_environment(make_plan(gpus=[], workers=2, cores=8), [], base={})["CUDA_VISIBLE_DEVICES"] == ""


def test_terminate_stops_a_job_and_the_processes_it_started(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(120)
        """
    )
    job = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.time() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline
        time.sleep(0.1)
    grandchild = int(pid_file.read_text())
    _terminate([job], grace_s=5)
    assert job.returncode is not None
    _wait_gone(grandchild)


def _wait_gone(pid: int, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if _is_zombie(pid) or time.time() > deadline:
            assert _is_zombie(pid), f"process {pid} is still running"
            return
        time.sleep(0.1)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


# --- sweeps through the CLI ----------------------------------------------------------------


def test_parallel_sweep_prepares_the_shared_data_once(tmp_path, isolated_cache):
    """Two jobs start together on two CPU workers; the flock in prepare() lets one
    prepare the data while the other waits, then reads the same copy."""
    sweep = tmp_path / "sweep"
    args = ["-m", "experiment=smoke", "peft=none,lora", *POOL, "hydra.launcher.workers=2", f"hydra.sweep.dir={sweep}"]
    assert run_cli(args) == 0
    jobs = summary(sweep)["jobs"]
    assert [j["status"] for j in jobs] == ["ok", "ok"] and summary(sweep)["threads_per_job"] == max(
        1, os.cpu_count() // 2
    )
    first, second = sorted((j["started"], j["started"] + j["seconds"]) for j in jobs)
    assert second[0] < first[1], "the two jobs did not run at the same time"
    hits = [read_metrics(sweep / str(n))["data_cache_hit"] for n in (0, 1)]
    assert sorted(hits) == [False, True]  # exactly one job prepared the data
    assert len((isolated_cache / "prepared" / "preparations.log").read_text().splitlines()) == 1
    # each job ran as Hydra's BasicLauncher runs it: its dir, job.num, .hydra files, log
    for n in (0, 1):
        hydra_cfg = (sweep / str(n) / ".hydra" / "hydra.yaml").read_text()
        assert f"num: {n}" in hydra_cfg and (sweep / str(n) / ".hydra" / "overrides.yaml").is_file()
        assert "train finished" in (sweep / str(n) / "output.log").read_text()
    assert read_metrics(sweep / "0")["trainable_params"] != read_metrics(sweep / "1")["trainable_params"]
    assert (sweep / "comparison.md").is_file()  # the SweepEnd callback saw both JobReturns


def test_a_failing_job_does_not_stop_the_sweep_and_is_summarised(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    args = [
        "prepare",
        "-m",
        "experiment=smoke",
        "seed=0,not_a_number",
        *POOL,
        "hydra.launcher.workers=2",
        f"hydra.sweep.dir={sweep}",
    ]
    assert run_cli(args) == 1  # every job ran; the exit code reports the failed one
    assert "seed=not_a_number" in (sweep / "comparison.md").read_text()  # the comparison lists it
    ok, failed = summary(sweep)["jobs"]
    assert ok["status"] == "ok" and read_metrics(sweep / "0")["status"] == "ok"
    assert failed["status"] == "failed" and failed["returncode"] == 1 and failed["overrides"][-1] == "seed=not_a_number"
    assert "seed must be an integer" in failed["error"]
    log_path = Path(failed["log"])
    assert log_path == sweep / "1" / "output.log" and "seed must be an integer" in log_path.read_text()
    err = capsys.readouterr().err
    assert "job #1 failed" in err and str(log_path) in err

    # rerun the same sweep: the finished job is resumed (not run again), the failed one runs again
    assert run_cli(args) == 1
    ok, failed = summary(sweep)["jobs"]
    assert ok["resumed_from"] == str(sweep / "0") and failed["status"] == "failed"


def test_fake_gpus_each_running_job_sees_only_its_own(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        "prepare", "-m", "experiment=smoke", "train.learning_rate=1e-3,2e-3,3e-3", *POOL,
        "hydra.launcher.gpus=[0,1]", "hydra.launcher.gpus_per_job=1", *RECORD_ENV, f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    assert run_cli(args) == 0
    jobs = summary(sweep)["jobs"]
    assert summary(sweep)["devices"] == ["0", "1"] and summary(sweep)["parallel"] == 2
    seen = []
    for job in jobs:
        recorded = json.loads((Path(job["job_dir"]) / "job_env.json").read_text())
        assert recorded["CUDA_VISIBLE_DEVICES"] == ",".join(job["devices"]) and job["devices"] in (["0"], ["1"])
        assert recorded["OMP_NUM_THREADS"] == str(max(1, os.cpu_count() // 2))
        seen.append((recorded["start"], recorded["end"], recorded["CUDA_VISIBLE_DEVICES"]))
    for i, (start_a, end_a, gpu_a) in enumerate(seen):
        for start_b, end_b, gpu_b in seen[i + 1 :]:
            overlap = start_a < end_b and start_b < end_a
            assert not (overlap and gpu_a == gpu_b), "two running jobs shared a GPU"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupting_the_sweep_leaves_no_job_running(tmp_path, sig):
    sweep = tmp_path / "sweep"
    code = "import sys; from tunelab.cli import main; sys.exit(main(sys.argv[1:]))"
    args = [
        "prepare", "-m", "experiment=smoke", "seed=0,1", *POOL, "hydra.launcher.workers=2",
        "hydra.launcher.terminate_grace_s=5", *RECORD_ENV, "+hydra.callbacks.record_env.sleep=300",
        f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    # as from a terminal: a runner started in the background (CI, nohup) passes SIGINT on ignored
    sweep_process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        pid_files = [sweep / str(n) / "job.pid" for n in (0, 1)]
        deadline = time.time() + 240
        while not all(p.is_file() and p.read_text() for p in pid_files):
            assert sweep_process.poll() is None and time.time() < deadline, "the jobs did not start"
            time.sleep(0.2)
        jobs = [int(p.read_text()) for p in pid_files]
        sweep_process.send_signal(sig)
        sweep_process.wait(timeout=60)
        for pid in jobs:
            _wait_gone(pid)
        assert {j["status"] for j in summary(sweep)["jobs"]} == {"interrupted"}
    finally:
        if sweep_process.poll() is None:
            os.killpg(sweep_process.pid, signal.SIGKILL)


# --- Slurm and Ray presets -------------------------------------------------------------------


def test_submitit_local_runs_a_two_job_sweep(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    args = [
        "prepare",
        "-m",
        "experiment=smoke",
        "seed=0,1",
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={sweep}",
    ]
    assert run_cli(args) == 0
    assert [read_metrics(sweep / str(n))["status"] for n in (0, 1)] == ["ok", "ok"]


def test_slurm_preset_composes_with_its_resources():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from conftest import compose

    launcher = compose(["hydra/launcher=tunelab_slurm", "hydra.launcher.partition=gpu"]).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.array_parallelism) == (1, 1, 16)
    assert launcher.timeout_min == 240 and launcher.partition == "gpu"


def test_ray_preset_composes_with_one_gpu_per_job():
    pytest.importorskip(
        "hydra_plugins.hydra_ray_launcher", reason="hydra-ray-launcher is not installed (pip install 'tunelab[ray]')"
    )
    from conftest import compose

    launcher = compose(["hydra/launcher=tunelab_ray"]).hydra.launcher
    assert launcher._target_.endswith("RayLauncher")
    assert launcher.ray.remote.num_gpus == 1 and launcher.ray.init.address is None


def test_gpu_pool_config_composes_and_shows_its_defaults():
    from conftest import compose

    launcher = compose(["hydra/launcher=gpu_pool", "hydra.launcher.gpus=[0,1]"]).hydra.launcher
    assert launcher._target_ == "hydra_plugins.tunelab_gpu_pool.gpu_pool_launcher.GpuPoolLauncher"
    assert list(launcher.gpus) == [0, 1] and launcher.gpus_per_job == 1 and launcher.workers is None
