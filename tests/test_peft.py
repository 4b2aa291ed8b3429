"""The adaptation catalogue (peft=): every method trains the tiny model through the CLI,
trains the parameters it should, and saves something that reloads to the same scores."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from conftest import read_metrics, run_cli, validate
from tunelab.api import LoadedModel, ModelRequest, TrainJob, TrainOutcome, TrainSettings

# The tiny model (TinyModelConfig defaults): hidden 64, MLP 128, 2 layers, tied embeddings.
H, FF, LAYERS = 64, 128, 2
# LoRA r=8 on all linear layers: q, k, v, o (64->64), gate, up (64->128), down (128->64)
LORA_8 = LAYERS * 8 * (4 * (H + H) + 2 * (H + FF) + (FF + H))
# DoRA adds one magnitude per output feature of each adapted layer
DORA_MAGNITUDES = LAYERS * (4 * H + 2 * FF + H)
# p-tuning's MLP encoder: Linear(64, 128), Linear(128, 128), Linear(128, 64), plus the 20 token embeddings
P_TUNING = 20 * H + (H * 128 + 128) + (128 * 128 + 128) + (128 * H + H)

# method -> (learning rate, expected trainable parameters; None: all of them).
# Methods with few parameters on a random-weight model need a larger step to move the loss.
METHODS = {
    "none": (5e-3, None),
    "lora": (5e-3, LORA_8),
    "dora": (5e-3, LORA_8 + DORA_MAGNITUDES),
    "ia3": (1e-1, LAYERS * (H + H + FF)),  # k_proj, v_proj outputs and down_proj's input
    "prompt_tuning": (1e-1, 20 * H),  # num_virtual_tokens x hidden size
    "prefix_tuning": (3e-2, 20 * LAYERS * 2 * H),  # a key and a value prefix per layer
    "p_tuning": (5e-3, P_TUNING),
}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def isolated_cache(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The runs of this module share one cache, so the data is prepared once."""
    monkeypatch.setenv("TUNELAB_CACHE_DIR", str(shared_cache))
    return shared_cache


def tiny(tmp_path: Path, request: ModelRequest | None = None, seed: int = 0) -> LoadedModel:
    """The tiny model exactly as a run with ``seed`` builds it (its weights are seeded)."""
    from transformers import set_seed

    from tunelab_builtin.models.tiny import TinyModel, TinyModelConfig

    set_seed(seed)
    return TinyModel(TinyModelConfig()).load({}, tmp_path, request)


def held_out_loss(model, tokenizer, run_dir: Path, cache: Path, data_key: str) -> float:
    from datasets import load_from_disk

    from tunelab_builtin.evaluators.lm import LmEvalConfig, LmEvaluator

    splits = dict(load_from_disk(str(cache / "prepared" / data_key / "splits")))
    job = TrainJob(LoadedModel(model, tokenizer, "tiny"), splits, None, TrainSettings(max_length=128), run_dir, 0)
    return LmEvaluator(LmEvalConfig(max_generate=0)).evaluate(job, TrainOutcome(model, tokenizer))["test_loss"]


@pytest.mark.parametrize("name", list(METHODS))
def test_method_trains_what_it_should_and_its_saved_model_reloads(name, smoke_args, tmp_path, isolated_cache):
    lr, expected_trainable = METHODS[name]
    assert run_cli([*smoke_args, f"peft={name}", "train.max_steps=6", f"train.learning_rate={lr}"]) == 0
    run_dir = tmp_path / "run"
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "ok"
    assert metrics["train_steps"] == 6
    assert metrics["train_loss_last"] < metrics["train_loss_first"]

    if expected_trainable is None:
        assert metrics["trainable_params"] == metrics["total_params"]
        assert metrics["trainable_pct"] == 100.0
    else:
        assert metrics["trainable_params"] == expected_trainable
        assert 0 < metrics["trainable_pct"] < 40

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    saved = run_dir / "model"
    tokenizer = AutoTokenizer.from_pretrained(saved)
    base = tiny(tmp_path).model  # the untrained model the run started from
    untrained_loss = held_out_loss(base, tokenizer, run_dir, isolated_cache, metrics["data_key"])
    if name == "none":
        assert not (saved / "adapter_config.json").exists()
        reloaded = AutoModelForCausalLM.from_pretrained(saved)
    else:
        adapter = json.loads((saved / "adapter_config.json").read_text())
        assert adapter["task_type"] == "CAUSAL_LM"
        assert adapter["use_dora"] is (name == "dora") if name in ("lora", "dora") else True
        reloaded = PeftModel.from_pretrained(base, saved)
        if name != "p_tuning":  # p-tuning saves the encoder's output embeddings, not the encoder
            assert sum(p.numel() for p in reloaded.parameters()) == metrics["total_params"]
    reloaded_loss = held_out_loss(reloaded, tokenizer, run_dir, isolated_cache, metrics["data_key"])
    assert reloaded_loss == pytest.approx(metrics["test_loss"], rel=1e-5)
    assert metrics["test_loss"] < untrained_loss  # training helped on held-out rows


