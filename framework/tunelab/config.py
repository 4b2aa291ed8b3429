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
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

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
PIPELINE_KEYS = set(PIPELINE_STAGES) | {"split", "params", "label_column", "label_case"}
from tunelab.data.labels import LABEL_CASES  # noqa: E402  values of pipeline.label_case
# Keys whose values are secrets are masked in every saved or tracked config (tunelab.redaction).
from tunelab import redaction as _redaction  # noqa: E402

SECRET_WORDS = _redaction.SECRET_WORDS
is_secret_key = _redaction.is_secret_key
redact_secrets = _redaction.redact_secrets
redact_text = _redaction.redact_text
#: Keys that make a component run code it downloads or finds next to a model; a config file
#: cannot turn them on, only the user's own command line (see :func:`_check_remote_code`).
COMMAND_LINE_ONLY_KEYS = ("trust_remote_code",)


class ConfigError(TunelabError):
    """The config cannot run. The message says which key, why, and what would fix it."""


@dataclass(frozen=True)
class Origin:
    """Where config values came from: selected group options, their files, overrides."""

    choices: dict[str, str] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    #: how Hydra composed the config (every config source as (provider, url), the primary
    #: config's name, the task overrides, the run mode), to find the file that set a key
    #: (:meth:`file_setting`)
    composition: tuple[Any, ...] | None = field(default=None, compare=False, repr=False)

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
        # the search path as composed (hydra.searchpath and --config-dir included)
        search_path = tuple((s.provider, f"{s.schema}://{s.path}") for s in hc.runtime.config_sources)
        task = [o for o in OmegaConf.to_container(hc.overrides.task, resolve=False)]
        composition = (search_path, hc.job.config_name, task, hc.mode)
        # unresolved: an override such as seed=${nope} is reported by validate(), not here
        return cls(choices, sources, tuple(OmegaConf.to_container(hc.overrides.task, resolve=False)), composition)

    def _config_files(self) -> list[tuple[str, str, str, Any]]:
        """(file, group=option or '', package, content) of every config file Hydra merged
        (tunelab's and plugins' groups, a ``--config-dir``, the primary config), in merge
        order: a later one's value wins. Computed once, when an error names a file."""
        if "_files" in self.__dict__:
            return self.__dict__["_files"]
        files: list[tuple[str, str, str, Any]] = []
        if self.composition is not None:
            from hydra._internal.config_loader_impl import ConfigLoaderImpl
            from hydra._internal.config_search_path_impl import ConfigSearchPathImpl

            search_path, config_name, overrides, mode = self.composition
            try:
                path = ConfigSearchPathImpl()
                for provider, url in search_path:
                    path.append(provider, url)
                loader = ConfigLoaderImpl(path)
                for default in loader.compute_defaults_list(config_name, list(overrides), mode).defaults:
                    package = default.package or ""
                    if default.config_path is None or package == "hydra" or package.startswith("hydra."):
                        continue
                    result = loader.repository.load_config(default.config_path)
                    if result is None or result.is_schema_source:
                        continue
                    content = OmegaConf.to_container(result.config, resolve=False)
                    if isinstance(content, dict):
                        content.pop("defaults", None)
                    group, _, option = default.config_path.rpartition("/")
                    selected = f"{group.replace('/', '.')}={option}" if group else ""
                    files.append((_source_file(result.path, default.config_path), selected, package, content))
            except Exception:  # naming a file is a courtesy: never let it hide the error being reported
                files = []
        self.__dict__["_files"] = files  # frozen dataclass: cache outside the fields
        return files

    def file_setting(self, dotted_key: str) -> str | None:
        """'FILE (selected by GROUP=OPTION)' of the last config file that sets ``dotted_key``
        (or a key inside it), e.g. an experiment preset that sets ``pipeline.params.x``; None
        when no file does (or Hydra's composition is not known)."""
        parts = dotted_key.split(".")
        for path, selected, package, content in reversed(self._config_files()):
            prefix = package.split(".") if package else []
            if parts[: len(prefix)] != prefix:
                continue
            node = content
            for part in parts[len(prefix):]:
                if not isinstance(node, dict) or part not in node:
                    break
                node = node[part]
            else:
                return f"{path} (selected by {selected})" if selected else f"{path} (the primary config)"
        return None

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

    def from_command_line(self, dotted_key: str) -> bool:
        """Whether a command-line override sets ``dotted_key`` or a section holding it (an
        override that selects a group's file, ``model=hf``, sets nothing itself)."""
        for override in self.overrides:
            key = override.split("=", 1)[0].lstrip("+~")
            if key in self.choices or key.startswith("hydra"):  # a config group selection
                continue
            if key == dotted_key or dotted_key.startswith(key + "."):
                return True
        return False

    def describe(self, group: str, dotted_key: str) -> str:
        """'the command-line override X' or 'conf/group/choice.yaml' for a key."""
        for override in reversed(self.overrides):  # the last override of a key is the one that counts
            key = override.split("=", 1)[0].lstrip("+~")
            if key == group:  # selects the group's file; the values come from that file
                continue
            # the override sets this key, a section holding it, or a key inside it (tracker.x for tracker.x.y=1)
            if key == dotted_key or dotted_key.startswith(key + ".") or ("." in dotted_key and key.startswith(dotted_key + ".")):
                return f"the command-line override '{redact_text(override)}'"
        setting = self.file_setting(dotted_key)  # an experiment preset, a --config-dir file, the group's own file
        if setting:
            return setting
        where = self.file_of(group)
        if where:
            return f"{where} (selected by {group}={self.choices.get(group)})"
        return f"the '{group}' section of the primary config"


