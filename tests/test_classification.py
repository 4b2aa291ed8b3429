"""Sequence classification: the tiny_encoder/minilm loaders, the classify and feature
methods, the classification evaluator, and predict() on a saved run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import SAMPLE, read_metrics, run_cli

KEYWORDS = {
    "weather": ["rain", "sunny", "forecast", "storm", "cloudy"],
    "sports": ["goal", "match", "team", "referee", "league"],
    "food": ["pizza", "recipe", "delicious", "oven", "spicy"],
}
FILLER = ["today", "really", "the", "was", "quite", "we", "saw", "about", "again", "news", "friends", "very"]


def toy_rows(per_class: int = 25, seed: int = 0) -> list[dict]:
    """Separable toy data: each sentence has two keywords of its class among shared filler words."""
    rng = random.Random(seed)
    rows = []
    for label, words in KEYWORDS.items():
        for i in range(per_class):
            tokens = rng.sample(FILLER, 4) + rng.sample(words, 2)
            rng.shuffle(tokens)
            rows.append({"sentence": " ".join(tokens) + f" {i}", "category": label})
    rng.shuffle(rows)
    return rows


@pytest.fixture
def toy_args(tmp_path: Path) -> list[str]:
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in toy_rows()))
    return [
        "experiment=classify_smoke",
        "data=jsonl",
        f"data.path={path}",
        "data.columns={sentence: prompt, category: label}",
        "pipeline.params.stratified.test=0.3",
        "+pipeline.params.stratified.near_duplicate_threshold=0",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]


def _job(splits, loaded, tmp_path, peft_config=None, metadata=None, labels=()):
    from tunelab.api import ModelRequest, TrainJob, TrainSettings

    return TrainJob(
        model=loaded,
        splits=splits,
        peft_config=peft_config,
        settings=TrainSettings(max_length=64),
        output_dir=tmp_path,
        seed=0,
        request=ModelRequest(task=loaded.task, labels=list(labels)),
        data_metadata=metadata or {},
    )


def test_classify_on_tiny_encoder_learns_and_predict_matches_the_evaluator(toy_args, tmp_path):
    # class_weights=auto picks up the weights of the pipeline's class_weights step
    args = [
        *toy_args,
        "train.max_steps=30",
        "train.learning_rate=3e-3",
        "pipeline.balance=[class_weights]",
        "method.class_weights=auto",
    ]
    assert run_cli(args) == 0
    run_dir = tmp_path / "run"
    metrics = read_metrics(run_dir)
    assert metrics["train_class_weighted"] == 1.0
    assert metrics["status"] == "ok"
    assert metrics["trainable_params"] == metrics["total_params"]  # peft=none: every weight
    assert metrics["train_steps"] == 30 and metrics["train_classes"] == 3
    assert metrics["train_loss_last"] < metrics["train_loss_first"]
    for key in ("test_accuracy", "test_macro_f1", "test_f1_food", "test_f1_sports", "test_f1_weather"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["test_accuracy"] > 0.6  # chance is 1/3
    assert metrics["test_loss"] > 0 and metrics["test_unknown_labels"] == 0
    saved = json.loads((run_dir / "model" / "labels.json").read_text())
    assert saved["labels"] == ["food", "sports", "weather"] and saved["text_column"] == "prompt"
    assert saved["class_weights"] == pytest.approx([1.0, 1.0, 1.0])  # the toy classes are balanced

    # predict() reloads the saved classifier and reproduces the evaluator's scores on the test split
    from datasets import load_from_disk

    from tunelab.predict import predict

    test = load_from_disk(str(tmp_path / "cache" / "prepared" / metrics["data_key"] / "splits"))["test"]
    results = predict(run_dir, test["prompt"])
    assert len(results) == len(test) == metrics["test_rows"]
    accuracy = sum(r["label"] == t for r, t in zip(results, test["label"])) / len(test)
    assert accuracy == pytest.approx(metrics["test_accuracy"])
    import math

    loss = -sum(math.log(r["scores"][t]) for r, t in zip(results, test["label"])) / len(test)
    assert loss == pytest.approx(metrics["test_loss"], rel=1e-4)
    assert all(abs(sum(r["scores"].values()) - 1) < 1e-5 and r["score"] == max(r["scores"].values()) for r in results)


def test_feature_torch_head_trains_only_the_head(toy_args, tmp_path):
    assert run_cli([*toy_args, "method=feature", "method.head=torch", "method.head_steps=200"]) == 0
    run_dir = tmp_path / "run"
    metrics = read_metrics(run_dir)
    hidden, classes = 64, 3
    assert metrics["trainable_params"] == hidden * classes + classes
    assert metrics["total_params"] > 10 * metrics["trainable_params"]
    assert metrics["train_loss_last"] < metrics["train_loss_first"]
    assert 0 <= metrics["test_accuracy"] <= 1 and "test_f1_food" in metrics
    assert (run_dir / "model" / "head.safetensors").is_file()

    # predict() rebuilds the frozen random backbone under the run's seed and loads the head
    from datasets import load_from_disk

    from tunelab.predict import predict

    test = load_from_disk(str(tmp_path / "cache" / "prepared" / metrics["data_key"] / "splits"))["test"]
    accuracy = sum(r["label"] == t for r, t in zip(predict(run_dir, test["prompt"]), test["label"])) / len(test)
    assert accuracy == pytest.approx(metrics["test_accuracy"])


def test_class_weight_modes():
    from tunelab_builtin.methods._classifier import resolve_class_weights

    labels = ["a", "b", "c"]
    train = ["a"] * 6 + ["b"] * 3 + ["c"] * 3
    metadata = {"class_weights": {"class_weights": {"a": 0.5, "b": 2.0}, "class_counts": {"a": 6, "b": 3}}}
    assert resolve_class_weights("none", labels, train, metadata) is None
    assert resolve_class_weights("auto", labels, train, {}) is None  # no class_weights step ran
    assert resolve_class_weights("auto", labels, train, metadata) == [0.5, 2.0, 1.0]
    balanced = resolve_class_weights("balanced", labels, train, metadata)
    assert balanced == pytest.approx([12 / (3 * 6), 12 / (3 * 3), 12 / (3 * 3)])
    with pytest.raises(ValueError, match="class_weights"):
        resolve_class_weights("inverse", labels, train, {})


def test_weighted_loss_changes_with_the_class_weights():
    import torch
    from transformers import TrainingArguments

    from tunelab_builtin.methods.classify import _weighted_trainer_class

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([[2.0, 0.0], [0.0, 0.5]]))

        def forward(self, input_ids, attention_mask=None):
            from transformers.modeling_outputs import SequenceClassifierOutput

            return SequenceClassifierOutput(logits=self.w[input_ids[:, 0]])

    args = TrainingArguments(output_dir="unused", report_to="none", use_cpu=True)
    batch = {"input_ids": torch.tensor([[0], [1], [1]]), "labels": torch.tensor([0, 1, 0])}
    losses = {}
    for name, weights in {"none": None, "equal": [1.0, 1.0], "minority": [1.0, 4.0]}.items():
        trainer = _weighted_trainer_class()(model=Logits(), args=args, class_weights=weights)
        losses[name] = float(trainer.compute_loss(trainer.model, dict(batch)).detach())
    assert losses["equal"] == pytest.approx(losses["none"])
    # class 1's row is well classified (lower loss): weighting it up lowers the weighted mean
    per_row = torch.nn.functional.cross_entropy(
        Logits().w.detach()[[0, 1, 1]], torch.tensor([0, 1, 0]), reduction="none"
    )
    expected = float((per_row * torch.tensor([1.0, 4.0, 1.0])).sum() / 6.0)
    assert losses["minority"] == pytest.approx(expected) and losses["minority"] < losses["none"]


def test_encoders_refuse_causal_lm_and_feature_refuses_peft(tmp_path):
    from tunelab.api import ModelRequest
    from tunelab.config import ConfigError
    from tunelab.plugins import get_plugins
    from tunelab.train.compat import resolve
    from tunelab_builtin.methods.feature import Feature, FeatureConfig
    from tunelab_builtin.models.minilm import MiniLM, MiniLMConfig
    from tunelab_builtin.models.tiny import TinyEncoder, TinyEncoderConfig

    with pytest.raises(
        ValueError,
        match="tiny_encoder is an encoder; causal LM objectives need model=smollm2_135m, model=tiny or model=hf",
    ):
        TinyEncoder(TinyEncoderConfig()).load({}, tmp_path, ModelRequest(task="causal_lm"))
    with pytest.raises(ValueError, match="minilm is an encoder"):
        MiniLM(MiniLMConfig()).load({}, tmp_path, None)
    with pytest.raises(ValueError, match="tiny_encoder.num_heads"):
        TinyEncoder(TinyEncoderConfig(hidden_size=30, num_heads=4))
    with pytest.raises(ValueError, match="feature.head"):
        Feature(FeatureConfig(head="xgboost"))

    loaded = TinyEncoder(TinyEncoderConfig(vocabulary="byte")).load({}, tmp_path, ModelRequest(task="encoder"))
    assert loaded.task == "encoder"
    # feature + an adapter is refused by the compatibility check every run makes before any work
    registry = get_plugins().registry
    for model in ("tiny_encoder", "minilm"):
        with pytest.raises(
            ConfigError,
            match="method=feature with peft=lora: feature-based training keeps the backbone "
            "frozen and trains only a head. peft options that work with feature: none",
        ):
            resolve(registry, model, "feature", "lora", "classification")


def test_feature_sklearn_on_real_minilm_beats_chance(tmp_path):
    from collections import Counter

    from datasets import Dataset

    from tunelab.train.meters import count_parameters
    from tunelab_builtin.evaluators.classification import ClassificationEvalConfig, ClassificationEvaluator
    from tunelab_builtin.methods.feature import Feature, FeatureConfig
    from tunelab_builtin.models.minilm import MiniLM, MiniLMConfig

    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("question") and r.get("category")]
    random.Random(0).shuffle(rows)
    train_rows, test_rows = rows[:60], rows[60:100]

    def split(rs):
        return Dataset.from_dict({"prompt": [r["question"] for r in rs], "label": [r["category"] for r in rs]})

    splits = {"train": split(train_rows), "test": split(test_rows)}

    from tunelab.api import ModelRequest

    loaded = MiniLM(MiniLMConfig()).load(splits, tmp_path, ModelRequest(task="encoder"))
    job = _job(splits, loaded, tmp_path)
    outcome = Feature(FeatureConfig(head="sklearn")).train(job)
    trainable, total = count_parameters(outcome.model)
    classes = len(set(r["category"] for r in train_rows))
    assert trainable == 384 * classes + classes and total > 22_000_000
    scores = ClassificationEvaluator(ClassificationEvalConfig()).evaluate(job, outcome)
    majority = Counter(r["category"] for r in test_rows).most_common(1)[0][1] / len(test_rows)
    print("minilm feature/sklearn accuracy", scores["test_accuracy"], "majority", majority)
    assert scores["test_accuracy"] > majority + 0.2
    assert scores["test_macro_f1"] > 0.3


def test_predict_generates_with_a_full_sft_model(smoke_args, tmp_path):
    assert run_cli([*smoke_args, "peft=none", "train.max_steps=2", "eval.max_generate=0"]) == 0
    from tunelab.predict import PredictError, predict

    results = predict(tmp_path / "run", ["Where is my order?", "Can I return boots?"], max_new_tokens=4)
    assert len(results) == 2 and all(isinstance(r["text"], str) for r in results)
    with pytest.raises(PredictError, match="no saved model"):
        predict(tmp_path, ["x"])


def test_classify_with_lora_and_the_predict_command(tmp_path, capsys):
    from conftest import read_metrics, run_cli

    run_dir = tmp_path / "run"
    assert run_cli(["experiment=classify_smoke", "peft=lora", "train.max_steps=4", f"hydra.run.dir={run_dir}"]) == 0
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "ok"
    assert 0 < metrics["trainable_params"] < 0.2 * metrics["total_params"]  # adapter + head only
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("I was charged twice for my order\n\nMy tent pole snapped\n")
    capsys.readouterr()
    assert run_cli(["predict", str(run_dir), str(inputs)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["input"] for line in lines] == ["I was charged twice for my order", "My tent pole snapped"]
    labels = set(json.loads((run_dir / "model" / "labels.json").read_text())["labels"])
    assert all(line["label"] in labels and abs(sum(line["scores"].values()) - 1) < 1e-4 for line in lines)
    assert run_cli(["predict", str(tmp_path), str(inputs)]) == 1
    assert "no saved model" in capsys.readouterr().err
