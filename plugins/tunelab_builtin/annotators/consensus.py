"""The ``consensus`` annotator: one label per row from several human annotators (the
majority, with a tie policy), and the inter-annotator agreement it reports (Cohen's and
Fleiss' kappa, Krippendorff's alpha; the metrics are plain functions, usable alone).
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tunelab.api import ROW_ID, Annotator, StageContext
from tunelab.data.labels import fold_key
from tunelab_builtin._lib.rows import take_rows
from tunelab_builtin.annotators._labels import (
    LABEL_CONFIDENCE,
    LABEL_SOURCE,
    check_file_name,
    existing_values,
    is_empty,
    label_values,
    review_file_path,
    set_column,
    write_jsonl,
)

# --- agreement metrics ----------------------------------------------------------------


def cohen_kappa(first: Sequence[Any], second: Sequence[Any]) -> Optional[float]:
    """Cohen's kappa of two annotators over the same items (Cohen 1960):
    ``(p_o - p_e) / (1 - p_e)``, ``p_o`` the observed agreement and ``p_e = sum_c
    p1(c) p2(c)`` the agreement expected from each annotator's label frequencies.
    None when undefined (fewer than one item, or both used one and the same label)."""
    import numpy as np

    if len(first) != len(second):
        raise ValueError("cohen_kappa: both annotators must label the same items")
    if not first:
        return None
    categories = sorted({*map(str, first), *map(str, second)})
    index = {c: k for k, c in enumerate(categories)}
    a = np.array([index[str(v)] for v in first])
    b = np.array([index[str(v)] for v in second])
    observed = float(np.mean(a == b))
    pa = np.bincount(a, minlength=len(categories)) / len(a)
    pb = np.bincount(b, minlength=len(categories)) / len(b)
    expected = float(pa @ pb)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(table: Any) -> Optional[float]:
    """Fleiss' kappa (Fleiss 1971) from a units x categories table of rating counts.

    ``P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1))``, ``P_bar`` their mean, ``p_j`` the
    share of all ratings in category j, ``P_e = sum_j p_j^2``, kappa = ``(P_bar - P_e) /
    (1 - P_e)``. Units with fewer than two ratings are left out; with a varying number
    of raters per unit each unit's ``P_i`` uses its own ``n_i`` (with a constant number
    it is exactly Fleiss' statistic). None when undefined."""
    import numpy as np

    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2 or counts.size == 0:
        return None
    raters = counts.sum(axis=1)
    counts = counts[raters >= 2]
    raters = raters[raters >= 2]
    if len(counts) == 0:
        return None
    per_unit = ((counts**2).sum(axis=1) - raters) / (raters * (raters - 1))
    p_bar = float(per_unit.mean())
    shares = counts.sum(axis=0) / counts.sum()
    p_e = float((shares**2).sum())
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1.0 - p_e)


def krippendorff_alpha_nominal(units: Sequence[Sequence[Any]]) -> Optional[float]:
    """Krippendorff's alpha for nominal data (Krippendorff 2011, "Computing Krippendorff's
    Alpha-Reliability"); ``units`` holds the values each unit got (missing ones left out
    or None).

    Coincidences ``o_ck = sum_u (number of c-k pairs of values in u) / (m_u - 1)`` over
    units with ``m_u >= 2`` values; ``n_c = sum_k o_ck``, ``n = sum_c n_c``;
    ``alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k``. None when
    undefined (no pairable values, or only one category used)."""
    import numpy as np

    values = [[str(v) for v in unit if not is_empty(v)] for unit in units]
    values = [unit for unit in values if len(unit) >= 2]
    categories = sorted({v for unit in values for v in unit})
    if not values or len(categories) < 2:
        return None
    index = {c: k for k, c in enumerate(categories)}
    coincidences = np.zeros((len(categories), len(categories)))
    for unit in values:
        counts = np.bincount([index[v] for v in unit], minlength=len(categories)).astype(float)
        coincidences += (np.outer(counts, counts) - np.diag(counts)) / (len(unit) - 1)
    marginals = coincidences.sum(axis=1)
    n = marginals.sum()
    off_diagonal = ~np.eye(len(categories), dtype=bool)
    observed = coincidences[off_diagonal].sum()
    expected = np.outer(marginals, marginals)[off_diagonal].sum()
    if expected == 0:
        return None
    return float(1.0 - (n - 1) * observed / expected)


