"""tunelab's built-in components.

Registered through the ``tunelab`` entry-point group exactly like a third-party plugin
(see ``[project.entry-points.tunelab]`` in pyproject.toml). Every module of this package
that defines ``COMPONENTS`` — a list of ``(kind, Component)`` pairs — contributes them;
a new module needs no edit here. Importing the modules is cheap: they import
torch/transformers/trl only inside methods.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from tunelab.api import API_VERSION, KINDS, Component, hookimpl

TUNELAB_API_VERSION = API_VERSION


# While the built-ins move into one package per kind (issue 16): a kind's package holds a
# plain COMPONENTS list; a flat module still holds (kind, Component) pairs.
# (a kind's package is its plural; peft keeps its config-group name)
_KIND_OF_PACKAGE = {(kind if kind == "peft" else f"{kind}s"): kind for kind in KINDS}


@lru_cache(maxsize=1)
def _components() -> tuple[tuple[str, Component], ...]:
    found: list[tuple[str, Component]] = []
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        for entry in getattr(importlib.import_module(f"{__name__}.{module}"), "COMPONENTS", []):
            found.append(entry if isinstance(entry, tuple) else (_KIND_OF_PACKAGE[module], entry))
    return tuple(found)


def _of(kind: str) -> list[Component]:
    return [component for k, component in _components() if k == kind]


@hookimpl
def tunelab_register_collectors():
    return _of("collector")


@hookimpl
def tunelab_register_cleaners():
    return _of("cleaner")


@hookimpl
def tunelab_register_annotators():
    return _of("annotator")


@hookimpl
def tunelab_register_augmenters():
    return _of("augmenter")


@hookimpl
def tunelab_register_balancers():
    return _of("balancer")


@hookimpl
def tunelab_register_splitters():
    return _of("splitter")


@hookimpl
def tunelab_register_models():
    return _of("model")


@hookimpl
def tunelab_register_methods():
    return _of("method")


@hookimpl
def tunelab_register_pefts():
    return _of("peft")


@hookimpl
def tunelab_register_evaluators():
    return _of("evaluator")


@hookimpl
def tunelab_register_trackers():
    return _of("tracker")
