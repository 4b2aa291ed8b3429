"""Parent chains: the root each row derives from, and the original rows splitters assign."""

from __future__ import annotations

from typing import Any, Optional

from tunelab.api import PARENT_ID


def root_ids(ids: list[str], parents: list[Optional[str]]) -> list[str]:
    """The root of each row's parent chain (a row without parent is its own root).

    A chain whose top was dropped by an earlier step ends at the missing id; such rows
    share that id as root and so stay together.
    """
    parent_of = dict(zip(ids, parents))
    memo: dict[str, str] = {}

    def root(row_id: str) -> str:
        chain = []
        seen = set()
        while row_id not in memo and parent_of.get(row_id) is not None and row_id not in seen:
            seen.add(row_id)
            chain.append(row_id)
            row_id = parent_of[row_id]  # type: ignore[assignment]
        top = memo.get(row_id, row_id)
        for link in chain:
            memo[link] = top
        return top

    return [root(i) for i in ids]


def originals(data: Any) -> list[int]:
    """Indices of the rows that derive from nothing (the units splitters assign)."""
    return [i for i, parent in enumerate(data[PARENT_ID]) if parent is None]
