"""``hydra/launcher=gpu_pool``: run a sweep's jobs in parallel subprocesses, one GPU set each.

The launcher keeps a free list of devices. A job takes ``gpus_per_job`` of them, runs
in its own Python process with ``CUDA_VISIBLE_DEVICES`` naming only those, and gives
them back when it ends; jobs wait in a queue while every device is busy. With no GPUs
it runs ``workers`` jobs at a time on the CPU (``CUDA_VISIBLE_DEVICES=""``). Either way
each job gets ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` = CPU cores // parallel jobs, so
parallel jobs do not oversubscribe the cores.

Each job runs exactly as Hydra's BasicLauncher would run it — the same
``load_sweep_config``, ``hydra.job.num``/``hydra.job.id``, ``run_job`` with
``hydra.sweep.dir``/``hydra.sweep.subdir`` (so the job directory and its ``.hydra/``
files are the same) — only in a child process: the parent sends the composed job config,
the task function and Hydra's global state (serialised with ``dill``, which ``datasets``
installs) and reads back the ``JobReturn``. A failing job does not stop the others; the
launcher writes ``launcher_summary.json`` in the sweep directory and prints one line per
failed job. A job's stdout and stderr go to ``output.log`` in its job directory.
Ctrl-C, SIGTERM or an error in the launcher terminates every running job (its whole
process group) before the launcher returns; a job also dies with the launcher process.

This module holds all of it but the Launcher class (:mod:`.gpu_pool_launcher`, whose
``launch`` calls :func:`launch`) and its config (:mod:`.config`): the plan, the device
pool, the job processes (:func:`child_main` runs in each), their termination and the
summary file. It imports nothing heavy at module level; torch is imported only for
``gpus: auto``.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from tunelab.redaction import redact_text

if TYPE_CHECKING:
    from .gpu_pool_launcher import GpuPoolLauncher

log = logging.getLogger(__name__)

SUMMARY_FILE = "launcher_summary.json"
LOG_FILE = "output.log"


class LauncherConfigError(CompactHydraException, ValueError):
    """A ``hydra.launcher.*`` value cannot work; the message names the key and the fix.
    (Compact: Hydra prints the message, not a traceback.)"""


class JobLost(RuntimeError):
    """A job process ended without reporting a result (killed, crashed, interrupted)."""


# ---------------------------------------------------------------------------------------
# Devices and parallelism


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def detect_gpus() -> list[str]:
    """The GPUs a job may be given: the entries of $CUDA_VISIBLE_DEVICES when it is set
    (they may be UUIDs), else torch's CUDA device count, else ``nvidia-smi -L``, else none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch  # only here: the CLI must start without torch

        if torch.version.cuda is not None and torch.cuda.is_available():
            return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        return [str(i) for i, line in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]
    return []


@dataclass(frozen=True)
class Plan:
    """How a sweep runs: the device pool, devices per job, jobs at once, threads per job."""

    devices: tuple[str, ...]
    gpus_per_job: int
    parallel: int
    threads_per_job: int

    @property
    def on_gpu(self) -> bool:
        return bool(self.devices) and self.gpus_per_job > 0


