"""Faults (issue 7): jobs killed mid-training and a sweep rerun with resume (continuing from
checkpoints), a damaged or half-written prepared-data cache and two sweeps sharing one,
trackers that fail (W&B unreachable, a full disk), and third-party plugins that fail (on
import, in a hook, in a constructor).

Kills are timed by what the job wrote, never by sleeps: the test waits for the job's first
complete checkpoint (``trainer/checkpoint-N/tunelab_checkpoint.json``), and an installed
plugin paces each logged training step (``tunelab_metrics`` sleeps ``PACE`` s) so that the
rest of training takes seconds even on a fast machine. The long loops (kills at random
points, repeated cache races) are marked ``soak`` (``make soak``)."""

from __future__ import annotations

import csv
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import read_metrics, run_cli, validate
from tunelab.data.cache import MANIFEST, prepare, verify
from tunelab.plugins import get_plugins
from tunelab.train.checkpoints import COMPLETE, TRAINER_DIR

TESTS = Path(__file__).resolve().parent
CLI = "import sys; from tunelab.cli import main; sys.exit(main(sys.argv[1:]))"
PACE = 0.25
#: a plugin that writes the pid of the process running a job to ``job.pid`` in its run
#: directory and makes every logged training step last at least PACE seconds
PACER = f"""
import os, time
from tunelab.api import hookimpl

@hookimpl
def tunelab_run_start(run):
    (run.run_dir / "job.pid").write_text(str(os.getpid()))

@hookimpl
def tunelab_metrics(run, metrics, step):
    if step is not None:
        time.sleep({PACE})
"""
MAX_STEPS = 8


@pytest.fixture
def small(tmp_path) -> list[str]:
    """Overrides for a quick run: the tiny model on 40 rows (a few seconds to prepare)."""
    path = tmp_path / "tickets.jsonl"
    categories = ["shipping", "billing", "account", "product"]
    path.write_text(
        "".join(
            json.dumps(
                {
                    "question": f"Question {i} about my order NW-{i}?",
                    "answer": f"Answer {i}: it ships on day {i % 7}.",
                    "category": categories[i % 4],
                }
            )
            + "\n"
            for i in range(40)
        )
    )
    return ["experiment=smoke", "pipeline=minimal", f"data.path={path}", "eval.max_generate=0"]


@pytest.fixture
def train_sweep(small) -> list[str]:
    """A training sweep of two jobs that checkpoints every 2 steps."""
    return [
        *small,
        f"train.max_steps={MAX_STEPS}",
        "train.logging_steps=1",
        "train.save_steps=2",
        "train.learning_rate=1e-3,2e-3",
    ]


@pytest.fixture
def pacer(installed_plugin, tmp_path):
    """Install the pacing plugin; returns the environment a tunelab subprocess needs to load it."""
    installed_plugin("tl_pacer", PACER)
    get_plugins(reload=True)
    path = os.pathsep.join([str(tmp_path / "site"), str(TESTS), *sys.path])
    return {**os.environ, "PYTHONPATH": path}


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", CLI, *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_for(condition, process: subprocess.Popen, what: str, log: Path, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            pytest.fail(f"{what}: not seen (process exit code {process.poll()}); log:\n{tail}")
        time.sleep(0.02)


def _complete_checkpoints(job_dir: Path) -> list[int]:
    folder = job_dir / TRAINER_DIR
    if not folder.is_dir():
        return []
    return sorted(int(p.parent.name.split("-")[1]) for p in folder.glob(f"checkpoint-*/{COMPLETE}"))


