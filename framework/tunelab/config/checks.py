"""Checks besides the keys and types of :func:`~tunelab.config.validate`: the ranges of the
shared training settings, ``trust_remote_code`` only from the command line, and before any
work what the run reads and writes (the collector's source, ``cache_dir``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tunelab.api import TrainSettings
from tunelab.config.origins import Origin
from tunelab.config.schema import ConfigError, RunConfig, did_you_mean
from tunelab.plugins import Registry

#: Keys that make a component run code it downloads or finds next to a model; a config file
#: cannot turn them on, only the user's own command line (see :func:`check_remote_code`).
COMMAND_LINE_ONLY_KEYS = ("trust_remote_code",)

#: values of ``train.precision`` (tunelab.train.arguments.precision_flags)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def check_train(train: TrainSettings) -> None:
    """Ranges of the shared training settings (types and finiteness are checked already):
    a value outside them would fail deep inside transformers, or train nothing, after the
    data was prepared and the model loaded."""
    at_least_one = ("batch_size", "grad_accum", "max_length", "logging_steps")
    problems = [
        f"train.{key} must be >= 1, got {getattr(train, key)}" for key in at_least_one if getattr(train, key) < 1
    ]
    if train.max_steps == 0 or train.max_steps < -1:
        problems.append(
            "train.max_steps must be a number of steps >= 1, or -1 to train for train.num_epochs, "
            f"got {train.max_steps}"
        )
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
        problems.append(
            f"train.precision must be one of {', '.join(PRECISIONS)}, got {train.precision!r}"
            f"{did_you_mean(train.precision, PRECISIONS)}"
        )
    if problems:
        raise ConfigError("; ".join(problems))


def check_remote_code(resolved: dict[str, Any], origin: Origin) -> None:
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
                        presets = (
                            []
                            if setting
                            else [
                                f"{g}={c}"
                                for g, c in origin.choices.items()
                                if g in ("experiment", "approach") and c != "None"
                            ]
                        )
                        raise ConfigError(
                            f"{dotted}=true is set in a config file ({setting or origin.describe(here[0], dotted)}"
                            f"{''.join(f', or the preset {p}' for p in presets)}), not on the command line. "
                            "It runs code shipped with the model, so a config file cannot turn it on. "
                            "If you trust that code, pass it "
                            f"on the command line yourself: {dotted}=true"
                        )
                walk(item, here)
        elif isinstance(value, list):
            for item in value:
                walk(item, path)

    walk(resolved, ())


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
        raise ConfigError(
            f"data: collector '{rc.collector.name}': data.path: cannot read "
            f"{exc.filename or path}: {exc.strerror or exc}"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"data: collector '{rc.collector.name}': {exc}") from None


def directory_problem(path: str | Path, *, keep: bool = False) -> str | None:
    """None when ``path`` is a directory tunelab can write in, or one it can create; else
    what stands in the way (a file at the path or above it, a place where nothing can be
    created or written). It tries (as root, permission bits say nothing): the directories it
    had to create are removed again unless ``keep``, and its probe file always is."""
    import tempfile

    path = Path(
        path
    ).absolute()  # no expanduser: Hydra makes hydra.run.dir=~/x as written (cache_dir is expanded already)
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