def agreement_report(annotations: Sequence[Sequence[tuple[str, str]]]) -> dict[str, Any]:
    """Agreement metrics of per-unit ``[(annotator, label), ...]`` lists."""
    import numpy as np

    annotators = sorted({a for unit in annotations for a, _ in unit})
    categories = sorted({label for unit in annotations for _, label in unit})
    by_unit = [dict(unit) for unit in annotations]  # the last label of an annotator counts
    table = np.zeros((len(by_unit), max(1, len(categories))))
    index = {c: k for k, c in enumerate(categories)}
    for u, unit in enumerate(by_unit):
        for label in unit.values():
            table[u, index[label]] += 1
    pairs: dict[str, Optional[float]] = {}
    for x in range(len(annotators)):
        for y in range(x + 1, len(annotators)):
            a, b = annotators[x], annotators[y]
            common = [unit for unit in by_unit if a in unit and b in unit]
            if common:
                kappa = cohen_kappa([unit[a] for unit in common], [unit[b] for unit in common])
                pairs[f"{a}|{b}"] = None if kappa is None else round(kappa, 6)
    defined = [k for k in pairs.values() if k is not None]
    pairable = [unit for unit in by_unit if len(unit) >= 2]
    observed_pairs = [
        sum(n * (n - 1) for n in Counter(unit.values()).values()) / (len(unit) * (len(unit) - 1)) for unit in pairable
    ]
    fleiss = fleiss_kappa(table)
    alpha = krippendorff_alpha_nominal([list(unit.values()) for unit in by_unit])
    return {
        "annotators": annotators,
        "units": len(by_unit),
        "pairable_units": len(pairable),
        "annotations": int(table.sum()),
        "percent_agreement": round(float(np.mean(observed_pairs)), 6) if observed_pairs else None,
        "cohen_kappa": round(float(np.mean(defined)), 6) if defined else None,
        "cohen_kappa_method": "two annotators" if len(annotators) == 2 else "mean over annotator pairs",
        "cohen_kappa_pairs": pairs,
        "fleiss_kappa": None if fleiss is None else round(fleiss, 6),
        "krippendorff_alpha": None if alpha is None else round(alpha, 6),
        "label_counts": {c: int(table[:, index[c]].sum()) for c in categories},
    }


# --- consensus --------------------------------------------------------------------------

TIE_POLICIES = ("drop", "first", "review")


@dataclass
class ConsensusConfig:
    #: column holding each row's annotations: a list of {annotator, label} dicts (or that list as JSON text)
    annotations_column: Optional[str] = None
    #: columns that each hold one annotator's label; the column name is the annotator
    annotator_columns: list[str] = field(default_factory=list)
    #: JSONL or CSV file with one annotation per record: fields <key_column>, annotator, label
    annotations_path: Optional[str] = None
    #: data column whose values the file's <key_column> field holds (default: the row id)
    key_column: str = ROW_ID
    #: rows without a single majority label: drop, first (first annotator's label), review (keep unlabelled, listed)
    tie_policy: str = "review"
    #: share of a row's annotators that must agree with the majority; below it the tie policy applies
    min_agreement: float = 0.0
    #: review file name in the prepared-data folder; None: review_<step>.jsonl
    review_file: Optional[str] = None
    #: label column the consensus is written to; None uses pipeline.label_column
    label_column: Optional[str] = None


