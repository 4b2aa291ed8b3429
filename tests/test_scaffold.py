"""`tunelab new-plugin NAME`: the package it creates installs (from a wheel, into a fresh
virtual environment with tunelab), passes its own tests there and shows up in
`tunelab plugins`; bad names and existing directories are refused with a clear message."""

from __future__ import annotations

import ast
import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from plugin_venv import build_wheel, make_venv, needs_wheel_build, tunelab_wheel

ROOT = Path(__file__).resolve().parents[1]


def new_plugin(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_cli(["new-plugin", *args])
    return code, out.getvalue(), err.getvalue()


@needs_wheel_build
def test_scaffolded_plugin_installs_passes_its_own_tests_and_is_listed(tmp_path, tmp_path_factory):
    code, out, err = new_plugin("acme-filters", "--dir", str(tmp_path / "plugins"))
    assert code == 0, err
    package = tmp_path / "plugins" / "tunelab-acme-filters"
    assert f"created {package}" in out and "cleaner acme_filters" in out
    assert (package / "src" / "tunelab_acme_filters" / "conf" / "pipeline" / "acme_filters.yaml").is_file()

    wheel = build_wheel(package, tmp_path / "dist")
    venv = make_venv(tmp_path, [tunelab_wheel(tmp_path_factory), wheel])
    assert venv.module_file("tunelab_acme_filters").is_relative_to(venv.site_packages)

    tests = venv.run(venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "4 passed" in tests.stdout, tests.stdout[-2000:]

    listing = venv.tunelab("plugins", "--kind", "cleaner", "--fields")
    assert listing.returncode == 0, listing.stderr[-2000:]
    line = next((row for row in listing.stdout.splitlines() if row.split()[:2] == ["cleaner", "acme_filters"]), None)
    assert line is not None, listing.stdout
    assert line.split()[2].replace("_", "-") == "tunelab-acme-filters", line
    assert "phrases: list[str] = ['as an ai language model', 'lorem ipsum']" in listing.stdout
    assert "skipped plugin" not in listing.stderr, listing.stderr


def test_rendered_files_are_valid_python_toml_and_yaml(tmp_path):
    from omegaconf import OmegaConf

    code, _, err = new_plugin("tunelab-shout", "--dir", str(tmp_path))
    assert code == 0, err
    package = tmp_path / "tunelab-shout"  # a tunelab- prefix is not doubled
    sources = sorted(package.rglob("*.py"))
    assert {p.name for p in sources} == {"__init__.py", "cleaners.py", "test_shout.py"}
    for path in sources:
        ast.parse(path.read_text(), filename=str(path))
    pyproject = (package / "pyproject.toml").read_text()
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = None
    if tomllib is not None:
        project = tomllib.loads(pyproject)
        assert project["project"]["name"] == "tunelab-shout"
        assert project["project"]["entry-points"]["tunelab"] == {"shout": "tunelab_shout"}
        assert project["tool"]["setuptools"]["package-data"] == {"tunelab_shout.conf": ["*/*.yaml"]}
    option = OmegaConf.load(package / "src" / "tunelab_shout" / "conf" / "pipeline" / "shout.yaml")
    assert list(option.clean)[-1] == "shout" and "shout" in option.params
    from tunelab.api import API_VERSION

    assert f'TUNELAB_API_VERSION = "{API_VERSION}"' in (package / "src" / "tunelab_shout" / "__init__.py").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "a staging directory was left behind"


@pytest.mark.parametrize(
    "name, message",
    [
        ("9lives", "with '-' replaced by '_' it must be a Python identifier"),
        ("acme filters", "with '-' replaced by '_' it must be a Python identifier"),
        ("class", "not a Python keyword"),
        ("café", "ASCII letters"),
        ("Acme-Filters", "lowercase and start with a letter (try 'acme-filters')"),
        ("tunelab-", "only the tunelab prefix"),
        ("normalize", "a cleaner named 'normalize' is already registered"),
        ("builtin", "already has the entry-point name 'builtin'"),
    ],
)
def test_unusable_names_are_refused_and_nothing_is_written(name, message, tmp_path):
    code, out, err = new_plugin(name, "--dir", str(tmp_path / "here"))
    assert code == 2, out
    assert err.startswith("tunelab new-plugin: ") and message in err, err
    assert not (tmp_path / "here").exists()


def test_an_existing_directory_is_never_overwritten(tmp_path):
    existing = tmp_path / "tunelab-acme-filters"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep me")
    code, _, err = new_plugin("acme_filters", "--dir", str(tmp_path))
    assert code == 2
    assert f"{existing} already exists; nothing was written" in err, err
    assert sorted(p.name for p in existing.iterdir()) == ["mine.txt"]
    assert (existing / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tunelab-acme-filters"]


def test_the_command_imports_nothing_heavy():
    code = (
        "import sys, contextlib, io, tempfile\n"
        "from tunelab.cli import main\n"
        "with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['new-plugin', 'light', '--dir', d]) == 0\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets', 'wandb') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
