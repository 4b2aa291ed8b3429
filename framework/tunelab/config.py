"""Validation of a composed run config, before any work starts.

Hydra composes the config from the groups in ``conf/`` (and plugin search paths).
:func:`validate` then checks every component section against the registry: the
component must be registered (so a YAML file can only ever select registered code,
never name an arbitrary callable), every key must be a field of the component's config
schema, and every value must have the field's type. Errors name the key, the valid
choices, and the config file or command-line override the value came from.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tunelab.api import TrainSettings
from tunelab.errors import TunelabError
from tunelab.plugins import Registry, UnknownComponentError

#: Top-level keys of a run config. Anything else is a typo and fails validation.
TOP_LEVEL_KEYS = {
    "data",
    "pipeline",
    "model",
    "method",
    "peft",
    "eval",
    "tracker",
    "experiment",
    "train",
    "seed",
    "data_seed",
    "cache_dir",
    "num_proc",
    "resume",
    "hydra",
}
PIPELINE_STAGES = ("clean", "annotate", "augment", "balance")
_STAGE_KIND = {"clean": "cleaner", "annotate": "annotator", "augment": "augmenter", "balance": "balancer"}
PIPELINE_KEYS = set(PIPELINE_STAGES) | {"split", "params", "label_column"}
#: Keys whose values are secrets: removed from every saved or tracked config.
SECRET_WORDS = {"password", "passwd", "secret", "token", "apikey", "salt", "credentials"}


def is_secret_key(key: Any) -> bool:
    """``db_password``, ``hf_token``, ``wandb_api_key``, ``salt``: yes. ``max_new_tokens``: no."""
    words = str(key).lower().replace("-", "_").split("_")
    return bool(SECRET_WORDS & set(words)) or "api_key" in str(key).lower()


class ConfigError(TunelabError):
    """The config cannot run. The message says which key, why, and what would fix it."""


@dataclass(frozen=True)
class Origin:
    """Where config values came from: selected group options, their files, overrides."""

    choices: dict[str, str] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()

    @classmethod
    def from_hydra(cls) -> "Origin":
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return cls()
        hc = HydraConfig.get()
        choices = {k: str(v) for k, v in hc.runtime.choices.items() if not k.startswith("hydra/")}
        sources = tuple(
            f"{s.schema}://{s.path}" for s in hc.runtime.config_sources if s.schema in ("file", "pkg")
        )
        return cls(choices, sources, tuple(hc.overrides.task))

    def file_of(self, group: str) -> str | None:
        """Path of the YAML file selected for ``group`` (e.g. ``peft/lora.yaml``)."""
        choice = self.choices.get(group)
        if not choice or choice == "None":
            return None
        for source in self.sources:
            schema, _, path = source.partition("://")
            if schema == "file":
                candidate = Path(path) / group / f"{choice}.yaml"
                if candidate.exists():
                    return str(candidate)
            elif schema == "pkg":
                import importlib.resources

                try:
                    candidate = importlib.resources.files(path.replace("/", ".")) / group / f"{choice}.yaml"
                    if candidate.is_file():
                        return str(candidate)
                except ModuleNotFoundError:
                    continue
        return f"{group}/{choice}.yaml"

    def describe(self, group: str, dotted_key: str) -> str:
        """'the command-line override X' or 'conf/group/choice.yaml' for a key."""
        for override in self.overrides:
            key = override.split("=", 1)[0].lstrip("+~")
            if key == group:  # selects the group's file; the values come from that file
                continue
            if key == dotted_key or dotted_key.startswith(key + "."):
                return f"the command-line override '{override}'"
        where = self.file_of(group)
        if where:
            return f"{where} (selected by {group}={self.choices.get(group)})"
        return f"the '{group}' section of the primary config"


@dataclass
class Selected:
    """A validated component: which one, and its typed config."""

    kind: str
    name: str
    config: Any
    #: the step id for pipeline steps (``name`` or ``name@alias``); the name otherwise
    step: str = ""

    def instantiate(self, registry: Registry) -> Any:
        return registry.get(self.kind, self.name).cls(self.config)


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
            )
    if schema is None:
        return None
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?"
        expected = fields[str(key).split(".")[0]].type if str(key).split(".")[0] in fields else "?"
        where = origin.describe(group, f"{key_prefix}{key}")
        raise ConfigError(
            f"bad value for '{key_prefix}{key}' of {kind} '{name}' (from {where}): {exc.msg if hasattr(exc, 'msg') else exc}. "
            f"Expected type: {getattr(expected, '__name__', expected)}."
        ) from None
    except (ValueError, TypeError) as exc:  # a check in the config dataclass (__post_init__)
        where = origin.describe(group, key_prefix.rstrip(".") or group)
        raise ConfigError(f"{kind} '{name}' (from {where}): {exc}") from None


def _section(registry: Registry, origin: Origin, group: str, kind: str, section: Any) -> Selected:
    if not isinstance(section, dict) or "name" not in section:
        where = origin.file_of(group) or f"group '{group}'"
        raise ConfigError(
            f"'{group}' must be a mapping with a 'name' key naming a registered {kind} (from {where}). "
            f"Registered {kind}s: {', '.join(registry.names(kind))}. Select one with {group}=<option>."
        )
    values = dict(section)
    name = str(values.pop("name"))
    try:
        component = registry.get(kind, name)
    except UnknownComponentError as exc:
        raise ConfigError(f"{group}.name: {exc} (from {origin.describe(group, f'{group}.name')}).") from None
    config = typed_config(
        component.config_schema,
        values,
        kind=kind,
        name=name,
        origin=origin,
        group=group,
        key_prefix=f"{group}.",
    )
    return Selected(kind, name, config, step=name)


def _pipeline(registry: Registry, origin: Origin, pipeline: dict[str, Any]) -> tuple[dict[str, list[Selected]], Selected]:
    unknown = set(pipeline) - PIPELINE_KEYS
    if unknown:
        raise ConfigError(
            f"unknown key 'pipeline.{sorted(unknown)[0]}' (from {origin.describe('pipeline', 'pipeline.' + sorted(unknown)[0])}). "
            f"Valid keys: {', '.join(sorted(PIPELINE_KEYS))}."
        )
    params = pipeline.get("params") or {}
    steps: dict[str, list[Selected]] = {}
    for stage in PIPELINE_STAGES:
        kind = _STAGE_KIND[stage]
        entries = pipeline.get(stage) or []
        if not isinstance(entries, list):
            raise ConfigError(
                f"pipeline.{stage} must be a list of {kind} names, got {entries!r} "
                f"(from {origin.describe('pipeline', 'pipeline.' + stage)}). Example: pipeline.{stage}=[{','.join(registry.names(kind)[:2])}]"
            )
        seen: set[str] = set()
        selected = []
        for step_id in entries:
            step_id = str(step_id)
            if step_id in seen:
                raise ConfigError(
                    f"pipeline.{stage} lists '{step_id}' twice; give the second one an alias "
                    f"('{step_id}@2') and its parameters under pipeline.params.{step_id}@2"
                )
            seen.add(step_id)
            name = step_id.split("@", 1)[0]
            try:
                component = registry.get(kind, name)
            except UnknownComponentError as exc:
                raise ConfigError(
                    f"pipeline.{stage}: {exc} (from {origin.describe('pipeline', 'pipeline.' + stage)})."
                ) from None
            values = params.get(step_id) or {}
            config = typed_config(
                component.config_schema,
                dict(values),
                kind=kind,
                name=name,
                origin=origin,
                group="pipeline",
                key_prefix=f"pipeline.params.{step_id}.",
            )
            selected.append(Selected(kind, name, config, step=step_id))
        steps[stage] = selected
    split = pipeline.get("split")
    if not split:
        raise ConfigError(f"pipeline.split must name a splitter. Registered splitters: {', '.join(registry.names('splitter'))}")
    split_section = {"name": str(split), **dict(params.get(str(split)) or {})}
    splitter = _section(registry, origin, "pipeline", "splitter", split_section)
    return steps, splitter


def _trackers(registry: Registry, origin: Origin, trackers: Any) -> list[Selected]:
    if trackers is None:
        return []
    if not isinstance(trackers, dict):
        raise ConfigError(
            "'tracker' must be a mapping of tracker name -> settings; select trackers with "
            f"tracker=[csv,wandb]. Registered trackers: {', '.join(registry.names('tracker'))}"
        )
    selected = []
    for name, values in trackers.items():
        try:
            component = registry.get("tracker", name)
        except UnknownComponentError as exc:
            raise ConfigError(f"tracker: {exc} (from {origin.describe('tracker', f'tracker.{name}')}).") from None
        config = typed_config(
            component.config_schema,
            dict(values or {}),
            kind="tracker",
            name=name,
            origin=origin,
            group="tracker",
            key_prefix=f"tracker.{name}.",
        )
        selected.append(Selected("tracker", name, config, step=name))
    return selected


def validate(cfg: DictConfig, registry: Registry, origin: Origin | None = None) -> RunConfig:
    """Check a composed config; return the typed :class:`RunConfig` or raise :class:`ConfigError`."""
    origin = origin or Origin()
    resolved: dict[str, Any] = {}
    for key in cfg:
        if key == "hydra":  # present when composed with return_hydra_config (tests, tools)
            continue
        try:
            value = cfg[key]
            if isinstance(value, (DictConfig, ListConfig)):
                value = OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as exc:
            full_key = getattr(exc, "full_key", None) or key
            raise ConfigError(
                f"cannot resolve '{full_key}': {str(getattr(exc, 'msg', exc)).splitlines()[0]}. "
                f"Set it on the command line: {full_key}=..."
            ) from None
        resolved[str(key)] = value
    unknown = sorted(set(resolved) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown top-level key '{unknown[0]}' (from {origin.describe(unknown[0], unknown[0])}). "
            f"Valid keys: {', '.join(sorted(TOP_LEVEL_KEYS - {'hydra'}))}."
        )
    for required in ("data", "pipeline", "model", "method", "peft", "eval"):
        if resolved.get(required) is None:
            raise ConfigError(f"no '{required}' selected: add {required}=<option> (see `tunelab --help` for the options)")
    steps, splitter = _pipeline(registry, origin, resolved["pipeline"])
    train_values = dict(resolved.get("train") or {})
    train = typed_config(TrainSettings, train_values, kind="settings", name="train", origin=origin, group="train", key_prefix="train.")
    for key in ("max_train_tokens", "max_train_seconds"):
        if getattr(train, key) < 0:
            raise ConfigError(f"train.{key} must be >= 0 (0: no limit), got {getattr(train, key)}")
    if not 0.0 < train.label_fraction <= 1.0:
        raise ConfigError(
            f"train.label_fraction must be in (0, 1] (the share of training labels kept), got {train.label_fraction}"
        )
    from tunelab.train.meters import EnergySettings

    try:
        EnergySettings.from_train_settings(train)
    except ValueError as exc:
        raise ConfigError(f"train: {exc}") from None
    seed = resolved.get("seed", 0)
    if not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    data_seed = resolved.get("data_seed", 0)
    if not isinstance(data_seed, int) or isinstance(data_seed, bool):
        raise ConfigError(
            f"data_seed must be an integer, got {data_seed!r} (the split's seed; data_seed=${{seed}} ties it to seed)"
        )
    num_proc = resolved.get("num_proc") or 1
    if not isinstance(num_proc, int) or num_proc < 1:
        raise ConfigError(f"num_proc must be a positive integer, got {num_proc!r}")
    cache_dir = resolved.get("cache_dir") or default_cache_dir()
    rc = RunConfig(
        collector=_section(registry, origin, "data", "collector", resolved["data"]),
        steps=steps,
        splitter=splitter,
        model=_section(registry, origin, "model", "model", resolved["model"]),
        method=_section(registry, origin, "method", "method", resolved["method"]),
        peft=_section(registry, origin, "peft", "peft", resolved["peft"]),
        evaluator=_section(registry, origin, "eval", "evaluator", resolved["eval"]),
        trackers=_trackers(registry, origin, resolved.get("tracker")),
        train=train,
        seed=seed,
        data_seed=data_seed,
        cache_dir=Path(cache_dir).expanduser(),
        num_proc=num_proc,
        label_column=str(resolved["pipeline"].get("label_column") or "label"),
        resolved=resolved,
    )
    _check_values(rc, registry)
    return rc


def _check_values(rc: RunConfig, registry: Registry) -> None:
    """Construct every selected component once: constructors check parameter values
    (ranges, allowed words) and must be cheap, so a bad value fails before any work."""
    sections = [("data", rc.collector), ("pipeline.split", rc.splitter), ("model", rc.model), ("method", rc.method),
                ("peft", rc.peft), ("eval", rc.evaluator)]
    sections += [(f"pipeline.{stage}", s) for stage, steps in rc.steps.items() for s in steps]
    sections += [("tracker", s) for s in rc.trackers]
    for where, selected in sections:
        try:
            selected.instantiate(registry)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {selected.kind} '{selected.step}': {exc}") from None


def default_cache_dir() -> Path:
    return Path(os.environ.get("TUNELAB_CACHE_DIR") or Path.home() / ".cache" / "tunelab")


def redact_secrets(value: Any) -> Any:
    """A copy of a config with secret values replaced (keys named like passwords/tokens,
    and passwords inside URLs such as ``postgresql://user:pw@host/db``)."""
    import re

    if isinstance(value, (dict, DictConfig)):
        out = {}
        for key, item in value.items():
            if is_secret_key(key) and item not in (None, ""):
                out[key] = "***"
            else:
                out[key] = redact_secrets(item)
        return out
    if isinstance(value, (list, tuple, ListConfig)):
        return [redact_secrets(v) for v in value]
    if isinstance(value, str):
        return re.sub(r"(\b[a-zA-Z][\w+.-]*://[^:/@\s]+:)[^@\s]+(@)", r"\1***\2", value)
    return value


def package_file(spec: str) -> str:
    """``${pkg_file:package/relative/path}``: absolute path of a file shipped in an installed
    package (e.g. the bundled sample data). Only locates files; imports no code."""
    import importlib.util

    package, _, relative = spec.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"${{pkg_file:{spec}}}: package '{package}' is not installed")
    for location in found.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.exists():
            return str(candidate)
    raise ConfigError(f"${{pkg_file:{spec}}}: no file '{relative}' in package '{package}'")


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("pkg_file"):
        OmegaConf.register_new_resolver("pkg_file", package_file)
