"""The per-row ledger: every row that leaves the pipeline is accounted for.

After each step the engine compares the row ids that went in with the ids that came
out. A missing id must have been dropped through :meth:`StageContext.drop`; a new id
must carry a ``parent_id`` naming an input row. Anything else is a :class:`LedgerError`
that names the step — rows are never lost silently, whatever a plugin does.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunelab.api import StageContext
from tunelab.errors import TunelabError


class LedgerError(TunelabError):
    """A step lost, duplicated or invented rows without saying so."""


@dataclass
class StepStats:
    """What one step did: counts, reasons, time."""

    stage: str
    step: str
    component: str
    rows_in: int
    rows_out: int
    added: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dropped_total"] = self.dropped_total
        return out


class Ledger:
    """Records of dropped, added and quarantined rows, in pipeline order."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def quarantined(self, stage: str, step: str, items: list[dict[str, Any]]) -> None:
        for item in items:
            where = f"{item['source']}:{item['line']}" if item.get("line") is not None else item["source"]
            self.records.append(
                {"id": where, "stage": stage, "step": step, "action": "quarantined", "reason": item["reason"]}
            )

    def exploded(self, stage: str, step: str, explosions: list[tuple[str, str, str]]) -> None:
        """Rows a collector made from one source record each: the record's id is the parent."""
        self.records.extend(
            {"id": row_id, "stage": stage, "step": step, "action": "exploded", "parent_id": parent, "reason": what}
            for row_id, parent, what in explosions
        )

    def modified(self, stage: str, step: str, modifications: list[tuple[Any, ...]]) -> None:
        """``modifications``: (ids, what) or (ids, what, detail per id or None)."""
        for ids, what, *rest in modifications:
            details = (rest[0] if rest else None) or [None] * len(ids)
            for row_id, detail in zip(ids, details):
                record = {"id": row_id, "stage": stage, "step": step, "action": "modified", "reason": what}
                if detail:
                    record["detail"] = detail
                self.records.append(record)

    def assigned(self, splits: dict[str, list[str]]) -> None:
        """The end of every kept row: the split it went to."""
        for split, ids in splits.items():
            self.records.extend({"id": row_id, "stage": "split", "action": "kept", "split": split} for row_id in ids)

    def check_step(
        self,
        stage: str,
        step: str,
        ids_in: list[str],
        ids_out: list[str],
        parents_out: list[str | None],
        ctx: StageContext,
    ) -> tuple[int, dict[str, int]]:
        """Check that the step accounted for every row; record its drops and additions.

        Returns ``(added, dropped_by_reason)``.
        """
        set_in = set(ids_in)
        if len(ids_out) != len(set(ids_out)):
            dupes = [i for i, n in Counter(ids_out).items() if n > 1][:5]
            raise LedgerError(
                f"step '{step}' ({stage}) produced duplicate row ids, e.g. {dupes}; derived rows need new ids"
            )
        set_out = set(ids_out)
        removed = set_in - set_out
        recorded: dict[str, tuple[str, dict[str, Any] | None]] = {}
        for drop in ctx.drops:
            details = drop.detail or [None] * len(drop.ids)
            for row_id, detail in zip(drop.ids, details):
                if row_id in recorded:
                    raise LedgerError(f"step '{step}' ({stage}) dropped row '{row_id}' twice")
                recorded[row_id] = (drop.reason, detail)
        unrecorded = removed - set(recorded)
        if unrecorded:
            raise LedgerError(
                f"step '{step}' ({stage}) removed {len(unrecorded)} rows without recording why, e.g. "
                f"{sorted(unrecorded)[:5]}. An operator must call ctx.drop(ids, reason) for rows it removes."
            )
        phantom = set(recorded) - removed
        if phantom:
            raise LedgerError(
                f"step '{step}' ({stage}) recorded drops for {len(phantom)} rows that are still present or never "
                f"existed, e.g. {sorted(phantom)[:5]}"
            )
        added = 0
        for row_id, parent in zip(ids_out, parents_out):
            if row_id in set_in:
                continue
            if parent is None or parent not in set_in:
                raise LedgerError(
                    f"step '{step}' ({stage}) added row '{row_id}' whose parent_id {parent!r} is not one of its input "
                    "rows. New rows must set parent_id to the row they were derived from."
                )
            added += 1
            self.records.append({"id": row_id, "stage": stage, "step": step, "action": "added", "parent_id": parent})
        by_reason: Counter[str] = Counter()
        for row_id, (reason, detail) in recorded.items():
            by_reason[reason] += 1
            record = {"id": row_id, "stage": stage, "step": step, "action": "dropped", "reason": reason}
            if detail:
                record["detail"] = detail
            self.records.append(record)
        return added, dict(by_reason)

    def write(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as fh:
            for record in self.records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_ledger(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
