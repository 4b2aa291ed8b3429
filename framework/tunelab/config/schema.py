"""The typed result of validation (:class:`RunConfig`, :class:`Selected`), the error every
config check raises (:class:`ConfigError`), and :func:`typed_config`, which checks a
section's values against a component's config dataclass and builds it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from tunelab.api import TrainSettings
from tunelab.config.origins import Origin
from tunelab.errors import TunelabError
from tunelab.plugins import Registry


class ConfigError(TunelabError):
    """The config cannot run. The message says which key, why, and what would fix it."""


@dataclass
class Selected:
    """A validated component: which one, and its typed config."""

    kind: str
    name: str
    config: Any
    #: the step id for pipeline steps (``name`` or ``name@alias``); the name otherwise
    step: str = ""
    #: (registered component, instance) of the first :meth:`instantiate`
    _built: tuple[Any, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def instantiate(self, registry: Registry) -> Any:
        """The component built from :attr:`config`, once: validation builds it (its constructor
        checks the values) and the run uses that instance (the data pipeline, the trackers,
        training). Built again only for another registered component of this name."""
        registered = registry.get(self.kind, self.name)
        if self._built is None or self._built[0] != registered:
            self._built = (registered, registered.create(self.config))
        return self._built[1]


@dataclass
class RunConfig:
    """A run config after validation: everything typed, nothing unchecked."""

    collector: Selected
    steps: dict[str, list[Selected]]
    splitter: Selected
    model: Selected
    method: Selected
    peft: Selected
    evaluator: Selected
    trackers: list[Selected]
    train: TrainSettings
    seed: int
    #: seed of data preparation (split, sampling, augmentation); fixed while ``seed`` varies,
    #: so every seed of a sweep trains and tests on the same split
    data_seed: int
    cache_dir: Path
    num_proc: int
    label_column: str
    #: the resolved config as plain data (secrets not yet removed)
    resolved: dict[str, Any]
    #: ``pipeline.label_case``: labels differing only by case/spacing are kept apart (keep) or merged (fold)
    label_case: str = "keep"


def typed_config(
    schema: type | None, values: dict[str, Any], *, kind: str, name: str, origin: Origin, group: str, key_prefix: str
) -> Any:
    """Check ``values`` against the dataclass ``schema`` and return an instance of it."""
    fields = {f.name: f for f in dataclasses.fields(schema)} if schema is not None else {}
    for key in values:
        if key not in fields:
            valid = ", ".join(sorted(fields)) or "(this component takes no parameters)"
            where = origin.describe(group, f"{key_prefix}{key}")
            raise ConfigError(
                f"unknown key '{key_prefix}{key}' for {kind} '{name}' (from {where}). Valid keys: {valid}."
                f"{did_you_mean(key, fields)}"
            )
    if schema is None:
        return None
    hints = _type_hints(schema)

    def bad_value(key: str, problem: str) -> ConfigError:
        expected = _type_name(hints.get(key.split(".")[0], "?"))
        where = origin.describe(group, f"{key_prefix}{key}")
        return ConfigError(
            f"bad value for '{key_prefix}{key}' of {kind} '{name}' (from {where}): {problem}. "
            f"Expected type: {expected}."
        )

    for key, value in values.items():  # OmegaConf reads any integer as a bool (2 -> True); only 0/1 are bools
        if (
            _is_bool_type(hints.get(key))
            and not isinstance(value, bool)
            and str(value).strip().lstrip("+-").isdigit()
            and str(value).strip() not in ("0", "1")
        ):
            raise bad_value(key, f"{value!r} is not true or false")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        result = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or _failing_key(schema, values) or "?"
        key = str(key)
        if isinstance(exc, MissingMandatoryValue):
            where = origin.describe(group, f"{key_prefix}{key}")
            raise ConfigError(
                f"missing value for '{key_prefix}{key}' of {kind} '{name}' (from {where}): it has no default. "
                f"Set it: {key_prefix}{key}=... (expected type: {_type_name(hints.get(key.split('.')[0], '?'))})"
            ) from None
        raise bad_value(key, str(getattr(exc, "msg", exc)).strip().splitlines()[0]) from None
    except (ValueError, TypeError) as exc:  # a check in the config dataclass (__post_init__)
        where = origin.describe(group, key_prefix.rstrip(".") or group)
        raise ConfigError(f"{kind} '{name}' (from {where}): {exc}") from None
    for f in dataclasses.fields(schema):  # NaN and infinity are never meant: they poison losses and comparisons
        bad = _non_finite(getattr(result, f.name, None))
        if bad is not None:
            raise bad_value(f.name, f"{bad} is not a finite number")
    return result


def did_you_mean(word: Any, choices: Any) -> str:
    """`` Did you mean 'x'?`` for the closest of ``choices`` to a misspelt ``word``, else ''."""
    import difflib

    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{matches[0]}'?" if matches else ""


def _type_hints(schema: type) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(schema)
    except Exception:  # an annotation that does not evaluate: fall back to what the field says
        return {f.name: f.type for f in dataclasses.fields(schema)}


def _type_name(tp: Any) -> str:
    name = getattr(tp, "__name__", None) if isinstance(tp, type) else None
    return name or str(tp).replace("typing.", "")


def _is_bool_type(tp: Any) -> bool:
    import types
    import typing

    return tp is bool or (typing.get_origin(tp) in (typing.Union, types.UnionType) and bool in typing.get_args(tp))


def _non_finite(value: Any) -> float | None:
    """The first NaN or infinite float in a config value (lists, dicts and nested dataclasses too)."""
    import math

    if isinstance(value, float):
        return None if math.isfinite(value) else value
    if isinstance(value, dict):
        value = list(value.values())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    if isinstance(value, (list, tuple)):
        for item in value:
            bad = _non_finite(item)
            if bad is not None:
                return bad
    return None


def _failing_key(schema: type, values: dict[str, Any]) -> str | None:
    """The key whose value OmegaConf refused, when its error does not say (a list merged into a dict)."""
    for key, value in values.items():
        try:
            OmegaConf.merge(OmegaConf.structured(schema), {key: value})
        except OmegaConfBaseException:
            return key
    return None
