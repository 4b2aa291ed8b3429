"""model × method × peft × eval: incompatible approaches are refused before any work, with
the reason and the options that would work; the new pieces the check opened up (masked-LM
cpt on encoders, GRPO, predict on every kind of run) work end to end on the tiny models."""

from __future__ import annotations

import json
import math

import pytest

from conftest import job_from_run, read_metrics, run_cli
from tunelab.config import ConfigError


@pytest.fixture
def registry():
    from tunelab.plugins import get_plugins

    return get_plugins().registry


def refusal(registry, model, method, peft, evaluator) -> str:
    from tunelab.train.compat import resolve

    with pytest.raises(ConfigError) as info:
        resolve(registry, model, method, peft, evaluator)
    return str(info.value)


def test_causal_objective_on_an_encoder_names_the_models_and_methods_that_fit(registry):
    message = refusal(registry, "tiny_encoder", "sft", "lora", "lm")
    assert "method=sft needs a model loaded as causal_lm, but model=tiny_encoder loads only" in message
    assert "Models that can: hf, smollm2_135m, tiny" in message
    assert "pick a method for tiny_encoder: classify, cpt, feature, semi_supervised" in message


def test_feature_refuses_every_adapter_and_names_none(registry):
    message = refusal(registry, "tiny_encoder", "feature", "lora", "classification")
    assert "keeps the backbone frozen" in message and message.endswith("peft options that work with feature: none")


def test_qlora_needs_a_quantizable_loader_then_a_gpu(registry):
    # the loaders themselves do not check: this refusal is the only one (before any work)
    assert "which model=tiny cannot load. Models that can: hf, smollm2_135m" in refusal(
        registry, "tiny", "sft", "qlora", "lm"
    )
    for model, method, evaluator in [
        ("tiny", "classify", "classification"),
        ("tiny_encoder", "classify", "classification"),
        ("minilm", "classify", "classification"),
        ("minilm", "cpt", "masked_lm"),
    ]:
        assert refusal(registry, model, method, "qlora", evaluator) == (
            f"peft=qlora trains on a 4-bit base, which model={model} cannot load. Models that can: hf, smollm2_135m; "
            "or use peft=lora"
        )
    import torch

    if not torch.cuda.is_available():
        assert "needs a CUDA GPU" in refusal(registry, "smollm2_135m", "sft", "qlora", "lm")


def test_evaluator_must_score_what_the_method_produces(registry):
    from tunelab.train.compat import resolve

    message = refusal(registry, "tiny_encoder", "classify", "none", "lm")
    assert "eval=lm scores causal_lm models" in message and "Evaluators for it: classification" in message
    assert "Evaluators for it: preference" in refusal(registry, "tiny", "reward", "lora", "lm")
    assert resolve(registry, "tiny", "reward", "lora", "preference").produces == "reward_model"
    assert resolve(registry, "tiny_encoder", "feature", "none", "classification").task == "encoder"


def test_cpt_trains_a_masked_lm_on_encoders_without_prompt_learning(registry):
    from tunelab.train.compat import resolve

    assert resolve(registry, "tiny", "cpt", "lora", "lm").task == "causal_lm"
    assert resolve(registry, "minilm", "cpt", "lora", "masked_lm").task == "masked_lm"
    message = refusal(registry, "tiny_encoder", "cpt", "prompt_tuning", "masked_lm")
    assert "peft=prompt_tuning adapts models loaded as causal_lm, sequence_classification" in message
    assert "peft options for it: custom, dora, ia3, lora, none" in message


def test_orpo_refuses_prompt_learning_that_shifts_its_labels(registry):
    if "orpo" not in registry.names("method"):
        pytest.skip("the installed TRL has no ORPO trainer")
    from tunelab.train.compat import resolve

    assert "virtual tokens" in refusal(registry, "tiny", "orpo", "prompt_tuning", "preference")
    assert resolve(registry, "tiny", "orpo", "prefix_tuning", "preference").task == "causal_lm"


def test_plugin_components_take_part_through_their_class_attributes():
    from tunelab.api import Component, Method, ModelLoader, hookimpl
    from tunelab.plugins import add_plugin, remove_plugin

    class Embedder(ModelLoader):
        tasks = ("encoder",)

    class Contrastive(Method):
        task = "encoder"
        produces = "embeddings"

    class Plugin:
        @hookimpl
        def tunelab_register_models(self):
            return [Component("embedder", Embedder)]

        @hookimpl
        def tunelab_register_methods(self):
            return [Component("contrastive", Contrastive)]

    plugins = add_plugin(Plugin(), "compat-test")
    try:
        registry = plugins.registry
        assert refusal(registry, "embedder", "sft", "none", "lm").endswith(
            "pick a method for embedder: contrastive, feature"
        )
        assert "Models that can: embedder, hf, minilm, tiny_encoder" in refusal(
            registry, "tiny", "contrastive", "none", "lm"
        )
        assert "Evaluators for it: none registered" in refusal(
            registry, "embedder", "contrastive", "none", "classification"
        )
    finally:
        remove_plugin("compat-test")


