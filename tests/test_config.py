from __future__ import annotations

import pytest

from conftest import run_cli, validate
from tunelab.config import ConfigError
from tunelab.plugins import get_plugins
from tunelab.redaction import redact_secrets


def test_default_config_validates_into_typed_components():
    rc = validate([])
    assert rc.collector.name == "jsonl"
    assert [s.name for s in rc.steps["clean"]] == [
        "strip_markup",
        "normalize",
        "drop_missing",
        "quality_filter",
        "pii",
        "exact_dedup",
        "near_dedup",
    ]
    assert rc.peft.name == "lora" and rc.peft.config.r == 8
    assert rc.train.max_steps == 12
    assert [t.name for t in rc.trackers] == ["csv"]


def test_unknown_key_from_the_command_line_names_key_choices_and_override():
    with pytest.raises(ConfigError) as err:
        validate(["+peft.rank=4"])
    message = str(err.value)
    assert "peft.rank" in message
    assert "Valid keys: alpha, bias, dropout, r, target_modules" in message
    assert "+peft.rank=4" in message


def test_wrong_type_names_key_and_expected_type():
    with pytest.raises(ConfigError) as err:
        validate(["train.max_steps=lots"])
    message = str(err.value)
    assert "train.max_steps" in message and "int" in message


def test_unknown_component_lists_registered_ones():
    with pytest.raises(ConfigError) as err:
        validate(["peft.name=lorax"])
    message = str(err.value)
    assert "unknown peft 'lorax'" in message and "lora, none" in message


def test_unknown_pipeline_step_names_stage_and_choices():
    with pytest.raises(ConfigError) as err:
        validate(["pipeline.clean=[normalize,dedupe]"])
    message = str(err.value)
    assert "pipeline.clean" in message and "unknown cleaner 'dedupe'" in message and "exact_dedup" in message


def test_bad_step_parameter_names_the_yaml_file(tmp_path, installed_plugin):
    conf = tmp_path / "plugin_conf"
    (conf / "peft").mkdir(parents=True)
    (conf / "peft" / "sloppy.yaml").write_text("name: lora\nr: 4\nrank_typo: 3\n")
    installed_plugin(
        "tl_conf",
        f"from tunelab.api import hookimpl\n\n@hookimpl\ndef tunelab_config_search_paths():\n    return ['file://{conf}']\n",
    )
    get_plugins(reload=True)
    with pytest.raises(ConfigError) as err:
        validate(["peft=sloppy"])
    message = str(err.value)
    assert "peft.rank_typo" in message
    assert str(conf / "peft" / "sloppy.yaml") in message


def test_plugin_config_group_option_is_selectable(tmp_path, installed_plugin):
    conf = tmp_path / "plugin_conf"
    (conf / "peft").mkdir(parents=True)
    (conf / "peft" / "lora_r2.yaml").write_text("name: lora\nr: 2\n")
    installed_plugin(
        "tl_conf2",
        f"from tunelab.api import hookimpl\n\n@hookimpl\ndef tunelab_config_search_paths():\n    return ['file://{conf}']\n",
    )
    get_plugins(reload=True)
    assert validate(["peft=lora_r2"]).peft.config.r == 2


def test_config_cannot_name_an_arbitrary_callable():
    # a _target_ smuggled into a component section is just an unknown key
    with pytest.raises(ConfigError, match=r"_target_"):
        validate(["+data._target_=os.system"])
    with pytest.raises(ConfigError, match=r"unknown collector 'os.system'"):
        validate(["data.name=os.system"])


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match="unknown top-level key 'trian'"):
        validate(["+trian.max_steps=3"])


def test_cli_reports_config_errors_without_a_traceback(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["prepare", "++pipeline.params.exact_dedup.colums=[prompt]", f"hydra.run.dir={tmp_path}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "config error" in err and "colums" in err and "Valid keys: fields, normalize" in err
    assert "Traceback" not in err


def test_secrets_are_redacted():
    cleaned = redact_secrets(
        {
            "db": {"url": "postgresql://bob:hunter2@db.example.com/x", "password": "pw"},
            "wandb_api_key": "k",
            "hf_token": "hf_x",
            "pii": {"salt": "pepper"},
            "r": 8,
            "max_new_tokens": 64,
            "min_tokens": 2,
        }
    )
    assert cleaned == {
        "db": {"url": "postgresql://bob:***@db.example.com/x", "password": "***"},
        "wandb_api_key": "***",
        "hf_token": "***",
        "pii": {"salt": "***"},
        "r": 8,
        "max_new_tokens": 64,
        "min_tokens": 2,
    }


def test_cli_reports_data_errors_without_a_traceback(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["prepare", f"data.path={tmp_path / 'missing.jsonl'}", f"hydra.run.dir={tmp_path / 'run'}"])
    assert exit_info.value.code == 2  # a config error: found before any work, no run directory made
    err = capsys.readouterr().err
    assert "missing.jsonl' does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_required_value_left_unset_names_the_key():
    with pytest.raises(ConfigError, match=r"cannot resolve 'model.path'.*model.path=\.\.\."):
        validate(["model=hf"])


def test_unknown_grid_country_fails_at_validation():
    with pytest.raises(ConfigError, match=r"train: country: unknown grid 'atlantis'; choose one of: .*world"):
        validate(["train.country=atlantis"])


def test_a_check_in_a_config_dataclass_becomes_a_config_error_naming_the_component():
    with pytest.raises(ConfigError, match=r"method 'dpo' \(from .*dpo.yaml.*\): beta must be > 0, got -1.0"):
        validate(["experiment=dpo_smoke", "method.beta=-1"])
