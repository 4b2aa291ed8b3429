"""The example plugin's components, run in-process: each on its own, and the cleaner and
augmenter inside a real `tunelab prepare`. Run them with the package installed
(``pip install -e . && pytest``): the registration test reads the installed entry point."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import pytest
from datasets import Dataset, Features, Value
from tunelab_example import (
    CONFIG_SEARCH_PATH,
    TUNELAB_API_VERSION,
    GreetingPrefix,
    GreetingPrefixConfig,
    JsonlTracker,
    JsonlTrackerConfig,
    LoraAttentionOnly,
    LoraAttentionOnlyConfig,
    MinWords,
    MinWordsConfig,
)

from tunelab.api import LoadedModel, RunInfo, StageContext

FEATURES = Features(
    {"id": Value("string"), "parent_id": Value("string"), "prompt": Value("string"), "completion": Value("string")}
)


def rows(*prompts: str | None) -> Dataset:
    return Dataset.from_list(
        [{"id": f"r{i}", "parent_id": None, "prompt": p, "completion": "an answer"} for i, p in enumerate(prompts)],
        features=FEATURES,
    )


def context(tmp_path: Path, step: str, seed: int = 0) -> StageContext:
    return StageContext(seed=seed, num_proc=1, work_dir=tmp_path, step=step)


# --- registration ----------------------------------------------------------------------


def test_components_come_through_the_tunelab_entry_point_group():
    from tunelab.api import API_VERSION
    from tunelab.plugins import get_plugins

    plugins = get_plugins(reload=True)
    for kind, name in [
        ("cleaner", "min_words"),
        ("augmenter", "greeting_prefix"),
        ("peft", "lora_attention_only"),
        ("tracker", "jsonl"),
    ]:
        registered = plugins.registry.get(kind, name)
        assert registered.supplier.distribution.replace("_", "-") == "tunelab-example-plugin"
        assert registered.supplier.plugin == "example"
    assert CONFIG_SEARCH_PATH in plugins.config_search_paths()
    assert TUNELAB_API_VERSION.split(".")[0] == API_VERSION.split(".")[0]


def test_config_group_files_are_shipped_in_the_package():
    conf = importlib.resources.files("tunelab_example.conf")
    for group_file in (
        "peft/lora_attention_only.yaml",
        "tracker/jsonl.yaml",
        "augment/greeting_prefix.yaml",
        "pipeline/min_words.yaml",
    ):
        assert (conf / group_file).is_file(), group_file


# --- cleaner: min_words ------------------------------------------------------------------


def test_min_words_drops_short_rows_with_a_reason_for_each(tmp_path):
    data = rows("Where is my order?", "refund status?", "ok", None, "My tent pole snapped on the first night")
    ctx = context(tmp_path, "min_words")
    out = MinWords(MinWordsConfig(min_words=3)).apply(data, ctx)

    assert out.to_dict()["id"] == ["r0", "r4"]
    dropped = {row_id: (drop.reason, detail) for drop in ctx.drops for row_id, detail in zip(drop.ids, drop.detail)}
    assert dropped == {
        "r1": ("min_words:prompt", {"column": "prompt", "words": 2, "min_words": 3}),
        "r2": ("min_words:prompt", {"column": "prompt", "words": 1, "min_words": 3}),
        "r3": ("min_words:prompt", {"column": "prompt", "words": 0, "min_words": 3}),
    }
    # every input row is either kept or dropped with a reason: what tunelab's ledger checks
    assert len(out) + len(dropped) == len(data)


def test_min_words_can_leave_missing_values_to_another_step(tmp_path):
    ctx = context(tmp_path, "min_words")
    out = MinWords(MinWordsConfig(min_words=2, keep_missing=True)).apply(rows(None, "hi", "two words"), ctx)
    assert out.to_dict()["id"] == ["r0", "r2"]
    assert [drop.ids for drop in ctx.drops] == [["r1"]]


def test_min_words_errors_name_the_parameter_to_fix(tmp_path):
    with pytest.raises(ValueError, match=r"min_words\.min_words must be a whole number >= 1, got 0"):
        MinWords(MinWordsConfig(min_words=0))
    with pytest.raises(ValueError, match=r"\['question'\] not in the data .* pipeline\.params\.min_words@q\.fields"):
        MinWords(MinWordsConfig(fields=["question"])).apply(rows("a b c"), context(tmp_path, "min_words@q"))


# --- augmenter: greeting_prefix -------------------------------------------------------------


def test_greeting_prefix_adds_copies_that_keep_their_parent(tmp_path):
    data = rows(*(f"question number {i} about my order" for i in range(40)))
    ctx = context(tmp_path, "greeting_prefix")
    config = GreetingPrefixConfig(fraction=0.5, greetings=["Hi!", "Hello!"])
    out = GreetingPrefix(config).apply(data, ctx)

    children = [row for row in out.to_list() if row["parent_id"] is not None]
    assert 5 < len(children) < 35  # about half of 40, chosen per row
    originals = {row["id"]: row for row in data.to_list()}
    for child in children:
        parent = originals[child["parent_id"]]
        assert child["id"] == f"{parent['id']}~greet1"
        assert child["prompt"] in (f"Hi! {parent['prompt']}", f"Hello! {parent['prompt']}")
        assert child["completion"] == parent["completion"]
    assert ctx.counters["rows_augmented"] == len(children)
    # the same seed picks the same rows and greetings, whatever the row order
    again = GreetingPrefix(config).apply(data.shuffle(seed=1), context(tmp_path, "greeting_prefix"))
    assert sorted(r["prompt"] for r in again.to_list()) == sorted(r["prompt"] for r in out.to_list())


def test_greeting_prefix_skips_derived_rows_and_rejects_bad_values(tmp_path):
    data = Dataset.from_list(
        [
            {"id": "a", "parent_id": None, "prompt": "where is it", "completion": "x"},
            {"id": "a~eda1", "parent_id": "a", "prompt": "where it is", "completion": "x"},
        ],
        features=FEATURES,
    )
    out = GreetingPrefix(GreetingPrefixConfig(fraction=1.0)).apply(data, context(tmp_path, "greeting_prefix"))
    assert [row["parent_id"] for row in out.to_list()] == [None, "a", "a"]
    with pytest.raises(ValueError, match="greeting_prefix.fraction must be a number between 0 and 1"):
        GreetingPrefix(GreetingPrefixConfig(fraction=1.5))


# --- peft: lora_attention_only -------------------------------------------------------------


def tiny_llama(task: str = "causal_lm") -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaConfig

    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        num_labels=2,
        pad_token_id=0,
    )
    cls = AutoModelForCausalLM if task == "causal_lm" else AutoModelForSequenceClassification
    return LoadedModel(cls.from_config(config), None, "tiny-llama", task=task)


def test_lora_attention_only_adapts_the_attention_projections_and_nothing_else():
    from peft import get_peft_model

    loaded = tiny_llama()
    config = LoraAttentionOnly(LoraAttentionOnlyConfig()).peft_config(loaded)
    assert sorted(config.target_modules) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    model = get_peft_model(loaded.model, config)
    adapted = {name.split(".lora_A")[0].rsplit(".", 1)[-1] for name, _ in model.named_parameters() if ".lora_A" in name}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj"}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 2 * 4 * 8 * (32 + 32)  # 2 layers x 4 projections x r x (in + out)


def test_lora_attention_only_can_leave_out_projections_and_trains_a_classifier_head():
    config = LoraAttentionOnly(LoraAttentionOnlyConfig(projections=["query", "value"]))
    classifier = config.peft_config(tiny_llama("sequence_classification"))
    assert sorted(classifier.target_modules) == ["q_proj", "v_proj"]
    assert classifier.modules_to_save == ["score"]


def test_lora_attention_only_rejects_bad_values_and_models_without_attention():
    import torch

    with pytest.raises(
        ValueError, match=r"peft.projections must be a non-empty subset of \[query, key, value, output\]"
    ):
        LoraAttentionOnly(LoraAttentionOnlyConfig(projections=["mlp"]))
    with pytest.raises(ValueError, match="peft.r must be an integer >= 1"):
        LoraAttentionOnly(LoraAttentionOnlyConfig(r=0))
    mlp = LoadedModel(torch.nn.Sequential(torch.nn.Linear(4, 4)), None, "mlp")
    with pytest.raises(ValueError, match="found no attention projections .* Use peft=lora with peft.target_modules"):
        LoraAttentionOnly(LoraAttentionOnlyConfig()).peft_config(mlp)


# --- tracker: jsonl -----------------------------------------------------------------------


def test_jsonl_tracker_writes_one_line_per_metric(tmp_path):
    tracker = JsonlTracker(JsonlTrackerConfig())
    run = RunInfo(run_dir=tmp_path, name="peft=lora", group="g", job_type="train", config={})
    tracker.tunelab_run_start(run)
    tracker.tunelab_stage_end(
        run,
        "prepare",
        {
            "rows_final": 90,
            "cache_hit": False,
            "steps": [{"rows_in": 1}],
            "splits": {"train": 80, "test": 10},
            "key": "abc",
        },
    )
    tracker.tunelab_metrics(run, {"loss": 2.5, "learning_rate": 1e-4}, 1)
    tracker.tunelab_metrics(run, {"test_loss": 2.1, "perplexity": float("nan")}, None)

    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {(line["stage"], line["step"], line["name"], line["value"]) for line in lines} == {
        ("prepare", None, "rows_final", 90),
        ("prepare", None, "cache_hit", 0.0),
        ("prepare", None, "splits/train", 80),
        ("prepare", None, "splits/test", 10),
        ("train", 1, "loss", 2.5),
        ("train", 1, "learning_rate", 1e-4),
        ("final", None, "test_loss", 2.1),
    }
    assert all(
        line["run"] == "peft=lora" and set(line) == {"time", "run", "stage", "step", "name", "value"} for line in lines
    )

    tracker.tunelab_sweep_end(tmp_path, [{"run": "peft=lora", "status": "ok", "test_loss": 2.1}])
    assert (tmp_path / "metrics.jsonl").read_text().count('"stage": "sweep"') == 1


def test_jsonl_tracker_filename_must_be_a_file_name():
    with pytest.raises(ValueError, match="tracker.jsonl.filename must be a file name"):
        JsonlTracker(JsonlTrackerConfig(filename="../elsewhere.jsonl"))


# --- used like a built-in ---------------------------------------------------------------------


def test_prepare_with_the_plugins_config_groups(tmp_path, monkeypatch):
    """`tunelab prepare pipeline=min_words augment=greeting_prefix`: the plugin's config
    groups compose with tunelab's, and the ledger accounts for every row the steps
    dropped or added."""
    from tunelab.cli import main
    from tunelab.plugins import get_plugins

    monkeypatch.setenv("TUNELAB_CACHE_DIR", str(tmp_path / "cache"))
    get_plugins(reload=True)
    run_dir = tmp_path / "run"
    assert main(["prepare", "pipeline=min_words", "augment=greeting_prefix", f"hydra.run.dir={run_dir}"]) == 0

    ledger = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    dropped = [r for r in ledger if r.get("action") == "dropped" and r.get("step") == "min_words"]
    added = [r for r in ledger if r.get("action") == "added" and r.get("step") == "greeting_prefix"]
    assert dropped and all(r["reason"] == "min_words:prompt" for r in dropped)
    assert added and all(r["id"] == f"{r['parent_id']}~greet1" for r in added)
    assert "min_words:prompt" in (run_dir / "data_report.md").read_text()
