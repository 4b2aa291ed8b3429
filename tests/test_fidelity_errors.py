"""Errors that point somewhere (issue 15, items 7, 11 and 12).

7. A failed prepare keeps its quarantine and ledger in the run directory (the staging
   directory in the cache is deleted), its error names those files and lists the first reasons.
11. A run or sweep directory (or cache_dir) that cannot be a directory, and a logging config
    naming code to import, are config errors (exit 2) before any work; the module is never imported.
12. A refused key is blamed on the file that set it (an experiment preset, a --config-dir file),
    not on the file of the group it lands in.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from conftest import run_cli, validate
from tunelab.config import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"


def _refused(capsys: pytest.CaptureFixture[str], args: list[str], code: int = 2) -> str:
    """Run the CLI expecting it to stop with ``code``; return stderr's last 'tunelab:' message."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(args)
    assert exit_info.value.code == code, args
    err = capsys.readouterr().err
    assert "Traceback" not in err and "HYDRA_FULL_ERROR" not in err, err
    return err[err.rindex("tunelab: ") :].rstrip("\n")


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- 7. a failed prepare keeps its quarantine and ledger ------------------------------------------


def test_every_record_malformed_keeps_the_quarantine_in_the_run_dir_and_lists_the_reasons(
    tmp_path, capsys, isolated_cache
):
    data = _jsonl(tmp_path / "broken.jsonl", ['{"prompt": "a"', "not json", '{"prompt": 1,}'])
    run_dir = tmp_path / "run"
    message = _refused(capsys, ["prepare", "data=jsonl", f"data.path={data}", f"hydra.run.dir={run_dir}"], code=1)
    assert message == (
        f"tunelab: error: collector 'jsonl' found no usable rows (3 quarantined, see {run_dir / 'quarantine.jsonl'}). "
        "Check data.path and the file format.\n"
        "first reasons:\n"
        "  broken.jsonl:1: invalid JSON: Expecting ',' delimiter (column 1)\n"
        "  broken.jsonl:2: invalid JSON: Expecting value (column 1)\n"
        "  broken.jsonl:3: invalid JSON: Expecting property name enclosed in double quotes (column 14)"
    )
    assert [(r["line"], r["raw"]) for r in _records(run_dir / "quarantine.jsonl")] == [
        (1, '{"prompt": "a"\n'),
        (2, "not json\n"),
        (3, '{"prompt": 1,}\n'),
    ]
    assert [(r["id"], r["action"]) for r in _records(run_dir / "ledger.jsonl")] == [
        ("broken.jsonl:1", "quarantined"),
        ("broken.jsonl:2", "quarantined"),
        ("broken.jsonl:3", "quarantined"),
    ]
    assert "first reasons:\n  broken.jsonl:1: invalid JSON" in (run_dir / "error.txt").read_text()
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"]["status"] == "failed"
    prepared = isolated_cache / "prepared"
    assert not list(prepared.glob("*.tmp-*")) and not list(prepared.glob("*.failed"))


def test_a_step_that_drops_every_row_points_at_the_ledger_in_the_run_dir(tmp_path, capsys, isolated_cache):
    rows = [json.dumps({"prompt": f"question {i}", "completion": "an answer", "label": "a"}) for i in range(7)]
    data = _jsonl(tmp_path / "short.jsonl", rows)
    run_dir = tmp_path / "run"
    message = _refused(
        capsys,
        [
            "prepare",
            "data=jsonl",
            f"data.path={data}",
            "pipeline=minimal",
            "pipeline.clean=[drop_missing,quality_filter]",
            "+pipeline.params.quality_filter.min_chars=100",
            f"hydra.run.dir={run_dir}",
        ],
        code=1,
    )
    assert message == (
        f"tunelab: error: no rows left after step 'quality_filter' (clean); see the drop reasons in "
        f"{run_dir / 'ledger.jsonl'}. Loosen that step's parameters or remove it from pipeline.clean.\n"
        "first reasons:\n"
        + "".join(
            f"  short.jsonl:{i}: quality:min_chars (rule=min_chars, field=prompt, value=10, limit=100)\n"
            for i in range(1, 6)
        )
        + "  ... and 2 more"
    )
    ledger = _records(run_dir / "ledger.jsonl")
    assert [(r["id"], r["step"], r["reason"]) for r in ledger] == [
        (f"short.jsonl:{i}", "quality_filter", "quality:min_chars") for i in range(1, 8)
    ]
    assert (run_dir / "quarantine.jsonl").read_text() == ""


BOOM_PLUGIN = '''
from tunelab.api import Cleaner, Component, hookimpl

class Boom(Cleaner):
    """Fails on every input."""
    def apply(self, data, ctx):
        raise ValueError("boom: the operator broke")

@hookimpl
def tunelab_register_cleaners():
    return [Component("boom", Boom, None)]
'''