def _gone(pid: int, timeout: float = 30) -> bool:
    """No process is left in the process group ``pid`` (a job is its group's leader)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _curve_steps(job_dir: Path) -> list[int]:
    with (job_dir / "metrics.csv").open(newline="") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh) if r["stage"] == "train" and r["name"] == "train/loss"]


def _check_resumed_sweep(sweep: Path, killed: str, finished: str, resumed_from_step: int) -> None:
    """After the rerun: the finished job was skipped, the killed one continued from its last
    complete checkpoint to the end, and the comparison has each job once, both ok."""
    assert (sweep / finished / "resumed.txt").read_text().startswith(f"resumed_from: {sweep / finished}\n")
    metrics = read_metrics(sweep / killed)
    assert metrics["status"] == "ok" and "interrupted" not in metrics
    assert metrics["train_resumed_from_step"] == resumed_from_step
    assert metrics["train_steps"] == MAX_STEPS
    assert _curve_steps(sweep / killed) == list(range(1, MAX_STEPS + 1))  # each step once, none lost
    assert not list((sweep / killed / TRAINER_DIR).glob("checkpoint-*"))  # removed once finished
    assert len(list(sweep.rglob("metrics.json"))) == 2
    with (sweep / "comparison.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["status"] for r in rows) == ["ok", "ok"]
    assert len({r["run"] for r in rows}) == 2 and all("learning_rate" in r["run"] for r in rows)


# --- 1. jobs killed mid-training ---------------------------------------------------------------


def test_sigterm_to_a_job_is_recorded_and_the_rerun_continues_it_from_its_checkpoint(tmp_path, pacer, train_sweep):
    """gpu_pool, two jobs at once: job 0 gets SIGTERM after its first checkpoint; job 1 runs
    to the end; the rerun skips job 1 and continues job 0 from its last complete checkpoint."""
    sweep = tmp_path / "sweep"
    args = ["-m", *train_sweep, "hydra/launcher=gpu_pool", "hydra.launcher.workers=2", f"hydra.sweep.dir={sweep}"]
    log = tmp_path / "sweep.log"
    process = _spawn(args, pacer, log)
    try:
        _wait_for(lambda: _complete_checkpoints(sweep / "0"), process, "a checkpoint of job 0", log)
        pid = int((sweep / "0" / "job.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        assert process.wait(timeout=300) == 1, log.read_text()[-3000:]  # the sweep went on; one job failed
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert _gone(pid), "the job's process group outlived it"
    killed = read_metrics(sweep / "0")
    assert killed["status"] == "failed" and killed["interrupted"] == "signal SIGTERM", killed
    assert "interrupted" in killed["error"] and (sweep / "0" / "error.txt").is_file()
    job0, job1 = json.loads((sweep / "launcher_summary.json").read_text())["jobs"]
    assert job0["status"] == "failed" and job0["returncode"] == -signal.SIGTERM and "SIGTERM" in job0["error"]
    assert job1["status"] == "ok" and read_metrics(sweep / "1")["status"] == "ok"
    saved = _complete_checkpoints(sweep / "0")
    assert saved and saved[-1] < MAX_STEPS, "the kill did not land mid-training"

    # the same sweep again; in this process, with the basic launcher (the launcher is no part of
    # a job's identity: resume finds the finished job and the checkpoint all the same)
    assert run_cli(["-m", *train_sweep, f"hydra.sweep.dir={sweep}", "resume=true"]) == 0
    _check_resumed_sweep(sweep, killed="0", finished="1", resumed_from_step=saved[-1])


def test_sigkill_of_the_sweep_mid_training_then_rerun_skips_the_finished_job(tmp_path, pacer, train_sweep):
    """The basic launcher (jobs in the tunelab process): SIGKILL during job 1, after its first
    checkpoint. Nothing gets to record anything; the rerun skips job 0 and continues job 1."""
    sweep = tmp_path / "sweep"
    args = ["-m", *train_sweep, f"hydra.sweep.dir={sweep}"]
    log = tmp_path / "sweep.log"
    process = _spawn(args, pacer, log)
    try:
        _wait_for(lambda: _complete_checkpoints(sweep / "1"), process, "a checkpoint of job 1", log)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL and _gone(process.pid)
    assert read_metrics(sweep / "0")["status"] == "ok" and not (sweep / "1" / "metrics.json").exists()
    saved = _complete_checkpoints(sweep / "1")
    assert saved and saved[-1] < MAX_STEPS

    assert run_cli(args) == 0  # resume is on by default
    _check_resumed_sweep(sweep, killed="1", finished="0", resumed_from_step=saved[-1])


def test_a_checkpoint_cut_off_while_saved_or_of_another_config_is_never_loaded(tmp_path):
    from tunelab.train import checkpoints

    folder = tmp_path / TRAINER_DIR
    for step, complete in ((2, True), (4, True), (6, False)):
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (folder / f"checkpoint-{step}" / COMPLETE).write_text("{}")
    (folder / checkpoints.OWNER).write_text("abc")
    assert checkpoints.claim(tmp_path, "abc", resume=True) == folder / "checkpoint-4"
    assert not (folder / "checkpoint-6").exists()  # the cut-off one is removed
    assert checkpoints.claim(tmp_path, "other", resume=True) is None  # another config's: removed
    assert not list(folder.glob("checkpoint-*")) and (folder / checkpoints.OWNER).read_text() == "other"
    (folder / "checkpoint-2").mkdir()
    (folder / "checkpoint-2" / COMPLETE).write_text("{}")
    assert checkpoints.claim(tmp_path, "other", resume=False) is None and not (folder / "checkpoint-2").exists()


def test_checkpoint_settings_do_not_change_the_fingerprint_and_are_validated():
    from tunelab.config import ConfigError
    from tunelab.run import config_fingerprint

    config = {"seed": 0, "train": {"max_steps": 4, "save_steps": 0, "save_total_limit": 2}}
    on = {"seed": 0, "train": {"max_steps": 4, "save_steps": 10, "save_total_limit": 3}}
    assert config_fingerprint(config, "train") == config_fingerprint(on, "train")
    with pytest.raises(ConfigError, match=r"train.save_steps must be >= 0.*Fix: train.save_steps=50"):
        validate(["experiment=smoke", "train.save_steps=-1"])


@pytest.mark.soak
@pytest.mark.parametrize("launcher", ["basic", "gpu_pool"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_soak_kills_at_random_points_always_resume_to_a_complete_sweep(tmp_path, pacer, train_sweep, launcher, sig):
    """Up to four attempts of the same sweep, each killed at a random new checkpoint of a
    random job (right at it, or half a step later): the sweep process with the basic launcher
    (its jobs run in it), the job's own process with gpu_pool. A last rerun finishes: every
    job ends ok, once in the comparison, with each training step once in its curve."""
    rng = random.Random(f"{launcher}-{sig}")
    sweep = tmp_path / "sweep"
    steps = 12
    args = [
        "-m",
        *[a for a in train_sweep if not a.startswith("train.max_steps")],
        f"train.max_steps={steps}",
        f"hydra/launcher={launcher}",
        *(["hydra.launcher.workers=1"] if launcher == "gpu_pool" else []),
        f"hydra.sweep.dir={sweep}",
    ]
    kills = 0
    for attempt in range(4):
        job = rng.choice(["0", "1"])
        if (sweep / job / "metrics.json").exists() and read_metrics(sweep / job)["status"] == "ok":
            continue  # finished in an earlier attempt
        (sweep / job / "job.pid").unlink(missing_ok=True)
        start = max(_complete_checkpoints(sweep / job), default=0)  # an earlier attempt's
        target = start + rng.choice([2, 4])
        if target >= steps:
            continue
        log = tmp_path / f"attempt{attempt}.log"
        process = _spawn(args, pacer, log)
        try:

            def reached(job=job, target=target, process=process):  # called only in this iteration
                new = [s for s in _complete_checkpoints(sweep / job) if s >= target]
                return (new and (sweep / job / "job.pid").is_file()) or process.poll() is not None

            _wait_for(reached, process, f"checkpoint {target} of job {job}", log, timeout=600)
            if process.poll() is None:
                time.sleep(rng.choice([0, PACE / 2]))
                if launcher == "basic":
                    os.killpg(process.pid, sig)
                else:
                    os.kill(int((sweep / job / "job.pid").read_text()), sig)
                kills += 1
            process.wait(timeout=300)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        assert _gone(process.pid)
    assert kills >= 2, f"only {kills} kill(s) landed"
    assert run_cli(args) == 0
    with (sweep / "comparison.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["status"] for r in rows) == ["ok", "ok"] and len({r["run"] for r in rows}) == 2
    for job in ("0", "1"):
        metrics = read_metrics(sweep / job)
        assert metrics["status"] == "ok" and metrics["train_steps"] == steps
        assert _curve_steps(sweep / job) == list(range(1, steps + 1))
        assert not list((sweep / job / TRAINER_DIR).glob("checkpoint-*"))


# --- 2. the prepared-data cache -------------------------------------------------------------------


def _flip_bytes(directory: Path) -> str:
    arrow = sorted((directory / "splits").rglob("*.arrow"))[0]
    data = bytearray(arrow.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    arrow.write_bytes(bytes(data))
    return "does not match the manifest"


def _truncate(directory: Path) -> str:
    arrow = sorted((directory / "splits").rglob("*.arrow"))[0]
    with arrow.open("r+b") as fh:
        fh.truncate(arrow.stat().st_size // 3)
    return "truncated"


def _delete_manifest(directory: Path) -> str:
    (directory / MANIFEST).unlink()
    return f"no {MANIFEST}"


def _delete_a_split(directory: Path) -> str:
    shutil.rmtree(directory / "splits" / "test")
    return "is missing"


@pytest.mark.parametrize(
    "damage",
    [_flip_bytes, _truncate, _delete_manifest, _delete_a_split],
    ids=["flipped-bytes", "truncated", "no-manifest", "missing-split"],
)
def test_a_damaged_cache_is_detected_and_rebuilt_never_used(damage, caplog, small):
    rc = validate(small)
    first = prepare(rc, get_plugins())
    assert verify(first.directory) is None
    ids = {n: list(s["id"]) for n, s in first.splits.items()}
    directory, key = first.directory, first.key
    del first  # its splits are memory-mapped from the files damaged next (a truncated mapping is a SIGBUS)
    reason = damage(directory)
    assert verify(directory) is not None
    with caplog.at_level("WARNING"):
        second = prepare(rc, get_plugins())
    assert not second.cache_hit and second.key == key
    assert "is not usable" in caplog.text and reason in caplog.text and "rebuilt" in caplog.text
    assert verify(second.directory) is None
    assert {n: list(s["id"]) for n, s in second.splits.items()} == ids
    log = (directory.parent / "preparations.log").read_text().splitlines()
    assert len(log) == 2 and "rebuilt:" in log[1] and reason in log[1]
    assert prepare(rc, get_plugins()).cache_hit  # and the rebuilt copy is used from then on


def test_a_half_written_staging_directory_is_removed_and_never_read(caplog, small):
    rc = validate(small)
    first = prepare(rc, get_plugins())
    root = first.directory.parent
    stale = root / f"{first.key}.tmp-999999"  # a preparation killed half-way (SIGKILL: no cleanup)
    (stale / "splits").mkdir(parents=True)
    (stale / "splits" / "junk.arrow").write_bytes(b"\x00" * 100)
    shutil.rmtree(first.directory)  # ... and it never got as far as the rename
    with caplog.at_level("WARNING"):
        second = prepare(rc, get_plugins())
    assert not stale.exists() and "interrupted before it finished" in caplog.text
    assert not second.cache_hit and verify(second.directory) is None
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [first.key]


def _cache_race(tmp_path: Path, n: int, args: list[str], cache: Path) -> list[Path]:
    """``n`` sweeps (``tunelab ARGS``) started at once sharing one cache; their sweep directories."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TUNELAB_CACHE_DIR": str(cache)}
    sweeps = [tmp_path / f"sweep{i}" for i in range(n)]
    processes = [
        _spawn([*args, f"hydra.sweep.dir={sweep}"], env, tmp_path / f"sweep{i}.log") for i, sweep in enumerate(sweeps)
    ]
    for i, process in enumerate(processes):
        assert process.wait(timeout=600) == 0, (tmp_path / f"sweep{i}.log").read_text()[-3000:]
    return sweeps


