"""`tunelab explain ROW_ID`: what happened to one row, and why, from a run's ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def latest_ledger(roots: list[Path]) -> Path | None:
    """The most recently written ledger.jsonl under the given run roots."""
    ledgers = [p for root in roots if root.is_dir() for p in root.rglob("ledger.jsonl")]
    return max(ledgers, key=lambda p: p.stat().st_mtime) if ledgers else None


def _step(record: dict[str, Any]) -> str:
    return f"{record['stage']}/{record['step']}" if record.get("step") else record["stage"]


def _detail(record: dict[str, Any]) -> str:
    detail = record.get("detail")
    if not detail:
        return ""
    if set(detail) == {"kept"}:
        return f" (kept instead: {detail['kept']})"
    return " (" + ", ".join(f"{k}: {v}" for k, v in detail.items()) + ")"


def explain(row_id: str, ledger_path: Path) -> list[str]:
    """The story of ``row_id`` as lines of text; raises KeyError if the ledger never saw it."""
    records = [json.loads(line) for line in ledger_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    own = [r for r in records if r["id"] == row_id]
    children = [r for r in records if r.get("action") in ("added", "exploded") and r.get("parent_id") == row_id]
    duplicates = [r for r in records if r.get("action") == "dropped" and (r.get("detail") or {}).get("kept") == row_id]
    if not own and not children and not duplicates:
        sample = next((r["id"] for r in records if r.get("action") == "kept"), None)
        hint = f"; ids look like '{sample}'" if sample else ""
        raise KeyError(f"no row '{row_id}' in {ledger_path}{hint}")
    lines = [f"row {row_id}"]
    added = next((r for r in own if r["action"] in ("added", "exploded")), None)
    if added and added["action"] == "exploded":
        lines.append(f"  read by {_step(added)} from record {added['parent_id']} ({added['reason']})")
    elif added:
        lines.append(f"  made by {_step(added)} from row {added['parent_id']}")
    elif ":" in row_id:
        source, _, line = row_id.rpartition(":")
        lines.append(f"  read from {source}, line/row {line}")
    for record in own:
        action = record["action"]
        if action == "quarantined":
            lines.append(f"  quarantined at {_step(record)}: {record['reason']}")
        elif action == "modified":
            lines.append(f"  edited by {_step(record)}: {record['reason']}{_detail(record)}")
        elif action == "dropped":
            lines.append(f"  dropped by {_step(record)}: {record['reason']}{_detail(record)}")
        elif action == "kept":
            lines.append(f"  kept: in the {record['split']} split")
    for record in children:
        fate = next(
            (r for r in records if r["id"] == record["id"] and r["action"] in ("dropped", "kept")),
            None,
        )
        where = "unknown"
        if fate is not None:
            where = (
                f"{fate['split']} split" if fate["action"] == "kept" else f"dropped by {_step(fate)}: {fate['reason']}"
            )
        if record["action"] == "exploded":
            lines.append(f"  row {record['id']} ({record['reason']}, by {_step(record)}): {where}")
        else:
            lines.append(f"  derived row {record['id']} (by {_step(record)}): {where}")
    for record in duplicates:
        lines.append(f"  row {record['id']} was dropped by {_step(record)} as its {record['reason']}")
    return lines
