"""A config cannot run code: checks on the parts of a composed config that name callables.

tunelab's own sections never do: a component is chosen by its registered name, and
every key must be a field of its config dataclass (``_target_`` is an unknown key like any
other; see :func:`tunelab.config.validate`). Hydra's own section can: Hydra instantiates
``hydra.callbacks.*._target_`` (and anything nested with a ``_target_`` under the launcher
or sweeper), and hands ``hydra.job_logging``/``hydra.hydra_logging`` to
``logging.config.dictConfig``, whose ``()`` and ``class`` keys call any importable
callable. So an experiment preset or a config directory someone else wrote could run
code before tunelab sees the config. :func:`check_hydra_section` refuses that, and
:func:`install_hydra_guard` runs it on every config Hydra composes, before Hydra
configures logging or instantiates a callback. What the user's own command-line
overrides set is their choice (as with ``model.trust_remote_code``): a callback of their
own, ``+hydra.callbacks.mine._target_=my_module.MyCallback``, passes; a file cannot give
it parameters, nor write ``hydra.overrides`` to pass its entries off as the command line's.
Hydra's logging config is the exception: ``dictConfig`` imports what it names while Hydra
sets up logging, before tunelab could report anything, so a ``class`` outside the logging
package, a ``()`` factory or an ``ext://`` object is refused from the command line too.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from hydra.errors import CompactHydraException

from tunelab.config import ConfigError

#: Callbacks a config may name (each with no parameters): tunelab's sweep end, and Hydra's job-return logger.
ALLOWED_CALLBACKS = frozenset({"tunelab.app.SweepEnd", "hydra.experimental.callbacks.LogJobReturnCallback"})
#: ``()`` factories allowed in Hydra's logging config (hydra/job_logging=colorlog uses it).
ALLOWED_LOGGING_FACTORIES = frozenset({"colorlog.ColoredFormatter"})
#: ``ext://`` objects Hydra's logging config may name (its own default handlers use them).
ALLOWED_LOGGING_EXTERNALS = frozenset({"ext://sys.stdout", "ext://sys.stderr"})
#: Modules of the logging package a logging ``class`` may come from (importing them runs no one else's code).
_LOGGING_MODULES = ("logging", "logging.handlers")
#: Environment variables ``hydra.job.env_set`` may not set: they load code into every process the job starts.
REFUSED_ENV = frozenset(
    {
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "DYLD_INSERT_LIBRARIES",
        "DYLD_LIBRARY_PATH",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "PYTHONUSERBASE",
        "PYTHONINSPECT",
        "PYTHONBREAKPOINT",
        "BASH_ENV",
        "ENV",
        "PERL5OPT",
        "NODE_OPTIONS",
    }
)


class UnsafeConfigError(ConfigError, CompactHydraException):
    """The composed config names code that tunelab will not let a config file run (Hydra
    prints it without a traceback)."""


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """(dotted path, key, value) of every mapping entry under ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}"
            yield here, key, item
            yield from _walk(item, here)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")


def _leaves(value: Any, path: str) -> list[str]:
    """Dotted paths of the non-mapping values under ``value`` (``value``'s own path if it is one)."""
    if isinstance(value, dict) and value:
        return [leaf for key, item in value.items() for leaf in _leaves(item, f"{path}.{key}")]
    return [path]


def _is_logging_class(name: Any) -> bool:
    """Whether ``name`` is a Handler, Formatter or Filter class of ``logging`` or
    ``logging.handlers`` (not merely a name under ``logging.``: ``logging.config.fileConfig``
    would load another config, naming any class)."""
    import logging
    import logging.handlers

    if not isinstance(name, str):
        return False
    module, _, attribute = name.rpartition(".")
    if module not in _LOGGING_MODULES:
        return False
    value = getattr({"logging": logging, "logging.handlers": logging.handlers}[module], attribute, None)
    return isinstance(value, type) and issubclass(value, (logging.Handler, logging.Formatter, logging.Filter))


