"""Evaluators (``eval=``): score the trained model on a held-out split. ``lm`` (causal LMs),
``masked_lm`` (encoders after cpt), ``classification`` (classifiers) and ``preference``
(policies and reward models on prompt/chosen/rejected pairs)."""

from tunelab.api import Component
from tunelab_builtin.evaluators.classification import ClassificationEvalConfig, ClassificationEvaluator
from tunelab_builtin.evaluators.lm import LmEvalConfig, LmEvaluator
from tunelab_builtin.evaluators.masked_lm import MaskedLmEvalConfig, MaskedLmEvaluator
from tunelab_builtin.evaluators.preference import PreferenceEvalConfig, PreferenceEvaluator

COMPONENTS = [
    Component("lm", LmEvaluator, LmEvalConfig),
    Component("masked_lm", MaskedLmEvaluator, MaskedLmEvalConfig),
    Component("classification", ClassificationEvaluator, ClassificationEvalConfig),
    Component("preference", PreferenceEvaluator, PreferenceEvalConfig),
]
