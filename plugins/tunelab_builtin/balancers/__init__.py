"""Balancers: change the label distribution by adding or dropping rows.

Rows without a label (None or blank) are never counted, copied or dropped by a
balancer. Every random choice is drawn per row from the seed and the row id
(:func:`tunelab_builtin._lib.rows.row_rng`), so the result does not depend on row order.
"""

from tunelab.api import Component
from tunelab_builtin.balancers.augment_minority import AugmentMinority, AugmentMinorityConfig
from tunelab_builtin.balancers.class_weights import ClassWeights, ClassWeightsConfig
from tunelab_builtin.balancers.oversample import Oversample, OversampleConfig
from tunelab_builtin.balancers.target_distribution import TargetDistribution, TargetDistributionConfig
from tunelab_builtin.balancers.undersample import Undersample, UndersampleConfig

COMPONENTS = [
    Component("oversample", Oversample, OversampleConfig),
    Component("undersample", Undersample, UndersampleConfig),
    Component("target_distribution", TargetDistribution, TargetDistributionConfig),
    Component("augment_minority", AugmentMinority, AugmentMinorityConfig),
    Component("class_weights", ClassWeights, ClassWeightsConfig),
]