def test_two_sweeps_sharing_one_cache_at_once_prepare_once_and_agree(tmp_path, small):
    cache = tmp_path / "shared-cache"
    sweeps = _cache_race(tmp_path, 2, ["prepare", "-m", *small, "seed=0,1"], cache)
    metrics = [read_metrics(sweep / job) for sweep in sweeps for job in ("0", "1")]
    assert sorted(m["data_cache_hit"] for m in metrics) == [False, True, True, True]  # prepared once, the others waited
    prepared = cache / "prepared"
    assert len((prepared / "preparations.log").read_text().splitlines()) == 1
    key = metrics[0]["data_key"]
    assert {m["data_key"] for m in metrics} == {key} and verify(prepared / key) is None
    assert not list(prepared.glob("*.tmp-*"))
    for name in ("ledger.jsonl", "data_report.md", "quarantine.jsonl"):  # every job got the same data
        assert len({(sweep / job / name).read_bytes() for sweep in sweeps for job in ("0", "1")}) == 1, name


@pytest.mark.soak
def test_soak_repeated_cache_races_with_a_preparation_killed_now_and_then(tmp_path, small):
    """Rounds of three training sweeps started at once on one fresh cache; every other round a
    preparation is SIGKILLed half-way first. Every job is ok, the data prepared once per round
    (twice at most when the killed one got to finish), and all agree on it and on the results."""
    rng = random.Random(7)
    for round_ in range(6):
        cache = tmp_path / f"cache{round_}"
        if round_ % 2:
            log = tmp_path / f"victim{round_}.log"
            victim = _spawn(
                ["prepare", *small, f"hydra.run.dir={tmp_path / f'victim{round_}'}"],
                {**os.environ, "TUNELAB_CACHE_DIR": str(cache)},
                log,
            )
            _wait_for(
                lambda cache=cache: list((cache / "prepared").glob("*.tmp-*")) if (cache / "prepared").is_dir() else [],
                victim,
                "a staging directory",
                log,
            )
            time.sleep(rng.uniform(0, 0.5))
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
        sweeps = _cache_race(tmp_path / f"round{round_}", 3, ["-m", *small, "train.max_steps=2"], cache)
        metrics = [read_metrics(s / "0") for s in sweeps]
        assert (
            len({m["data_key"] for m in metrics}) == 1 and verify(cache / "prepared" / metrics[0]["data_key"]) is None
        )
        assert len({m["test_loss"] for m in metrics}) == 1
        assert len((cache / "prepared" / "preparations.log").read_text().splitlines()) <= 2
        assert not list((cache / "prepared").glob("*.tmp-*"))


