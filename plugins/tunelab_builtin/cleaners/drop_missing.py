"""The cleaner ``drop_missing``: drops rows whose required columns are missing or blank."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunelab.api import COMPLETION, PROMPT, ROW_ID, Cleaner, StageContext
from tunelab_builtin._lib.rows import take_rows
from tunelab_builtin.cleaners._columns import columns_as_lists, require_columns


@dataclass
class DropMissingConfig:
    #: a row is dropped when any of these columns is None or only whitespace
    fields: list[str] = field(default_factory=lambda: [PROMPT, COMPLETION])


class DropMissing(Cleaner):
    """Drops rows whose required columns are missing or blank (reason names the column)."""

    def apply(self, data, ctx: StageContext):
        require_columns(data, self.config.fields, "drop_missing")
        ids, *values = columns_as_lists(data, ROW_ID, *self.config.fields)
        columns = dict(zip(self.config.fields, values))
        keep: list[int] = []
        dropped: dict[str, list[str]] = {}
        for i, row_id in enumerate(ids):
            empty = next((c for c in self.config.fields if not _present(columns[c][i])), None)
            if empty is None:
                keep.append(i)
            else:
                dropped.setdefault(empty, []).append(row_id)
        for column, row_ids in dropped.items():
            ctx.drop(row_ids, f"missing {column}")
        return take_rows(data, keep) if len(keep) != len(data) else data


def _present(value: Any) -> bool:
    return value is not None and (not isinstance(value, str) or value.strip() != "")
