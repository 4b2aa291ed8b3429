"""A fresh virtual environment with tunelab and plugin packages installed from wheels
(non-editable), for tests that drive the installed ``tunelab`` command like a user.

Nothing is downloaded. Wheels are built with this test environment's setuptools
(``pip wheel --no-deps --no-build-isolation``) from a clean copy of each source tree (the
build writes ``build/`` and ``*.egg-info``, which stay out of the checkout). The new
environment is created without pip; this environment's pip installs the wheels into it
(``pip --python``) with ``--no-deps --no-index`` while it still sees only its own
site-packages. Then a ``.pth`` line makes this environment's site-packages (torch,
transformers, trl, ...) importable there. A path listed in a ``.pth`` file is added to
``sys.path`` but the ``.pth`` files inside it are not run, so the editable install of
tunelab in this environment stays inactive: the new environment imports the tunelab it
installed, which :func:`make_venv` checks.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN = ROOT / "plugins" / "examples" / "tunelab-example-plugin"

#: never copied into a build: environments, build output, caches, run outputs
SKIPPED_NAMES = {
    ".venv",
    ".git",
    "build",
    "dist",
    "outputs",
    "multirun",
    "wandb",
    "__pycache__",
    ".pytest_cache",
    ".tunelab_cache",
    ".mypy_cache",
    ".ruff_cache",
}


def build_tools_missing() -> str | None:
    """Why a wheel cannot be built in this environment, or None when it can."""
    missing = [name for name in ("pip", "setuptools", "wheel") if importlib.util.find_spec(name) is None]
    if missing:
        return (
            f"building a wheel needs {', '.join(missing)} in the test environment "
            "(dev dependencies: pip install -e '.[dev]')"
        )
    version = importlib.metadata.version("setuptools")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major < 77:
        return f"building tunelab's wheel needs setuptools>=77 (pyproject.toml), this environment has {version}"
    return None


#: skip a test, with the reason, only where no wheel can be built
needs_wheel_build = pytest.mark.skipif(build_tools_missing() is not None, reason=build_tools_missing() or "")


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in SKIPPED_NAMES or n.endswith(".egg-info")}


def copy_source(source: Path, destination: Path) -> Path:
    """A copy of a project tree without environments, build output and caches."""
    shutil.copytree(source, destination, ignore=_ignore, symlinks=True)
    return destination


def build_wheel(source: Path, dist: Path) -> Path:
    """Build the project at ``source`` (best a :func:`copy_source` copy) into a wheel in
    ``dist`` and return its path."""
    dist.mkdir(parents=True, exist_ok=True)
    before = set(dist.glob("*.whl"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(dist),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    built = sorted(set(dist.glob("*.whl")) - before)
    if result.returncode != 0 or len(built) != 1:
        raise AssertionError(
            f"building a wheel of {source} failed (exit {result.returncode}, wheels {[w.name for w in built]}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return built[0]


_session_wheels: dict[str, Path] = {}


def tunelab_wheel(factory: pytest.TempPathFactory) -> Path:
    """tunelab's own wheel, built once per test session from a copy of the checkout."""
    if "tunelab" not in _session_wheels:
        root = factory.mktemp("tunelab-wheel")
        _session_wheels["tunelab"] = build_wheel(copy_source(ROOT, root / "src"), root / "dist")
    return _session_wheels["tunelab"]


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


@dataclass
class PluginVenv:
    """A virtual environment with tunelab (and plugins) installed, and how to run in it."""

    path: Path
    #: an unrelated working directory, so nothing is found through the checkout
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return _site_packages(self.python)

    def run(self, *args: object, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(a) for a in args], cwd=cwd or self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def tunelab(self, *args: object, timeout: float = 300) -> subprocess.CompletedProcess:
        """The ``tunelab`` command installed in this environment."""
        return self.run(self.path / "bin" / "tunelab", *args, timeout=timeout)

    def module_file(self, module: str) -> Path:
        out = self.run(self.python, "-c", f"import {module}; print({module}.__file__)")
        assert out.returncode == 0, f"cannot import {module} in {self.path}:\n{out.stderr[-2000:]}"
        return Path(out.stdout.strip())


def make_venv(root: Path, wheels: Iterable[Path]) -> PluginVenv:
    """A fresh virtual environment under ``root`` with ``wheels`` installed (no dependencies)
    and this environment's packages importable; checks that tunelab is imported from it."""
    path = root / "venv"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "TUNELAB_DISABLE_EXTERNAL_PLUGINS")
    }
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, capture_output=True)
    python = path / "bin" / "python"
    # pip re-runs itself under the new interpreter, which sees only its own (empty) site-packages
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--no-warn-script-location",
            "--disable-pip-version-check",
            "-q",
            *map(str, wheels),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert installed.returncode == 0, f"installing {[str(w) for w in wheels]} failed:\n{installed.stderr[-3000:]}"
    site = _site_packages(python)
    ours = sysconfig.get_paths()
    Path(site, "tunelab-test-dependencies.pth").write_text(
        "".join(f"{p}\n" for p in dict.fromkeys([ours["purelib"], ours["platlib"]]))
    )
    cwd = root / "work"
    cwd.mkdir(exist_ok=True)
    env.update(
        VIRTUAL_ENV=str(path),
        PATH=f"{path / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        PYTHONNOUSERSITE="1",
        PYTHONDONTWRITEBYTECODE="1",
        TUNELAB_CACHE_DIR=str(root / "cache"),
        HF_HUB_OFFLINE="1",
        WANDB_MODE="offline",
        TOKENIZERS_PARALLELISM="false",
    )
    venv = PluginVenv(path, cwd, env)
    where = venv.module_file("tunelab")
    assert where.is_relative_to(site), (
        f"the new environment imports tunelab from {where}, not from its own site-packages {site}: "
        "the test environment's editable install shadows the installed wheel"
    )
    return venv
