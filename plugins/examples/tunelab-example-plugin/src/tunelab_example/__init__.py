"""tunelab-example-plugin: one component of four kinds, registered through the ``tunelab``
entry-point group exactly like tunelab's built-ins.

- cleaner ``min_words``: drops rows whose text is too short, each with a ledger reason
- augmenter ``greeting_prefix``: adds copies of rows whose prompt opens with a greeting
- peft ``lora_attention_only``: LoRA on the attention projections only (PEFT LoraConfig)
- tracker ``jsonl``: every metric as one JSON line in the run directory

Its config group files (``peft/lora_attention_only.yaml``, ``tracker/jsonl.yaml``,
``augment/greeting_prefix.yaml``, ``pipeline/min_words.yaml``) are in ``conf/`` and reach
Hydra through :func:`tunelab_config_search_paths`. Importing this module is cheap: torch,
peft and datasets are imported inside the methods that use them.
"""

from __future__ import annotations

from tunelab.api import Component, hookimpl
from tunelab_example.adapters import LoraAttentionOnly, LoraAttentionOnlyConfig
from tunelab_example.augmenters import GreetingPrefix, GreetingPrefixConfig
from tunelab_example.cleaners import MinWords, MinWordsConfig
from tunelab_example.trackers import JsonlTracker, JsonlTrackerConfig

#: The tunelab plugin API this package was written for (tunelab.api.API_VERSION). tunelab
#: refuses, with a warning naming this package, to load it under a different major version.
TUNELAB_API_VERSION = "1.0"

#: Where the config group files are: a Hydra search path (a package of this distribution).
CONFIG_SEARCH_PATH = "pkg://tunelab_example.conf"

__all__ = [
    "CONFIG_SEARCH_PATH",
    "TUNELAB_API_VERSION",
    "GreetingPrefix",
    "GreetingPrefixConfig",
    "JsonlTracker",
    "JsonlTrackerConfig",
    "LoraAttentionOnly",
    "LoraAttentionOnlyConfig",
    "MinWords",
    "MinWordsConfig",
]


@hookimpl
def tunelab_register_cleaners():
    return [Component("min_words", MinWords, MinWordsConfig)]


@hookimpl
def tunelab_register_augmenters():
    return [Component("greeting_prefix", GreetingPrefix, GreetingPrefixConfig)]


@hookimpl
def tunelab_register_pefts():
    return [Component("lora_attention_only", LoraAttentionOnly, LoraAttentionOnlyConfig)]


@hookimpl
def tunelab_register_trackers():
    return [Component("jsonl", JsonlTracker, JsonlTrackerConfig)]


@hookimpl
def tunelab_config_search_paths():
    return [CONFIG_SEARCH_PATH]