# --- 3. trackers that fail ---------------------------------------------------------------------

FLAKY_TRACKER = '''
from tunelab.api import Component, NoConfig, Tracker, hookimpl

class Flaky(Tracker):
    """Raises in every hook (a tracker whose server is down)."""
    @hookimpl
    def tunelab_run_start(self, run):
        raise ConnectionError("flaky.example: connection refused")
    @hookimpl
    def tunelab_metrics(self, run, metrics, step):
        raise ConnectionError("flaky.example: connection refused")
    @hookimpl
    def tunelab_run_end(self, run, status, metrics, error):
        raise ConnectionError("flaky.example: connection refused")
    @hookimpl
    def tunelab_sweep_end(self, sweep_dir, rows, comparison, group):
        raise ConnectionError("flaky.example: connection refused")

@hookimpl
def tunelab_register_trackers():
    return [Component("flaky", Flaky, NoConfig)]
'''


def _messages(recwarn) -> list[str]:
    return [str(w.message) for w in recwarn]


def test_wandb_unreachable_and_a_raising_tracker_cost_warnings_not_the_sweep(
    tmp_path, installed_plugin, monkeypatch, recwarn, small
):
    import wandb

    installed_plugin("tl_flaky", FLAKY_TRACKER, version="0.3")
    get_plugins(reload=True)

    def unreachable(*args, **kwargs):
        raise wandb.errors.CommError("api.wandb.ai unreachable")

    monkeypatch.setattr(wandb, "init", unreachable)
    sweep = tmp_path / "sweep"
    assert (
        run_cli(
            ["-m", *small, "train.max_steps=2", "tracker=[csv,wandb]", "+tracker.flaky={}", f"hydra.sweep.dir={sweep}"]
        )
        == 0
    )
    metrics = read_metrics(sweep / "0")
    assert metrics["status"] == "ok" and metrics["train_steps"] == 2
    assert _curve_steps(sweep / "0") == [1, 2]  # the csv tracker is not held up by the others
    assert (sweep / "comparison.md").is_file()
    messages = _messages(recwarn)
    assert any("wandb tracker disabled" in m and "api.wandb.ai unreachable" in m for m in messages), messages
    flaky = [m for m in messages if "tracker 'flaky' of plugin tunelab-tl-flaky 0.3" in m]
    for hook in ("tunelab_run_start", "tunelab_metrics", "tunelab_run_end", "tunelab_sweep_end"):
        # one warning per hook, naming the tracker, its distribution and the error
        assert len([m for m in flaky if f"in {hook} (ConnectionError: flaky.example: connection refused)" in m]) == 1, (
            flaky
        )


