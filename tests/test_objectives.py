"""cpt, semi_supervised and multitask objectives; ROUGE-L of the lm evaluator."""

from __future__ import annotations

import json

import pytest

from conftest import read_metrics, run_cli, validate
from tunelab.api import ModelRequest, TrainJob, TrainSettings
from tunelab_builtin.evaluators.lm import rouge_l


def test_rouge_l_against_hand_computed_values():
    # LCS("the cat sat on the mat", "the cat is on the mat") = the cat on the mat = 5
    assert rouge_l("The cat sat on the mat", "the cat is on the mat.") == pytest.approx(5 / 6)
    # pred 3 words, ref 5 words, LCS 2 ("police killed"): P=2/3, R=2/5 → F=0.5
    assert rouge_l("police killed gunman", "the gunman police killed yesterday") == pytest.approx(0.5)
    assert rouge_l("a b c d", "d c b a") == pytest.approx(0.25)  # LCS is one word
    assert rouge_l("Hello, World!", "hello world") == 1.0
    assert rouge_l("xyz", "abc") == 0.0
    assert rouge_l("", "") == 1.0 and rouge_l("", "a") == 0.0


def test_cpt_loss_goes_down_and_model_is_saved_with_energy_metrics(smoke_args, tmp_path, monkeypatch):
    args = [
        *smoke_args,
        "method=cpt",
        "peft=none",
        "train.country=france",
        "train.max_steps=8",
        "train.learning_rate=3e-3",
        "eval.max_generate=1",
    ]
    assert run_cli(args) == 0
    run_dir = tmp_path / "run"
    m = read_metrics(run_dir)
    assert m["status"] == "ok" and m["train_steps"] == 8
    assert m["train_loss_last"] < m["train_loss_first"]
    assert m["train_tokens"] > m["train_rows"] > 0
    assert (run_dir / "model" / "config.json").is_file()
    assert 0 <= m["test_rouge_l"] <= 1
    # cost metrics of every run
    assert m["energy_kwh"] > 0 and m["energy_source"] in ("rapl", "estimate")
    assert m["co2_g"] == pytest.approx(m["energy_kwh"] * 56)
    assert m["train_cpu_percent"] > 0


def test_cpt_uses_text_column_or_joined_fields():
    from datasets import Dataset

    from tunelab_builtin.methods.cpt import Cpt, CptConfig

    cpt = Cpt(CptConfig(separator=" | "))
    assert cpt.documents(Dataset.from_dict({"prompt": ["q"], "completion": ["a"]})) == ["q | a"]
    assert cpt.documents(Dataset.from_dict({"text": ["doc"], "prompt": ["q"]})) == ["doc"]
    with pytest.raises(ValueError, match="text_fields"):
        Cpt(CptConfig(text_fields=[]))


def _toy_classification(n_per_class: int, blank_every: int):
    from datasets import Dataset

    rows = {"text": [], "label": []}
    for i in range(n_per_class):
        for label, word in (("pos", "great good lovely"), ("neg", "awful bad horrid")):
            rows["text"].append(f"{word} {i}")
            rows["label"].append(None if i % blank_every else label)
    return Dataset.from_dict(rows)


def test_semi_supervised_pseudo_labels_confident_rows(tmp_path):
    from tunelab_builtin.methods.semi_supervised import SemiSupervised, SemiSupervisedConfig
    from tunelab_builtin.models.tiny import TinyModel, TinyModelConfig

    train = _toy_classification(24, blank_every=3)  # 8 labelled + 16 unlabelled per class
    request = ModelRequest(task="sequence_classification", labels=["neg", "pos"])
    loaded = TinyModel(TinyModelConfig()).load({}, tmp_path, request)
    job = TrainJob(
        loaded,
        {"train": train},
        None,
        TrainSettings(max_steps=15, batch_size=8, learning_rate=3e-3, max_length=32, logging_steps=5),
        tmp_path,
        0,
        request=request,
    )
    method = SemiSupervised(SemiSupervisedConfig(rounds=2, threshold=0.6))
    outcome = method.train(job)
    m = outcome.metrics
    assert m["semi_labelled"] == 16 and m["semi_unlabelled"] == 32
    assert 0 < m["semi_round_1_accepted"] <= 32 and 0 <= m["semi_round_2_accepted"] <= 32
    # the last round trained on the labelled rows plus the accepted pseudo-labels
    assert m["train_rows"] == 16 + m["semi_round_2_accepted"]
    assert m["semi_total_steps"] == 45
    assert json.loads((tmp_path / "model" / "labels.json").read_text())["labels"] == ["neg", "pos"]
    with pytest.raises(ValueError, match="threshold"):
        SemiSupervised(SemiSupervisedConfig(threshold=0))


