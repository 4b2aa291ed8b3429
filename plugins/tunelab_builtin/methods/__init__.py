"""Training methods (``method=``): the objective a run trains with. Causal LMs: sft, cpt,
multitask and the preference objectives (dpo, kto, orpo, reward, rlhf); classifiers:
classify, feature and semi_supervised. orpo is registered only when the installed TRL
ships it."""

from tunelab.api import Component
from tunelab_builtin.methods.classify import Classify, ClassifyConfig
from tunelab_builtin.methods.cpt import Cpt, CptConfig
from tunelab_builtin.methods.dpo import Dpo, DpoConfig
from tunelab_builtin.methods.feature import Feature, FeatureConfig
from tunelab_builtin.methods.kto import Kto, KtoConfig
from tunelab_builtin.methods.multitask import Multitask, MultitaskConfig
from tunelab_builtin.methods.orpo import Orpo, OrpoConfig, orpo_available
from tunelab_builtin.methods.reward import Reward, RewardConfig
from tunelab_builtin.methods.rlhf import Rlhf, RlhfConfig
from tunelab_builtin.methods.semi_supervised import SemiSupervised, SemiSupervisedConfig
from tunelab_builtin.methods.sft import Sft, SftConfig

COMPONENTS = [
    Component("sft", Sft, SftConfig),
    Component("cpt", Cpt, CptConfig),
    Component("multitask", Multitask, MultitaskConfig),
    Component("classify", Classify, ClassifyConfig),
    Component("feature", Feature, FeatureConfig),
    Component("semi_supervised", SemiSupervised, SemiSupervisedConfig),
    Component("dpo", Dpo, DpoConfig),
    Component("kto", Kto, KtoConfig),
    Component("reward", Reward, RewardConfig),
    Component("rlhf", Rlhf, RlhfConfig),
]
if orpo_available():
    COMPONENTS.append(Component("orpo", Orpo, OrpoConfig))
