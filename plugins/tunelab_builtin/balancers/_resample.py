"""The balancers' row copying and dropping: seeded orders, copies with ``<parent>~dup<n>``
ids, and the rows to drop so that each class is at most its target."""

from __future__ import annotations

from typing import Any

from tunelab.api import PARENT_ID, ROW_ID, StageContext
from tunelab_builtin._lib.rows import row_rng, take_rows


def free_child_id(parent: str, op: str, taken: set[str]) -> str:
    """The first ``<parent>~<op><n>`` (n = 1, 2, ...) not in ``taken``; adds it there."""
    n = 1
    while f"{parent}~{op}{n}" in taken:
        n += 1
    child = f"{parent}~{op}{n}"
    taken.add(child)
    return child


def ranked(data: Any, indices: list[int], seed: int, purpose: str, originals_first: bool = True) -> list[int]:
    """``indices`` in a seeded order that does not depend on row order; originals first
    (when asked), so the rows a balancer keeps or copies are originals where possible."""
    ids = data[ROW_ID]
    parents = data[PARENT_ID]

    def key(i: int) -> tuple:
        derived = parents[i] is not None if originals_first else False
        return (derived, row_rng(seed, ids[i], purpose).random(), ids[i])

    return sorted(indices, key=key)


def copies(data: Any, sources: list[int], count: int, taken: set[str]) -> list[dict[str, Any]]:
    """``count`` copies of the ``sources`` rows, dealt round robin (so each source is copied
    at most once more than any other); ids ``<parent>~dup<n>``."""
    if count <= 0:
        return []
    picks = [sources[k % len(sources)] for k in range(count)]
    rows = take_rows(data, picks).to_list()
    for row in rows:
        parent = row[ROW_ID]
        row[ROW_ID] = free_child_id(parent, "dup", taken)
        row[PARENT_ID] = parent
    return rows


def copy_sources(data: Any, members: list[int], seed: int) -> list[int]:
    """Rows to copy for a class: its originals (augmented rows are not copied again) in a
    seeded order; all its rows when it has no originals."""
    parents = data[PARENT_ID]
    originals = [i for i in members if parents[i] is None]
    return ranked(data, originals or members, seed, "copy")


def drop_undersampled(data: Any, column: str, dropped: set[int], ctx: StageContext) -> Any:
    ids = data[ROW_ID]
    labels = data[column]
    order = sorted(dropped)
    ctx.drop([ids[i] for i in order], "undersampled", [{"label": str(labels[i])} for i in order])
    ctx.count("rows_undersampled", len(order))
    if not order:
        return data
    return take_rows(data, [i for i in range(len(data)) if i not in dropped])


def excess(
    data: Any, by_label: dict[str, list[int]], targets: dict[str, int], seed: int, prefer_originals: bool
) -> set[int]:
    """Indices to drop so that each class is at most its target."""
    out: set[int] = set()
    for label in sorted(by_label):
        members = by_label[label]
        cut = len(members) - targets.get(label, len(members))
        if cut > 0:
            order = ranked(data, members, seed, "undersample", originals_first=prefer_originals)
            out.update(order[len(members) - cut :])
    return out