def test_qlora_fails_early_on_a_machine_without_cuda(smoke_args, tmp_path, capsys):
    import torch

    from tunelab.plugins import get_plugins
    from tunelab_builtin.peft.lora import Qlora

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    # listing it is fine (configs are validated on CPU machines too) ...
    rc = validate(["experiment=smoke", "peft=qlora"])
    method = rc.peft.instantiate(get_plugins().registry)
    assert isinstance(method, Qlora) and method.load_in_4bit is True
    assert method.quantization_kwargs()["bnb_4bit_quant_type"] == "nf4"
    # ... running it is not, and the run says why before training
    with pytest.raises(ValueError, match="peft=qlora needs a CUDA GPU and bitsandbytes .* use peft=lora"):
        method.peft_config(tiny(tmp_path))
    with pytest.raises(SystemExit) as info:
        run_cli([*smoke_args, "peft=qlora"])
    assert info.value.code == 2 and "use peft=lora" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before Hydra made the run directory
    # a sweep's job says so in its metrics.json, before training
    assert (
        run_cli(
            [
                "-m",
                *[a for a in smoke_args if not a.startswith("hydra.run.dir=")],
                "peft=qlora",
                f"hydra.sweep.dir={tmp_path / 'sweep'}",
            ]
        )
        == 1
    )
    metrics = read_metrics(tmp_path / "sweep" / "0")
    assert metrics["status"] == "failed" and "use peft=lora" in metrics["error"]
    assert "train_steps" not in metrics


def test_bad_parameter_values_fail_validation_naming_them():
    from tunelab.config import ConfigError

    cases = {
        "peft=lora peft.bias=some": "peft.bias must be one of none, all, lora_only",
        "peft=lora peft.r=0": "peft.r",
        "peft=qlora peft.quant_type=int8": "peft.quant_type must be one of nf4, fp4",
        "peft=prompt_tuning peft.init=text": "peft.init_text",
        "peft=p_tuning peft.encoder_type=GRU": "MLP, LSTM",
        "peft=ia3 peft.target_modules=[q_proj] peft.feedforward_modules=[down_proj]": "not in it: ['down_proj']",
        "peft=custom": "peft.peft_type",
    }
    for overrides, message in cases.items():
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            validate(["experiment=smoke", *overrides.split()])


