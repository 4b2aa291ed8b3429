from __future__ import annotations

import pytest

from conftest import run_cli
from tunelab.api import KINDS
from tunelab.plugins import DISABLE_EXTERNAL_ENV, PluginError, get_plugins

GOOD_PLUGIN = '''
from dataclasses import dataclass
from tunelab.api import Cleaner, Component, hookimpl

@dataclass
class ShoutConfig:
    field: str = "prompt"

class Shout(Cleaner):
    """Upper-cases one column."""
    def apply(self, data, ctx):
        return data.map(lambda b: {self.config.field: [v.upper() if v else v for v in b[self.config.field]]}, batched=True)

@hookimpl
def tunelab_register_cleaners():
    return [Component("shout", Shout, ShoutConfig)]
'''  # noqa: E501 (a plugin module's source, written to a file as is)


def test_builtins_come_through_the_entry_point_group():
    plugins = get_plugins()
    registry = plugins.registry
    for kind in (
        "collector",
        "cleaner",
        "augmenter",
        "balancer",
        "splitter",
        "model",
        "method",
        "peft",
        "evaluator",
        "tracker",
    ):
        assert registry.names(kind), f"no built-in {kind}"
    lora = registry.get("peft", "lora")
    assert lora.supplier.distribution == "tunelab"
    assert lora.supplier.plugin == "builtin"
    assert {f.name for f in __import__("dataclasses").fields(lora.config_schema)} >= {"r", "alpha", "dropout"}
    assert set(registry.components) == set(KINDS)


def test_third_party_plugin_is_registered_with_its_distribution(installed_plugin):
    installed_plugin("tl_shout", GOOD_PLUGIN, version="2.3.4")
    component = get_plugins(reload=True).registry.get("cleaner", "shout")
    assert component.supplier.distribution == "tunelab-tl-shout"
    assert component.supplier.version == "2.3.4"
    assert component.description == "Upper-cases one column."


def test_plugins_command_lists_third_party_components(installed_plugin, capsys):
    installed_plugin("tl_shout", GOOD_PLUGIN)
    get_plugins(reload=True)
    assert run_cli(["plugins", "--kind", "cleaner", "--fields"]) == 0
    out = capsys.readouterr().out
    assert "shout" in out and "tunelab-tl-shout" in out
    assert "field: str = 'prompt'" in out


def test_duplicate_component_name_names_both_suppliers(installed_plugin):
    installed_plugin("tl_dup", GOOD_PLUGIN.replace('"shout"', '"exact_dedup"'), version="0.9")
    with pytest.raises(PluginError) as err:
        get_plugins(reload=True)
    message = str(err.value)
    assert "exact_dedup" in message
    assert "tunelab 0.1.0" in message and "tunelab-tl-dup 0.9" in message


def test_plugin_that_raises_on_import_is_skipped_with_a_warning(installed_plugin):
    installed_plugin("tl_broken", "raise RuntimeError('boom at import')\n")
    with pytest.warns(UserWarning, match=r"tl_broken.*boom at import"):
        plugins = get_plugins(reload=True)
    assert "tl_broken" in plugins.registry.failed
    assert plugins.registry.get("peft", "lora")  # everything else still works


def test_hookimpl_matching_no_hookspec_is_an_error(installed_plugin):
    installed_plugin(
        "tl_typo",
        "from tunelab.api import hookimpl\n\n@hookimpl\ndef tunelab_register_cleanerz():\n    return []\n",
    )
    with pytest.raises(PluginError, match=r"tl_typo.*tunelab_register_cleanerz.*not a tunelab hook"):
        get_plugins(reload=True)


def test_incompatible_api_version_is_refused_with_a_clear_message(installed_plugin):
    installed_plugin("tl_old", GOOD_PLUGIN + "\nTUNELAB_API_VERSION = '0.3'\n")
    with pytest.warns(UserWarning, match=r"written for tunelab plugin API 0.3"):
        plugins = get_plugins(reload=True)
    assert "shout" not in plugins.registry.names("cleaner")


def test_environment_variable_disables_external_plugins(installed_plugin, monkeypatch):
    installed_plugin("tl_shout", GOOD_PLUGIN)
    monkeypatch.setenv(DISABLE_EXTERNAL_ENV, "1")
    plugins = get_plugins(reload=True)
    assert "shout" not in plugins.registry.names("cleaner")
    assert "exact_dedup" in plugins.registry.names("cleaner")


