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

from tunelab.config import ConfigError

from conftest import run_cli, validate

CONF = Path(__file__).resolve().parents[1] / "conf"


def _refused(capsys: pytest.CaptureFixture[str], args: list[str], code: int = 2) -> str:
    """Run the CLI expecting it to stop with ``code``; return stderr's last 'tunelab:' message."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(args)
    assert exit_info.value.code == code, args
    err = capsys.readouterr().err
    assert "Traceback" not in err and "HYDRA_FULL_ERROR" not in err, err
    return err[err.rindex("tunelab: "):].rstrip("\n")


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- 7. a failed prepare keeps its quarantine and ledger ------------------------------------------


def test_every_record_malformed_keeps_the_quarantine_in_the_run_dir_and_lists_the_reasons(tmp_path, capsys, isolated_cache):
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
        (1, '{"prompt": "a"\n'), (2, "not json\n"), (3, '{"prompt": 1,}\n')]
    assert [(r["id"], r["action"]) for r in _records(run_dir / "ledger.jsonl")] == [
        ("broken.jsonl:1", "quarantined"), ("broken.jsonl:2", "quarantined"), ("broken.jsonl:3", "quarantined")]
    assert "first reasons:\n  broken.jsonl:1: invalid JSON" in (run_dir / "error.txt").read_text()
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"]["status"] == "failed"
    prepared = isolated_cache / "prepared"
    assert not list(prepared.glob("*.tmp-*")) and not list(prepared.glob("*.failed"))


def test_a_step_that_drops_every_row_points_at_the_ledger_in_the_run_dir(tmp_path, capsys, isolated_cache):
    rows = [json.dumps({"prompt": f"question {i}", "completion": "an answer", "label": "a"}) for i in range(7)]
    data = _jsonl(tmp_path / "short.jsonl", rows)
    run_dir = tmp_path / "run"
    message = _refused(capsys, ["prepare", "data=jsonl", f"data.path={data}", "pipeline=minimal",
                                "pipeline.clean=[drop_missing,quality_filter]",
                                "+pipeline.params.quality_filter.min_chars=100", f"hydra.run.dir={run_dir}"], code=1)
    assert message == (
        f"tunelab: error: no rows left after step 'quality_filter' (clean); see the drop reasons in "
        f"{run_dir / 'ledger.jsonl'}. Loosen that step's parameters or remove it from pipeline.clean.\n"
        "first reasons:\n"
        + "".join(f"  short.jsonl:{i}: quality:min_chars (rule=min_chars, field=prompt, value=10, limit=100)\n"
                  for i in range(1, 6))
        + "  ... and 2 more"
    )
    ledger = _records(run_dir / "ledger.jsonl")
    assert [(r["id"], r["step"], r["reason"]) for r in ledger] == [
        (f"short.jsonl:{i}", "quality_filter", "quality:min_chars") for i in range(1, 8)]
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
    data = _jsonl(tmp_path / "mixed.jsonl", [*good, "{oops", json.dumps({"prompt": "no answer", "completion": "", "label": "a"})])
    run_dir = tmp_path / "run"
    message = _refused(capsys, ["prepare", "data=jsonl", f"data.path={data}", "pipeline=minimal",
                                "pipeline.clean=[drop_missing,boom]", f"hydra.run.dir={run_dir}"], code=1)
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
    from tunelab.data.engine import DataError, cache_key, prepare
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
