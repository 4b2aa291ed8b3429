"""Balancers: change the label distribution by adding or dropping rows.

Rows without a label (None or blank) are never counted, copied or dropped by a
balancer. Every random choice is drawn per row from the seed and the row id
(:func:`tunelab_builtin._lib.rows.row_rng`), so the result does not depend on row order.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

from tunelab.api import CANONICAL_TEXT_COLUMNS, MESSAGES, PARENT_ID, ROW_ID, Balancer, Component, StageContext

from tunelab_builtin._lib.class_weights import class_weights
from tunelab_builtin._lib.rows import append_rows, row_rng, take_rows

log = logging.getLogger(__name__)
_SUFFIX = re.compile(r"^(.*?)(\d*)$")


# --- shared helpers -----------------------------------------------------------------


def label_column_of(data: Any, configured: Optional[str], ctx: StageContext, step: str) -> str:
    column = configured or ctx.label_column
    if column not in data.column_names:
        raise ValueError(
            f"{step}: label column '{column}' not in the data (columns: {data.column_names}); "
            f"set pipeline.label_column or pipeline.params.{step}.label_column"
        )
    return column


def label_column_or_none(data: Any, configured: Optional[str], ctx: StageContext, step: str) -> Optional[str]:
    """The label column, or None when the data has no ``pipeline.label_column`` and the step
    names none of its own: unlabelled data has nothing to balance, as with rows whose label
    is blank. A column the step names itself must exist."""
    if configured is None and ctx.label_column not in data.column_names:
        log.warning(
            "%s: no label column '%s' in the data (columns: %s); rows pass unchanged. "
            "Set pipeline.label_column to balance by another column, or pipeline.balance=[] to drop the step",
            step, ctx.label_column, data.column_names,
        )
        ctx.metadata["skipped"] = f"no label column '{ctx.label_column}'"
        return None
    return label_column_of(data, configured, ctx, step)


def members_by_label(data: Any, column: str) -> dict[str, list[int]]:
    """Row indices per label; rows with no label are left out."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(data[column]):
        if label is None or (isinstance(label, str) and not label.strip()):
            continue
        by_label[str(label)].append(i)
    return dict(by_label)


def check_ratio(step: str, ratio: float) -> None:
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"{step}.target_ratio must be in (0, 1], got {ratio}")


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


def _drop_undersampled(data: Any, column: str, dropped: set[int], ctx: StageContext) -> Any:
    ids = data[ROW_ID]
    labels = data[column]
    order = sorted(dropped)
    ctx.drop([ids[i] for i in order], "undersampled", [{"label": str(labels[i])} for i in order])
    ctx.count("rows_undersampled", len(order))
    if not order:
        return data
    return take_rows(data, [i for i in range(len(data)) if i not in dropped])


def _excess(data: Any, by_label: dict[str, list[int]], targets: dict[str, int], seed: int, prefer_originals: bool) -> set[int]:
    """Indices to drop so that each class is at most its target."""
    out: set[int] = set()
    for label in sorted(by_label):
        members = by_label[label]
        cut = len(members) - targets.get(label, len(members))
        if cut > 0:
            order = ranked(data, members, seed, "undersample", originals_first=prefer_originals)
            out.update(order[len(members) - cut :])
    return out


def _counts(by_label: dict[str, list[int]]) -> dict[str, int]:
    return {label: len(members) for label, members in sorted(by_label.items())}


# --- oversample -------------------------------------------------------------------------


@dataclass
class OversampleConfig:
    #: label column; None uses pipeline.label_column
    label_column: Optional[str] = None
    #: every class is raised to at least this fraction of the largest class
    target_ratio: float = 1.0


class Oversample(Balancer):
    """Random oversampling of minority classes (copies keep parent_id)."""

    def __init__(self, config: OversampleConfig):
        super().__init__(config)
        check_ratio("oversample", config.target_ratio)

    def apply(self, data, ctx: StageContext):
        column = label_column_or_none(data, self.config.label_column, ctx, "oversample")
        by_label = members_by_label(data, column) if column else {}
        if not by_label:
            return data
        target = int(self.config.target_ratio * max(len(v) for v in by_label.values()))
        taken = set(data[ROW_ID])
        children: list[dict[str, Any]] = []
        for label in sorted(by_label):
            missing = target - len(by_label[label])
            if missing > 0:
                children += copies(data, copy_sources(data, by_label[label], ctx.seed), missing, taken)
        ctx.count("rows_oversampled", len(children))
        return append_rows(data, children)


# --- undersample ------------------------------------------------------------------------


