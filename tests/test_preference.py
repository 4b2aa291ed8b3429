"""Preference objectives (dpo, kto, orpo, reward, rlhf) and the preference evaluator, tiny model."""

from __future__ import annotations

import json

import pytest

from conftest import read_metrics, run_cli

FAST = ["train.max_steps=2", "train.max_length=64", "eval.max_rows=6"]


def pairs(n: int = 8):
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": [f"Question {i}: when do you ship?" for i in range(n)],
            "chosen": ["We ship Monday to Friday; standard takes 3-5 business days."] * n,
            "rejected": ["Please check our website."] * n,
        }
    )


def job_for(tmp_path, data, peft_config=None, steps=2):
    from tunelab.api import LoadedModel, TrainJob, TrainSettings
    from tunelab_builtin.models.tiny import TinyModel, TinyModelConfig

    loaded = TinyModel(TinyModelConfig()).load({}, tmp_path)
    settings = TrainSettings(max_steps=steps, batch_size=4, max_length=64, logging_steps=1, save_model=False)
    return TrainJob(
        LoadedModel(loaded.model, loaded.tokenizer, "tiny"),
        {"train": data, "test": data},
        peft_config,
        settings,
        tmp_path,
        0,
    )


def test_dpo_with_lora_trains_the_adapter_and_reports_preference_accuracy(tmp_path):
    assert run_cli(["experiment=dpo_smoke", f"hydra.run.dir={tmp_path / 'run'}", "peft.r=4", *FAST]) == 0
    metrics = read_metrics(tmp_path / "run")
    assert metrics["status"] == "ok" and metrics["train_steps"] == 2
    assert metrics["train_loss_first"] == pytest.approx(0.6931, abs=1e-3)  # log 2: policy == reference at step 1
    assert 0 < metrics["trainable_params"] < metrics["total_params"] * 0.5
    assert 0 <= metrics["test_preference_accuracy"] <= 1 and metrics["test_rows"] == 6
    adapter = json.loads((tmp_path / "run" / "model" / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LORA" and adapter["r"] == 4


def test_dpo_full_fine_tuning_keeps_a_reference_copy(tmp_path):
    assert (
        run_cli(["experiment=dpo_smoke", f"hydra.run.dir={tmp_path / 'run'}", "peft=none", "method.beta=0.5", *FAST])
        == 0
    )
    metrics = read_metrics(tmp_path / "run")
    assert metrics["status"] == "ok" and metrics["trainable_params"] == metrics["total_params"]
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_reward_model_run_scores_pairs_with_its_scalar_head(tmp_path):
    args = [
        "experiment=dpo_smoke",
        f"hydra.run.dir={tmp_path / 'run'}",
        "method=reward",
        "peft=lora",
        *FAST,
        "train.max_length=128",
    ]
    assert run_cli(args) == 0
    metrics = read_metrics(tmp_path / "run")
    assert metrics["status"] == "ok" and metrics["train_steps"] == 2
    assert 0 <= metrics["test_preference_accuracy"] <= 1
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert len(config["id2label"]) == 1 and config["architectures"] == ["LlamaForSequenceClassification"]
    assert not (tmp_path / "run" / "model" / "adapter_config.json").exists()  # merged: usable as reward_model=<dir>


def test_sft_only_data_with_dpo_fails_before_training_naming_the_columns(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(
            ["experiment=dpo_smoke", f"hydra.run.dir={tmp_path / 'run'}", "data=support_tickets", "pipeline=minimal"]
        )
    assert exit_info.value.code == 2  # a config error, raised before any model is loaded
    err = capsys.readouterr().err
    assert "method=dpo needs columns ['prompt', 'chosen', 'rejected'] in the 'train' split" in err and "'chosen'" in err
    assert not (tmp_path / "run" / "model").exists()


def test_kto_and_orpo_train_on_pairs(tmp_path):
    from tunelab.plugins import get_plugins
    from tunelab_builtin.methods.kto import Kto, KtoConfig, unpaired
    from tunelab_builtin.methods.orpo import Orpo, OrpoConfig

    rows = unpaired(pairs(3))
    assert rows["label"] == [True] * 3 + [False] * 3 and rows["completion"][3] == "Please check our website."
    outcome = Kto(KtoConfig()).train(job_for(tmp_path / "kto", pairs()))
    assert outcome.metrics["train_steps"] == 2 and outcome.metrics["train_rows"] == 16
    if "orpo" in get_plugins().registry.names("method"):  # registered only when TRL ships it
        outcome = Orpo(OrpoConfig()).train(job_for(tmp_path / "orpo", pairs()))
        assert outcome.metrics["train_steps"] == 2 and outcome.metrics["train_loss_first"] > 0
        # its batches carry chosen/rejected ids, not input_ids: the tokens are counted all the same
        assert outcome.metrics["train_tokens"] > 0 and outcome.metrics["train_tokens_per_second"] > 0


def test_rlhf_with_reward_functions_runs_two_steps(tmp_path):
    from tunelab_builtin.methods.rlhf import Rlhf, RlhfConfig, keyword_overlap, length_penalty

    assert keyword_overlap(["q"], ["we ship friday"], chosen=["We ship on Friday."]) == [1.0]
    assert length_penalty(["q"], ["word " * 40], target_words=40) == [1.0]
    assert length_penalty(["q"], [""], target_words=40) == [0.0]
    config = RlhfConfig(reward_functions=["keyword_overlap", "length_penalty"], max_completion_length=8)
    outcome = Rlhf(config).train(job_for(tmp_path, pairs()))
    assert outcome.metrics["train_steps"] == 2
    assert 0 <= outcome.metrics["train_reward_last"] <= 2


def test_rlhf_config_rejects_unknown_reward_function():
    from tunelab_builtin.methods.rlhf import RlhfConfig

    with pytest.raises(ValueError, match="reward_functions.*length_penalty"):
        RlhfConfig(reward_functions=["nope"])


def test_evaluator_prefers_the_answer_the_model_was_taught(tmp_path):
    import torch

    from tunelab.api import TrainOutcome
    from tunelab.train.formatting import render_pair, tokenize_pair
    from tunelab_builtin.evaluators.preference import PreferenceEvalConfig, PreferenceEvaluator

    data = pairs(2)
    job = job_for(tmp_path, data)
    model, tokenizer = job.model.model, job.model.tokenizer
    # teach the tiny model the chosen answer (plain next-token training)
    ids, _ = tokenize_pair(tokenizer, *render_pair(tokenizer, data[0]["prompt"], data[0]["chosen"]), 64)
    batch = torch.tensor([ids])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    # the taught answer is longer than the curt one, so it only wins if it is really more likely
    for score in ("sum", "mean"):
        metrics = PreferenceEvaluator(PreferenceEvalConfig(score=score)).evaluate(job, TrainOutcome(model, tokenizer))
        assert metrics["test_preference_accuracy"] == 1.0 and metrics["test_reward_margin"] > 0
        assert metrics["test_rows"] == 2
    swapped = data.rename_columns({"chosen": "rejected", "rejected": "chosen"})
    job.splits["test"] = swapped
    metrics = PreferenceEvaluator(PreferenceEvalConfig()).evaluate(job, TrainOutcome(model, tokenizer))
    assert metrics["test_preference_accuracy"] == 0.0 and metrics["test_reward_margin"] < 0


# --- every preference objective with LoRA, end to end, and the saved adapter reloads --------


def rescored_margin(run_dir, max_length=64) -> float:
    """The reward margin of the run's saved model, reloaded from disk, on the same test pairs."""
    from conftest import job_from_run
    from tunelab.api import TrainOutcome
    from tunelab.predict import _load_trained
    from tunelab_builtin.evaluators.preference import PreferenceEvalConfig, PreferenceEvaluator

    model, tokenizer = _load_trained(run_dir, "causal_lm")
    job = job_from_run(run_dir, max_length=max_length)
    return PreferenceEvaluator(PreferenceEvalConfig(max_rows=6)).evaluate(job, TrainOutcome(model, tokenizer))[
        "test_reward_margin"
    ]


@pytest.mark.parametrize(
    "method, extra",
    [
        ("kto", []),
        ("orpo", ["train.max_length=128"]),
        ("rlhf", ["method.algorithm=rloo", "method.max_completion_length=8", "train.batch_size=2"]),
        ("rlhf", ["method.algorithm=grpo", "method.max_completion_length=8", "train.batch_size=2"]),
    ],
)
def test_preference_objective_with_lora_trains_saves_and_reloads(method, extra, tmp_path, isolated_cache):
    from tunelab.plugins import get_plugins

    if method not in get_plugins().registry.names("method"):
        pytest.skip(f"the installed TRL has no {method} trainer")
    run_dir = tmp_path / "run"
    args = [
        "experiment=dpo_smoke",
        f"method={method}",
        "peft=lora",
        "peft.r=4",
        f"hydra.run.dir={run_dir}",
        *FAST,
        *extra,
    ]
    assert run_cli(args) == 0
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "ok" and metrics["train_steps"] == 2
    assert 0 < metrics["trainable_params"] < 0.5 * metrics["total_params"]
    assert 0 <= metrics["test_preference_accuracy"] <= 1
    if method == "rlhf":
        assert 0 <= metrics["train_reward_last"] <= 1  # keyword_overlap is a fraction
    adapter = json.loads((run_dir / "model" / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LORA" and adapter["r"] == 4
    max_length = 128 if "train.max_length=128" in extra else 64
    assert rescored_margin(run_dir, max_length) == pytest.approx(metrics["test_reward_margin"], rel=1e-4, abs=1e-5)


def test_rlhf_with_the_reward_model_a_reward_run_saved(tmp_path, isolated_cache):
    reward_dir = tmp_path / "reward"
    assert run_cli(["experiment=dpo_smoke", "method=reward", "peft=lora", f"hydra.run.dir={reward_dir}", *FAST]) == 0
    from tunelab.predict import predict

    scores = predict(reward_dir, ["We ship Monday to Friday.", "Please check our website."])
    assert len(scores) == 2 and all(isinstance(s["reward"], float) for s in scores)

    run_dir = tmp_path / "rlhf"
    args = [
        "experiment=dpo_smoke",
        "method=rlhf",
        f"method.reward_model={reward_dir / 'model'}",
        "method.reward_functions=[]",
        "method.max_completion_length=8",
        "train.batch_size=2",
        "peft=lora",
        f"hydra.run.dir={run_dir}",
        *FAST,
    ]
    assert run_cli(args) == 0
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "ok" and metrics["train_steps"] == 2
    assert metrics["train_reward_first"] == metrics["train_reward_first"]  # a number, not NaN: the model scored


def test_a_diverged_run_fails_instead_of_reporting_nan_scores(tmp_path, capsys):
    # ORPO's byte-level prompts fill 64 tokens, so no answer token is left: the loss has no
    # terms, the gradients are NaN and so are the weights after one step
    if "orpo" not in __import__("tunelab.plugins").plugins.get_plugins().registry.names("method"):
        pytest.skip("the installed TRL has no ORPO trainer")
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        run_cli(["experiment=dpo_smoke", "method=orpo", "peft=lora", f"hydra.run.dir={run_dir}", *FAST])
    assert info.value.code == 1
    assert "training diverged" in capsys.readouterr().err
    assert read_metrics(run_dir)["status"] == "failed"


def test_predict_generates_with_a_lora_sft_run(smoke_args, tmp_path, isolated_cache):
    assert run_cli([*smoke_args, "peft=lora", "train.max_steps=2", "eval.max_generate=0"]) == 0
    from tunelab.predict import predict

    first = predict(tmp_path / "run", ["Where is my order?"], max_new_tokens=4)
    again = predict(tmp_path / "run", ["Where is my order?"], max_new_tokens=4)
    assert len(first) == 1 and isinstance(first[0]["text"], str) and first == again  # greedy: reproducible
