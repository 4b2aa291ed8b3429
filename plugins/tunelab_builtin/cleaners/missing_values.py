"""The cleaner ``missing_values``: a policy per column for missing values (drop the row,
impute a default, or flag it in a new column)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunelab.api import COMPLETION, PROMPT, ROW_ID, Cleaner, StageContext
from tunelab_builtin._lib.rows import take_rows
from tunelab_builtin.cleaners._columns import columns_as_lists, require_columns

_MISSING_POLICIES = ("drop", "impute", "flag")


@dataclass
class MissingValuesConfig:
    #: column -> what to do when its value is missing: drop (remove the row; ledger reason
    #: "missing <column>"), impute (fill in values[column]), flag (keep the row and add a
    #: boolean column <column>_missing). Columns not listed are left alone.
    policies: dict[str, str] = field(default_factory=lambda: {PROMPT: "drop", COMPLETION: "drop"})
    #: column -> the value put in place of a missing one (needed for every impute column)
    values: dict[str, Any] = field(default_factory=dict)
    #: count strings that are empty or only whitespace as missing, not just None
    blank_is_missing: bool = True


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


class MissingValues(Cleaner):
    """Per-column policy for missing values: drop the row, impute a default, or flag it in a new column."""

    def __init__(self, config: MissingValuesConfig):
        super().__init__(config)
        if not config.policies:
            raise ValueError("missing_values.policies is empty; map at least one column to drop, impute or flag")
        for column, policy in config.policies.items():
            if policy not in _MISSING_POLICIES:
                raise ValueError(f"missing_values.policies.{column} must be drop, impute or flag, got {policy!r}")
            if policy == "impute" and (column not in config.values or config.values[column] is None):
                raise ValueError(
                    f"missing_values.policies.{column} is impute but missing_values.values.{column} is not set; "
                    f"give the value to fill in, e.g. +pipeline.params.missing_values.values.{column}=unknown"
                )
        unused = sorted(set(config.values) - {c for c, p in config.policies.items() if p == "impute"})
        if unused:
            raise ValueError(
                f"missing_values.values names {unused}, whose policy is not impute; "
                "remove them or set their policy to impute"
            )

    def _is_missing(self, value: Any) -> bool:
        if value is None:
            return True
        return self.config.blank_is_missing and isinstance(value, str) and not value.strip()

    def _fill_value(self, data: Any, column: str) -> Any:
        """The configured value, converted to the column's type (a clear error when it cannot be)."""
        value = self.config.values[column]
        dtype = getattr(data.features[column], "dtype", None)
        converters: dict[str, Callable[[Any], Any]] = {"string": str, "large_string": str, "bool": _as_bool}
        convert = converters.get(dtype or "") or (
            int
            if dtype and dtype.startswith(("int", "uint"))
            else float
            if dtype and dtype.startswith("float")
            else None
        )
        if convert is None:
            if dtype == "null" or isinstance(value, (str, int, float, bool)):
                return value
            raise ValueError(f"missing_values: cannot impute into column '{column}' of type {data.features[column]}")
        try:
            return convert(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"missing_values.values.{column}={value!r} does not fit column '{column}' of type {dtype}; "
                "give a value of that type"
            ) from None

    def apply(self, data, ctx: StageContext):
        policies = self.config.policies
        require_columns(data, list(policies), "missing_values")
        flagged = [f"{c}_missing" for c, p in policies.items() if p == "flag"]
        clash = [c for c in flagged if c in data.column_names]
        if clash:
            raise ValueError(
                f"missing_values: the flag column(s) {clash} already exist; rename them or use another policy"
            )

        ids, *values = columns_as_lists(data, ROW_ID, *policies)
        missing = {c: [self._is_missing(v) for v in column] for c, column in zip(policies, values)}
        keep: list[int] = []
        dropped: dict[str, list[str]] = {}
        for i, row_id in enumerate(ids):
            first = next((c for c, p in policies.items() if p == "drop" and missing[c][i]), None)
            if first is None:
                keep.append(i)
            else:
                dropped.setdefault(first, []).append(row_id)
        for column, row_ids in dropped.items():
            ctx.drop(row_ids, f"missing {column}")

        fills = {c: self._fill_value(data, c) for c, p in policies.items() if p == "impute"}
        flags = [c for c, p in policies.items() if p == "flag"]
        if keep and (fills or flags):
            for column in fills:
                rows = [ids[i] for i in keep if missing[column][i]]
                ctx.modified(rows, f"imputed {column}")
            for column in flags:
                ctx.count(f"flagged {column}_missing", sum(missing[column][i] for i in keep))

            def fill(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
                for column, value in fills.items():
                    batch[column] = [value if missing[column][i] else v for v, i in zip(batch[column], indices)]
                for column in flags:
                    batch[f"{column}_missing"] = [missing[column][i] for i in indices]
                return batch

            data = data.map(fill, batched=True, with_indices=True, desc="missing_values")
        return take_rows(data, keep) if len(keep) != len(data) else data
