"""Budget matching: train.max_train_tokens / train.max_train_seconds stop training at the
same budget for every approach, and the run says which limit stopped it."""

from __future__ import annotations

import pytest

from conftest import read_metrics, run_cli, validate
from tunelab.config import ConfigError


def test_token_budget_stops_at_the_first_step_past_it(smoke_args, tmp_path, isolated_cache):
    args = [*smoke_args, "peft=lora", "train.max_steps=200", "train.max_train_tokens=1500", "eval.max_generate=0"]
    assert run_cli(args) == 0
    m = read_metrics(tmp_path / "run")
    assert m["train_budget_stop"] == "tokens"
    per_step = m["train_tokens"] / m["train_steps"]
    assert 1500 <= m["train_tokens"] < 1500 + 2 * per_step and m["train_steps"] < 200


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_token_budget_stops_a_preference_objective(method, tmp_path):
    from tunelab.plugins import get_plugins

    if method not in get_plugins().registry.names("method"):
        pytest.skip(f"the installed TRL has no {method} trainer")
    args = [
        "experiment=dpo_smoke",
        f"method={method}",
        "train.max_length=128",
        "train.max_steps=200",
        "train.max_train_tokens=1500",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    assert run_cli(args) == 0
    m = read_metrics(tmp_path / "run")
    assert m["train_budget_stop"] == "tokens"
    per_step = m["train_tokens"] / m["train_steps"]
    assert 1500 <= m["train_tokens"] < 1500 + 2 * per_step and m["train_steps"] < 200


def test_time_budget_and_steps_coming_first(smoke_args, tmp_path, isolated_cache):
    args = [*smoke_args, "peft=lora", "train.max_steps=100000", "train.max_train_seconds=1.5", "eval.max_generate=0"]
    assert run_cli(args) == 0
    m = read_metrics(tmp_path / "run")
    assert m["train_budget_stop"] == "seconds" and 0 < m["train_steps"] < 100000
    assert 1.5 <= m["train_seconds"] < 60

    other = tmp_path / "other"
    assert (
        run_cli([*smoke_args[:1], f"hydra.run.dir={other}", "train.max_steps=2", "train.max_train_tokens=10000000"])
        == 0
    )
    assert read_metrics(other)["train_budget_stop"] == "steps" and read_metrics(other)["train_steps"] == 2


def test_negative_budgets_are_config_errors():
    with pytest.raises(ConfigError, match=r"train.max_train_tokens must be >= 0 \(0: no limit\), got -5"):
        validate(["train.max_train_tokens=-5"])