def _source_file(source: str, config_path: str) -> str:
    """The path of ``config_path``.yaml in a Hydra config source (``file://DIR``, ``pkg://package``)."""
    schema, _, where = source.partition("://")
    if schema == "pkg":
        import importlib.resources

        try:
            return str(importlib.resources.files(where.replace("/", ".")) / f"{config_path}.yaml")
        except ModuleNotFoundError:
            pass
    return str(Path(where or source) / f"{config_path}.yaml")


@dataclass
class Selected:
    """A validated component: which one, and its typed config."""

    kind: str
    name: str
    config: Any
    #: the step id for pipeline steps (``name`` or ``name@alias``); the name otherwise
    step: str = ""

    def instantiate(self, registry: Registry) -> Any:
        return registry.get(self.kind, self.name).create(self.config)


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
        return ConfigError(f"bad value for '{key_prefix}{key}' of {kind} '{name}' (from {where}): {problem}. Expected type: {expected}.")

    for key, value in values.items():  # OmegaConf reads any integer as a bool (2 -> True); only 0/1 are bools
        if _is_bool_type(hints.get(key)) and not isinstance(value, bool) and str(value).strip().lstrip("+-").isdigit() \
                and str(value).strip() not in ("0", "1"):
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


def _section(registry: Registry, origin: Origin, group: str, kind: str, section: Any, *,
             key_prefix: str | None = None, name_key: str | None = None) -> Selected:
    key_prefix = key_prefix or f"{group}."
    name_key = name_key or f"{group}.name"
    if not isinstance(section, dict) or "name" not in section:
        where = origin.file_setting(group) or origin.file_of(group) or f"group '{group}'"
        raise ConfigError(
            f"'{group}' must be a mapping with a 'name' key naming a registered {kind} (from {where}). "
            f"Registered {kind}s: {', '.join(registry.names(kind))}. Select one with {group}=<option>."
        )
    values = dict(section)
    name = str(values.pop("name"))
    try:
        component = registry.get(kind, name)
    except UnknownComponentError as exc:
        raise ConfigError(
            f"{name_key}: {exc} (from {origin.describe(group, name_key)}).{did_you_mean(name, registry.names(kind))}"
        ) from None
    config = typed_config(
        component.config_schema,
        values,
        kind=kind,
        name=name,
        origin=origin,
        group=group,
        key_prefix=key_prefix,
    )
    return Selected(kind, name, config, step=name)


