"""The cleaner ``exact_dedup``: drops exact duplicates, keeping the first occurrence."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from tunelab.api import COMPLETION, PROMPT, ROW_ID, Cleaner, StageContext
from tunelab_builtin._lib.rows import take_rows
from tunelab_builtin.cleaners._columns import columns_as_lists, require_columns


@dataclass
class ExactDedupConfig:
    #: columns that make two rows the same
    fields: list[str] = field(default_factory=lambda: [PROMPT, COMPLETION])
    #: compare case-folded text with whitespace collapsed (so "Hi  there" == "hi there")
    normalize: bool = True


class ExactDedup(Cleaner):
    """Drops exact duplicates, keeping the first occurrence; the ledger names the survivor."""

    def __init__(self, config: ExactDedupConfig):
        super().__init__(config)
        if not config.fields:  # every row would have the same (empty) key: all but the first dropped
            raise ValueError("exact_dedup.fields must name at least one column, e.g. [prompt, completion]")

    def _key(self, values: list[Any]) -> str:
        parts = []
        for value in values:
            text = "" if value is None else str(value)
            if self.config.normalize:
                text = " ".join(text.casefold().split())
            parts.append(text)
        return hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16).hexdigest()

    def apply(self, data, ctx: StageContext):
        require_columns(data, self.config.fields, "exact_dedup")
        ids, *columns = columns_as_lists(data, ROW_ID, *self.config.fields)
        first_seen: dict[str, str] = {}
        keep: list[int] = []
        dropped: list[str] = []
        survivors: list[dict[str, str]] = []
        for i, row_id in enumerate(ids):
            key = self._key([column[i] for column in columns])
            kept = first_seen.setdefault(key, row_id)
            if kept == row_id:
                keep.append(i)
            else:
                dropped.append(row_id)
                survivors.append({"kept": kept})
        ctx.drop(dropped, "exact duplicate", survivors)
        return take_rows(data, keep) if dropped else data