def make_plan(
    gpus: Any = "auto",
    gpus_per_job: int = 1,
    workers: Optional[int] = None,
    threads_per_job: Optional[int] = None,
    cores: Optional[int] = None,
    detect: Callable[[], list[str]] = detect_gpus,
) -> Plan:
    """Check the ``hydra.launcher.*`` values and work out the plan; raise
    :class:`LauncherConfigError` naming the key and the fix."""
    cores = cores or cpu_count()
    if isinstance(gpus, str) and gpus.strip().lower() == "auto":
        devices = list(detect())
    elif isinstance(gpus, (list, tuple, ListConfig)):
        devices = [str(d).strip() for d in gpus]
        if any(not d for d in devices):
            raise LauncherConfigError(
                f"hydra.launcher.gpus has an empty entry: {list(gpus)}. Fix: hydra.launcher.gpus=[0,1]"
            )
        duplicates = sorted({d for d in devices if devices.count(d) > 1})
        if duplicates:
            raise LauncherConfigError(
                f"hydra.launcher.gpus lists GPU {duplicates[0]} twice: {devices}; a GPU goes to one job at a time. "
                "Fix: list each GPU once, e.g. hydra.launcher.gpus=[0,1]"
            )
    else:
        raise LauncherConfigError(
            f"hydra.launcher.gpus must be 'auto' or a list of GPU ids, got {gpus!r}. "
            "Fix: hydra.launcher.gpus=auto, hydra.launcher.gpus=[0,1], or hydra.launcher.gpus=[] for the CPU"
        )
    if not isinstance(gpus_per_job, int) or isinstance(gpus_per_job, bool) or gpus_per_job < 0:
        raise LauncherConfigError(
            f"hydra.launcher.gpus_per_job must be an integer >= 0, got {gpus_per_job!r}. "
            "Fix: hydra.launcher.gpus_per_job=1"
        )
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise LauncherConfigError(
            f"hydra.launcher.workers must be a positive integer or null, got {workers!r}. Fix: hydra.launcher.workers=2"
        )
    if threads_per_job is not None and (
        not isinstance(threads_per_job, int) or isinstance(threads_per_job, bool) or threads_per_job < 1
    ):
        raise LauncherConfigError(
            f"hydra.launcher.threads_per_job must be a positive integer or null, got {threads_per_job!r}. "
            "Fix: hydra.launcher.threads_per_job=4"
        )
    if devices and gpus_per_job > 0:
        slots = len(devices) // gpus_per_job
        if slots == 0:
            raise LauncherConfigError(
                f"hydra.launcher.gpus_per_job={gpus_per_job} but only {len(devices)} GPU(s) are available "
                f"({','.join(devices)}). "
                f"Fix: hydra.launcher.gpus_per_job={len(devices)} or list more GPUs in hydra.launcher.gpus"
            )
        parallel = min(slots, workers) if workers else slots
    else:
        devices = []
        parallel = workers or max(1, min(8, cores // 2))
    threads = threads_per_job or max(1, cores // parallel)
    return Plan(tuple(devices), gpus_per_job if devices else 0, parallel, threads)


class DevicePool:
    """A free list of device ids. ``acquire(n)`` hands out n free ids (lowest first) or
    None when fewer are free; ``release`` gives them back. No id is out twice."""

    def __init__(self, devices: Iterable[str]) -> None:
        self.devices = [str(d) for d in devices]
        self._free = list(self.devices)

    @property
    def free(self) -> list[str]:
        return list(self._free)

    def acquire(self, n: int) -> Optional[list[str]]:
        if n > len(self._free):
            return None
        taken, self._free = self._free[:n], self._free[n:]
        return taken

    def release(self, devices: Sequence[str]) -> None:
        for device in devices:
            if device not in self.devices:
                raise ValueError(f"device {device!r} is not in the pool {self.devices}")
            if device in self._free:
                raise ValueError(f"device {device!r} released twice")
            self._free.append(device)
        self._free.sort(key=self.devices.index)


def job_environment(plan: Plan, devices: Sequence[str], base: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The environment of one job: its GPUs (none on the CPU) and its thread count."""
    env = dict(os.environ if base is None else base)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(plan.threads_per_job)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ---------------------------------------------------------------------------------------
# The launcher (parent side)


@dataclass
class _Job:
    num: int
    overrides: list[str]
    sweep_config: DictConfig
    job_dir: Path
    devices: list[str]
    process: subprocess.Popen
    log_file: Any
    result_path: Path
    started: float = field(default_factory=time.time)
    clock: float = field(default_factory=time.perf_counter)


class _Terminated(KeyboardInterrupt):
    """SIGTERM while the launcher waits: handled like Ctrl-C."""


def launch(
    launcher: GpuPoolLauncher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> Sequence[JobReturn]:
    """Run the jobs ``job_overrides`` (numbered from ``initial_job_idx``) for ``launcher``:
    what :meth:`GpuPoolLauncher.launch` does."""
    setup_globals()
    assert launcher.config is not None and launcher.hydra_context is not None and launcher.task_function is not None
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    plan = make_plan(**launcher.settings)
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir)).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    where = f"GPUs {','.join(plan.devices)}, {plan.gpus_per_job} per job" if plan.on_gpu else "CPU"
    log.info(
        f"Launching {len(job_overrides)} jobs, {plan.parallel} at a time ({where}; "
        f"{plan.threads_per_job} thread{'s' if plan.threads_per_job != 1 else ''} per job)"
    )
    pool = DevicePool(plan.devices if plan.on_gpu else [])
    queue = deque((initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides))
    results: dict[int, JobReturn] = {}
    running: list[_Job] = []
    scratch = Path(tempfile.mkdtemp(prefix="tunelab-gpu-pool-"))
    shared = _shared_payload(launcher)
    previous_handler = _install_sigterm_handler()
    interrupted = False
    try:
        while queue or running:
            while queue and len(running) < plan.parallel:
                devices = pool.acquire(plan.gpus_per_job) if plan.on_gpu else []
                if devices is None:
                    break
                num, overrides = queue.popleft()
                running.append(_start(launcher, num, overrides, devices, plan, scratch, shared))
            time.sleep(0.1)
            for job in [j for j in running if j.process.poll() is not None]:
                running.remove(job)
                if plan.on_gpu:
                    pool.release(job.devices)
                results[job.num] = _finish(launcher, job, sweep_dir)
    except BaseException:
        interrupted = True
        raise
    finally:
        if running:
            log.warning(f"Terminating {len(running)} running job(s)")
            _terminate([j.process for j in running], launcher.terminate_grace_s)
            for job in running:
                results[job.num] = _finish(launcher, job, sweep_dir, interrupted=True)
        _restore_sigterm_handler(previous_handler)
        shutil.rmtree(scratch, ignore_errors=True)
        _write_summary(launcher, sweep_dir, plan, interrupted)
    return [results[initial_job_idx + i] for i in range(len(job_overrides))]


def _shared_payload(launcher: GpuPoolLauncher) -> bytes:
    """What every job needs besides its own config, serialised once per batch."""
    import dill
    from hydra.core.singleton import Singleton

    try:
        return dill.dumps(
            {
                "hydra_context": launcher.hydra_context,
                "task_function": launcher.task_function,
                "singleton_state": Singleton.get_state(),
            },
            recurse=True,
        )
    except Exception as exc:
        raise RuntimeError(
            f"hydra/launcher=gpu_pool cannot send the task function or Hydra's state to a job process "
            f"({type(exc).__name__}: {exc}). Fix: make the task function picklable by dill, or use hydra/launcher=basic"
        ) from exc


def _start(
    launcher: GpuPoolLauncher,
    num: int,
    overrides: list[str],
    devices: list[str],
    plan: Plan,
    scratch: Path,
    shared: bytes,
) -> _Job:
    import dill

    assert launcher.hydra_context is not None and launcher.config is not None
    sweep_config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, overrides)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = num
        sweep_config.hydra.job.num = num
    job_dir = _job_dir(sweep_config)
    job_dir.mkdir(parents=True, exist_ok=True)
    spec_path, result_path = scratch / f"{num}.job", scratch / f"{num}.result"
    envelope = {
        "sys_path": list(sys.path),
        "argv": list(sys.argv),
        "parent_pid": os.getpid(),
        "shared": shared,
        "job": dill.dumps({"sweep_config": sweep_config}, recurse=True),
        "result_path": str(result_path),
    }
    spec_path.write_bytes(pickle.dumps(envelope))
    device_text = f"GPU {','.join(devices)}" if devices else "CPU"
    log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}  [{device_text}; log: {job_dir / LOG_FILE}]")
    log_file = (job_dir / LOG_FILE).open("wb")
    runner = (
        "import sys; from hydra_plugins.tunelab_gpu_pool._core import child_main; sys.exit(child_main(sys.argv[1:]))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", runner, str(spec_path)],
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=job_environment(plan, devices),
        start_new_session=True,  # its own process group: stopping a job stops its workers too
    )
    return _Job(num, overrides, sweep_config, job_dir, devices, process, log_file, result_path)


def _finish(launcher: GpuPoolLauncher, job: _Job, sweep_dir: Path, interrupted: bool = False) -> JobReturn:
    import dill

    job.log_file.close()
    if not interrupted:  # what the job started and left behind (data workers) goes with it
        _kill_group(job.process, signal.SIGKILL)
    seconds = time.perf_counter() - job.clock
    code = job.process.returncode
    ret: Optional[JobReturn] = None
    if job.result_path.is_file():
        try:
            ret = dill.loads(job.result_path.read_bytes())
        except Exception as exc:  # a result we cannot read is a failed job, not a failed sweep
            log.warning(f"job #{job.num}: cannot read its result ({type(exc).__name__}: {exc})")
    if ret is None:
        what = "was stopped by the launcher" if interrupted else f"exited with code {code}{_signal_name(code)}"
        ret = _lost_job_return(
            job, JobLost(f"job #{job.num} {what} before reporting a result; see {job.job_dir / LOG_FILE}")
        )
    value = ret._return_value
    # a tunelab job catches its own failure (so the sweep goes on) and returns it
    failed_inside = isinstance(value, dict) and value.get("status") == "failed"
    ok = ret.status == JobStatus.COMPLETED and not failed_inside
    record: dict[str, Any] = {
        "num": job.num,
        "overrides": [redact_text(o) for o in filter_overrides(job.overrides)],  # no passwords in the summary
        "status": "ok" if ok else ("interrupted" if interrupted else "failed"),
        "returncode": code,
        "devices": job.devices,
        "seconds": round(seconds, 3),
        "started": round(job.started, 3),
        "job_dir": str(job.job_dir),
        "log": str(job.job_dir / LOG_FILE),
    }
    if ok and isinstance(value, dict) and value.get("resumed_from"):
        record["resumed_from"] = str(value["resumed_from"])
    if not ok:
        record["error"] = _one_line(value["error"] if failed_inside else value)
    launcher.records[job.num] = record
    return ret


def _write_summary(launcher: GpuPoolLauncher, sweep_dir: Path, plan: Plan, interrupted: bool) -> None:
    jobs = [launcher.records[n] for n in sorted(launcher.records)]
    failed = [r for r in jobs if r["status"] != "ok"]
    payload = {
        "launcher": "gpu_pool",
        "devices": list(plan.devices) if plan.on_gpu else [],
        "gpus_per_job": plan.gpus_per_job,
        "parallel": plan.parallel,
        "threads_per_job": plan.threads_per_job,
        "interrupted": interrupted,
        "jobs": jobs,
    }
    path = sweep_dir / SUMMARY_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)
    for record in failed:
        overrides = " ".join(record["overrides"]) or "(no overrides)"
        print(
            f"tunelab: job #{record['num']} {record['status']} ({overrides}): {record.get('error', '')} "
            f"— log: {record['log']}",
            file=sys.stderr,
        )
    if failed:
        print(f"tunelab: {len(failed)} of {len(jobs)} jobs did not finish; summary: {path}", file=sys.stderr)


def _job_dir(sweep_config: DictConfig) -> Path:
    """``${hydra.sweep.dir}/${hydra.sweep.subdir}`` as run_job will compute it (it may
    use the ``hydra:`` resolver, so the job's config is the Hydra config meanwhile)."""
    from hydra.core.hydra_config import HydraConfig

    saved = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(sweep_config)
    try:
        directory = str(OmegaConf.select(sweep_config, "hydra.sweep.dir"))
        subdir = OmegaConf.select(sweep_config, "hydra.sweep.subdir")
    finally:
        HydraConfig.instance().cfg = saved
    return Path(os.path.abspath(os.path.join(directory, str(subdir)) if subdir is not None else directory))


def _lost_job_return(job: _Job, error: BaseException) -> JobReturn:
    config = job.sweep_config
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = str(job.job_dir)
    task_cfg = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    ret = JobReturn(
        overrides=list(job.overrides), cfg=task_cfg, hydra_cfg=config, working_dir=os.getcwd(), task_name=None
    )
    ret.status = JobStatus.FAILED
    ret.return_value = error
    return ret


def _one_line(value: Any) -> str:
    if isinstance(value, BaseException):
        text = f"{type(value).__name__}: {value}"
    else:
        text = str(value)
    return " ".join(text.split())[:500]


def _signal_name(code: Optional[int]) -> str:
    if code is not None and code < 0:
        try:
            return f" ({signal.Signals(-code).name})"
        except ValueError:
            return ""
    return ""


def _terminate(processes: list[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM every job's process group, wait up to ``grace_s``, then SIGKILL."""
    alive = [p for p in processes if p.poll() is None]
    for p in alive:
        _kill_group(p, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in alive:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in processes:  # the leader may be gone while its workers are not
        _kill_group(p, signal.SIGKILL)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.error(f"job process {p.pid} did not exit after SIGKILL")


def _kill_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated(f"signal {signal.Signals(signum).name}")


def _install_sigterm_handler() -> Any:
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: the caller handles its own signals
        return None


def _restore_sigterm_handler(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------------------
# The job process (child side)


def child_main(argv: list[str]) -> int:
    """Run one job from the spec file the launcher wrote; write its JobReturn back."""
    envelope = pickle.loads(Path(argv[0]).read_bytes())
    sys.path[:] = envelope["sys_path"]
    sys.argv = envelope["argv"]
    _die_with_parent(envelope["parent_pid"])
    signal.signal(signal.SIGTERM, _raise_terminated)  # so finally blocks and run() record the stop

    import dill
    from hydra.core.singleton import Singleton
    from hydra.core.utils import run_job

    shared = dill.loads(envelope["shared"])
    job = dill.loads(envelope["job"])
    Singleton.set_state(shared["singleton_state"])
    try:
        ret = run_job(
            hydra_context=shared["hydra_context"],
            task_function=shared["task_function"],
            config=job["sweep_config"],
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
    except _Terminated:
        # the job recorded the stop (its metrics.json says interrupted); now end as SIGTERM
        # would have, so the launcher reports the signal (not a Python KeyboardInterrupt)
        print("tunelab: job stopped by SIGTERM", file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise
    value = ret._return_value
    failed_inside = isinstance(value, dict) and value.get("status") == "failed"  # tunelab caught it
    if ret.status != JobStatus.COMPLETED:
        print(f"tunelab: job failed: {_one_line(value)}", file=sys.stderr)
    _write_result(Path(envelope["result_path"]), ret)
    return 0 if ret.status == JobStatus.COMPLETED and not failed_inside else 1


def _write_result(path: Path, ret: JobReturn) -> None:
    import dill

    try:
        blob = dill.dumps(ret, recurse=True)
    except Exception:  # a return value or exception that cannot be pickled: send its text
        if ret.status == JobStatus.COMPLETED:
            ret.return_value = repr(ret._return_value)
        else:
            ret.return_value = RuntimeError(_one_line(ret._return_value))
        blob = dill.dumps(ret, recurse=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)


def _die_with_parent(parent_pid: int) -> None:
    """On Linux, ask the kernel to SIGTERM this job when the launcher dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the launcher died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