def test_multitask_mixes_sources_by_weight(tmp_path):
    from datasets import Dataset

    from tunelab_builtin.methods.multitask import Multitask, MultitaskConfig

    extra = tmp_path / "billing.jsonl"
    extra.write_text("\n".join(json.dumps({"prompt": f"bill {i}", "completion": "paid"}) for i in range(50)))
    main = Dataset.from_dict({"prompt": [f"q{i}" for i in range(50)], "completion": ["a"] * 50, "label": ["x"] * 50})
    method = Multitask(
        MultitaskConfig(
            datasets=[{"path": str(extra), "weight": 3.0, "task_prefix": "[billing] "}],
            stopping_strategy="first_exhausted",
        )
    )
    mixed, counts = method.mixture(main, seed=0)
    assert mixed.column_names == ["prompt", "completion"]
    assert counts["multitask_rows_task1"] > 2 * counts["multitask_rows_main"]  # weight 3 : 1
    assert all(p.startswith("[billing] ") for p in mixed["prompt"] if "bill" in p)
    with pytest.raises(ValueError, match="unknown keys"):
        Multitask(MultitaskConfig(datasets=[{"path": "x", "wieght": 1}]))


def test_multitask_run_through_the_cli(smoke_args, tmp_path):
    extra = tmp_path / "extra.jsonl"
    extra.write_text("\n".join(json.dumps({"prompt": f"bill {i}", "completion": "paid"}) for i in range(20)))
    args = [
        *smoke_args,
        "method=multitask",
        f"method.datasets=[{{path: '{extra}', weight: 1.0, task_prefix: '[b] '}}]",
        "eval.max_generate=0",
    ]
    validate(args[:1] + args[2:])
    assert run_cli(args) == 0
    m = read_metrics(tmp_path / "run")
    assert m["status"] == "ok" and m["multitask_rows_task1"] > 0 and m["multitask_rows_main"] > 0


def test_every_evaluator_names_a_missing_or_empty_split_and_what_to_set(tmp_path):
    from datasets import Dataset

    from tunelab.api import TrainOutcome, evaluation_split
    from tunelab_builtin.evaluators.classification import ClassificationEvalConfig, ClassificationEvaluator
    from tunelab_builtin.evaluators.lm import LmEvalConfig, LmEvaluator
    from tunelab_builtin.evaluators.masked_lm import MaskedLmEvalConfig, MaskedLmEvaluator
    from tunelab_builtin.evaluators.preference import PreferenceEvalConfig, PreferenceEvaluator

    train = Dataset.from_dict({"id": ["a", "b"], "text": ["x", "y"]})
    splits = {"train": train, "validation": train.select([])}
    assert evaluation_split(splits, "train") is train
    job = TrainJob(None, splits, None, TrainSettings(), tmp_path, 0)
    evaluators = [
        LmEvaluator(LmEvalConfig()),
        ClassificationEvaluator(ClassificationEvalConfig()),
        PreferenceEvaluator(PreferenceEvalConfig()),
        MaskedLmEvaluator(MaskedLmEvalConfig()),
    ]
    for evaluator in evaluators:
        with pytest.raises(ValueError) as info:
            evaluator.evaluate(job, TrainOutcome(None, None))
        assert str(info.value) == (
            "eval: the prepared data has no 'test' rows (splits: train (2 rows), validation (0 rows)); set eval.split "
            "to a split that has rows, or give 'test' rows: the Warnings of data_report.md say why it is empty and "
            "which setting fills it"
        )
    with pytest.raises(ValueError, match=r"no 'validation' rows \(splits: train \(2 rows\), validation \(0 rows\)\)"):
        evaluation_split(job, "validation")