class Consensus(Annotator):
    """Multi-annotator labels: majority consensus plus Cohen's/Fleiss' kappa and Krippendorff's alpha."""

    def __init__(self, config: ConsensusConfig):
        super().__init__(config)
        c = config
        given = [
            name
            for name, value in (
                ("annotations_column", c.annotations_column),
                ("annotator_columns", c.annotator_columns),
                ("annotations_path", c.annotations_path),
            )
            if value
        ]
        if len(given) != 1:
            raise ValueError(
                "consensus: set exactly one of annotations_column (a list of {annotator, label} per row), "
                "annotator_columns (one column per annotator) or annotations_path (a JSONL/CSV file); "
                f"got {given or 'none'}"
            )
        if c.annotator_columns and len(set(c.annotator_columns)) != len(c.annotator_columns):
            raise ValueError(f"consensus.annotator_columns repeats a column: {c.annotator_columns}")
        if c.tie_policy not in TIE_POLICIES:
            raise ValueError(f"consensus.tie_policy must be one of {', '.join(TIE_POLICIES)}, got {c.tie_policy!r}")
        if not 0.0 <= c.min_agreement <= 1.0:
            raise ValueError(f"consensus.min_agreement must be in [0, 1], got {c.min_agreement}")
        check_file_name("consensus", c.review_file)
        if c.annotations_path is not None:
            path = Path(c.annotations_path).expanduser()
            if not path.is_file():
                raise ValueError(
                    f"consensus.annotations_path '{c.annotations_path}' is not a file (working directory: {Path.cwd()})"
                )
            if not path.name.lower().endswith((".jsonl", ".ndjson", ".json", ".csv", ".tsv")):
                raise ValueError(f"consensus.annotations_path must be a .jsonl or .csv/.tsv file, got '{path.name}'")

    def input_files(self) -> list[Path]:
        return [Path(self.config.annotations_path).expanduser()] if self.config.annotations_path else []

    # -- reading annotations --

    def _from_list_column(self, data: Any) -> list[list[tuple[str, str]]]:
        column = self.config.annotations_column
        if column not in data.column_names:
            raise ValueError(f"consensus: annotations_column '{column}' not in the data (columns: {data.column_names})")
        out = []
        for row_id, value in zip(data[ROW_ID], data[column]):
            if isinstance(value, str):  # collectors store lists of objects as JSON text
                try:
                    value = json.loads(value) if value.strip() else None
                except json.JSONDecodeError:
                    raise ValueError(
                        f"consensus: row {row_id!r}: annotations_column '{column}' holds text "
                        "that is not a JSON list of "
                        "{annotator, label} objects"
                    ) from None
            if value is None:
                out.append([])
                continue
            if not isinstance(value, list) or not all(
                isinstance(v, dict) and "annotator" in v and "label" in v for v in value
            ):
                raise ValueError(
                    f"consensus: row {row_id!r}: annotations_column '{column}' must hold a list of "
                    f"{{annotator, label}} objects, got {str(value)[:120]}"
                )
            out.append(
                [
                    (str(v["annotator"]), str(v["label"]))
                    for v in value
                    if not is_empty(v["label"]) and not is_empty(v["annotator"])
                ]
            )
        return out

    def _from_columns(self, data: Any) -> list[list[tuple[str, str]]]:
        columns = self.config.annotator_columns
        missing = [c for c in columns if c not in data.column_names]
        if missing:
            raise ValueError(f"consensus: annotator_columns {missing} not in the data (columns: {data.column_names})")
        values = {c: data[c] for c in columns}
        return [[(c, str(values[c][i])) for c in columns if not is_empty(values[c][i])] for i in range(len(data))]

    def _read_file(self) -> list[tuple[int, dict[str, Any]]]:
        path = Path(self.config.annotations_path).expanduser()  # type: ignore[arg-type]
        records: list[tuple[int, dict[str, Any]]] = []
        try:
            with path.open(encoding="utf-8", newline="") as fh:
                if path.name.lower().endswith((".csv", ".tsv")):
                    delimiter = "\t" if path.name.lower().endswith(".tsv") else ","
                    reader = csv.DictReader(fh, delimiter=delimiter)
                    for record in reader:
                        records.append((reader.line_num, record))
                else:
                    for number, line in enumerate(fh, start=1):
                        if not line.strip():
                            continue
                        try:
                            record = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise ValueError(f"consensus: {path.name}:{number}: invalid JSON ({exc.msg})") from None
                        if not isinstance(record, dict):
                            raise ValueError(
                                f"consensus: {path.name}:{number}: expected a JSON object, "
                                f"found {type(record).__name__}"
                            )
                        records.append((number, record))
        except UnicodeDecodeError as exc:
            raise ValueError(f"consensus: {path} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        return records

    def _from_file(self, data: Any, ctx: StageContext) -> list[list[tuple[str, str]]]:
        key = self.config.key_column
        if key not in data.column_names:
            raise ValueError(f"consensus: key_column '{key}' not in the data (columns: {data.column_names})")
        rows_of: dict[str, list[int]] = defaultdict(list)
        for i, value in enumerate(data[key]):
            if value is not None:
                rows_of[str(value)].append(i)
        name = Path(self.config.annotations_path).name  # type: ignore[arg-type]
        out: list[list[tuple[str, str]]] = [[] for _ in range(len(data))]
        unmatched: list[str] = []
        for line, record in self._read_file():
            absent = [f for f in (key, "annotator", "label") if f not in record]
            if absent:
                raise ValueError(
                    f"consensus: {name}:{line}: missing field(s) {absent}; each record needs {key}, annotator and label"
                )
            if is_empty(record["label"]) or is_empty(record["annotator"]):
                continue
            rows = rows_of.get(str(record[key]))
            if not rows:
                unmatched.append(str(record[key]))
                continue
            for i in rows:
                out[i].append((str(record["annotator"]), str(record["label"])))
        if unmatched:
            ctx.count("annotations for unknown rows", len(unmatched))
            ctx.metadata["unmatched_keys"] = sorted(set(unmatched))[:20]
        return out

    # -- consensus --

    def apply(self, data, ctx: StageContext):
        c = self.config
        column = c.label_column or ctx.label_column
        if c.annotations_column:
            annotations = self._from_list_column(data)
        elif c.annotator_columns:
            annotations = self._from_columns(data)
        else:
            annotations = self._from_file(data, ctx)
        # annotators' spellings of one class are one vote: 'billing ' is 'billing' (and, with
        # pipeline.label_case=fold, 'Billing' too), as the engine normalises collected labels
        fold = getattr(ctx, "label_case", "keep") == "fold"
        annotations = [[(a, fold_key(label) if fold else label.strip()) for a, label in unit] for unit in annotations]
        ids = data[ROW_ID]
        labels = label_values(data, column)
        sources = existing_values(data, LABEL_SOURCE)
        confidences = existing_values(data, LABEL_CONFIDENCE)
        new_sources = [
            None if labels[i] is None else (str(s) if not is_empty(s) else "human") for i, s in enumerate(sources)
        ]
        new_confidences = [
            float(v) if labels[i] is not None and isinstance(v, (int, float)) else None
            for i, v in enumerate(confidences)
        ]

        review: list[dict[str, Any]] = []
        to_drop: dict[str, tuple[list[str], list[dict[str, Any]]]] = defaultdict(lambda: ([], []))
        outcome: Counter[str] = Counter()
        for i, unit in enumerate(annotations):
            if not unit:
                outcome["rows without annotations"] += 1
                continue
            latest = dict(unit)  # one label per annotator: the last one counts
            votes = Counter(latest.values())
            (winner, top), *rest = votes.most_common()
            agreement = top / len(latest)
            tie = bool(rest) and rest[0][1] == top
            if not tie and agreement >= c.min_agreement:
                labels[i], new_sources[i], new_confidences[i] = winner, "human", round(agreement, 6)
                outcome["consensus"] += 1
                continue
            problem = "tie" if tie else "low agreement"
            reason = "annotator tie" if tie else "low annotator agreement"
            outcome[problem] += 1
            if c.tie_policy == "first":
                first = latest[unit[0][0]]
                labels[i], new_sources[i], new_confidences[i] = first, "human", round(votes[first] / len(latest), 6)
            elif c.tie_policy == "review":
                labels[i], new_sources[i], new_confidences[i] = None, None, None
                review.append(
                    {
                        "id": ids[i],
                        "reason": reason,
                        "votes": dict(sorted(votes.items())),
                        "annotations": [{"annotator": a, "label": label} for a, label in latest.items()],
                    }
                )
            else:
                to_drop[reason][0].append(ids[i])
                to_drop[reason][1].append({"votes": dict(sorted(votes.items()))})

        report = agreement_report([unit for unit in annotations if unit])
        report.update(
            {
                "consensus": outcome["consensus"],
                "ties": outcome["tie"],
                "low_agreement": outcome["low agreement"],
                "rows_without_annotations": outcome["rows without annotations"],
                "tie_policy": c.tie_policy,
                "consensus_counts": dict(
                    sorted(
                        Counter(
                            labels[i] for i, unit in enumerate(annotations) if unit and labels[i] is not None
                        ).items()
                    )
                ),
            }
        )
        ctx.metadata["agreement"] = report
        previous = label_values(data, column)
        ctx.modified(
            [ids[i] for i, label in enumerate(labels) if label is not None and label != previous[i]],
            "consensus label set",
        )
        ctx.modified(
            [ids[i] for i, label in enumerate(labels) if label is None and previous[i] is not None],
            "label cleared for review",
        )
        for name, n in outcome.items():
            ctx.count(name, n)
        if c.tie_policy == "review":
            review_path = review_file_path(ctx, c.review_file, "consensus")
            write_jsonl(review_path, review)
            ctx.metadata["review_file"] = review_path.name
            ctx.count("sent to review", len(review))

        data = set_column(data, column, labels, "string")
        data = set_column(data, LABEL_SOURCE, new_sources, "string")
        data = set_column(data, LABEL_CONFIDENCE, new_confidences, "float64")
        gone: set[str] = set()
        for reason, (row_ids, details) in to_drop.items():
            ctx.drop(row_ids, reason, details)
            gone.update(row_ids)
        if gone:
            data = take_rows(data, [i for i, row_id in enumerate(ids) if row_id not in gone])
        return data
