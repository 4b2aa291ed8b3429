"""The leakage check every splitter runs after its assignment: validation/test rows that
are exact or near duplicates of a train row, or derived from a row in another split, are
dropped (``leakage: fix``) or only counted (``leakage: report``)."""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from typing import Any

from tunelab.api import (
    CANONICAL_TEXT_COLUMNS,
    COMPLETION,
    MESSAGES,
    PARENT_ID,
    PROMPT,
    ROW_ID,
    TEXT,
    StageContext,
)
from tunelab_builtin.splitters._config import EVAL_SPLITS, LEAKAGE_MODES
from tunelab_builtin.splitters._lineage import root_ids

#: how many leaking pairs the metadata lists as examples
_LEAK_EXAMPLES = 10


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # chat transcripts: compare the contents
        return " ".join(_as_text(v.get("content") if isinstance(v, dict) else v) for v in value)
    return str(value)


def normalized_text(value: Any) -> str:
    """Text as the leakage check compares it: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", _as_text(value)).casefold().split())


def leakage_columns(data: Any, fields: list[str]) -> list[str]:
    """The columns the leakage check compares (explicit ones must exist)."""
    if fields:
        missing = [f for f in fields if f not in data.column_names]
        if missing:
            raise ValueError(
                f"leakage_fields {missing} not in the data (columns: {data.column_names}); "
                "name existing text columns or leave leakage_fields empty"
            )
        return list(fields)
    for candidates in ([PROMPT, COMPLETION], [TEXT], list(CANONICAL_TEXT_COLUMNS) + [MESSAGES]):
        present = [c for c in candidates if c in data.column_names]
        if present:
            return present
    return []


def check_leakage(
    data: Any,
    indices: dict[str, list[int]],
    ctx: StageContext,
    *,
    mode: str = "fix",
    fields: list[str] | None = None,
    near_threshold: float = 0.8,
) -> dict[str, list[int]]:
    """Find validation/test rows that leak training data; drop them when ``mode`` is fix.

    Three kinds, checked in this order (a row is reported once, for the first kind):
    an exact duplicate of a train row (normalized text of the compared columns), a row
    derived from a row in another split, and a near duplicate of a train row (MinHash
    estimate of word-shingle Jaccard >= ``near_threshold``). Rows derived from a leaking
    row of the same split are reported (and dropped) with it. Counts per kind and split
    land in ``ctx.metadata["leakage"]``; ``indices`` maps split -> row indices.
    """
    if mode not in LEAKAGE_MODES:
        raise ValueError(f"leakage must be one of {', '.join(LEAKAGE_MODES)}, got {mode!r}")
    if mode == "off":
        ctx.metadata["leakage"] = {"mode": "off"}
        return indices
    columns = leakage_columns(data, list(fields or []))
    summary: dict[str, Any] = {
        "mode": mode,
        "fields": columns,
        "exact_duplicate": {s: 0 for s in EVAL_SPLITS},
        "derived_across_splits": {s: 0 for s in EVAL_SPLITS},
        "near_duplicate": {s: 0 for s in EVAL_SPLITS},
        "derived_from_leak": {s: 0 for s in EVAL_SPLITS},
        "dropped": 0,
        "examples": [],
    }
    ctx.metadata["leakage"] = summary
    ids = data[ROW_ID]
    parents = data[PARENT_ID]
    texts = [""] * len(ids)
    if columns:
        values = [data[c] for c in columns]
        texts = ["\x1f".join(normalized_text(v[i]) for v in values) for i in range(len(ids))]
    split_of = {ids[i]: name for name, idx in indices.items() for i in idx}
    roots = dict(zip(ids, root_ids(ids, parents)))
    train_by_text: dict[str, str] = {}
    for i in indices.get("train", []):
        if texts[i].strip("\x1f"):
            train_by_text.setdefault(texts[i], ids[i])

    # (split, row index) -> (kind, detail)
    leaks: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
    for split in EVAL_SPLITS:
        for i in indices.get(split, []):
            text = texts[i]
            if text.strip("\x1f") and text in train_by_text:
                leaks[(split, i)] = ("exact_duplicate", {"train_row": train_by_text[text], "split": split})
                continue
            if parents[i] is not None:
                for relative in (parents[i], roots[ids[i]]):
                    other = split_of.get(relative)
                    if other is not None and other != split:
                        leaks[(split, i)] = (
                            "derived_across_splits",
                            {"related_row": relative, "related_split": other, "split": split},
                        )
                        break
    if near_threshold > 0 and columns:
        _near_duplicate_leaks(ids, texts, indices, leaks, near_threshold)

    # a copy of a leaking row leaks for the same reason: report it as such, once
    leaking_ids = {ids[i] for _, i in leaks}
    for split in EVAL_SPLITS:
        for i in indices.get(split, []):
            if parents[i] is None:
                continue
            source = next(
                (r for r in (parents[i], roots[ids[i]]) if r in leaking_ids and split_of.get(r) == split), None
            )
            if source is not None:
                leaks[(split, i)] = ("derived_from_leak", {"leaking_row": source, "split": split})

    dropped: set[int] = set()
    by_reason: dict[str, tuple[list[str], list[dict[str, Any]]]] = defaultdict(lambda: ([], []))
    for (split, i), (kind, detail) in sorted(leaks.items()):
        summary[kind][split] += 1
        ctx.count(f"leak_{kind}", 1)
        if len(summary["examples"]) < _LEAK_EXAMPLES:
            summary["examples"].append({"id": ids[i], "kind": kind, **detail})
        if mode == "fix":
            dropped.add(i)
            by_reason[_LEAK_REASONS[kind]][0].append(ids[i])
            by_reason[_LEAK_REASONS[kind]][1].append(detail)
    for reason, (row_ids, details) in by_reason.items():
        ctx.drop(row_ids, reason, details)
    summary["dropped"] = len(dropped)
    if dropped:
        indices = {name: [i for i in idx if i not in dropped] for name, idx in indices.items()}
    return indices


_LEAK_REASONS = {
    "exact_duplicate": "leak: exact duplicate of a train row",
    "derived_across_splits": "leak: derived from a row in another split",
    "near_duplicate": "leak: near duplicate of a train row",
    "derived_from_leak": "leak: derived from a leaking row",
}


def _near_duplicate_leaks(
    ids: list[str],
    texts: list[str],
    indices: dict[str, list[int]],
    leaks: dict[tuple[str, int], tuple[str, dict[str, Any]]],
    threshold: float,
) -> None:
    from tunelab_builtin._lib.minhash import cross_duplicates

    train = [i for i in indices.get("train", []) if texts[i].strip("\x1f")]
    if not train:
        return
    train_texts = [texts[i].replace("\x1f", " ") for i in train]
    for split in EVAL_SPLITS:
        candidates = [i for i in indices.get(split, []) if (split, i) not in leaks and texts[i].strip("\x1f")]
        if not candidates:
            continue
        pairs = cross_duplicates([texts[i].replace("\x1f", " ") for i in candidates], train_texts, threshold=threshold)
        best: dict[int, tuple[float, int]] = {}
        for a, b, similarity in pairs:
            if a not in best or similarity > best[a][0]:
                best[a] = (similarity, b)
        for a, (similarity, b) in best.items():
            leaks[(split, candidates[a])] = (
                "near_duplicate",
                {"train_row": ids[train[b]], "similarity": round(float(similarity), 3), "split": split},
            )