def test_a_refused_approach_exits_before_preparing_data(tmp_path, capsys):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        run_cli(["experiment=classify_smoke", "method=sft", f"hydra.run.dir={run_dir}"])
    assert info.value.code == 2
    assert "method=sft needs a model loaded as causal_lm, but model=tiny_encoder" in capsys.readouterr().err
    assert not run_dir.exists()  # a single run: refused before Hydra made its run directory
    # a sweep's job: recorded as a failed run (the comparison lists it), before any data or model work
    sweep_dir = tmp_path / "sweep"
    assert (
        run_cli(
            [
                "-m",
                "experiment=classify_smoke",
                "method=sft,classify",
                "train.max_steps=1",
                f"hydra.sweep.dir={sweep_dir}",
            ]
        )
        == 1
    )  # one of the sweep's jobs failed
    refused = sweep_dir / "0"
    assert read_metrics(refused)["status"] == "failed" and "data_key" not in read_metrics(refused)
    assert not (refused / "data_report.md").exists() and not (refused / "model").exists()
    assert read_metrics(sweep_dir / "1")["status"] == "ok"


def test_evaluator_columns_are_checked_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli(["experiment=dpo_smoke", "eval=lm", f"hydra.run.dir={tmp_path / 'run'}", "train.max_steps=1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "eval=lm needs columns ['prompt', 'completion'] in the 'test' split" in err and "lacks ['completion']" in err
    assert not (tmp_path / "run" / "model").exists()


# --- what the check opened up, end to end --------------------------------------------------

ENCODER_CPT = [
    "experiment=classify_smoke",
    "method=cpt",
    "eval=masked_lm",
    "train.learning_rate=1e-3",
    "train.logging_steps=1",
]


@pytest.mark.parametrize("peft, steps", [("none", 16), ("lora", 16)])
def test_masked_lm_cpt_on_the_tiny_encoder_learns_saves_and_fills_masks(peft, steps, tmp_path, isolated_cache):
    run_dir = tmp_path / "run"
    lr = "train.learning_rate=5e-3" if peft == "lora" else "train.learning_rate=1e-3"
    assert run_cli([*ENCODER_CPT, f"peft={peft}", f"train.max_steps={steps}", lr, f"hydra.run.dir={run_dir}"]) == 0
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "ok" and metrics["train_steps"] == steps
    assert metrics["train_loss_last"] < metrics["train_loss_first"]
    assert metrics["test_masked_tokens"] > 0 and 0 <= metrics["test_masked_accuracy"] <= 1
    # per-example scores for tunelab compare (the primary here is test_loss): one line per test row,
    # a finite masked-token loss for every row the seeded mask hit (a short row may get no masked
    # token: it counts in neither test_loss nor the paired test, and its loss is null)
    from tunelab.compare import EXAMPLE_SCORE_OF

    key = EXAMPLE_SCORE_OF["test_loss"]
    scores = [json.loads(line) for line in (run_dir / "example_scores.jsonl").read_text().splitlines()]
    assert len(scores) == metrics["test_rows"] and len({s["id"] for s in scores}) == len(scores)
    assert sum(s["masked_tokens"] for s in scores) == metrics["test_masked_tokens"]
    scored = [s for s in scores if s["masked_tokens"] > 0]
    assert len(scored) > 0.9 * len(scores) and all(isinstance(s[key], float) and math.isfinite(s[key]) for s in scored)
    assert all(s[key] is None for s in scores if s["masked_tokens"] == 0)
    per_token = sum(s[key] * s["masked_tokens"] for s in scored) / metrics["test_masked_tokens"]
    assert per_token == pytest.approx(metrics["test_loss"], rel=1e-4)
    if peft == "lora":
        assert (run_dir / "model" / "adapter_config.json").is_file()
        assert metrics["trainable_params"] < 0.2 * metrics["total_params"]
    else:
        assert json.loads((run_dir / "model" / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]

    # the saved model reloads and scores exactly as the run did
    from tunelab.api import TrainOutcome
    from tunelab.predict import _load_trained, predict
    from tunelab_builtin.evaluators.masked_lm import MaskedLmEvalConfig, MaskedLmEvaluator

    model, tokenizer = _load_trained(run_dir, "masked_lm")
    job = job_from_run(run_dir, max_length=64)
    rescored = MaskedLmEvaluator(MaskedLmEvalConfig()).evaluate(job, TrainOutcome(model, tokenizer))
    assert rescored["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-4)

    (filled,) = predict(run_dir, [f"my order never {tokenizer.mask_token}"])
    assert len(filled["tokens"]) == 1 and filled["text"].startswith("my order never")
