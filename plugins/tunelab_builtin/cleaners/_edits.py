"""Shared by the cleaners that rewrite text in place (strip_markup, standardize_formats):
one batched pass that applies an edit function to text columns and records every edit
(ledger, counters, examples), or sets a row aside for review."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tunelab.api import ROW_ID, StageContext
from tunelab_builtin._lib.rows import take_rows
from tunelab_builtin.cleaners._columns import CHANGED, columns_as_lists, procs, record_changes

#: what an edit function may say about one value besides the new text: ``removed`` (a
#: short description for the ledger, e.g. "2 tags"), ``hold`` (why the row must be set
#: aside for review instead of edited: the text is then left as it was and the row dropped)
EditNote = dict[str, Any]


def snippet(before: str, after: str, context: int = 30, limit: int = 120) -> tuple[str, str]:
    """The part of ``before`` and ``after`` that differs, with a little context on both
    sides, each at most about ``limit`` characters ("…" marks a cut): what the ledger
    shows of an edit."""
    start = 0
    shortest = min(len(before), len(after))
    while start < shortest and before[start] == after[start]:
        start += 1
    end = 0
    while end < shortest - start and before[-1 - end] == after[-1 - end]:
        end += 1
    lo = max(0, start - context)

    def cut(text: str) -> str:
        hi = min(len(text), len(text) - end + context)
        part = text[lo:hi]
        if len(part) > limit:
            part = part[: limit - 1] + "…"
        return ("…" if lo else "") + part + ("…" if hi < len(text) and not part.endswith("…") else "")

    return cut(before), cut(after)


def edit_text_columns(
    data: Any,
    ctx: StageContext,
    fields: list[str],
    edit: Callable[[str], tuple[str, dict[str, int]] | tuple[str, dict[str, int], EditNote | None]],
    *,
    step: str,
    what: str,
    kinds: tuple[str, ...] = (),
    hold_reason: str = "",
) -> Any:
    """Apply ``edit`` (text -> (new text, counts per kind[, note])) to every string in
    ``fields`` in one batched pass; None values are left alone. Edited rows go to the
    ledger as ``what``, each with the field and a short before/after; per-kind counts go
    to the step's counters, the first edits to its examples. A row whose note says
    ``hold`` is not edited: it is dropped with ``hold_reason`` and written to
    quarantine.jsonl for review, with the whole reason and the original text."""
    count_columns = {kind: f"__tunelab_count_{kind}" for kind in kinds}
    note_column, hold_column = "__tunelab_note", "__tunelab_hold"

    def batch_edit(batch: dict[str, list]) -> dict[str, list]:
        n = len(batch[ROW_ID])
        changed = [False] * n
        counts = {kind: [0] * n for kind in kinds}
        notes: list[dict[str, Any] | None] = [None] * n
        holds: list[dict[str, Any] | None] = [None] * n
        edited: dict[str, list] = {}
        for column in fields:
            out = []
            for i, value in enumerate(batch[column]):
                if isinstance(value, str):
                    fixed, found, *rest = edit(value)
                    note = rest[0] if rest else None
                    if note and note.get("hold") and holds[i] is None:
                        holds[i] = {"field": column, "reason": note["hold"], "text": value}
                    if fixed != value:
                        changed[i] = True
                        for kind, k in found.items():
                            counts[kind][i] += k
                        if notes[i] is None:
                            before, after = snippet(value, fixed)
                            notes[i] = {
                                "field": column,
                                **({"removed": note["removed"]} if note and note.get("removed") else {}),
                                "before": before,
                                "after": after,
                            }
                        else:
                            notes[i].setdefault("also", []).append(column)
                    out.append(fixed)
                else:
                    out.append(value)
            edited[column] = out
        for column, out in edited.items():
            # a row set aside keeps its text as it was
            batch[column] = [v if holds[i] is None else batch[column][i] for i, v in enumerate(out)]
        batch[CHANGED] = [flag and holds[i] is None for i, flag in enumerate(changed)]
        for kind, column in count_columns.items():
            batch[column] = [k if holds[i] is None else 0 for i, k in enumerate(counts[kind])]
        batch[note_column] = [
            json.dumps(x, ensure_ascii=False) if x and holds[i] is None else None for i, x in enumerate(notes)
        ]
        batch[hold_column] = [json.dumps(x, ensure_ascii=False) if x else None for x in holds]
        return batch

    out = data.map(batch_edit, batched=True, num_proc=procs(ctx, data), desc=step)
    ids, flags, notes, holds, *counts = columns_as_lists(
        out, ROW_ID, CHANGED, note_column, hold_column, *count_columns.values()
    )
    changed = [i for i, flag in enumerate(flags) if flag]
    record_changes(ctx, data, out, ids, changed, what, fields, [json.loads(notes[i]) for i in changed])
    for kind, values in zip(count_columns, counts):
        ctx.count(kind, sum(values))
    out = out.remove_columns([CHANGED, note_column, hold_column, *count_columns.values()])
    held = [i for i, hold in enumerate(holds) if hold]
    if not held:
        return out
    details = []
    for i in held:
        hold = json.loads(holds[i])
        ctx.quarantine(ids[i], None, f"{step}: {hold['reason']}", hold["text"], row_id=ids[i])
        details.append({"field": hold["field"], "why": hold["reason"]})
    ctx.drop([ids[i] for i in held], hold_reason, details)
    ctx.count("set aside for review", len(held))
    held_set = set(held)
    return take_rows(out, [i for i in range(len(out)) if i not in held_set])
