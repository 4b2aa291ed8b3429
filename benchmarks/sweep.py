"""Parallel sweep speed-up and shared data: 4 equal jobs on 2 CPU workers vs the same 4 serially.

Every sweep goes through the real CLI (``tunelab -m``) in a subprocess, each with its own empty
prepared-data cache, on the same 4 jobs (``experiment=smoke``, seeds 0-3, the tiny model
trained for ``--steps`` steps). A job is one worker's worth of machine: one CPU thread, as a
GPU job is one GPU.

- serial (the baseline): ``hydra/launcher=gpu_pool`` with 1 worker, the jobs one after another;
- parallel: the same launcher with 2 workers;
- for reference, Hydra's basic launcher: the jobs one after another in one process, each
  free to use every core (torch's intra-op threads). How close this comes to the parallel
  sweep depends on how well the model's kernels use several threads, not on the launcher.

It prints the wall times, the ratio parallel/serial (target <= 0.6) and how many times the
data was prepared in each sweep (target: exactly 1; the seeds share the split, see data_seed).

    .venv/bin/python benchmarks/sweep.py --steps 150
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOBS = "seed=0,1,2,3"
TARGET_RATIO = 0.6


def sweep(kind: str, root: Path, steps: int) -> tuple[float, int, list[str]]:
    cache = root / f"cache-{kind}"
    sweep_dir = root / kind
    args = [
        "-m", "experiment=smoke", JOBS, f"train.max_steps={steps}", "train.save_model=false",
        f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    if kind != "basic":
        workers = 2 if kind == "parallel" else 1
        args += [
            "hydra/launcher=gpu_pool",
            "hydra.launcher.gpus=[]",
            f"hydra.launcher.workers={workers}",
            "hydra.launcher.threads_per_job=1",
        ]
    env = {**os.environ, "TUNELAB_CACHE_DIR": str(cache), "WANDB_MODE": "offline"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tunelab.cli", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{kind} sweep failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    log = cache / "prepared" / "preparations.log"
    preparations = len(log.read_text().splitlines()) if log.exists() else 0
    statuses = [json.loads(p.read_text())["metrics"]["status"] for p in sorted(sweep_dir.glob("*/metrics.json"))]
    return seconds, preparations, statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="training steps per job (default 150)")
    parser.add_argument("--keep", action="store_true", help="keep the sweep directories (printed)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tunelab-bench-sweep-"))
    print(
        f"4 jobs (experiment=smoke {JOBS}, train.max_steps={args.steps}) on {os.cpu_count()} cores; dirs under {root}"
    )
    results = {}
    for kind in ("serial", "parallel", "basic"):
        seconds, preparations, statuses = sweep(kind, root, args.steps)
        results[kind] = seconds
        print(f"{kind:>8}: {seconds:7.1f} s  jobs {statuses}  data preparations: {preparations}")
        if statuses != ["ok"] * 4 or preparations != 1:
            print(f"FAIL: the {kind} sweep should finish 4 jobs ok with exactly 1 data preparation")
            return 1
    ratio = results["parallel"] / results["serial"]
    verdict = "ok" if ratio <= TARGET_RATIO else "ABOVE TARGET"
    print(f"parallel/serial wall time: {ratio:.2f} (target <= {TARGET_RATIO}: {verdict})")
    print(
        f"parallel/basic wall time: {results['parallel'] / results['basic']:.2f} "
        "(reference: in-process, all cores per job)"
    )
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