def _pipeline(registry: Registry, origin: Origin, pipeline: dict[str, Any]) -> tuple[dict[str, list[Selected]], Selected]:
    unknown = set(pipeline) - PIPELINE_KEYS
    if unknown:
        raise ConfigError(
            f"unknown key 'pipeline.{sorted(unknown)[0]}' (from {origin.describe('pipeline', 'pipeline.' + sorted(unknown)[0])}). "
            f"Valid keys: {', '.join(sorted(PIPELINE_KEYS))}.{did_you_mean(sorted(unknown)[0], PIPELINE_KEYS)}"
        )
    params = pipeline.get("params") or {}
    _check_params(registry, origin, pipeline, params)
    label_column = pipeline.get("label_column")
    if label_column is not None and (not isinstance(label_column, str) or not label_column.strip()):
        raise ConfigError(
            f"pipeline.label_column must name a column, got {label_column!r} "
            f"(from {origin.describe('pipeline', 'pipeline.label_column')}). Example: pipeline.label_column=label"
        )
    label_case = pipeline.get("label_case")
    if label_case is not None and label_case not in LABEL_CASES:
        raise ConfigError(
            f"pipeline.label_case must be one of {', '.join(LABEL_CASES)}, got {label_case!r} "
            f"(from {origin.describe('pipeline', 'pipeline.label_case')}). keep: labels differing only by case stay "
            "separate classes (with a warning); fold: they are merged. Example: pipeline.label_case=fold"
        )
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
                    f"{did_you_mean(name, registry.names(kind))}"
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
    if not split or not isinstance(split, str):
        raise ConfigError(
            f"pipeline.split must name a splitter, got {split!r} (from {origin.describe('pipeline', 'pipeline.split')}). "
            f"Registered splitters: {', '.join(registry.names('splitter'))}"
        )
    split_section = {"name": str(split), **dict(params.get(str(split)) or {})}
    splitter = _section(registry, origin, "pipeline", "splitter", split_section,
                        key_prefix=f"pipeline.params.{split}.", name_key="pipeline.split")
    return steps, splitter


def _check_params(registry: Registry, origin: Origin, pipeline: dict[str, Any], params: Any) -> None:
    """``pipeline.params`` maps step ids to mappings of parameters. A step id that is neither a
    step of this pipeline nor a registered pipeline component is a typo (its parameters would
    be ignored silently)."""
    if not isinstance(params, dict):
        raise ConfigError(
            f"pipeline.params must map step names to their parameters, got {params!r} "
            f"(from {origin.describe('pipeline', 'pipeline.params')}). Example: +pipeline.params.pii.strategy=fake"
        )
    kinds = (*_STAGE_KIND.values(), "splitter")
    steps = {str(s) for stage in PIPELINE_STAGES if isinstance(pipeline.get(stage), list) for s in pipeline[stage]}
    steps |= {str(pipeline["split"])} if pipeline.get("split") else set()
    known = steps | {n for kind in kinds for n in registry.names(kind)}
    for step_id, values in params.items():
        key = f"pipeline.params.{step_id}"
        if str(step_id) not in known and str(step_id).split("@", 1)[0] not in known:
            raise ConfigError(
                f"unknown step '{key}' (from {origin.describe('pipeline', key)}): not a step of this pipeline nor a "
                f"registered {', '.join(kinds)}. Steps of this pipeline: {', '.join(sorted(steps)) or 'none'}."
                f"{did_you_mean(step_id, known)}"
            )
        if values is not None and not isinstance(values, dict):
            raise ConfigError(
                f"{key} must be a mapping of the step's parameters, got {values!r} (from {origin.describe('pipeline', key)}). "
                f"Example: +{key}.fields=[prompt]"
            )


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
            raise ConfigError(
                f"tracker: {exc} (from {origin.describe('tracker', f'tracker.{name}')}).{did_you_mean(name, registry.names('tracker'))}"
            ) from None
        if values is not None and not isinstance(values, dict):
            raise ConfigError(
                f"tracker.{name} must be a mapping of the tracker's settings, got {values!r} "
                f"(from {origin.describe('tracker', f'tracker.{name}')}). Change one setting with tracker.{name}.KEY=VALUE"
            )
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
        source = next((o for o in origin.overrides
                       if (o.split("=", 1)[0].lstrip("+~") + ".").startswith(unknown[0] + ".")), None)
        raise ConfigError(
            f"unknown top-level key '{unknown[0]}' (from "
            f"{f'the command-line override {redact_text(source)!r}' if source else 'a config file or preset'}). "
            f"Valid keys: {', '.join(sorted(TOP_LEVEL_KEYS - {'hydra'}))}.{did_you_mean(unknown[0], TOP_LEVEL_KEYS - {'hydra'})}"
        )
    for required in ("data", "pipeline", "model", "method", "peft", "eval"):
        if resolved.get(required) is None:
            raise ConfigError(f"no '{required}' selected: add {required}=<option> (see `tunelab --help` for the options)")
    _check_remote_code(resolved, origin)
    for key in ("pipeline", "train"):
        if resolved.get(key) is not None and not isinstance(resolved[key], dict):
            raise ConfigError(
                f"'{key}' must be a mapping of settings, got {resolved[key]!r} (from {origin.describe(key, key)}). "
                f"Change one setting with {key}.KEY=VALUE, e.g. {'train.max_steps=10' if key == 'train' else 'pipeline.split=random'}"
            )
    steps, splitter = _pipeline(registry, origin, resolved["pipeline"])
    train_values = dict(resolved.get("train") or {})
    train = typed_config(TrainSettings, train_values, kind="settings", name="train", origin=origin, group="train", key_prefix="train.")
    _check_train(train)
    for key in ("max_train_tokens", "max_train_seconds"):
        if getattr(train, key) < 0:
            raise ConfigError(f"train.{key} must be >= 0 (0: no limit), got {getattr(train, key)}")
    if not 0.0 < train.label_fraction <= 1.0:
        raise ConfigError(
            f"train.label_fraction must be in (0, 1] (the share of training labels kept), got {train.label_fraction}"
        )
    if train.save_steps < 0 or train.save_total_limit < 1:
        raise ConfigError(
            f"train.save_steps must be >= 0 (0: no checkpoints) and train.save_total_limit >= 1, got "
            f"{train.save_steps} and {train.save_total_limit}. Fix: train.save_steps=50 train.save_total_limit=2"
        )
    from tunelab.train.meters import EnergySettings

    try:
        EnergySettings.from_train_settings(train)
    except ValueError as exc:
        raise ConfigError(f"train: {exc}") from None
    seed = resolved.get("seed", 0)
    if not _is_seed(seed):  # numpy (transformers' set_seed) takes 0 .. 2**32-1 only
        raise ConfigError(f"seed must be an integer from 0 to {2**32 - 1}, got {seed!r}")
    data_seed = resolved.get("data_seed", 0)
    if not _is_seed(data_seed):
        raise ConfigError(
            f"data_seed must be an integer from 0 to {2**32 - 1}, got {data_seed!r} "
            "(the split's seed; data_seed=${seed} ties it to seed)"
        )
    num_proc = resolved.get("num_proc")
    num_proc = 1 if num_proc is None else num_proc
    if not isinstance(num_proc, int) or isinstance(num_proc, bool) or num_proc < 1:
        raise ConfigError(f"num_proc must be a positive integer, got {num_proc!r}")
    resume = resolved.get("resume", True)
    if not isinstance(resume, bool):
        raise ConfigError(f"resume must be true or false, got {resume!r}. Fix: resume=true or resume=false")
    cache_dir = resolved.get("cache_dir")
    if cache_dir is not None and not isinstance(cache_dir, str):
        raise ConfigError(f"cache_dir must be a directory path, got {cache_dir!r}. Example: cache_dir=/data/tunelab-cache")
    cache_dir = cache_dir or default_cache_dir()
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
        label_case=str(resolved["pipeline"].get("label_case") or "keep"),
    )
    _check_values(rc, registry)
    return rc