def test_wandb_logging_failing_and_a_full_disk_for_csv_leave_the_results_intact(tmp_path, monkeypatch, recwarn, small):
    import wandb.sdk.wandb_run

    import tunelab_builtin.trackers.csv as csv_tracker

    def log_fails(self, *args, **kwargs):
        raise ConnectionError("api.wandb.ai: connection reset")

    class FullDisk:
        def __init__(self, *args, **kwargs):
            pass

        def writerow(self, row):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        writerows = writerow

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "log", log_fails)
    monkeypatch.setattr(
        csv_tracker, "csv", SimpleNamespace(writer=FullDisk, reader=csv.reader)
    )  # this module's writes only
    run_dir = tmp_path / "run"
    assert run_cli([*small, "train.max_steps=2", "tracker=[csv,wandb]", f"hydra.run.dir={run_dir}"]) == 0
    assert read_metrics(run_dir)["status"] == "ok" and (run_dir / "model").is_dir()
    messages = _messages(recwarn)
    assert any("csv tracker: cannot write" in m and "No space left on device" in m for m in messages), messages
    wandb_warnings = [m for m in messages if "wandb tracker: could not log metrics" in m]
    assert len(wandb_warnings) == 1 and "ConnectionError: api.wandb.ai: connection reset" in wandb_warnings[0]