def test_label_fraction_hides_the_same_labels_per_class_for_every_approach():
    from datasets import Dataset

    from tunelab.train.engine import hide_labels

    rows = Dataset.from_dict({"id": [f"r{i}" for i in range(40)], "label": ["a"] * 30 + ["b"] * 8 + ["c"] * 2})
    hidden, count = hide_labels(rows, "label", 0.25)
    kept = [(i, v) for i, v in zip(hidden["id"], hidden["label"]) if v is not None]
    assert count == 40 - len(kept) and len(hidden) == 40
    assert sorted(v for _, v in kept) == ["a"] * 8 + ["b"] * 2 + ["c"]  # per class, at least one each
    # the choice depends on the row ids only: the same rows in another order keep the same labels
    shuffled, _ = hide_labels(rows.shuffle(seed=3), "label", 0.25)
    assert sorted(i for i, v in zip(shuffled["id"], shuffled["label"]) if v is not None) == sorted(i for i, _ in kept)


def test_semi_supervised_with_scarce_labels_through_the_cli(tmp_path):
    common = ["experiment=classify_smoke", "train.label_fraction=0.3", "train.max_steps=6"]
    assert (
        run_cli([*common, "method=semi_supervised", "method.threshold=0.01", f"hydra.run.dir={tmp_path / 'semi'}"]) == 0
    )
    assert run_cli([*common, f"hydra.run.dir={tmp_path / 'classify'}"]) == 0
    semi, supervised = read_metrics(tmp_path / "semi"), read_metrics(tmp_path / "classify")
    kept, hidden = semi["train_labels_kept"], semi["train_labels_hidden"]
    assert (kept, hidden) == (supervised["train_labels_kept"], supervised["train_labels_hidden"])
    assert hidden > kept > 0
    assert semi["semi_labelled"] == kept and semi["semi_unlabelled"] == hidden
    assert semi["semi_round_1_accepted"] == hidden  # a 0.01 threshold accepts every pseudo-label
    assert supervised["train_rows"] == kept  # plain classify skips the unlabelled rows
    # both are scored on the same test rows, and each accuracy is what its per-row scores say
    scored = {}
    for run, metrics in (("semi", semi), ("classify", supervised)):
        lines = [json.loads(line) for line in (tmp_path / run / "example_scores.jsonl").read_text().splitlines()]
        scored[run] = [line["id"] for line in lines]
        assert len(lines) == metrics["data_test"] > 0
        assert metrics["test_accuracy"] == pytest.approx(sum(line["correct"] for line in lines) / len(lines))
    assert scored["semi"] == scored["classify"]


def test_label_fraction_is_refused_for_a_method_that_is_not_a_classifier(smoke_args, tmp_path):
    with pytest.raises(SystemExit):
        run_cli([*smoke_args, "train.label_fraction=0.5"])
    assert "train.label_fraction=0.5 hides class labels, but method 'sft'" in read_metrics(tmp_path / "run")["error"]
    with pytest.raises(Exception, match=r"train.label_fraction must be in \(0, 1\]"):
        validate(["train.label_fraction=0"])


def test_sft_learns_the_chosen_answers_of_preference_data(tmp_path):
    args = [
        "experiment=dpo_smoke",
        "method=sft",
        "method.completion_column=chosen",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    assert run_cli(args) == 0
    m = read_metrics(tmp_path / "run")
    assert m["status"] == "ok" and m["train_steps"] == 4 and m["train_rows"] > 100
    assert 0 <= m["test_preference_accuracy"] <= 1
    # without the mapping, SFT names the column it misses
    with pytest.raises(SystemExit):
        run_cli(["experiment=dpo_smoke", "method=sft", f"hydra.run.dir={tmp_path / 'plain'}"])
    assert "completion" in read_metrics(tmp_path / "plain")["error"]