def test_registration_hook_that_raises_skips_only_that_plugin(installed_plugin):
    installed_plugin(
        "tl_raising",
        "from tunelab.api import hookimpl\n\n@hookimpl\ndef tunelab_register_pefts():\n    raise ValueError('nope')\n",
    )
    with pytest.warns(UserWarning, match="nope"):
        plugins = get_plugins(reload=True)
    assert "lora" in plugins.registry.names("peft")


HOLDOUT_SPLITTER = '''
from dataclasses import dataclass
from tunelab.api import Component, Splitter, hookimpl

@dataclass
class HoldoutConfig:
    every: int = 5

class Holdout(Splitter):
    """Every n-th row is held out."""
    splits = ("train", "holdout")
    def split(self, data, ctx):
        rows = range(len(data))
        return {"train": data.select([i for i in rows if i % self.config.every]),
                "holdout": data.select([i for i in rows if not i % self.config.every])}

@hookimpl
def tunelab_register_splitters():
    return [Component("holdout", Holdout, HoldoutConfig)]
'''


def test_a_plugin_splitter_declares_the_splits_eval_split_may_name(installed_plugin):
    from tunelab.config import ConfigError
    from tunelab.preflight import check_overrides
    from tunelab.train.compat import check_approach

    installed_plugin("tl_holdout", HOLDOUT_SPLITTER)
    registry = get_plugins(reload=True).registry
    base = ["experiment=smoke", "pipeline.split=holdout"]
    check_approach(check_overrides([*base, "eval.split=holdout"], sources=False), registry)
    with pytest.raises(
        ConfigError,
        match=r"eval.split is 'test', a split the splitter 'holdout' does not make; "
        r"it makes train, holdout: set eval.split to one of those \(eval.split=holdout\)",
    ):
        check_approach(check_overrides(base, sources=False), registry)


def test_a_splitter_returning_a_split_it_does_not_declare_is_an_error(installed_plugin, tmp_path, capsys):
    installed_plugin(
        "tl_holdout", HOLDOUT_SPLITTER.replace('splits = ("train", "holdout")', 'splits = ("train", "test")')
    )
    get_plugins(reload=True)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["prepare", "experiment=smoke", "pipeline.split=holdout", f"hydra.run.dir={tmp_path / 'run'}"])
    assert exit_info.value.code == 1
    assert (
        "the splitter 'holdout' returned splits ['holdout'] it does not declare (it declares ['train', 'test']); "
        "the splitter's `splits` class attribute must list every split it makes"
    ) in capsys.readouterr().err


def test_plugins_listing_matches_the_snapshot(capsys):
    """Every built-in component keeps its kind, name, description and fields (snapshot taken before the
    built-ins were laid out by kind). Regenerate on an intended change: ``tunelab plugins --fields``."""
    from pathlib import Path

    assert run_cli(["plugins", "--fields"]) == 0
    snapshot = Path(__file__).parent / "snapshots" / "plugins.txt"
    assert capsys.readouterr().out == snapshot.read_text()


def test_a_component_that_does_not_subclass_its_kinds_contract_is_refused(installed_plugin):
    # a Cleaner registered as an augmenter: the kind string alone is not trusted
    installed_plugin(
        "tl_wrong_kind", GOOD_PLUGIN.replace("def tunelab_register_cleaners", "def tunelab_register_augmenters")
    )
    with pytest.raises(PluginError) as err:
        get_plugins(reload=True)
    assert str(err.value) == (
        "plugin 'tl_wrong_kind' (tunelab-tl-wrong-kind 1.0.0): tunelab_register_augmenters returned augmenter 'shout' "
        "whose class <class 'tl_wrong_kind.Shout'> does not subclass tunelab.api.Augmenter. "
        "Every augmenter must; derive the class from it."
    )


def test_every_kind_has_its_registration_hook_documented_with_an_example():
    from tunelab import hookspecs
    from tunelab.api import KIND_TABLE

    assert tuple(KIND_TABLE) == KINDS
    for kind in KIND_TABLE.values():
        spec = getattr(hookspecs, kind.hook)
        assert kind.contract.__name__ in spec.__doc__, kind.hook
        assert "Example::" in spec.__doc__, kind.hook
        assert f"def {kind.hook}():" in spec.__doc__, kind.hook
