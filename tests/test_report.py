from __future__ import annotations

import json

from conftest import run_cli


def test_report_has_plots_html_and_a_complete_ledger(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run_cli(["prepare", f"hydra.run.dir={run_dir}"]) == 0
    for name in ("data_report.md", "data_report.html", "plot_labels.png", "plot_lengths.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "plot_labels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (run_dir / "data_report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html
    markdown = (run_dir / "data_report.md").read_text()
    assert "## Lengths in characters" in markdown and "![Label distribution](plot_labels.png)" in markdown

    # every row ends in exactly one place: kept in a split, dropped or quarantined
    records = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    ends = [r["id"] for r in records if r["action"] in ("kept", "dropped", "quarantined")]
    assert len(ends) == len(set(ends))
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert (
        sum(1 for r in records if r["action"] == "kept")
        == metrics["data_train"] + metrics["data_validation"] + metrics["data_test"]
    )


def test_explain_tells_a_rows_story(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run_cli(["prepare", f"hydra.run.dir={run_dir}"]) == 0
    records = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    duplicate = next(r for r in records if r.get("reason") == "exact duplicate")
    edited = next(r for r in records if r["action"] == "modified" and r["step"] == "normalize")
    capsys.readouterr()

    assert run_cli(["explain", duplicate["id"], "--run", str(run_dir)]) == 0
    story = capsys.readouterr().out
    assert f"dropped by clean/exact_dedup: exact duplicate (kept instead: {duplicate['detail']['kept']})" in story

    assert run_cli(["explain", duplicate["detail"]["kept"], "--run", str(run_dir)]) == 0
    assert f"row {duplicate['id']} was dropped by clean/exact_dedup" in capsys.readouterr().out

    assert run_cli(["explain", edited["id"], "--run", str(run_dir)]) == 0
    assert "edited by clean/normalize: text normalized" in capsys.readouterr().out

    assert run_cli(["explain", "nope:1", "--run", str(run_dir)]) == 1
    assert "no row 'nope:1'" in capsys.readouterr().err