# --- 4. third-party plugins that fail -------------------------------------------------------------

GOOD_CLEANER = '''
from tunelab.api import Cleaner, Component, NoConfig, hookimpl

class Shout(Cleaner):
    """Upper-cases the prompts."""
    def apply(self, data, ctx):
        return data.map(lambda b: {"prompt": [p.upper() if p else p for p in b["prompt"]]}, batched=True)

@hookimpl
def tunelab_register_cleaners():
    return [Component("shout", Shout, NoConfig)]
'''

BROKEN_CONSTRUCTOR = '''
from dataclasses import dataclass
from tunelab.api import Cleaner, Component, hookimpl

@dataclass
class Config:
    level: int = 1

class Boom(Cleaner):
    """A cleaner whose constructor fails."""
    def __init__(self, config):
        raise RuntimeError("missing model file boom.bin")

class Picky(Cleaner):
    """A cleaner whose constructor has a bug."""
    def __init__(self, config):
        super().__init__(config)
        config.undefined_attribute()

@hookimpl
def tunelab_register_cleaners():
    return [Component("boom", Boom, Config), Component("picky", Picky, Config)]
'''

RAISING_HOOKS = """
from tunelab.api import hookimpl

@hookimpl
def tunelab_run_start(run):
    raise RuntimeError("telemetry endpoint down")

@hookimpl
def tunelab_config_search_paths():
    raise RuntimeError("no config dir")
"""


