"""Validation of a composed run config, before any work starts.

Hydra composes the config from the groups in ``conf/`` (and plugin search paths).
:func:`validate` then checks every component section against the registry: the
component must be registered (so a YAML file can only ever select registered code,
never name an arbitrary callable), every key must be a field of the component's config
schema, and every value must have the field's type. Errors name the key, the valid
choices, and the config file or command-line override the value came from.

The modules: :mod:`~tunelab.config.origins` (where a value came from),
:mod:`~tunelab.config.schema` (:class:`RunConfig`, :class:`ConfigError`,
:func:`typed_config`), :mod:`~tunelab.config.validation` (:func:`validate`),
:mod:`~tunelab.config.checks` (training ranges, ``trust_remote_code``, sources and
``cache_dir``) and :mod:`~tunelab.config.resolvers` (``${pkg_file:...}``). This package
re-exports their public names.
"""

from tunelab.config.checks import (
    COMMAND_LINE_ONLY_KEYS,
    PRECISIONS,
    check_cache_dir,
    check_sources,
    default_cache_dir,
    directory_problem,
)
from tunelab.config.origins import Origin
from tunelab.config.resolvers import package_file, register_resolvers
from tunelab.config.schema import ConfigError, RunConfig, Selected, did_you_mean, typed_config
from tunelab.config.validation import PIPELINE_KEYS, TOP_LEVEL_KEYS, check_resume, validate

__all__ = [
    "COMMAND_LINE_ONLY_KEYS",
    "PIPELINE_KEYS",
    "PRECISIONS",
    "TOP_LEVEL_KEYS",
    "ConfigError",
    "Origin",
    "RunConfig",
    "Selected",
    "check_cache_dir",
    "check_resume",
    "check_sources",
    "default_cache_dir",
    "did_you_mean",
    "directory_problem",
    "package_file",
    "register_resolvers",
    "typed_config",
    "validate",
]