def hydra_section_problems(hydra: Any) -> list[tuple[list[str], str]]:
    """What is wrong with a composed ``hydra`` section (a plain dict, interpolations
    unresolved): ``(paths, message)`` per problem; ``paths`` are the keys whose values make
    it, which a command-line override may set (the user's own choice) but a file may not.
    An empty ``paths`` is a problem wherever it comes from: Hydra's logging config, which
    ``logging.config.dictConfig`` would import from before any error could be reported."""
    if not isinstance(hydra, dict):
        return []
    problems: list[tuple[list[str], str]] = []
    for name, callback in (hydra.get("callbacks") or {}).items():
        if callback is None:
            continue
        here = f"hydra.callbacks.{name}"
        target = callback.get("_target_") if isinstance(callback, dict) else None
        if target not in ALLOWED_CALLBACKS:
            problems.append(
                (
                    _leaves(callback, here),
                    f"{here} names {target!r}; a config file may only select the "
                    f"callbacks {', '.join(sorted(ALLOWED_CALLBACKS))}",
                )
            )
        elif set(callback) != {"_target_"}:
            params = {k: v for k, v in callback.items() if k != "_target_"}
            problems.append((_leaves(params, here), f"{here}: parameters for {target} are not allowed"))
    for section in ("launcher", "sweeper"):
        for path, key, item in _walk(hydra.get(section) or {}, f"hydra.{section}"):
            if (key == "_target_" and path != f"hydra.{section}._target_") or key == "_args_":
                problems.append(
                    (_leaves(item, path), f"{path}: a nested {key} would be instantiated with the {section}")
                )
    # logging: dictConfig imports what these keys name while Hydra sets up logging, before a
    # job or tunelab's own error handling runs; so not even the command line may name more
    # (paths []: no override excuses it)
    for section in ("job_logging", "hydra_logging"):
        for path, key, item in _walk(hydra.get(section) or {}, f"hydra.{section}"):
            if key == "()" and item not in ALLOWED_LOGGING_FACTORIES:
                problems.append(
                    ([], f"{path}: logging factory {item!r} (allowed: {', '.join(sorted(ALLOWED_LOGGING_FACTORIES))})")
                )
            elif key == "class" and not _is_logging_class(item):
                problems.append(
                    (
                        [],
                        f"{path}: {item!r} is not a handler, formatter or filter class of the logging package "
                        "(e.g. logging.StreamHandler, logging.FileHandler, logging.handlers.RotatingFileHandler)",
                    )
                )
            elif isinstance(item, str) and item.startswith("ext://") and item not in ALLOWED_LOGGING_EXTERNALS:
                problems.append(
                    (
                        [],
                        f"{path}: {item!r} would be imported by the logging config "
                        f"(allowed: {', '.join(sorted(ALLOWED_LOGGING_EXTERNALS))})",
                    )
                )
    env_set = (hydra.get("job") or {}).get("env_set") or {}
    for name in env_set:
        if str(name).upper() in REFUSED_ENV:
            path = f"hydra.job.env_set.{name}"
            problems.append(
                ([path], f"{path}: {name} loads code into every process the job starts; set it in your shell")
            )
    return problems


def check_hydra_section(cfg: Any, overrides: list[str] | None = None) -> None:
    """Raise :class:`UnsafeConfigError` when a composed config's ``hydra`` section names code
    that a config file put there. What the user's own command-line overrides set
    (``+hydra.callbacks.mine._target_=my_module.MyCallback``) is their choice and passes."""
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(cfg, DictConfig) or "hydra" not in cfg:
        return
    hydra = OmegaConf.to_container(cfg.hydra, resolve=False)
    recorded = (hydra.get("overrides") or {}) if isinstance(hydra, dict) else {}
    recorded = [str(o) for o in [*(recorded.get("hydra") or []), *(recorded.get("task") or [])]]
    if overrides is not None and sorted(recorded) != sorted(map(str, overrides)):
        # Hydra appends the real overrides to hydra.overrides: entries a file put there
        # would pass for the user's own (and a sweep re-applies them to every job)
        raise UnsafeConfigError(
            "tunelab: config error: refusing to run: a config file sets hydra.overrides "
            f"({sorted(set(recorded) - set(map(str, overrides)))}); only the command line may"
        )
    from_command_line = {
        o.split("=", 1)[0].lstrip("+~") for o in (recorded if overrides is None else map(str, overrides))
    }

    def set_on_command_line(path: str) -> bool:
        return any(path == key or path.startswith(key + ".") for key in from_command_line)

    found = hydra_section_problems(hydra)
    logging_problems = [message for paths, message in found if not paths]
    if logging_problems:
        raise UnsafeConfigError(
            "tunelab: config error: refusing to run: Hydra's logging config names code to import: "
            + "; ".join(logging_problems)
            + ". Neither a config file nor the command line may name one (logging.config.dictConfig would import "
            "it before the run starts); use the classes of the logging package, or configure your own logging in a "
            "plugin (docs/config.md#security)"
        )
    problems = [message for paths, message in found if not all(set_on_command_line(path) for path in paths)]
    if problems:
        raise UnsafeConfigError(
            "tunelab: config error: refusing to run: a config file names code for Hydra to run: "
            + "; ".join(problems)
            + ". tunelab runs registered components only (docs/config.md#security); a callback of your own "
            "can be given on the command line: +hydra.callbacks.NAME._target_=module.Class"
        )


def install_hydra_guard() -> None:
    """Check every config Hydra composes (the run's, each sweep job's, ``hydra.compose``'s)
    with :func:`check_hydra_section` before Hydra uses it."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    original = ConfigLoaderImpl.load_configuration
    if getattr(original, "tunelab_guarded", False):
        return

    @functools.wraps(original)
    def load_configuration(self: Any, *args: Any, **kwargs: Any) -> Any:
        cfg = original(self, *args, **kwargs)
        # load_configuration(config_name, overrides, run_mode, ...): the overrides as given
        overrides = kwargs["overrides"] if "overrides" in kwargs else (args[1] if len(args) > 1 else None)
        check_hydra_section(cfg, None if overrides is None else list(overrides))
        return cfg

    load_configuration.tunelab_guarded = True  # type: ignore[attr-defined]
    ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[method-assign]