#: values of ``train.precision`` (tunelab.train.arguments.precision_flags)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _is_seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32


def _check_train(train: TrainSettings) -> None:
    """Ranges of the shared training settings (types and finiteness are checked already):
    a value outside them would fail deep inside transformers, or train nothing, after the
    data was prepared and the model loaded."""
    at_least_one = ("batch_size", "grad_accum", "max_length", "logging_steps")
    problems = [f"train.{key} must be >= 1, got {getattr(train, key)}" for key in at_least_one if getattr(train, key) < 1]
    if train.max_steps == 0 or train.max_steps < -1:
        problems.append(f"train.max_steps must be a number of steps >= 1, or -1 to train for train.num_epochs, got {train.max_steps}")
    if train.max_steps == -1 and train.num_epochs <= 0:
        problems.append(f"train.num_epochs must be > 0 when train.max_steps=-1, got {train.num_epochs}")
    if train.num_epochs < 0:
        problems.append(f"train.num_epochs must be >= 0, got {train.num_epochs}")
    if train.learning_rate <= 0:
        problems.append(f"train.learning_rate must be > 0, got {train.learning_rate}")
    for key in ("warmup_steps", "weight_decay"):
        if getattr(train, key) < 0:
            problems.append(f"train.{key} must be >= 0, got {getattr(train, key)}")
    if train.precision not in PRECISIONS:
        problems.append(f"train.precision must be one of {', '.join(PRECISIONS)}, got {train.precision!r}"
                        f"{did_you_mean(train.precision, PRECISIONS)}")
    if problems:
        raise ConfigError("; ".join(problems))


