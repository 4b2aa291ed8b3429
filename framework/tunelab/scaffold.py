"""``tunelab new-plugin NAME``: create a plugin package that installs, registers and passes
its own tests out of the box.

The package registers one cleaner (a typed config dataclass, drops reported to the
ledger) through the ``tunelab`` entry-point group, ships a config group option
(``pipeline/<name>.yaml``) through ``tunelab_config_search_paths``, and has a README
and a pytest suite. The templates are the strings below (``string.Template``: ``$name``
placeholders), so they ship inside tunelab's wheel with the code. Only the standard
library is imported here. Most of its length is those templates, kept together so the
generated package can be read in one place.
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from string import Template

from tunelab import __version__
from tunelab.api import API_VERSION
from tunelab.errors import TunelabError

#: what a plugin's short name must look like (after '-' -> '_' and without a tunelab_ prefix)
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


class ScaffoldError(TunelabError):
    """The plugin cannot be created as asked; the message says why and what to do."""


@dataclass(frozen=True)
class PluginNames:
    """Every name of a new plugin, derived from the one the user gave."""

    #: as given, e.g. ``acme-filters``
    given: str
    #: ``acme_filters``: the entry-point name, the cleaner's name and its pipeline option
    short: str
    #: ``tunelab-acme-filters``: the distribution (``pip install`` name) and directory name
    distribution: str
    #: ``tunelab_acme_filters``: the import package
    package: str


def plugin_names(name: str) -> PluginNames:
    """Derive the plugin's names from NAME, or raise :class:`ScaffoldError` saying what a
    usable name looks like."""
    given = name.strip()
    ident = given.replace("-", "_")
    example = "e.g. acme-filters or acme_filters"
    if not ident or not ident.isidentifier() or not ident.isascii() or keyword.iskeyword(ident):
        raise ScaffoldError(
            f"plugin name {name!r} is not usable: with '-' replaced by '_' it must be a Python identifier "
            f"(ASCII letters, digits and _, not starting with a digit, not a Python keyword), {example}"
        )
    short = ident[len("tunelab_") :] if ident.startswith("tunelab_") else ident
    if not short:
        raise ScaffoldError(f"plugin name {name!r} is only the tunelab prefix; name the plugin, {example}")
    if not NAME_PATTERN.fullmatch(short):
        suggestion = re.sub(r"_+", "_", short.lower()).strip("_")
        hint = f" (try {suggestion.replace('_', '-')!r})" if suggestion and NAME_PATTERN.fullmatch(suggestion) else ""
        raise ScaffoldError(
            f"plugin name {name!r} is not usable: tunelab component and package names are lowercase and start with "
            f"a letter{hint}, {example}"
        )
    return PluginNames(given, short, f"tunelab-{short.replace('_', '-')}", f"tunelab_{short}")


def render(names: PluginNames) -> dict[str, str]:
    """Relative path -> content of every file of the package."""
    values = {
        "short": names.short,
        "distribution": names.distribution,
        "package": names.package,
        "api_version": API_VERSION,
        "tunelab_version": __version__,
    }
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        ".gitignore": GITIGNORE,
        f"src/{names.package}/__init__.py": INIT,
        f"src/{names.package}/cleaners.py": CLEANERS,
        f"src/{names.package}/conf/__init__.py": CONF_INIT,
        f"src/{names.package}/conf/pipeline/{names.short}.yaml": PIPELINE_YAML,
        f"tests/test_{names.short}.py": TESTS,
    }
    return {path: Template(text).substitute(values) for path, text in files.items()}


def create_plugin(
    name: str,
    parent: Path,
    *,
    taken_cleaners: Iterable[str] = (),
    taken_plugins: Iterable[str] = (),
) -> tuple[Path, PluginNames, list[str]]:
    """Create the package directory ``parent/<distribution>``; return its path, the names
    and the files written. Refuses an unusable name, a name that installed plugins already
    use (``taken_cleaners``: registered cleaner names; ``taken_plugins``: entry-point names)
    and an existing directory; writes nothing then."""
    names = plugin_names(name)
    if names.short in set(taken_cleaners):
        raise ScaffoldError(
            f"a cleaner named '{names.short}' is already registered (see `tunelab plugins --kind cleaner`); "
            "component names are unique per kind, so choose another NAME"
        )
    if names.short in set(taken_plugins):
        raise ScaffoldError(
            f"an installed plugin already has the entry-point name '{names.short}' (see `tunelab plugins`); "
            "choose another NAME"
        )
    parent = Path(parent)
    target = parent / names.distribution
    if target.exists() or target.is_symlink():
        raise ScaffoldError(
            f"{target} already exists; nothing was written. Choose another NAME, another --dir, or remove {target}"
        )
    if parent.exists() and not parent.is_dir():
        raise ScaffoldError(f"--dir {parent} is a file, not a directory; give a directory to create the package in")
    files = render(names)
    parent.mkdir(parents=True, exist_ok=True)
    # write into a hidden sibling first, then rename: an interrupted run leaves no half package
    staging = Path(tempfile.mkdtemp(prefix=f".{names.distribution}-", dir=parent))
    try:
        for relative, content in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        os.chmod(staging, 0o777 & ~_umask())
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target, names, sorted(files)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- templates (string.Template: $short, $distribution, $package, $api_version, $tunelab_version) ---

PYPROJECT = """\
[build-system]
requires = ["setuptools>=77", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "A tunelab plugin: the cleaner $short and its pipeline option."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["tunelab>=$tunelab_version"]

[project.optional-dependencies]
test = ["pytest>=8"]

# tunelab loads every entry point of the `tunelab` group: this makes the package a plugin
[project.entry-points.tunelab]
$short = "$package"

[tool.setuptools.packages.find]
where = ["src"]

# the config group files returned by tunelab_config_search_paths must be in the wheel
[tool.setuptools.package-data]
"$package.conf" = ["*/*.yaml"]

[tool.pytest.ini_options]
testpaths = ["tests"]
filterwarnings = ["ignore::DeprecationWarning"]
"""

INIT = '''\
"""$distribution: a tunelab plugin.

tunelab finds it through the ``tunelab`` entry-point group (``pyproject.toml``) and calls
the ``@hookimpl`` functions below. To add more components, implement more hooks of
``tunelab.hookspecs`` here (``tunelab_register_augmenters``, ``tunelab_register_pefts``,
``tunelab_register_trackers``, ...), each returning ``tunelab.api.Component`` records.
"""

from __future__ import annotations

from tunelab.api import Component, hookimpl

from $package.cleaners import PhraseFilter, PhraseFilterConfig

#: The tunelab plugin API this package was written for (tunelab.api.API_VERSION); a
#: tunelab with another major version skips the plugin with a warning that names it.
TUNELAB_API_VERSION = "$api_version"

#: The cleaner's name: select it with pipeline=$short, or add it to any pipeline's list
#: (pipeline.clean=[drop_missing,$short]).
COMPONENT = "$short"

#: Where the config group files are (each directory of conf/ is a tunelab config group).
CONFIG_SEARCH_PATH = "pkg://$package.conf"


@hookimpl
def tunelab_register_cleaners():
    return [Component(COMPONENT, PhraseFilter, PhraseFilterConfig)]


@hookimpl
def tunelab_config_search_paths():
    return [CONFIG_SEARCH_PATH]
'''

CLEANERS = '''\
"""The cleaner ``$short``: drops rows whose text contains a blocked phrase.

Replace the rule with your own and keep the contract: every row the step removes is
reported with ``ctx.drop(ids, reason, detail)``. tunelab checks after the step that each
missing row was reported (a run fails with a LedgerError naming the step otherwise), so
the data report accounts for every row and `tunelab explain ROW_ID` can say why it went.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunelab.api import COMPLETION, PROMPT, ROW_ID, Cleaner, StageContext


@dataclass
class PhraseFilterConfig:
    """The cleaner's parameters: tunelab checks every key and type of
    pipeline.params.$short against these fields before any work."""

    #: text columns to search
    fields: list[str] = field(default_factory=lambda: [PROMPT, COMPLETION])
    #: a row is dropped when one of its fields contains one of these phrases (case-insensitive)
    phrases: list[str] = field(default_factory=lambda: ["as an ai language model", "lorem ipsum"])


class PhraseFilter(Cleaner):
    """Drops rows whose text contains a blocked phrase (reason: blocked phrase)."""

    def __init__(self, config: PhraseFilterConfig):
        super().__init__(config)
        if not config.fields or not all(isinstance(f, str) and f for f in config.fields):
            raise ValueError(f"$short.fields must list at least one column name, got {config.fields!r}")
        if not all(isinstance(p, str) and p.strip() for p in config.phrases):
            raise ValueError(f"$short.phrases must be non-blank strings, got {config.phrases!r}")
        self.phrases = [p.casefold() for p in config.phrases]

    def apply(self, data: Any, ctx: StageContext) -> Any:
        step = ctx.step or "$short"
        fields = list(dict.fromkeys(self.config.fields))
        missing = [column for column in fields if column not in data.column_names]
        if missing:
            raise ValueError(
                f"{step}: column(s) {missing} not in the data (columns: {data.column_names}); "
                f"set pipeline.params.{step}.fields to columns that exist"
            )
        # whole columns in one conversion (indexing a Dataset row by row is slow)
        table = data.select_columns(list(dict.fromkeys([ROW_ID, *fields]))).to_dict()
        keep: list[int] = []
        dropped: list[str] = []
        details: list[dict[str, str]] = []
        for index, row_id in enumerate(table[ROW_ID]):
            hit = self.blocked(table, fields, index)
            if hit is None:
                keep.append(index)
            else:
                dropped.append(row_id)
                details.append({"column": hit[0], "phrase": hit[1]})
        ctx.drop(dropped, "blocked phrase", details)
        ctx.count("rows_checked", len(table[ROW_ID]))
        return data.select(keep) if dropped else data

    def blocked(self, table: dict[str, list[Any]], fields: list[str], index: int) -> tuple[str, str] | None:
        """(column, phrase) of the first blocked phrase in row ``index``, or None."""
        for column in fields:
            text = table[column][index]
            if isinstance(text, str):
                folded = text.casefold()
                for phrase in self.phrases:
                    if phrase in folded:
                        return column, phrase
        return None
'''

CONF_INIT = '''\
"""Config group files of $distribution (the Hydra search path pkg://$package.conf).

Each directory is a tunelab config group and each file one more option of it, e.g.
pipeline/$short.yaml is selected with pipeline=$short. Add peft/<name>.yaml,
tracker/<name>.yaml, augment/<name>.yaml... for components of those kinds.
"""
'''

PIPELINE_YAML = """\
# tunelab's `minimal` pipeline plus this plugin's cleaner $short:
#   tunelab prepare pipeline=$short
#   tunelab prepare pipeline=$short 'pipeline.params.$short.phrases=[refund, lorem ipsum]'
# In another pipeline, add the step to its list: pipeline.clean=[drop_missing,exact_dedup,$short]
defaults:
  - minimal
  - _self_
clean: [drop_missing, exact_dedup, $short]
params:
  $short:
    fields: [prompt, completion]
    phrases: [as an ai language model, lorem ipsum]
"""

TESTS = '''\
"""Tests of $distribution: the cleaner on its own, its registration through the entry
point, and a real `tunelab prepare` with its pipeline option. They need the package
installed: pip install -e '.[test]' && pytest"""

from __future__ import annotations

import json

import pytest
from datasets import Dataset

from tunelab.api import StageContext
from $package import COMPONENT, CONFIG_SEARCH_PATH
from $package.cleaners import PhraseFilter, PhraseFilterConfig


def rows() -> Dataset:
    return Dataset.from_list([
        {"id": "r0", "parent_id": None, "prompt": "Where is my order?", "completion": "It ships today."},
        {"id": "r1", "parent_id": None, "prompt": "Lorem ipsum dolor", "completion": "sit amet"},
        {"id": "r2", "parent_id": None, "prompt": "Can I return boots?", "completion": "As an AI language model, I can't."},
    ])


def context(tmp_path) -> StageContext:
    return StageContext(seed=0, num_proc=1, work_dir=tmp_path, step=COMPONENT)


def test_drops_rows_with_a_blocked_phrase_and_says_why(tmp_path):
    ctx = context(tmp_path)
    out = PhraseFilter(PhraseFilterConfig()).apply(rows(), ctx)
    assert out.to_dict()["id"] == ["r0"]
    dropped = {row_id: (drop.reason, detail) for drop in ctx.drops for row_id, detail in zip(drop.ids, drop.detail)}
    assert dropped == {
        "r1": ("blocked phrase", {"column": "prompt", "phrase": "lorem ipsum"}),
        "r2": ("blocked phrase", {"column": "completion", "phrase": "as an ai language model"}),
    }


def test_bad_values_and_missing_columns_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="phrases must be non-blank strings"):
        PhraseFilter(PhraseFilterConfig(phrases=[" "]))
    with pytest.raises(ValueError, match=r"\\['question'\\] not in the data"):
        PhraseFilter(PhraseFilterConfig(fields=["question"])).apply(rows(), context(tmp_path))


