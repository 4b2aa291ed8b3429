"""tunelab's built-in components.

Registered through the ``tunelab`` entry-point group exactly like a third-party plugin
(see ``[project.entry-points.tunelab]`` in pyproject.toml). One package per kind of
component (its plural; ``peft`` keeps its config-group name), one module per component,
and each package's ``COMPONENTS`` list is what its registration hook returns. Helpers
shared across kinds live in ``_lib``. Importing the packages is cheap: the components
import torch/transformers/trl only inside their methods.
"""

from __future__ import annotations

from tunelab.api import API_VERSION, hookimpl
from tunelab_builtin import (
    annotators,
    augmenters,
    balancers,
    cleaners,
    collectors,
    evaluators,
    methods,
    models,
    peft,
    splitters,
    trackers,
)

TUNELAB_API_VERSION = API_VERSION


@hookimpl
def tunelab_register_collectors():
    return collectors.COMPONENTS


@hookimpl
def tunelab_register_cleaners():
    return cleaners.COMPONENTS


@hookimpl
def tunelab_register_annotators():
    return annotators.COMPONENTS


@hookimpl
def tunelab_register_augmenters():
    return augmenters.COMPONENTS


@hookimpl
def tunelab_register_balancers():
    return balancers.COMPONENTS


@hookimpl
def tunelab_register_splitters():
    return splitters.COMPONENTS


@hookimpl
def tunelab_register_models():
    return models.COMPONENTS


@hookimpl
def tunelab_register_methods():
    return methods.COMPONENTS


@hookimpl
def tunelab_register_pefts():
    return peft.COMPONENTS


@hookimpl
def tunelab_register_evaluators():
    return evaluators.COMPONENTS


@hookimpl
def tunelab_register_trackers():
    return trackers.COMPONENTS
