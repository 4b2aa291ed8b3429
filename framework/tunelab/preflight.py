"""The command line, checked before Hydra starts any job.

``tunelab [OVERRIDES]`` composes the config with Hydra's compose API first, with the
overrides as given, and turns whatever goes wrong into a :class:`~tunelab.config.ConfigError`
that names the override, the key and what would be valid: an override that does not parse,
an unknown config group option, a key the config lacks (without ``+``), a value Hydra cannot
merge, an interpolation to a missing key. A single run is then validated (every component,
every value), its approach checked (for training) and its data source checked, all before
Hydra creates the run directory, so a bad command line leaves nothing behind and exits 2
with one paragraph, never a traceback.

A sweep (``-m``) is composed once per value of each swept config group (the combinations
Hydra would otherwise reject half-way); its jobs' values are validated by the jobs, so one
bad combination is a failed run in the comparison, not a refused sweep.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tunelab.config import ConfigError, Origin, RunConfig, check_sources, did_you_mean, validate
from tunelab.redaction import redact_text

#: how overrides are written, for messages about one that is not
SYNTAX = (
    "An override is KEY=VALUE (train.max_steps=10); +KEY=VALUE adds a key the config lacks, ~KEY deletes one; "
    "quote a value holding spaces, commas, brackets, quotes or '$' (data.path='my data.jsonl')"
)
#: Hydra flags after which there is nothing to check (help, printing the config, another config)
_SKIP_FLAGS = ("help", "hydra_help", "info", "shell_completion", "config_path", "config_name", "experimental_rerun")


def preflight(stage: str, argv: list[str]) -> RunConfig | None:
    """Check the command line ``argv`` (Hydra flags and overrides) of ``tunelab [prepare]``;
    raise :class:`ConfigError` for a bad one. Returns the validated config of a single run
    (None for a sweep, or when a flag such as ``--help`` or ``--cfg`` leaves Hydra in charge)."""
    from hydra._internal.utils import get_args_parser

    if "--version" in argv:
        return None
    try:
        args, extra = get_args_parser().parse_known_args(argv)
    except SystemExit:  # argparse said what is wrong; Hydra will say it again and exit
        return None
    if extra or any(getattr(args, flag, None) for flag in _SKIP_FLAGS):
        return None
    overrides = list(args.overrides)
    multirun = bool(args.multirun) or "hydra.mode=MULTIRUN" in overrides
    # --cfg prints the composed config: it must compose, validating is not asked for
    rc = check_overrides(overrides, multirun=multirun, compose_only=bool(args.cfg), config_dir=args.config_dir)
    if rc is not None and stage == "train":  # model x method x peft x evaluator, eval.split, precision
        from tunelab.plugins import get_plugins
        from tunelab.train.compat import check_approach

        check_approach(rc, get_plugins().registry)
    return rc


def check_overrides(
    overrides: list[str],
    *,
    multirun: bool = False,
    sources: bool = True,
    compose_only: bool = False,
    config_dir: str | None = None,
) -> RunConfig | None:
    """Compose the config from ``overrides`` like ``tunelab`` does and check it (see the module
    docstring; ``sources=False`` leaves the data source unchecked; ``config_dir`` is the
    directory ``--config-dir`` adds); the validated config of a single run, None for a sweep."""
    from tunelab.plugins import get_plugins

    registry = get_plugins().registry
    with hydra_loader(config_dir) as loader:
        parsed = [_parse(o, loader) for o in overrides]
        for text, override in zip(overrides, parsed):
            _check_group_choice(text, override, loader, overrides)
            if override.is_sweep_override() and not multirun:
                key = override.get_key_element()
                raise ConfigError(
                    f"the command-line override '{redact_text(text)}' gives '{key.lstrip('+~')}' several values, which "
                    f"sweeps over them: add -m (tunelab -m {redact_text(text)}) to run one job per value; "
                    "write a list as "
                    f"{key}=[a,b] or one string as {key}='a,b'"
                )
        if multirun:
            first = None
            for variant in _variants(overrides, parsed, loader, overrides):
                try:
                    cfg = _compose(variant, registry)
                except ConfigError as exc:  # name the sweep override as written (peft=none,lorax)
                    message = str(exc)
                    for one, written in zip(variant, overrides):
                        if one != written:
                            message = message.replace(f"'{redact_text(one)}'", f"'{redact_text(written)}'")
                    raise ConfigError(message) from None
                first = cfg if first is None else first
            if first is not None and not compose_only:
                _check_resolves(first, "hydra.sweep.dir")
                _check_output_dir(first, "hydra.sweep.dir", overrides)
            return None
        cfg = _compose(overrides, registry)
        if compose_only:
            return None
        _check_resolves(cfg, "hydra.run.dir")
        _check_output_dir(cfg, "hydra.run.dir", overrides)
        rc = validate(cfg, registry, Origin.from_hydra())
        if sources:
            check_sources(rc, registry)
        return rc


@contextmanager
def hydra_loader(config_dir: str | None = None) -> Iterator[Any]:
    """Hydra initialised on tunelab's config directory (and the plugins' search paths), with
    ``config_dir`` added where ``tunelab --config-dir DIR`` adds it."""
    import os

    from hydra import initialize_config_dir
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra

    from tunelab.app import conf_dir, register_hydra_plugins
    from tunelab.config import register_resolvers

    register_hydra_plugins()
    register_resolvers()
    if config_dir is not None and not os.path.isdir(config_dir):
        raise ConfigError(
            f"--config-dir {config_dir}: no such directory. Fix: --config-dir DIR naming a directory "
            "of config groups (e.g. DIR/experiment/mine.yaml for experiment=mine)"
        )
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        if config_dir is not None:  # as Hydra's main does for --config-dir: before the structured configs
            search_path = loader.config_search_path  # the repository's sources are made from it: remake them
            search_path.prepend(
                provider="command-line",
                path=f"file://{os.path.abspath(config_dir)}",
                anchor=SearchPathQuery(provider="schema"),
            )
            loader.repository.initialize_sources(search_path)
        yield loader


def _parse(text: str, loader: Any) -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        override = OverridesParser.create(config_loader=loader).parse_override(text)
    except Exception as exc:  # OverrideParseException, or Hydra's own HydraException
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        problem = problem.replace("Error parsing override", "cannot parse")
        raise ConfigError(
            f"cannot parse the command-line override '{redact_text(text)}': {problem}. {SYNTAX}"
        ) from None
    if not override.key_or_group:
        raise ConfigError(f"the command-line override '{redact_text(text)}' names no key. {SYNTAX}")
    return override


def _group_options(loader: Any, group: str, overrides: list[str]) -> list[str]:
    """The options of config group ``group``, in the directories a ``hydra.searchpath``
    override adds too (as Hydra will see them)."""
    searchpath = [o for o in overrides if _key_of(o) == "hydra.searchpath"]
    if searchpath:
        try:
            return loader.get_group_options(group, config_name="config", overrides=searchpath)
        except Exception:  # a bad search path: composing says what is wrong with it
            pass
    return loader.get_group_options(group)


def _check_group_choice(text: str, override: Any, loader: Any, overrides: list[str]) -> None:
    """``GROUP=OPTION`` must name options of the group (``tracker=[csv,wandb]``: each one)."""
    from hydra.core.override_parser.types import Glob

    group = override.key_or_group
    if override.is_delete() or "." in group:
        return
    options = _group_options(loader, group, overrides)
    if not options:  # not a config group (seed=1, +foo=1): validate() speaks about those
        return
    if override.is_sweep_override():
        if isinstance(override.value(), Glob):
            return
        values = list(override.sweep_iterator())
    else:
        values = [override.value()]
    for value in values:
        for choice in value if isinstance(value, list) else [value]:
            if isinstance(choice, str) and choice in options:
                continue
            where = f"from the command-line override '{redact_text(text)}'"
            if choice is None:  # Hydra: "Config group override must be a string or a list"
                raise ConfigError(
                    f"'{group}' takes one of its options, not null ({where}); to select none, delete it: ~{group}. "
                    f"Options: {', '.join(options)}."
                )
            if isinstance(choice, dict):
                raise ConfigError(
                    f"'{group}' selects one of its options ({where}); change a value inside it with {group}.KEY=VALUE "
                    f"(e.g. {group}.{next(iter(choice), 'name')}=...). Options: {', '.join(options)}."
                )
            raise ConfigError(
                f"unknown {group} option '{choice}' ({where}). "
                f"Options: {', '.join(options)}.{did_you_mean(choice, options)}"
            )


def _variants(overrides: list[str], parsed: list[Any], loader: Any, every: list[str]) -> list[list[str]]:
    """The jobs of a sweep worth composing: every override at its first value, then each
    further value of a swept config group (only those can fail to compose on their own)."""
    columns = []
    for text, override in zip(overrides, parsed):
        if not override.is_sweep_override():
            columns.append([text])
            continue
        if not override.is_discrete_sweep():  # interval(): an optimizing sweeper's; nothing to enumerate
            return []
        key = override.get_key_element()
        columns.append([f"{key}={value}" for value in override.sweep_string_iterator()] or [text])
    base = [column[0] for column in columns]
    variants = [base]
    for index, (override, column) in enumerate(zip(parsed, columns)):
        if (
            len(column) > 1
            and "." not in override.key_or_group
            and _group_options(loader, override.key_or_group, every)
        ):
            variants += [[*base[:index], value, *base[index + 1 :]] for value in column[1:]]
    return variants


def _compose(overrides: list[str], registry: Any, *, retry: bool = True) -> Any:
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    from tunelab.security import UnsafeConfigError

    try:
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except UnsafeConfigError as exc:  # the guard's own words (written for Hydra to print them as they are)
        raise ConfigError(str(exc).removeprefix("tunelab: config error: ")) from None
    except Exception as exc:
        raise _explain(exc, overrides, registry, retry) from None
    HydraConfig.instance().set_config(cfg)
    return cfg


def _key_of(text: str) -> str:
    return text.split("=", 1)[0].lstrip("+~").split("@", 1)[0]


def _explain(exc: Exception, overrides: list[str], registry: Any, retry: bool) -> ConfigError:
    """A :class:`ConfigError` for what Hydra raised while composing ``overrides``."""
    from hydra.errors import MissingConfigException

    text = str(exc).strip()
    first = text.splitlines()[0].strip() if text else type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    because = str(getattr(cause, "msg", None) or cause or "").strip().splitlines()
    because = because[0] if because else ""

    def override_of(key: str) -> str | None:
        return next((o for o in overrides if _key_of(o) == key), None)

    if isinstance(exc, MissingConfigException):
        group, _, option = str(exc.missing_cfg_file or "").rpartition("/")
        options = list(exc.options or [])
        source = override_of(group)
        where = f"the command-line override '{redact_text(source)}'" if source else "the defaults list of a config file"
        return ConfigError(
            f"unknown {group or 'config'} option '{option}' (from {where}). Options: {', '.join(options) or 'none'}."
            f"{did_you_mean(option, options)}"
        )
    missing = re.search(r"Could not override '([^']+)'", first)
    merging = re.match(r"Error merging override (.+)$", first)
    if (missing or merging) and retry:
        key = missing.group(1) if missing else _key_of(merging.group(1))
        if missing:  # the last plain override of the key (a +key=... before it added nothing)
            source = next((o for o in reversed(overrides) if _key_of(o) == key and not o.startswith("+")), None)
        else:
            source = next((o for o in reversed(overrides) if o == merging.group(1)), None) or override_of(key)
        if source is not None:
            value = source.split("=", 1)[1] if "=" in source else ""
            # say what validation says about the value: add the key (+) or replace the node whole (~, +)
            instead = [f"+{key}={value}"] if missing else [f"~{key}", f"+{key}={value}"]
            retried = [x for o in overrides for x in (instead if o is source else [o])]
            explained = _validation_error(retried, registry, key)
            if explained is not None:
                message = str(explained)
                for stand_in in instead:  # name the override the user wrote, not the stand-in
                    message = message.replace(f"'{redact_text(stand_in)}'", f"'{redact_text(source)}'")
                return ConfigError(message)
            if missing:
                return ConfigError(
                    f"'{key}' is not in the config (from the command-line override '{redact_text(source)}'): "
                    f"to add a key the config lacks, write +{redact_text(source.lstrip('+'))}"
                )
            return ConfigError(
                f"bad value for '{key}' (from the command-line override '{redact_text(source)}'): {because or first}"
            )
    appended = re.search(r"An item is already at '([^']+)'", first)
    if appended:
        source = next(
            (o for o in overrides if _key_of(o) == appended.group(1) and o.startswith("+") and not o.startswith("++")),
            None,
        ) or appended.group(1)
        plain = redact_text(source.lstrip("+"))
        return ConfigError(
            f"'{appended.group(1)}' is already in the config, "
            f"so the command-line override '{redact_text(source)}' cannot "
            f"add it: write {plain} to change it (or ++{plain} to add or change)"
        )
    deleted = re.search(r"'([^']+)' does not exist", first)
    if deleted:
        source = next(
            (o for o in overrides if _key_of(o) == deleted.group(1) and o.startswith("~")), None
        ) or deleted.group(1)
        return ConfigError(
            f"cannot delete '{deleted.group(1)}' (from the command-line override '{redact_text(source)}'): "
            "the config has no such key"
        )
    detail = f"{first}: {because}" if because and because not in first else first
    return ConfigError(
        f"cannot compose the config from the command line ({' '.join(map(redact_text, overrides))}): {detail}"
    )


def _validation_error(overrides: list[str], registry: Any, key: str) -> ConfigError | None:
    """What validation says about ``key`` in the config ``overrides`` compose to (None: nothing)."""
    try:
        cfg = _compose(overrides, registry, retry=False)
    except ConfigError:  # not even that composes: Hydra's own words will do
        return None
    try:
        validate(cfg, registry, Origin.from_hydra())
    except ConfigError as exc:
        return exc if key in str(exc) else None
    return None


def _check_resolves(cfg: Any, key: str) -> None:
    """Hydra resolves ``key`` (the run directory) itself, where a missing interpolation would
    end in its traceback."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
    except OmegaConfBaseException as exc:
        problem = str(getattr(exc, "msg", exc)).strip().splitlines()[0]
        raise ConfigError(f"cannot resolve '{key}': {problem}. Set it on the command line: {key}=DIR") from None


def _check_output_dir(cfg: Any, key: str, overrides: list[str]) -> None:
    """Hydra makes the run (or sweep) directory ``key`` names before the job starts, where a
    file in the way or a place it cannot write ends in a raw FileExistsError /
    NotADirectoryError traceback: try it here (leaving nothing behind)."""
    from omegaconf import OmegaConf

    from tunelab.config import directory_problem

    value = OmegaConf.select(cfg, key)
    problem = directory_problem(str(value))
    if problem:
        # hydra.* overrides are not among the job's (task) overrides Origin knows of
        source = next((o for o in reversed(overrides) if _key_of(o) == key), None)
        where = (
            f"the command-line override '{redact_text(source)}'"
            if source
            else Origin.from_hydra().describe("hydra", key)
        )
        kind, example = ("sweep", "multirun/my_sweep") if "sweep" in key else ("run", "outputs/my_run")
        raise ConfigError(
            f"{key}={redact_text(str(value))} cannot be the {kind} directory: {redact_text(problem)} (from {where}). "
            f"Fix: {key}=DIR naming a new or existing directory you can write, e.g. {key}={example}"
        )