def test_registered_through_the_tunelab_entry_point_group():
    from tunelab.plugins import get_plugins

    plugins = get_plugins(reload=True)
    cleaner = plugins.registry.get("cleaner", COMPONENT)
    assert cleaner.supplier.distribution.replace("_", "-") == "$distribution"
    assert CONFIG_SEARCH_PATH in plugins.config_search_paths()


def test_prepare_with_the_plugins_pipeline_option(tmp_path, monkeypatch):
    """`tunelab prepare pipeline=$short` on tunelab's bundled sample data: the config group
    composes and validates, and the ledger names every row the cleaner dropped."""
    from tunelab.cli import main
    from tunelab.plugins import get_plugins

    monkeypatch.setenv("TUNELAB_CACHE_DIR", str(tmp_path / "cache"))
    get_plugins(reload=True)
    run_dir = tmp_path / "run"
    args = ["prepare", f"pipeline={COMPONENT}", f"pipeline.params.{COMPONENT}.phrases=[refund]", f"hydra.run.dir={run_dir}"]
    assert main(args) == 0
    ledger = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    assert any(r.get("step") == COMPONENT and r.get("reason") == "blocked phrase" for r in ledger)
'''  # noqa: E501 (the generated tests file, written as is)

README = """\
# $distribution

A plugin for tunelab, created by `tunelab new-plugin $short`.
It adds the cleaner `$short` (drops rows whose text contains a blocked phrase) and the
config option `pipeline=$short` (tunelab's `minimal` pipeline plus this cleaner).

## Install and test

```bash
pip install -e '.[test]'      # in tunelab's environment; offline: add --no-build-isolation
pytest
tunelab plugins --kind cleaner --fields     # $short, from $distribution
```

## Use

```bash
tunelab prepare pipeline=$short
tunelab prepare pipeline=$short 'pipeline.params.$short.phrases=[refund, lorem ipsum]'
tunelab prepare 'pipeline.clean=[drop_missing,exact_dedup,$short]'   # in any pipeline
tunelab -m experiment=smoke pipeline=minimal,$short                  # sweep it on and off
```

The ledger (`ledger.jsonl` in the run directory) lists every dropped row with the reason
`blocked phrase` and which column held which phrase; `tunelab explain ROW_ID` shows it.

## Layout

```
pyproject.toml                  [project.entry-points.tunelab] $short = "$package"
src/$package/__init__.py        the hooks (@hookimpl) and TUNELAB_API_VERSION = "$api_version"
src/$package/cleaners.py        the cleaner and its config dataclass (its parameters and types)
src/$package/conf/pipeline/$short.yaml   a config group option, found through tunelab_config_search_paths
tests/test_$short.py            the cleaner in-process, its registration, a real `tunelab prepare`
```

## Grow it

- Change the rule in `cleaners.py`. A step that removes rows reports them with
  `ctx.drop(ids, reason, detail)`; one that adds rows gives each a new `id` and sets
  `parent_id` (tunelab checks both after every step).
- Add components of other kinds by implementing more hooks in `__init__.py`
  (`tunelab_register_augmenters`, `_pefts`, `_trackers`, ...; all are documented in
  `tunelab/hookspecs.py`), and their options as files in `conf/<group>/`, e.g.
  `conf/peft/my_lora.yaml` with `name: my_lora` and its parameters.
- Component names are unique per kind across all installed plugins: a clash stops tunelab
  with both suppliers named.
"""

GITIGNORE = """\
__pycache__/
*.egg-info/
build/
dist/
outputs/
multirun/
"""
