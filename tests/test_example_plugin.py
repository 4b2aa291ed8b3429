"""The example plugin package (plugins/examples/tunelab-example-plugin) as a user gets it:
tunelab and the plugin installed from wheels (not editable) into a fresh virtual
environment, driven through that environment's `tunelab` command from an unrelated
directory. The plugin shows up in `tunelab plugins`, its components are selected and
swept from the command line, and its config is validated like a built-in's."""

from __future__ import annotations

import json
import shlex
import zipfile
from pathlib import Path

import pytest

from plugin_venv import (
    EXAMPLE_PLUGIN,
    ROOT,
    PluginVenv,
    build_wheel,
    copy_source,
    make_venv,
    needs_wheel_build,
    tunelab_wheel,
)

pytestmark = needs_wheel_build

DISTRIBUTION = "tunelab-example-plugin"
COMPONENTS = [
    ("cleaner", "min_words"),
    ("augmenter", "greeting_prefix"),
    ("peft", "lora_attention_only"),
    ("tracker", "jsonl"),
]
#: the commands docs/plugins.md shows for the example (run here as they are written there)
SWEEP = (
    "tunelab -m experiment=smoke peft=lora,lora_attention_only 'tracker=[csv,jsonl]' pipeline=min_words "
    "augment=greeting_prefix hydra.sweep.dir=multirun/example"
)
BAD_KEY = "tunelab experiment=smoke peft=lora_attention_only +peft.rank=4"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("example-plugin")
    source = copy_source(EXAMPLE_PLUGIN, root / "src")
    return {
        "root": root,
        "source": source,
        "tunelab": tunelab_wheel(tmp_path_factory),
        "plugin": build_wheel(source, root / "dist"),
    }


@pytest.fixture(scope="module")
def venv(built: dict[str, Path]) -> PluginVenv:
    return make_venv(built["root"], [built["tunelab"], built["plugin"]])


@pytest.fixture(scope="module")
def sweep(venv: PluginVenv) -> Path:
    """One sweep over the plugin's LoRA variant and built-in LoRA, with its tracker, cleaner
    and augmenter selected from the command line."""
    result = venv.tunelab(*shlex.split(SWEEP)[1:])
    assert result.returncode == 0, result.stderr[-4000:]
    return venv.cwd / "multirun" / "example"


def _jobs(sweep: Path) -> dict[str, Path]:
    """peft option -> job directory."""
    jobs = {}
    for path in sweep.glob("*/metrics.json"):
        overrides = json.loads(path.read_text())["overrides"]
        jobs[next(o.split("=", 1)[1] for o in overrides if o.startswith("peft="))] = path.parent
    return jobs


def test_wheels_install_non_editable_and_keep_the_example_out_of_tunelab(built, venv):
    names = zipfile.ZipFile(built["tunelab"]).namelist()
    assert not [n for n in names if "tunelab_example" in n or n.startswith("plugins/")], (
        "the example leaked into tunelab's wheel"
    )
    plugin_names = zipfile.ZipFile(built["plugin"]).namelist()
    for group_file in (
        "peft/lora_attention_only.yaml",
        "tracker/jsonl.yaml",
        "augment/greeting_prefix.yaml",
        "pipeline/min_words.yaml",
    ):
        assert f"tunelab_example/conf/{group_file}" in plugin_names
    site = venv.site_packages
    assert venv.module_file("tunelab").is_relative_to(site)
    assert venv.module_file("tunelab_example").is_relative_to(site)


def test_plugins_command_lists_the_example_components(venv):
    result = venv.tunelab("plugins")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for kind, name in COMPONENTS:
        line = next((row for row in lines if row.split()[:2] == [kind, name]), None)
        assert line is not None, f"{kind} {name} missing from `tunelab plugins`:\n{result.stdout}"
        assert line.split()[2].replace("_", "-") == DISTRIBUTION and line.split()[3] == "0.1.0", line
    assert "skipped plugin" not in result.stderr, result.stderr


def test_sweep_selects_the_plugin_components_from_the_command_line(sweep):
    jobs = _jobs(sweep)
    assert set(jobs) == {"lora", "lora_attention_only"}
    trainable = {}
    for peft, job in jobs.items():
        payload = json.loads((job / "metrics.json").read_text())
        assert payload["metrics"]["status"] == "ok", payload["metrics"]
        trainable[peft] = payload["metrics"]["trainable_params"]
        # the jsonl tracker: data statistics, the training curve and the final metrics, one per line
        lines = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
        assert {line["stage"] for line in lines} >= {"prepare", "train", "final"}
        assert any(
            line["stage"] == "train" and line["step"] is not None and line["name"] == "train/loss" for line in lines
        )
        assert (job / "metrics.csv").is_file()  # the built-in tracker ran next to it
        # the plugin's cleaner and augmenter ran, and the ledger accounts for their rows
        ledger = [json.loads(line) for line in (job / "ledger.jsonl").read_text().splitlines()]
        assert any(r.get("step") == "min_words" and r.get("reason") == "min_words:prompt" for r in ledger)
        assert any(r.get("step") == "greeting_prefix" and r.get("action") == "added" for r in ledger)
    # attention-only LoRA trains fewer weights than LoRA on every linear layer
    assert 0 < trainable["lora_attention_only"] < trainable["lora"]
    # the sweep ends in a comparison of the two approaches, and the tracker's sweep-end lines
    comparison = (sweep / "comparison.md").read_text()
    assert "lora_attention_only" in comparison
    assert '"stage": "sweep"' in (sweep / "metrics.jsonl").read_text()


def test_unknown_key_in_the_plugins_config_is_a_config_error_naming_it(venv):
    result = venv.tunelab(*shlex.split(BAD_KEY)[1:])
    assert result.returncode == 2, result.stderr[-3000:]
    assert (
        "tunelab: config error: unknown key 'peft.rank' for peft 'lora_attention_only' "
        "(from the command-line override '+peft.rank=4'). Valid keys: alpha, dropout, projections, r."
    ) in result.stderr, result.stderr[-3000:]


def test_the_example_plugins_own_tests_pass_in_the_venv(built, venv):
    result = venv.run(
        venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", built["source"] / "tests", cwd=built["source"]
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_docs_show_the_commands_run_here():
    text = (ROOT / "docs" / "plugins.md").read_text()
    for command in (SWEEP, BAD_KEY):
        assert f"$ {command}" in text, f"docs/plugins.md no longer shows `{command}`: update it or this test"