def test_a_step_that_raises_keeps_the_rows_so_far_in_the_run_dir(tmp_path, capsys, installed_plugin):
    from tunelab.plugins import get_plugins

    installed_plugin("tl_boom", BOOM_PLUGIN)
    get_plugins(reload=True)
    good = [json.dumps({"prompt": f"question number {i}", "completion": "an answer", "label": "a"}) for i in range(3)]
    data = _jsonl(
        tmp_path / "mixed.jsonl", [*good, "{oops", json.dumps({"prompt": "no answer", "completion": "", "label": "a"})]
    )
    run_dir = tmp_path / "run"
    message = _refused(
        capsys,
        [
            "prepare",
            "data=jsonl",
            f"data.path={data}",
            "pipeline=minimal",
            "pipeline.clean=[drop_missing,boom]",
            f"hydra.run.dir={run_dir}",
        ],
        code=1,
    )
    assert message == (
        "tunelab: error: clean step 'boom' failed: boom: the operator broke (the quarantine and ledger so far: "
        f"{run_dir / 'quarantine.jsonl'}, {run_dir / 'ledger.jsonl'})"
    )
    assert [r["line"] for r in _records(run_dir / "quarantine.jsonl")] == [4]
    assert [(r["id"], r["action"], r.get("reason")) for r in _records(run_dir / "ledger.jsonl")] == [
        ("mixed.jsonl:4", "quarantined", "invalid JSON: Expecting property name enclosed in double quotes (column 2)"),
        ("mixed.jsonl:5", "dropped", "missing completion"),
    ]


def test_prepare_without_a_run_dir_keeps_the_files_next_to_the_cache_entry(tmp_path, isolated_cache):
    from tunelab.data.cache import cache_key, prepare
    from tunelab.data.pipeline import DataError
    from tunelab.plugins import get_plugins

    data = _jsonl(tmp_path / "broken.jsonl", ["nope"])
    rc = validate(["data=jsonl", f"data.path={data}", "pipeline=minimal"])
    kept = isolated_cache / "prepared" / f"{cache_key(rc, get_plugins())}.failed"
    with pytest.raises(DataError) as info:
        prepare(rc, get_plugins())
    assert f"see {kept / 'quarantine.jsonl'})" in str(info.value)
    assert str(info.value).endswith("first reasons:\n  broken.jsonl:1: invalid JSON: Expecting value (column 1)")
    assert [r["raw"] for r in _records(kept / "quarantine.jsonl")] == ["nope\n"]
    assert not list((isolated_cache / "prepared").glob("*.tmp-*"))


# --- 11. run directories, cache_dir and Hydra's logging config --------------------------------------


def _unwritable(tmp_path: Path) -> Path:
    """A directory nothing can be created in, for root too: procfs refuses mkdir to everyone."""
    if os.geteuid() == 0:
        return Path("/proc/tunelab-nope/run")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return locked / "run"


@pytest.mark.parametrize("case", ["a file", "under a file", "unwritable"])
@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_a_run_or_sweep_dir_that_cannot_be_made_is_a_config_error_naming_the_key(
    case, key, tmp_path, capsys, isolated_cache
):
    afile = tmp_path / "afile"
    afile.write_text("x")
    target = {"a file": afile, "under a file": afile / "run", "unwritable": _unwritable(tmp_path)}[case]
    problem = {
        "a file": f"{afile} is a file, not a directory",
        "under a file": f"{afile} is a file, so no directory can be made under it",
        "unwritable": (
            f"cannot create {target.parent}: No such file or directory"
            if os.geteuid() == 0
            else f"cannot create {target}: Permission denied"
        ),
    }[case]
    kind, example = ("sweep", "multirun/my_sweep") if key == "hydra.sweep.dir" else ("run", "outputs/my_run")
    args = ["prepare", *(["-m", "seed=0,1"] if kind == "sweep" else []), f"{key}={target}"]
    assert _refused(capsys, args) == (
        f"tunelab: config error: {key}={target} cannot be the {kind} directory: {problem} "
        f"(from the command-line override '{key}={target}'). Fix: {key}=DIR naming a new or existing directory "
        f"you can write, e.g. {key}={example}"
    )
    assert afile.read_text() == "x" and not (isolated_cache / "prepared").exists()


def test_checking_the_run_dir_leaves_nothing_behind(tmp_path):
    from tunelab.config import directory_problem

    assert directory_problem(tmp_path / "a" / "b" / "c") is None
    assert list(tmp_path.iterdir()) == []
    assert directory_problem(tmp_path / "kept" / "x", keep=True) is None
    assert (tmp_path / "kept" / "x").is_dir() and list((tmp_path / "kept" / "x").iterdir()) == []


