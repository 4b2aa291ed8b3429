"""The ``random`` splitter: a seeded train/validation/test split without stratification."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tunelab.api import Splitter, StageContext
from tunelab_builtin.splitters._assign import assemble, deal_by_fraction, strata_of
from tunelab_builtin.splitters._config import SplitSafetyConfig, check_fractions, check_safety
from tunelab_builtin.splitters._empty_splits import explain_empty_splits


@dataclass
class RandomSplitConfig(SplitSafetyConfig):
    #: fraction of the original rows that go to validation
    validation: float = 0.1
    #: fraction of the original rows that go to test
    test: float = 0.1


class RandomSplit(Splitter):
    """Seeded random train/validation/test split without stratification."""

    def __init__(self, config: RandomSplitConfig):
        super().__init__(config)
        check_safety("random", config)
        check_fractions("random", config.validation, config.test)

    def split(self, data, ctx: StageContext):
        c = self.config
        strata = strata_of(data, None)
        assignment = deal_by_fraction(strata, c.validation, c.test, random.Random(ctx.seed))
        splits = assemble(data, ctx, assignment, c)
        explain_empty_splits(
            ctx,
            ctx.step or "random",
            splits,
            {"validation": c.validation, "test": c.test},
            sum(len(m) for m in strata.values()),
        )
        return splits