def test_custom_loha_trains_through_the_cli(smoke_args, tmp_path, isolated_cache):
    overrides = [
        "peft=custom",
        "peft.peft_type=LoHaConfig",
        "+peft.args.r=4",
        "+peft.args.target_modules=[q_proj,v_proj]",
    ]
    assert run_cli([*smoke_args, *overrides, "train.max_steps=2", "eval.max_generate=0"]) == 0
    run_dir = tmp_path / "run"
    metrics = read_metrics(run_dir)
    # LoHa: two rank-4 pairs (hada_w1_a/b, hada_w2_a/b) per 64x64 layer, 2 layers x 2 modules
    assert metrics["trainable_params"] == LAYERS * 2 * 2 * 4 * (H + H)
    adapter = json.loads((run_dir / "model" / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LOHA" and adapter["r"] == 4


def test_custom_names_unknown_classes_and_arguments(tmp_path):
    from tunelab_builtin.peft.custom import Custom, CustomConfig

    assert Custom(CustomConfig("VeraConfig", {"r": 16})).check().__name__ == "VeraConfig"
    with pytest.raises(ValueError, match=r"'NopeConfig' is not a PEFT config class .*valid names: .*LoHaConfig"):
        Custom(CustomConfig("NopeConfig", {})).check()
    with pytest.raises(ValueError, match="'LoraModel' is not a PEFT config class"):  # in peft, but not a config
        Custom(CustomConfig("LoraModel", {})).check()
    with pytest.raises(ValueError, match=r"unknown argument\(s\) 'rank' for LoKrConfig; valid: .*\br\b"):
        Custom(CustomConfig("LoKrConfig", {"rank": 4})).peft_config(tiny(tmp_path))
    with pytest.raises(ValueError, match="task_type cannot be set"):
        Custom(CustomConfig("LoHaConfig", {"task_type": "CAUSAL_LM"}))


def test_task_type_and_head_follow_the_loaded_task(tmp_path):
    from peft import TaskType, get_peft_model

    from tunelab_builtin.peft.custom import Custom, CustomConfig
    from tunelab_builtin.peft.ia3 import Ia3, Ia3Config
    from tunelab_builtin.peft.lora import Lora, LoraConfig
    from tunelab_builtin.peft.prompt_learning import PromptTuning, PromptTuningConfig

    classifier = tiny(tmp_path, ModelRequest("sequence_classification", ["a", "b"]))
    config = Lora(LoraConfig(r=4)).peft_config(classifier)
    assert config.task_type == TaskType.SEQ_CLS
    assert list(config.modules_to_save) == ["score"]  # Llama-style head
    wrapped = get_peft_model(classifier.model, config)
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert any("score" in n for n in trainable) and any("lora_" in n for n in trainable)

    assert Ia3(Ia3Config()).peft_config(
        tiny(tmp_path, ModelRequest("sequence_classification", ["a", "b"]))
    ).modules_to_save == ["score"]
    loha = Custom(CustomConfig("LoHaConfig", {"target_modules": ["q_proj"]})).peft_config(classifier)
    assert loha.task_type == TaskType.SEQ_CLS and list(loha.modules_to_save) == ["score"]

    encoder = tiny(tmp_path, ModelRequest("encoder"))
    assert PromptTuning(PromptTuningConfig()).peft_config(encoder).task_type == TaskType.FEATURE_EXTRACTION
    lm_config = Lora(LoraConfig()).peft_config(tiny(tmp_path))
    assert lm_config.task_type == TaskType.CAUSAL_LM and lm_config.modules_to_save is None


def test_ia3_targets_are_automatic_for_llama_and_can_be_overridden(tmp_path):
    from tunelab_builtin.peft.ia3 import Ia3, Ia3Config

    model = tiny(tmp_path)
    auto = Ia3(Ia3Config()).peft_config(model)
    assert set(auto.target_modules) == {"k_proj", "v_proj", "down_proj"} and set(auto.feedforward_modules) == {
        "down_proj"
    }
    custom = Ia3(Ia3Config(target_modules=["q_proj", "up_proj"], feedforward_modules=["up_proj"])).peft_config(model)
    assert set(custom.target_modules) == {"q_proj", "up_proj"} and set(custom.feedforward_modules) == {"up_proj"}


def test_prompt_tuning_text_init_uses_the_text_or_falls_back_with_a_warning(tmp_path, caplog):
    from peft import PromptTuningInit, get_peft_model
    from transformers import AutoTokenizer

    from tunelab_builtin.peft.prompt_learning import PromptTuning, PromptTuningConfig

    method = PromptTuning(PromptTuningConfig(num_virtual_tokens=4, init="text", init_text="abcd"))
    in_process = tiny(tmp_path)  # its tokenizer was built in memory: PEFT cannot re-load it by name
    with caplog.at_level(logging.WARNING, logger="tunelab_builtin.peft.prompt_learning"):
        assert method.peft_config(in_process).prompt_tuning_init == PromptTuningInit.RANDOM
    assert "init=text needs a tokenizer saved on disk" in caplog.text

    in_process.tokenizer.save_pretrained(tmp_path / "tok")
    on_disk = LoadedModel(in_process.model, AutoTokenizer.from_pretrained(tmp_path / "tok"), "tiny")
    config = method.peft_config(on_disk)
    assert config.prompt_tuning_init == PromptTuningInit.TEXT
    wrapped = get_peft_model(on_disk.model, config)
    ids = on_disk.tokenizer("abcd", add_special_tokens=False)["input_ids"]
    start = wrapped.prompt_encoder["default"].embedding.weight
    assert start.detach().equal(on_disk.model.get_input_embeddings().weight[ids].detach())