@dataclass
class UndersampleConfig:
    #: label column; None uses pipeline.label_column
    label_column: Optional[str] = None
    #: afterwards the smallest class is at least this fraction of the largest: each class is cut to smallest/target_ratio rows
    target_ratio: float = 1.0
    #: cut every class to at most this many rows instead (overrides target_ratio)
    max_per_class: Optional[int] = None
    #: drop derived rows (augmented, oversampled) before original rows
    prefer_originals: bool = True


class Undersample(Balancer):
    """Random undersampling of majority classes (drops are recorded as "undersampled")."""

    def __init__(self, config: UndersampleConfig):
        super().__init__(config)
        check_ratio("undersample", config.target_ratio)
        if config.max_per_class is not None and config.max_per_class < 1:
            raise ValueError(f"undersample.max_per_class must be a positive number of rows or null, got {config.max_per_class}")

    def apply(self, data, ctx: StageContext):
        column = label_column_or_none(data, self.config.label_column, ctx, "undersample")
        by_label = members_by_label(data, column) if column else {}
        if not by_label:
            return data
        if self.config.max_per_class is not None:
            cap = self.config.max_per_class
        else:
            cap = int(math.floor(min(len(v) for v in by_label.values()) / self.config.target_ratio + 1e-9))
        dropped = _excess(data, by_label, {label: cap for label in by_label}, ctx.seed, self.config.prefer_originals)
        ctx.metadata["class_counts_before"] = _counts(by_label)
        ctx.metadata["max_per_class"] = cap
        return _drop_undersampled(data, column, dropped, ctx)


# --- target distribution --------------------------------------------------------------

TOTAL_POLICIES = ("keep", "grow", "shrink")


@dataclass
class TargetDistributionConfig:
    #: wanted share of each label, e.g. {billing: 0.3, privacy: 0.1}; covers every label in the data and sums to 1 (0 removes a class)
    distribution: dict[str, float] = field(default_factory=dict)
    #: size of the result: keep (as many labelled rows as now), grow (only add rows), shrink (only drop rows), or a number of rows
    total: str = "keep"
    #: label column; None uses pipeline.label_column
    label_column: Optional[str] = None
    #: when dropping, drop derived rows (augmented, oversampled) before original rows
    prefer_originals: bool = True


class TargetDistribution(Balancer):
    """Reaches a given label distribution by oversampling and/or undersampling."""

    def __init__(self, config: TargetDistributionConfig):
        super().__init__(config)
        shares = config.distribution
        if not shares:
            raise ValueError("target_distribution.distribution must map each label to its share, e.g. {billing: 0.5, privacy: 0.5}")
        bad = {label: share for label, share in shares.items() if not isinstance(share, (int, float)) or share < 0}
        if bad:
            raise ValueError(f"target_distribution.distribution shares must be numbers >= 0, got {bad}")
        if abs(sum(shares.values()) - 1.0) > 1e-3:
            raise ValueError(f"target_distribution.distribution shares must sum to 1, they sum to {sum(shares.values()):.4g}")
        total = str(config.total)
        if total not in TOTAL_POLICIES and not (total.isdigit() and int(total) > 0):
            raise ValueError(
                f"target_distribution.total must be one of {', '.join(TOTAL_POLICIES)} or a positive number of rows, got {config.total!r}"
            )

    def targets(self, counts: dict[str, int]) -> dict[str, int]:
        shares = {str(k): float(v) for k, v in self.config.distribution.items()}
        total = str(self.config.total)
        positive = {label: share for label, share in shares.items() if share > 0}
        if total == "keep":
            size = float(sum(counts.values()))
        elif total == "grow":  # the smallest size at which no class has to lose rows
            size = max(counts.get(label, 0) / share for label, share in positive.items())
        elif total == "shrink":  # the largest size at which no class needs copies
            size = min(counts.get(label, 0) / share for label, share in positive.items())
        else:
            size = float(int(total))
        out = {label: int(round(share * size)) for label, share in shares.items()}
        if total == "grow":
            out = {label: max(n, counts.get(label, 0)) if shares[label] > 0 else 0 for label, n in out.items()}
        elif total == "shrink":
            out = {label: min(n, counts.get(label, 0)) for label, n in out.items()}
        return out

    def apply(self, data, ctx: StageContext):
        column = label_column_of(data, self.config.label_column, ctx, "target_distribution")
        by_label = members_by_label(data, column)
        shares = {str(k): float(v) for k, v in self.config.distribution.items()}
        unlisted = sorted(set(by_label) - set(shares))
        if unlisted:
            raise ValueError(
                f"target_distribution: labels {unlisted} are in the data but not in distribution; "
                "give each a share (0 removes the class)"
            )
        empty = sorted(label for label, share in shares.items() if share > 0 and label not in by_label)
        if empty:
            raise ValueError(
                f"target_distribution: labels {empty} have a share but no rows in the data, so they cannot be "
                "oversampled; fix the label names or give them share 0"
            )
        counts = _counts(by_label)
        targets = self.targets(counts)
        dropped = _excess(data, by_label, targets, ctx.seed, self.config.prefer_originals)
        taken = set(data[ROW_ID])
        children: list[dict[str, Any]] = []
        for label in sorted(by_label):
            missing = targets[label] - counts[label]
            if missing > 0:
                children += copies(data, copy_sources(data, by_label[label], ctx.seed), missing, taken)
        ctx.count("rows_oversampled", len(children))
        ctx.metadata["class_counts_before"] = counts
        ctx.metadata["class_targets"] = dict(sorted(targets.items()))
        data = _drop_undersampled(data, column, dropped, ctx)
        return append_rows(data, children)


