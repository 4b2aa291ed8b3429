"""A non-editable wheel, installed into a fresh virtual environment and run from an
unrelated directory, finds its config groups, sample data and built-in plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_and_runs_from_an_unrelated_directory(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("tunelab-*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "tunelab/conf/config.yaml" in names and "tunelab/conf/peft/lora.yaml" in names
    assert "tunelab_builtin/data/support_tickets.jsonl" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # dependencies come from the test environment's site-packages, added as a plain
    # path (its .pth files, including the editable install of tunelab, are not run)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "TUNELAB_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": ""}
    where = subprocess.run(
        [str(python), "-c", "import tunelab, tunelab.app; print(tunelab.__file__); print(tunelab.app.conf_dir())"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(str(venv) in line for line in where), where

    tunelab = venv / "bin" / "tunelab"
    listing = subprocess.run(
        [str(tunelab), "plugins"], cwd=elsewhere, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "stratified" in listing and "tunelab 0.1.0" in listing
    prepared = subprocess.run(
        [str(tunelab), "prepare", "pipeline=minimal", f"hydra.run.dir={elsewhere / 'run'}"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    assert (elsewhere / "run" / "data_report.md").is_file()