def test_a_plugin_that_fails_to_import_is_listed_as_broken_and_named_when_selected(
    tmp_path, installed_plugin, capsys, small
):
    installed_plugin("tl_shout", "import numpy.does_not_exist\n" + GOOD_CLEANER, version="1.2")
    with pytest.warns(UserWarning, match=r"tl_shout.*tunelab-tl-shout 1.2.*ModuleNotFoundError"):
        get_plugins(reload=True)
    assert run_cli(["plugins", "--kind", "cleaner"]) == 0
    out = capsys.readouterr().out
    assert "BROKEN" in out and "tunelab-tl-shout 1.2" in out and "numpy.does_not_exist" in out
    assert run_cli(["prepare", *small, f"hydra.run.dir={tmp_path / 'ok'}"]) == 0  # runs that do not use it are fine
    with pytest.raises(SystemExit) as info:
        run_cli(["prepare", *small, "pipeline.clean=[shout]", f"hydra.run.dir={tmp_path / 'bad'}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown cleaner 'shout'" in err and "tl_shout" in err and "tunelab-tl-shout 1.2" in err


def test_a_component_whose_constructor_raises_is_named_with_its_plugin(tmp_path, installed_plugin, capsys, small):
    installed_plugin("tl_boom", BROKEN_CONSTRUCTOR, version="0.9")
    get_plugins(reload=True)
    assert run_cli(["plugins", "--kind", "cleaner"]) == 0
    out = capsys.readouterr().out
    assert "BROKEN: cleaner 'boom' of plugin tunelab-tl-boom 0.9" in out and "missing model file boom.bin" in out
    assert run_cli(["prepare", *small, f"hydra.run.dir={tmp_path / 'ok'}"]) == 0
    with pytest.raises(SystemExit) as info:
        run_cli(["prepare", *small, "pipeline.clean=[boom]", f"hydra.run.dir={tmp_path / 'bad'}"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "cleaner 'boom' of plugin tunelab-tl-boom 0.9 (plugin 'tl_boom') is broken" in err
    assert "RuntimeError: missing model file boom.bin" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as info:  # a bug that raises AttributeError: the same, naming the plugin
        run_cli(["prepare", *small, "pipeline.clean=[picky]", f"hydra.run.dir={tmp_path / 'bad2'}"])
    assert "cleaner 'picky' of plugin tunelab-tl-boom 0.9" in capsys.readouterr().err


def test_a_sweep_job_selecting_a_broken_component_fails_alone(tmp_path, installed_plugin, capsys, small):
    installed_plugin("tl_boom", BROKEN_CONSTRUCTOR, version="0.9")
    get_plugins(reload=True)
    sweep = tmp_path / "sweep"
    assert run_cli(["prepare", "-m", *small, "pipeline.clean=[exact_dedup],[boom]", f"hydra.sweep.dir={sweep}"]) == 1
    assert read_metrics(sweep / "0")["status"] == "ok"
    assert "job failed: PluginError: cleaner 'boom' of plugin tunelab-tl-boom 0.9" in capsys.readouterr().err


def test_hooks_that_raise_cost_a_warning_naming_the_distribution(tmp_path, installed_plugin, recwarn, small):
    installed_plugin("tl_hooks", RAISING_HOOKS, version="4.0")
    get_plugins(reload=True)
    run_dir = tmp_path / "run"
    assert run_cli(["prepare", *small, f"hydra.run.dir={run_dir}"]) == 0
    assert read_metrics(run_dir)["status"] == "ok"
    messages = _messages(recwarn)
    assert any(
        "plugin tunelab-tl-hooks 4.0 (plugin 'tl_hooks') failed in tunelab_run_start (RuntimeError: "
        "telemetry endpoint down)" in m
        for m in messages
    ), messages
    assert any(
        "tunelab-tl-hooks 4.0" in m and "tunelab_config_search_paths" in m and "no config dir" in m for m in messages
    )


def test_a_registration_hook_that_raises_is_listed_as_broken(installed_plugin, capsys):
    installed_plugin(
        "tl_raising",
        (
            "from tunelab.api import hookimpl\n\n"
            "@hookimpl\ndef tunelab_register_cleaners():\n    raise ValueError('nope')\n"
        ),
        version="2.0",
    )
    with pytest.warns(UserWarning, match=r"tl_raising' from tunelab-tl-raising 2.0: tunelab_register_cleaners raised"):
        get_plugins(reload=True)
    assert run_cli(["plugins"]) == 0
    out = capsys.readouterr().out
    assert (
        "BROKEN     plugin 'tl_raising' (tunelab-tl-raising 2.0: tunelab_register_cleaners raised ValueError: nope)"
        in out
    )