# --- augment minority -------------------------------------------------------------------


@dataclass
class AugmentMinorityConfig:
    #: augmenter that writes the new rows: any registered augmenter (eda, or a plugin's)
    augmenter: str = "eda"
    #: that augmenter's parameters; its `fraction` (if it has one) defaults to 1.0 here
    params: dict[str, Any] = field(default_factory=dict)
    #: every class is raised to at least this fraction of the largest class
    target_ratio: float = 1.0
    #: augmentation rounds (each with a new seed) before a class is left short
    max_rounds: int = 10
    #: a gap the augmenter could not fill: none (leave it, reported in the metadata) or oversample (copies)
    fallback: str = "none"
    #: label column; None uses pipeline.label_column
    label_column: Optional[str] = None


class AugmentMinority(Balancer):
    """Raises minority classes to a target with any registered augmenter (new text, not copies)."""

    def __init__(self, config: AugmentMinorityConfig):
        super().__init__(config)
        check_ratio("augment_minority", config.target_ratio)
        if config.max_rounds < 1:
            raise ValueError(f"augment_minority.max_rounds must be at least 1, got {config.max_rounds}")
        if config.fallback not in ("none", "oversample"):
            raise ValueError(f"augment_minority.fallback must be 'none' or 'oversample', got {config.fallback!r}")
        if not config.augmenter:
            raise ValueError("augment_minority.augmenter must name a registered augmenter, e.g. eda")

    def _augmenter(self, ctx: StageContext) -> Any:
        params = dict(self.config.params)
        augmenter = ctx.make("augmenter", self.config.augmenter, params)
        if "fraction" not in params and hasattr(augmenter.config, "fraction"):
            # every minority row may serve as a source; the balancer decides how many rows it keeps
            augmenter = ctx.make("augmenter", self.config.augmenter, {**params, "fraction": 1.0})
        return augmenter

    def apply(self, data, ctx: StageContext):
        column = label_column_of(data, self.config.label_column, ctx, "augment_minority")
        by_label = members_by_label(data, column)
        if not by_label:
            return data
        counts = _counts(by_label)
        target = int(self.config.target_ratio * max(counts.values()))
        deficit = {label: target - n for label, n in counts.items() if n < target}
        if not deficit:
            ctx.metadata.update({"augmenter": self.config.augmenter, "rounds": 0, "added": {}, "shortfall": {}})
            return data
        augmenter = self._augmenter(ctx)
        ids = data[ROW_ID]
        parents = data[PARENT_ID]
        labels = data[column]
        index_of = {row_id: i for i, row_id in enumerate(ids)}
        label_of_row = {ids[i]: label for label, members in by_label.items() for i in members}
        text_columns = [c for c in (*CANONICAL_TEXT_COLUMNS, MESSAGES) if c in data.column_names]
        # a variant identical to a row we already have would only be a copy
        text_values = {c: data[c] for c in text_columns}
        seen_texts = {
            self._text_key({c: text_values[c][i] for c in text_columns}, text_columns)
            for members in by_label.values()
            for i in members
        }
        taken = set(ids)
        children: list[dict[str, Any]] = []
        added: dict[str, int] = defaultdict(int)
        rounds = 0
        for round_number in range(1, self.config.max_rounds + 1):
            if not deficit:
                break
            rounds = round_number
            sources = sorted(
                i
                for label in deficit
                for i in ([m for m in by_label[label] if parents[m] is None] or by_label[label])
            )
            round_seed = row_rng(ctx.seed, "augment_minority", round_number).randrange(2**31)
            sub = StageContext(
                seed=round_seed, num_proc=ctx.num_proc, work_dir=ctx.work_dir, label_column=column, factory=ctx.make
            )
            subset = take_rows(data, sources)
            produced = augmenter.apply(subset, sub)
            source_ids = set(subset[ROW_ID])
            candidates: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for row in produced:
                if row[ROW_ID] in source_ids:
                    continue
                parent = row.get(PARENT_ID)
                if parent not in source_ids:
                    raise ValueError(
                        f"augment_minority: augmenter '{self.config.augmenter}' returned row {row[ROW_ID]!r} whose "
                        f"parent_id {parent!r} is not one of the rows it was given"
                    )
                key = self._text_key(row, text_columns)
                if key in seen_texts:
                    ctx.count("duplicate variants skipped")
                    continue
                seen_texts.add(key)
                # the data's own columns only (an augmenter may add its own), and the
                # parent's class whatever the augmenter did to the label
                child = {c: row.get(c) for c in data.column_names}
                child[column] = labels[index_of[parent]]
                candidates[label_of_row[parent]].append(child)
            if not candidates and not any(r[ROW_ID] not in source_ids for r in produced):
                break  # the augmenter cannot change these rows at all; more rounds would not help
            for label in sorted(candidates):
                if label not in deficit:
                    continue
                pool = sorted(candidates[label], key=lambda r: (row_rng(ctx.seed, r[ROW_ID], round_number).random(), r[ROW_ID]))
                for row in pool[: deficit[label]]:
                    row[ROW_ID] = self._unique_id(row[ROW_ID], row[PARENT_ID], taken)
                    children.append(row)
                    added[label] += 1
                    if len(ctx.examples) < 3 and text_columns:
                        before = text_values[text_columns[0]][index_of[row[PARENT_ID]]]
                        ctx.example(row[ROW_ID], str(before), str(row[text_columns[0]]))
                deficit[label] -= min(len(pool), deficit[label])
            deficit = {label: n for label, n in deficit.items() if n > 0}
        shortfall = dict(deficit)
        if shortfall and self.config.fallback == "oversample":
            for label in sorted(shortfall):
                children += copies(data, copy_sources(data, by_label[label], ctx.seed), shortfall[label], taken)
            ctx.count("rows_oversampled (fallback)", sum(shortfall.values()))
        ctx.count("rows_augmented", sum(added.values()))
        ctx.metadata.update(
            {
                "augmenter": self.config.augmenter,
                "rounds": rounds,
                "target_per_class": target,
                "added": dict(sorted(added.items())),
                "shortfall": dict(sorted(shortfall.items())),
                "fallback": self.config.fallback,
            }
        )
        return append_rows(data, children)

    @staticmethod
    def _text_key(row: dict[str, Any], columns: list[str]) -> str:
        return "\x1f".join(" ".join(str(row.get(c) or "").split()) for c in columns)

    @staticmethod
    def _unique_id(proposed: str, parent: str, taken: set[str]) -> str:
        """Keep the augmenter's id when it is new; otherwise the next free number of the
        same operation (``p~eda1`` taken in round 1 becomes ``p~eda2`` in round 2)."""
        if proposed not in taken and proposed.startswith(f"{parent}~"):
            taken.add(proposed)
            return proposed
        suffix = proposed[len(parent) + 1 :] if proposed.startswith(f"{parent}~") else "aug"
        op = _SUFFIX.match(suffix).group(1) or "aug"  # type: ignore[union-attr]
        return free_child_id(parent, op, taken)