def _check_remote_code(resolved: dict[str, Any], origin: Origin) -> None:
    """``trust_remote_code: true`` (anywhere: model=hf, a plugin's loader) only from the
    command line: an experiment preset or config file someone else wrote cannot make tunelab
    run code shipped with a model. Checked when Hydra composed the config (its sources known)."""
    if not origin.sources:
        return

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                here = (*path, str(key))
                if key in COMMAND_LINE_ONLY_KEYS and item is True:
                    dotted = ".".join(here)
                    if not origin.from_command_line(dotted):
                        setting = origin.file_setting(dotted)
                        presets = [] if setting else [
                            f"{g}={c}" for g, c in origin.choices.items() if g in ("experiment", "approach") and c != "None"]
                        raise ConfigError(
                            f"{dotted}=true is set in a config file ({setting or origin.describe(here[0], dotted)}"
                            f"{''.join(f', or the preset {p}' for p in presets)}), not on the command line. It runs code "
                            f"shipped with the model, so a config file cannot turn it on. If you trust that code, pass it "
                            f"on the command line yourself: {dotted}=true"
                        )
                walk(item, here)
        elif isinstance(value, list):
            for item in value:
                walk(item, path)

    walk(resolved, ())


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


def check_sources(rc: RunConfig, registry: Registry) -> None:
    """Before any work: what the run will read exists and can be opened (``data.path`` names
    files that are there). A collector takes part with a cheap ``check_source()`` method that
    raises ``ValueError``/``OSError`` naming the key, or else with ``input_files()`` (the local
    files it would read, raising ``ValueError`` for a path that is not there), whose files are
    opened here; one with neither is not checked. Separate from :func:`validate`, which checks
    values and never touches the file system. ``cache_dir`` is checked here too (it is
    created if missing; see :func:`check_cache_dir`)."""
    check_cache_dir(rc)
    collector = rc.collector.instantiate(registry)
    path = getattr(rc.collector.config, "path", None)
    try:
        check = getattr(collector, "check_source", None)
        if check is not None:
            check()
            return
        from tunelab.api import Collector

        # the base class's input_files() lists nothing: only a collector's own says a folder is empty
        own = getattr(type(collector), "input_files", Collector.input_files) is not Collector.input_files
        files = collector.input_files() if own else []
        if own and not files and isinstance(path, str) and path and Path(path).expanduser().is_dir():
            raise ValueError(f"data.path '{path}' is a folder without data files")
        for file in files:
            with open(file, "rb"):
                pass
    except OSError as exc:
        raise ConfigError(f"data: collector '{rc.collector.name}': data.path: cannot read "
                          f"{exc.filename or path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"data: collector '{rc.collector.name}': {exc}") from None


def directory_problem(path: str | Path, *, keep: bool = False) -> str | None:
    """None when ``path`` is a directory tunelab can write in, or one it can create; else
    what stands in the way (a file at the path or above it, a place where nothing can be
    created or written). It tries (as root, permission bits say nothing): the directories it
    had to create are removed again unless ``keep``, and its probe file always is."""
    import tempfile

    path = Path(path).absolute()  # no expanduser: Hydra makes hydra.run.dir=~/x as written (cache_dir is expanded already)
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a directory"
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, so no directory can be made under it"
    missing = [path, *path.parents][: len(path.parts) - len(existing.parts)][::-1]
    created: list[Path] = []
    try:
        for directory in missing:
            try:
                directory.mkdir()
                created.append(directory)
            except FileExistsError:  # made meanwhile (a parallel job): fine if it is a directory
                if not directory.is_dir():
                    return f"{directory} is a file, so no directory can be made under it"
        handle, probe = tempfile.mkstemp(dir=path, prefix=".tunelab-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        what = "create" if len(created) < len(missing) else "write in"
        return f"cannot {what} {exc.filename or path}: {exc.strerror or exc}"
    finally:
        for directory in [] if keep else reversed(created):
            try:
                directory.rmdir()
            except OSError:  # something was put there meanwhile: it stays
                break
    return None


def check_cache_dir(rc: RunConfig) -> None:
    """``cache_dir`` is (or can become) a directory tunelab can write in: before any work,
    rather than a NotADirectoryError from the first lock file. It is created if missing."""
    problem = directory_problem(rc.cache_dir, keep=True)
    if problem:
        raise ConfigError(
            f"cache_dir={rc.cache_dir}: {problem}. Fix: cache_dir=DIR (or the environment variable TUNELAB_CACHE_DIR) "
            "naming a directory you can write, e.g. cache_dir=$HOME/.cache/tunelab"
        )


def default_cache_dir() -> Path:
    return Path(os.environ.get("TUNELAB_CACHE_DIR") or Path.home() / ".cache" / "tunelab")


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
