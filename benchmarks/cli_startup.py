"""How long `tunelab --help` takes, against a bare interpreter start in the same script.

    .venv/bin/python benchmarks/cli_startup.py [--repeat 5]

Target (issue 2): under one second, which needs torch/transformers/trl/datasets to stay
unimported on this path.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(cmd: list[str], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tunelab = str(Path(sys.executable).with_name("tunelab"))
    baseline = timed([sys.executable, "-c", "pass"], args.repeat)
    help_time = timed([tunelab, "--help"], args.repeat)
    plugins_time = timed([tunelab, "plugins"], args.repeat)
    print(f"baseline `python -c pass`: {baseline:.3f} s (median of {args.repeat})")
    print(f"`tunelab --help`:           {help_time:.3f} s  ({help_time / baseline:.1f}x baseline)")
    print(f"`tunelab plugins`:          {plugins_time:.3f} s  ({plugins_time / baseline:.1f}x baseline)")
    print("target: tunelab --help < 1.0 s:", "met" if help_time < 1.0 else "NOT met")


if __name__ == "__main__":
    main()