# --- class weights ----------------------------------------------------------------------

WEIGHT_METHODS = ("balanced", "inverse_sqrt")


@dataclass
class ClassWeightsConfig:
    #: balanced: n / (k * count); inverse_sqrt: the square root of that (a milder correction)
    method: str = "balanced"
    #: label column; None uses pipeline.label_column
    label_column: Optional[str] = None


class ClassWeights(Balancer):
    """Computes per-class loss weights for the trainer (metadata class_weights); rows unchanged."""

    def __init__(self, config: ClassWeightsConfig):
        super().__init__(config)
        if config.method not in WEIGHT_METHODS:
            raise ValueError(f"class_weights.method must be one of {', '.join(WEIGHT_METHODS)}, got {config.method!r}")

    def apply(self, data, ctx: StageContext):
        column = label_column_of(data, self.config.label_column, ctx, "class_weights")
        counts = _counts(members_by_label(data, column))
        ctx.metadata["class_weights"] = class_weights(counts, self.config.method)
        ctx.metadata["class_counts"] = counts
        ctx.metadata["method"] = self.config.method
        ctx.count("classes", len(counts))
        return data


COMPONENTS = [
    ("balancer", Component("oversample", Oversample, OversampleConfig)),
    ("balancer", Component("undersample", Undersample, UndersampleConfig)),
    ("balancer", Component("target_distribution", TargetDistribution, TargetDistributionConfig)),
    ("balancer", Component("augment_minority", AugmentMinority, AugmentMinorityConfig)),
    ("balancer", Component("class_weights", ClassWeights, ClassWeightsConfig)),
]
