"""Validation of a composed run config against the registry (:func:`validate`): the top-level
keys, every component section (registered, known keys, typed values), the pipeline's stages
and parameters, the trackers, the shared training settings and the run settings (seeds,
``num_proc``, ``resume``, ``cache_dir``); then every selected component is built once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tunelab.api import KIND_TABLE, PIPELINE_STAGES, TrainSettings
from tunelab.config.checks import check_remote_code, check_train, default_cache_dir
from tunelab.config.origins import Origin
from tunelab.config.schema import ConfigError, RunConfig, Selected, did_you_mean, typed_config
from tunelab.data.labels import LABEL_CASES  # values of pipeline.label_case
from tunelab.plugins import Registry, UnknownComponentError
from tunelab.redaction import redact_text

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
#: pipeline stage -> the kind of its steps
_STAGE_KIND = {kind.stage: kind.name for kind in KIND_TABLE.values() if kind.steps}
PIPELINE_KEYS = set(PIPELINE_STAGES) | {"split", "params", "label_column", "label_case"}


def _section(
    registry: Registry,
    origin: Origin,
    group: str,
    kind: str,
    section: Any,
    *,
    key_prefix: str | None = None,
    name_key: str | None = None,
) -> Selected:
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


def _pipeline(
    registry: Registry, origin: Origin, pipeline: dict[str, Any]
) -> tuple[dict[str, list[Selected]], Selected]:
    unknown = set(pipeline) - PIPELINE_KEYS
    if unknown:
        raise ConfigError(
            f"unknown key 'pipeline.{sorted(unknown)[0]}' "
            f"(from {origin.describe('pipeline', 'pipeline.' + sorted(unknown)[0])}). "
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
                f"(from {origin.describe('pipeline', 'pipeline.' + stage)}). "
                f"Example: pipeline.{stage}=[{','.join(registry.names(kind)[:2])}]"
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
            f"pipeline.split must name a splitter, got {split!r} "
            f"(from {origin.describe('pipeline', 'pipeline.split')}). "
            f"Registered splitters: {', '.join(registry.names('splitter'))}"
        )
    split_section = {"name": str(split), **dict(params.get(str(split)) or {})}
    splitter = _section(
        registry,
        origin,
        "pipeline",
        "splitter",
        split_section,
        key_prefix=f"pipeline.params.{split}.",
        name_key="pipeline.split",
    )
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
                f"{key} must be a mapping of the step's parameters, got {values!r} "
                f"(from {origin.describe('pipeline', key)}). "
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
                f"tracker: {exc} (from {origin.describe('tracker', f'tracker.{name}')})."
                f"{did_you_mean(name, registry.names('tracker'))}"
            ) from None
        if values is not None and not isinstance(values, dict):
            raise ConfigError(
                f"tracker.{name} must be a mapping of the tracker's settings, got {values!r} "
                f"(from {origin.describe('tracker', f'tracker.{name}')}). "
                f"Change one setting with tracker.{name}.KEY=VALUE"
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


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as plain data, every interpolation resolved (``hydra`` left out); a
    value that does not resolve is a :class:`ConfigError` naming the key."""
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
    return resolved


def validate(cfg: DictConfig, registry: Registry, origin: Origin | None = None) -> RunConfig:
    """Check a composed config; return the typed :class:`RunConfig` or raise :class:`ConfigError`."""
    origin = origin or Origin()
    resolved = resolved_config(cfg)
    unknown = sorted(set(resolved) - TOP_LEVEL_KEYS)
    if unknown:
        source = next(
            (o for o in origin.overrides if (o.split("=", 1)[0].lstrip("+~") + ".").startswith(unknown[0] + ".")), None
        )
        raise ConfigError(
            f"unknown top-level key '{unknown[0]}' (from "
            f"{f'the command-line override {redact_text(source)!r}' if source else 'a config file or preset'}). "
            f"Valid keys: {', '.join(sorted(TOP_LEVEL_KEYS - {'hydra'}))}."
            f"{did_you_mean(unknown[0], TOP_LEVEL_KEYS - {'hydra'})}"
        )
    for required in ("data", "pipeline", "model", "method", "peft", "eval"):
        if resolved.get(required) is None:
            raise ConfigError(
                f"no '{required}' selected: add {required}=<option> (see `tunelab --help` for the options)"
            )
    check_remote_code(resolved, origin)
    for key in ("pipeline", "train"):
        if resolved.get(key) is not None and not isinstance(resolved[key], dict):
            raise ConfigError(
                f"'{key}' must be a mapping of settings, got {resolved[key]!r} (from {origin.describe(key, key)}). "
                f"Change one setting with {key}.KEY=VALUE, "
                f"e.g. {'train.max_steps=10' if key == 'train' else 'pipeline.split=random'}"
            )
    steps, splitter = _pipeline(registry, origin, resolved["pipeline"])
    train_values = dict(resolved.get("train") or {})
    train = typed_config(
        TrainSettings, train_values, kind="settings", name="train", origin=origin, group="train", key_prefix="train."
    )
    check_train(train)
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
    check_resume(resolved.get("resume", True))
    cache_dir = resolved.get("cache_dir")
    if cache_dir is not None and not isinstance(cache_dir, str):
        raise ConfigError(
            f"cache_dir must be a directory path, got {cache_dir!r}. Example: cache_dir=/data/tunelab-cache"
        )
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


def _is_seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32


def check_resume(value: Any) -> bool:
    """The ``resume`` setting (a sweep's rerun skips the jobs that finished) is true or false."""
    if not isinstance(value, bool):
        raise ConfigError(f"resume must be true or false, got {value!r}. Fix: resume=true or resume=false")
    return value


def _check_values(rc: RunConfig, registry: Registry) -> None:
    """Construct every selected component once: constructors check parameter values
    (ranges, allowed words) and must be cheap, so a bad value fails before any work. The run
    uses these instances (:meth:`Selected.instantiate` keeps them)."""
    sections = [
        ("data", rc.collector),
        ("pipeline.split", rc.splitter),
        ("model", rc.model),
        ("method", rc.method),
        ("peft", rc.peft),
        ("eval", rc.evaluator),
    ]
    sections += [(f"pipeline.{stage}", s) for stage, steps in rc.steps.items() for s in steps]
    sections += [("tracker", s) for s in rc.trackers]
    for where, selected in sections:
        try:
            selected.instantiate(registry)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {selected.kind} '{selected.step}': {exc}") from None
