"""``min_words``: drops rows whose text has fewer words than a minimum.

Every removed row is reported with ``ctx.drop(ids, reason, detail)``: the reason is
``min_words:<column>`` (so the data report counts removals per column) and the detail
says how many words the text had and what the minimum was. tunelab checks after the
step that each missing row was reported; `tunelab explain ROW_ID` shows the detail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunelab.api import PROMPT, ROW_ID, Cleaner, StageContext

#: datasets dtypes a text column may have ("null": every value is None)
TEXT_DTYPES = ("string", "large_string", "null")


@dataclass
class MinWordsConfig:
    #: text columns to check; a row is dropped when any of them is too short
    fields: list[str] = field(default_factory=lambda: [PROMPT])
    #: fewest whitespace-separated words a text may have
    min_words: int = 3
    #: a None or blank value: false drops the row (0 words), true leaves it to other steps (drop_missing)
    keep_missing: bool = False


def check_text_columns(data: Any, fields: list[str], step: str) -> None:
    """Raise a ValueError naming the column and the parameter to change when a column in
    ``fields`` is missing or does not hold text."""
    missing = [column for column in fields if column not in data.column_names]
    if missing:
        raise ValueError(
            f"{step}: column(s) {missing} not in the data (columns: {data.column_names}); "
            f"set pipeline.params.{step}.fields to text columns that exist"
        )
    for column in fields:
        dtype = getattr(data.features[column], "dtype", None)
        if dtype not in TEXT_DTYPES:
            raise ValueError(
                f"{step}: column '{column}' holds {data.features[column]}, not text; "
                f"remove it from pipeline.params.{step}.fields"
            )


class MinWords(Cleaner):
    """Drops rows whose text has fewer than min_words words (reason min_words:<column>)."""

    def __init__(self, config: MinWordsConfig):
        super().__init__(config)
        if not config.fields or not all(isinstance(f, str) and f for f in config.fields):
            raise ValueError(f"min_words.fields must list at least one column name, got {config.fields!r}")
        if isinstance(config.min_words, bool) or not isinstance(config.min_words, int) or config.min_words < 1:
            raise ValueError(f"min_words.min_words must be a whole number >= 1, got {config.min_words!r}")

    def apply(self, data: Any, ctx: StageContext) -> Any:
        step = ctx.step or "min_words"
        fields = list(self.config.fields)
        check_text_columns(data, fields, step)
        # whole columns in one Arrow conversion (indexing a Dataset row by row is slow)
        table = data.select_columns(list(dict.fromkeys([ROW_ID, *fields]))).to_dict()
        keep: list[int] = []
        dropped: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
        for index, row_id in enumerate(table[ROW_ID]):
            short = None
            for column in fields:
                value = table[column][index]
                if value is None or not str(value).strip():
                    if self.config.keep_missing:
                        continue
                    words = 0
                else:
                    words = len(str(value).split())
                if words < self.config.min_words:
                    short = (column, words)
                    break
            if short is None:
                keep.append(index)
                continue
            column, words = short
            ids, details = dropped.setdefault(column, ([], []))
            ids.append(row_id)
            details.append({"column": column, "words": words, "min_words": self.config.min_words})
        for column, (ids, details) in dropped.items():
            ctx.drop(ids, f"min_words:{column}", details)
        ctx.count("rows_checked", len(table[ROW_ID]))
        if len(keep) == len(data):
            return data
        return data.select(keep)
