"""Splitters: partition the prepared rows into train/validation/test.

Every splitter assigns *original* rows (rows without ``parent_id``) to splits; a
derived row follows the root of its parent chain, so an augmented or oversampled copy
never sits in another split than the text it was made from. By default derived rows
whose root landed in validation/test are dropped: evaluation data stays original.

After the assignment every splitter runs the same leakage check
(:func:`tunelab_builtin.splitters._leakage.check_leakage`): validation/test rows that are
exact or near duplicates of a train row, or derived from a row in another split, are
dropped (``leakage: fix``) or only counted (``leakage: report``).
"""

from tunelab.api import Component
from tunelab_builtin.splitters.group import GroupSplit, GroupSplitConfig
from tunelab_builtin.splitters.kfold import KFold, KFoldConfig, StratifiedKFold, StratifiedKFoldConfig
from tunelab_builtin.splitters.random import RandomSplit, RandomSplitConfig
from tunelab_builtin.splitters.stratified import StratifiedSplit, StratifiedSplitConfig

COMPONENTS = [
    Component("stratified", StratifiedSplit, StratifiedSplitConfig),
    Component("random", RandomSplit, RandomSplitConfig),
    Component("group", GroupSplit, GroupSplitConfig),
    Component("kfold", KFold, KFoldConfig),
    Component("stratified_kfold", StratifiedKFold, StratifiedKFoldConfig),
]
