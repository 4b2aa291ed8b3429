"""The ``group`` splitter: every row of a group (customer, thread, document) lands in the same split."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from tunelab.api import PARENT_ID, ROW_ID, Splitter, StageContext
from tunelab_builtin.splitters._assign import assemble
from tunelab_builtin.splitters._config import SPLITS, SplitSafetyConfig, check_fractions, check_safety
from tunelab_builtin.splitters._lineage import originals, root_ids


@dataclass
class GroupSplitConfig(SplitSafetyConfig):
    #: column naming the group (customer, ticket thread, document); all rows of a group land in one split
    group_column: str = "???"
    #: target fraction of the rows in validation (approximate: groups are not cut)
    validation: float = 0.1
    #: target fraction of the rows in test (approximate: groups are not cut)
    test: float = 0.1
    #: rows with an empty group value: "own" (each is a group of its own) or "error"
    missing_group: str = "own"


class GroupSplit(Splitter):
    """Group-aware split: every row of a group (customer, thread) lands in the same split."""

    def __init__(self, config: GroupSplitConfig):
        super().__init__(config)
        check_safety("group", config)
        check_fractions("group", config.validation, config.test)
        if config.missing_group not in ("own", "error"):
            raise ValueError(f"group.missing_group must be 'own' or 'error', got {config.missing_group!r}")
        if not config.group_column or config.group_column == "???":
            raise ValueError("group.group_column must name the column that holds the group, e.g. customer_id")

    def split(self, data, ctx: StageContext):
        c = self.config
        if c.group_column not in data.column_names:
            raise ValueError(
                f"group: group_column '{c.group_column}' not in the data (columns: {data.column_names}); "
                f"set pipeline.params.group.group_column"
            )
        ids = data[ROW_ID]
        values = data[c.group_column]
        members: dict[str, list[str]] = defaultdict(list)
        missing: list[str] = []
        for i in originals(data):
            value = values[i]
            if value is None or (isinstance(value, str) and not value.strip()):
                missing.append(ids[i])
                members[f"\x00{ids[i]}"].append(ids[i])  # a group of its own, never equal to a real value
            else:
                members[str(value)].append(ids[i])
        if missing and c.missing_group == "error":
            raise ValueError(
                f"group: {len(missing)} rows have no value in '{c.group_column}', e.g. {missing[:3]}; "
                "fill the column or set pipeline.params.group.missing_group=own"
            )
        # the units that move are the rows with all their derived rows
        roots = root_ids(ids, data[PARENT_ID])
        unit_size: dict[str, int] = defaultdict(int)
        for root in roots:
            unit_size[root] += 1
        groups = sorted(members)
        random.Random(ctx.seed).shuffle(groups)
        total = sum(unit_size[row_id] for group in groups for row_id in members[group])
        target = {
            "train": (1 - c.validation - c.test) * total,
            "validation": c.validation * total,
            "test": c.test * total,
        }
        filled = {name: 0 for name in SPLITS}
        assignment: dict[str, str] = {}
        group_counts = {name: 0 for name in SPLITS}
        for position, group in enumerate(groups):
            size = sum(unit_size[row_id] for row_id in members[group])
            # the split furthest below its target takes the group (ties: test, validation, train)
            split = max(("test", "validation", "train"), key=lambda s: target[s] - filled[s])
            if group_counts["train"] == 0 and position == len(groups) - 1:
                split = "train"  # never leave training empty
            filled[split] += size
            group_counts[split] += 1
            for row_id in members[group]:
                assignment[row_id] = split
        ctx.count("groups", len(groups))
        ctx.count("rows without a group (own group)", len(missing))
        ctx.metadata["groups"] = group_counts
        return assemble(data, ctx, assignment, c)
