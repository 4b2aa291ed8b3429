"""The ``augment_minority`` balancer: raises minority classes with a registered augmenter
(new text, not copies), optionally falling back to copies."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

from tunelab.api import CANONICAL_TEXT_COLUMNS, MESSAGES, PARENT_ID, ROW_ID, Balancer, StageContext
from tunelab_builtin._lib.rows import append_rows, row_rng, take_rows
from tunelab_builtin.balancers._labels import check_ratio, class_counts, label_column_of, members_by_label
from tunelab_builtin.balancers._resample import copies, copy_sources, free_child_id

_SUFFIX = re.compile(r"^(.*?)(\d*)$")


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
        counts = class_counts(by_label)
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
                i for label in deficit for i in ([m for m in by_label[label] if parents[m] is None] or by_label[label])
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
                pool = sorted(
                    candidates[label], key=lambda r: (row_rng(ctx.seed, r[ROW_ID], round_number).random(), r[ROW_ID])
                )
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
