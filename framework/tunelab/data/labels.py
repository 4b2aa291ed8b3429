"""Label normalisation, run once by the engine right after collection.

Spellings of one class that differ only by surrounding whitespace (``"billing "``,
``" billing"``) would otherwise be separate classes, each then oversampled and
stratified on its own. The engine therefore

* strips surrounding whitespace from every text label (always; a ledger ``modified``
  record per row says ``'billing ' -> 'billing'``);
* with ``pipeline.label_case=fold`` also case-folds and collapses inner whitespace, so
  ``Billing``, ``BILLING`` and ``billing`` become one class ``billing``; with ``keep`` (the
  default) it leaves case alone and warns, listing the spellings that differ only by
  case or spacing;
* refuses a label column whose values are lists or mappings (multi-label data), naming
  the rows (the built-in collectors quarantine such a row first, with
  :func:`multi_label_reason`), and warns when (nearly) every row has a class of its own (an id or free-text
  column mapped to ``label``).

Every merge (variant -> label, rows) is in the summary and the data report.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunelab.api import ROW_ID
from tunelab.errors import TunelabError

#: values of ``pipeline.label_case``: keep (strip only; warn about case variants) or fold (merge them)
LABEL_CASES = ("keep", "fold")
#: a label column with at least this many labelled rows ...
DISTINCT_MIN_ROWS = 20
#: ... and more than this share of distinct values among them is warned about: classes of
#: one or two rows cannot be learned, stratified or evaluated (a split needs ~10 per class)
DISTINCT_MAX_SHARE = 0.5
#: rows an error names as examples
_EXAMPLES = 3


class LabelError(TunelabError):
    """The label column cannot hold classes; the message names the rows and the fix."""


def fold_key(label: str) -> str:
    """The form ``label_case=fold`` gives a label: inner whitespace collapsed, case-folded."""
    return " ".join(label.split()).casefold()


@dataclass
class LabelReport:
    """What normalisation did: merges for the report, warnings for the log and report."""

    column: str
    case: str
    #: one entry per spelling that was changed: {"variant", "label", "rows", "why"}
    merges: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: (row ids, ledger reason) of the edited rows
    modifications: list[tuple[list[str], str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "case": self.case, "merges": self.merges}


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def multi_label_reason(column: str, value: Any) -> str:
    """Why a row whose label is a list or mapping is not kept (collectors quarantine it)."""
    kind = "a mapping" if isinstance(value, dict) else "a list"
    return (
        f"column '{column}' holds {kind} ({str(value)[:80]}), expected one class per row (tunelab has no multi-label "
        f"methods); keep one class per row in the source, or map the column that holds the classes with "
        f"data.columns={{<column>: {column}}}"
    )


def check_label_values(values: list[Any], ids: list[str], column: str, show: Callable[[str], str] = str) -> None:
    """Refuse list- or mapping-valued labels (multi-label data), naming the rows. ``show``
    redacts what the message quotes (labels may hold personal data)."""
    bad = [(row_id, value) for row_id, value in zip(ids, values) if isinstance(value, (list, tuple, dict))]
    if not bad:
        return
    examples = ", ".join(f"row {row_id!r} has {show(repr(value))[:80]}" for row_id, value in bad[:_EXAMPLES])
    raise LabelError(
        f"the label column '{column}' holds lists or mappings in {len(bad)} of {len(values)} rows ({examples}); "
        "a label is one class per row (tunelab has no multi-label methods). Fix: keep one class per row in the source "
        f"(e.g. the first), or, when '{column}' is not the class column, map the column that is with "
        f"data.columns={{<column>: {column}}} or set pipeline.label_column=<column>"
    )


def normalize_labels(data: Any, column: str, case: str, show: Callable[[str], str] = str) -> tuple[Any, LabelReport]:
    """``data`` with its labels normalised (see the module docstring) and what was done.

    Non-text labels (numbers, booleans) are left as they are; a blank label stays the
    "no label" it is everywhere (balancers and classifiers skip it).
    """
    if case not in LABEL_CASES:
        raise ValueError(f"pipeline.label_case must be one of {', '.join(LABEL_CASES)}, got {case!r}")
    report = LabelReport(column, case)
    if column not in data.column_names:
        return data, report
    ids = list(data[ROW_ID])
    values = list(data[column])  # a list or struct Arrow column reads as Python lists / dicts
    check_label_values(values, ids, column, show)
    new_values = list(values)
    changed: dict[tuple[str, str], list[str]] = defaultdict(list)  # (before, after) -> ids
    for i, value in enumerate(values):
        if not isinstance(value, str):
            continue
        after = fold_key(value) if case == "fold" else value.strip()
        if after != value:
            new_values[i] = after
            changed[(value, after)].append(ids[i])
    for (before, after), row_ids in sorted(changed.items(), key=lambda item: (item[0][1], -len(item[1]), item[0][0])):
        why = "surrounding whitespace stripped" if before.strip() == after else "case and spacing folded"
        report.merges.append({"variant": show(before), "label": show(after), "rows": len(row_ids), "why": why})
        report.modifications.append((row_ids, f"label {show(repr(before))} -> {show(repr(after))} ({why})"))
    if changed:
        from datasets import Value

        order = list(data.column_names)  # only text labels change: the column is a string column
        data = (
            data.remove_columns([column]).add_column(column, new_values, feature=Value("string")).select_columns(order)
        )
    labelled = [v for v in new_values if not _is_blank(v)]
    if case == "keep":
        spellings: dict[str, Counter[str]] = defaultdict(Counter)
        for value in labelled:
            if isinstance(value, str):
                spellings[fold_key(value)][value] += 1
        groups = [counts for counts in spellings.values() if len(counts) > 1]
        if groups:
            listed = "; ".join(
                ", ".join(f"{show(repr(v))} ({n} rows)" for v, n in sorted(counts.items())) for counts in groups[:10]
            )
            more = f" and {len(groups) - 10} more groups" if len(groups) > 10 else ""
            report.warnings.append(
                f"labels in '{column}' that differ only by case or spacing are separate classes: {listed}{more}. "
                "If they are one class each, set pipeline.label_case=fold to merge them"
            )
    distinct = len({str(v) for v in labelled})
    if len(labelled) >= DISTINCT_MIN_ROWS and distinct > DISTINCT_MAX_SHARE * len(labelled):
        report.warnings.append(
            f"the label column '{column}' has {distinct} distinct values among {len(labelled)} labelled rows "
            f"({distinct / len(labelled):.0%}), nearly one class per row: it looks like an id or free-text column, "
            "not classes (a class of one or two rows can be neither learned nor evaluated). Map the column that holds "
            f"the classes with data.columns={{<column>: {column}}} or set pipeline.label_column=<column>"
        )
    return data, report