def test_a_cache_dir_at_a_file_is_a_config_error(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    run_dir = tmp_path / "run"
    assert _refused(capsys, ["prepare", f"cache_dir={afile}", f"hydra.run.dir={run_dir}"]) == (
        f"tunelab: config error: cache_dir={afile}: {afile} is a file, not a directory. Fix: cache_dir=DIR (or the "
        "environment variable TUNELAB_CACHE_DIR) naming a directory you can write, e.g. cache_dir=$HOME/.cache/tunelab"
    )
    assert not run_dir.exists()


SENTINEL_MODULE = """
import logging
from pathlib import Path
Path({sentinel!r}).write_text("imported")
class Handler(logging.StreamHandler):
    pass
thing = None
"""

LOGGING_PROBLEM = {
    "+hydra.job_logging.handlers.x.class=tl_sentinel_log.Handler": (
        "hydra.job_logging.handlers.x.class: 'tl_sentinel_log.Handler' is not a handler, formatter or filter class of "
        "the logging package (e.g. logging.StreamHandler, logging.FileHandler, logging.handlers.RotatingFileHandler)"
    ),
    "+hydra.hydra_logging.handlers.x.class=tl_sentinel_log.Handler": (
        "hydra.hydra_logging.handlers.x.class: 'tl_sentinel_log.Handler' is not a handler, formatter or filter class "
        "of the logging package (e.g. logging.StreamHandler, logging.FileHandler, logging.handlers.RotatingFileHandler)"
    ),
    "hydra.job_logging.handlers.console.stream=ext://tl_sentinel_log.thing": (
        "hydra.job_logging.handlers.console.stream: 'ext://tl_sentinel_log.thing' would be imported by the logging "
        "config (allowed: ext://sys.stderr, ext://sys.stdout)"
    ),
    "+hydra.job_logging.filters.f.class=tl_sentinel_log.Handler": (
        "hydra.job_logging.filters.f.class: 'tl_sentinel_log.Handler' is not a handler, formatter or filter class of "
        "the logging package (e.g. logging.StreamHandler, logging.FileHandler, logging.handlers.RotatingFileHandler)"
    ),
    # under logging. but not a handler: fileConfig would load another config naming any class
    "hydra.job_logging.handlers.console.class=logging.config.fileConfig": (
        "hydra.job_logging.handlers.console.class: 'logging.config.fileConfig' is not a handler, formatter or filter "
        "class of the logging package "
        "(e.g. logging.StreamHandler, logging.FileHandler, logging.handlers.RotatingFileHandler)"
    ),
}


@pytest.mark.parametrize("override", sorted(LOGGING_PROBLEM))
def test_a_logging_class_on_the_command_line_is_refused_and_never_imported(override, tmp_path, capsys, monkeypatch):
    sentinel = tmp_path / "imported.txt"
    site = tmp_path / "site"
    site.mkdir()
    (site / "tl_sentinel_log.py").write_text(SENTINEL_MODULE.format(sentinel=str(sentinel)))
    monkeypatch.syspath_prepend(str(site))
    run_dir = tmp_path / "run"
    assert _refused(capsys, ["prepare", override, f"hydra.run.dir={run_dir}"]) == (
        "tunelab: config error: refusing to run: Hydra's logging config names code to import: "
        f"{LOGGING_PROBLEM[override]}. Neither a config file nor the command line may name one "
        "(logging.config.dictConfig would import it before the run starts); use the classes of the logging package, "
        "or configure your own logging in a plugin (docs/config.md#security)"
    )
    assert not sentinel.exists() and "tl_sentinel_log" not in sys.modules and not run_dir.exists()


def test_the_logging_package_s_own_handlers_still_pass_from_the_command_line(tmp_path):
    from tunelab.preflight import check_overrides

    log_file = tmp_path / "extra.log"
    rc = check_overrides(
        [
            "+hydra.job_logging.handlers.file2.class=logging.handlers.RotatingFileHandler",
            f"+hydra.job_logging.handlers.file2.filename={log_file}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        sources=False,
    )
    assert rc is not None and not log_file.exists()


def test_a_missing_config_dir_is_a_config_error(tmp_path, capsys):
    assert _refused(
        capsys, ["prepare", "--config-dir", str(tmp_path / "nope"), f"hydra.run.dir={tmp_path / 'run'}"]
    ) == (
        f"tunelab: config error: --config-dir {tmp_path / 'nope'}: no such directory. Fix: --config-dir DIR naming a "
        "directory of config groups (e.g. DIR/experiment/mine.yaml for experiment=mine)"
    )


# --- 12. a refused key names the file it came from -------------------------------------------------


def _their_configs(tmp_path: Path, **presets: str) -> Path:
    folder = tmp_path / "their_configs"
    (folder / "experiment").mkdir(parents=True, exist_ok=True)
    for name, body in presets.items():
        (folder / "experiment" / f"{name}.yaml").write_text("# @package _global_\n" + body)
    return folder


TARGET_PRESET = "pipeline:\n  params:\n    strip_markup:\n      _target_: os.system\n"


def test_a_target_in_an_experiment_file_is_blamed_on_that_file(tmp_path):
    folder = _their_configs(tmp_path, mine=TARGET_PRESET)
    with pytest.raises(ConfigError) as info:
        validate([f"hydra.searchpath=[file://{folder}]", "experiment=mine"])
    assert str(info.value) == (
        "unknown key 'pipeline.params.strip_markup._target_' for cleaner 'strip_markup' (from "
        f"{folder / 'experiment' / 'mine.yaml'} (selected by experiment=mine)). "
        "Valid keys: fields, html, link_urls, markdown, max_removed_fraction."
    )


@pytest.mark.parametrize("how", ["--config-dir", "hydra.searchpath"])
def test_the_cli_blames_the_experiment_file_of_a_config_dir(how, tmp_path, capsys):
    folder = _their_configs(tmp_path, mine=TARGET_PRESET)
    where = ["--config-dir", str(folder)] if how == "--config-dir" else [f"hydra.searchpath=[file://{folder}]"]
    run_dir = tmp_path / "run"
    assert _refused(capsys, ["prepare", *where, "experiment=mine", f"hydra.run.dir={run_dir}"]) == (
        "tunelab: config error: unknown key 'pipeline.params.strip_markup._target_' for cleaner 'strip_markup' (from "
        f"{folder / 'experiment' / 'mine.yaml'} (selected by experiment=mine)). "
        "Valid keys: fields, html, link_urls, markdown, max_removed_fraction."
    )
    assert not run_dir.exists()


def test_a_key_a_packaged_experiment_sets_is_blamed_on_it_not_on_the_group_file():
    with pytest.raises(ConfigError) as info:
        validate(["experiment=smoke", "eval=classification"])
    assert str(info.value) == (
        "unknown key 'eval.max_generate' for evaluator 'classification' (from "
        f"{CONF / 'experiment' / 'smoke.yaml'} (selected by experiment=smoke)). "
        "Valid keys: batch_size, split, text_columns."
    )


@pytest.mark.parametrize(
    "body, message",
    [
        # a bad value in a section the group's file also sets: the later file (the preset) set it
        (
            "pipeline:\n  params:\n    strip_markup:\n      fields: 3\n",
            "bad value for 'pipeline.params.strip_markup.fields' of cleaner 'strip_markup' (from {preset})",
        ),
        (
            "defaults:\n  - override /model: tiny\nmodel:\n  hidden_sizee: 3\n",
            "unknown key 'model.hidden_sizee' for model 'tiny' (from {preset})",
        ),
        ("train:\n  max_stepz: 3\n", "unknown key 'train.max_stepz' for settings 'train' (from {preset})"),
        ("tracker:\n  csv:\n    colour: red\n", "unknown key 'tracker.csv.colour' for tracker 'csv' (from {preset})"),
    ],
)
def test_every_group_names_the_preset_that_set_the_key(body, message, tmp_path):
    folder = _their_configs(tmp_path, mine=body)
    with pytest.raises(ConfigError) as info:
        validate([f"hydra.searchpath=[file://{folder}]", "experiment=mine"])
    preset = f"{folder / 'experiment' / 'mine.yaml'} (selected by experiment=mine)"
    assert message.format(preset=preset) in str(info.value)


def test_a_key_only_the_group_file_sets_is_still_blamed_on_the_group_file(tmp_path):
    folder = _their_configs(tmp_path, mine="train:\n  max_steps: 3\n")
    (folder / "model").mkdir()
    (folder / "model" / "theirs.yaml").write_text("name: tiny\nhidden_sizee: 3\n")
    with pytest.raises(ConfigError) as info:
        validate([f"hydra.searchpath=[file://{folder}]", "experiment=mine", "model=theirs"])
    assert f"(from {folder / 'model' / 'theirs.yaml'} (selected by model=theirs))" in str(info.value)


# --- the same class elsewhere ----------------------------------------------------------------------


def test_predict_names_an_input_file_it_cannot_read(tmp_path, capsys):
    binary = tmp_path / "inputs.txt"
    binary.write_bytes(b"\xff\xfe")
    cases = {
        str(tmp_path / "nope.txt"): f"tunelab predict: cannot read {tmp_path / 'nope.txt'}: No such file or directory",
        str(tmp_path): f"tunelab predict: cannot read {tmp_path}: Is a directory",
        str(binary): f"tunelab predict: {binary} is not UTF-8 text (invalid start byte at byte 0); give one input text "
        "per line, UTF-8 encoded",
    }
    for given, message in cases.items():
        assert run_cli(["predict", str(tmp_path / "run"), given]) == 2
        assert capsys.readouterr().err.strip() == message
