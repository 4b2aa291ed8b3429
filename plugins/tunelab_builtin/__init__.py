"""tunelab's built-in components.

Registered through the ``tunelab`` entry-point group exactly like a third-party plugin
(see ``[project.entry-points.tunelab]`` in pyproject.toml). Importing this module is
cheap: the component modules import torch/transformers/trl only inside methods.
"""

from tunelab.api import API_VERSION, Component, NoConfig, hookimpl

from tunelab_builtin import augment_balance_split as abs_
from tunelab_builtin import cleaners, collectors, models, trackers, training

TUNELAB_API_VERSION = API_VERSION


@hookimpl
def tunelab_register_collectors():
    return [
        Component("jsonl", collectors.JsonlCollector, collectors.FileSourceConfig),
        Component("csv", collectors.CsvCollector, collectors.CsvSourceConfig),
        Component("parquet", collectors.ParquetCollector, collectors.FileSourceConfig),
    ]


@hookimpl
def tunelab_register_cleaners():
    return [
        Component("normalize", cleaners.Normalize, cleaners.NormalizeConfig),
        Component("drop_missing", cleaners.DropMissing, cleaners.DropMissingConfig),
        Component("exact_dedup", cleaners.ExactDedup, cleaners.ExactDedupConfig),
    ]


@hookimpl
def tunelab_register_augmenters():
    return [Component("eda", abs_.Eda, abs_.EdaConfig)]


@hookimpl
def tunelab_register_balancers():
    return [Component("oversample", abs_.Oversample, abs_.OversampleConfig)]


@hookimpl
def tunelab_register_splitters():
    return [Component("stratified", abs_.StratifiedSplit, abs_.StratifiedSplitConfig)]


@hookimpl
def tunelab_register_models():
    return [
        Component("tiny", models.TinyModel, models.TinyModelConfig),
        Component("smollm2", models.SmolLM2, models.SmolLM2Config),
        Component("hf", models.HfModel, models.HfModelConfig),
    ]


@hookimpl
def tunelab_register_methods():
    return [Component("sft", training.Sft, training.SftConfig)]


@hookimpl
def tunelab_register_pefts():
    return [
        Component("none", training.FullFineTuning, NoConfig),
        Component("lora", training.Lora, training.LoraSettings),
    ]


@hookimpl
def tunelab_register_evaluators():
    return [Component("lm", training.LmEvaluator, training.LmEvalConfig)]


@hookimpl
def tunelab_register_trackers():
    return [
        Component("csv", trackers.CsvTracker, trackers.CsvTrackerConfig),
        Component("wandb", trackers.WandbTracker, trackers.WandbTrackerConfig),
    ]
