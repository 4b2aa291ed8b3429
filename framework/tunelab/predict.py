"""Predictions from a finished run directory (``tunelab predict RUN_DIR``).

What a run saved under ``RUN_DIR/model`` decides what happens:

* ``labels.json`` (methods ``classify`` and ``feature``): a classifier. ``classify``
  saved the whole model, or a PEFT adapter (with the trained head); ``feature`` saved
  the linear head (``head.safetensors``). Each text gets ``{"label", "score", "scores"}``.
* a reward model (``method=reward``): each text gets ``{"reward": score}``.
* a masked LM (``method=cpt`` on an encoder): every mask token in a text is filled with
  the model's top prediction: ``{"text": filled, "tokens": [...]}``.
* otherwise (``sft`` and other causal-LM objectives): generation. Each text (a prompt)
  gets ``{"text": completion}``.

A full model (``peft=none``) is loaded from the folder; an adapter
(``adapter_config.json``) is put on its base model.

A base model (for an adapter, or a feature head's frozen backbone) is rebuilt from the
run's ``config.yaml``: the same model loader and config, under the run's seed, so models
built in-process with random weights (``tiny``, ``tiny_encoder``) come out identical;
``tiny_encoder`` reuses the tokenizer saved with the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.api import ModelRequest
from tunelab.errors import TunelabError

LABELS_FILE = "labels.json"


class PredictError(TunelabError):
    """A run directory that cannot be predicted with."""


def _run_config(run_dir: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    path = run_dir / "config.yaml"
    if not path.is_file():
        raise PredictError(f"{run_dir} is not a tunelab run directory (no config.yaml)")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)  # type: ignore[return-value]


def rebuild_base_model(config: dict[str, Any], request: ModelRequest, tokenizer: Any = None) -> Any:
    """The run's model as its loader builds it (before training), under the run's seed."""
    section = dict(config.get("model") or {})
    if section.get("trust_remote_code") is True:  # a run directory may come from someone else
        raise PredictError(
            "the run's config.yaml sets model.trust_remote_code=true; tunelab predict does not run code shipped "
            "with a model on the word of a saved config. Load the model yourself if you trust that code."
        )
    from transformers import set_seed

    from tunelab.config import Origin, default_cache_dir, typed_config
    from tunelab.plugins import get_plugins

    name = str(section.pop("name", ""))
    component = get_plugins().registry.get("model", name)
    loader_config = typed_config(
        component.config_schema, section, kind="model", name=name, origin=Origin(), group="model", key_prefix="model."
    )
    loader = component.cls(loader_config)
    set_seed(int(config.get("seed", 0)))
    if tokenizer is not None and hasattr(loader, "build"):  # a tokenizer learned from the data: reuse the saved one
        return loader.build(tokenizer, request)
    cache_dir = Path(str(config.get("cache_dir") or default_cache_dir())).expanduser()
    return loader.load({}, cache_dir, request).model


def load_classifier(run_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, labels.json contents) of a classify/feature run."""
    from transformers import AutoTokenizer

    model_dir = Path(run_dir) / "model"
    info = json.loads((model_dir / LABELS_FILE).read_text())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    labels = list(info["labels"])
    if info["method"] == "feature":
        import torch
        from safetensors.torch import load_file

        from tunelab.train.classifier_head import HEAD_FILE, feature_classifier

        backbone = rebuild_base_model(_run_config(run_dir), ModelRequest(task="encoder"), tokenizer)
        head = torch.nn.Linear(int(info["hidden_size"]), len(labels))
        head.load_state_dict(load_file(str(model_dir / HEAD_FILE)))
        return feature_classifier(backbone, head, labels), tokenizer, info
    if info.get("adapter"):
        from peft import PeftModel

        request = ModelRequest(task="sequence_classification", labels=labels)
        base = rebuild_base_model(_run_config(run_dir), request, tokenizer)
        return PeftModel.from_pretrained(base, model_dir), tokenizer, info
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(model_dir), tokenizer, info


def _classify(run_dir: Path, texts: list[str], batch_size: int) -> list[dict[str, Any]]:
    from tunelab.train.classifier_head import class_logits

    model, tokenizer, info = load_classifier(run_dir)
    labels = list(info["labels"])
    probs = class_logits(model, tokenizer, texts, int(info.get("max_length", 256)), batch_size).softmax(-1)
    out = []
    for row in probs.tolist():
        best = max(range(len(labels)), key=row.__getitem__)
        out.append({"label": labels[best], "score": row[best], "scores": dict(zip(labels, row))})
    return out


def _approach(run_dir: Path) -> Any:
    """The run's checked approach (task the model was loaded for, what it produced)."""
    from tunelab.plugins import get_plugins
    from tunelab.train.compat import resolve

    config = _run_config(run_dir)
    names = [str((config.get(group) or {}).get("name", "")) for group in ("model", "method", "peft", "eval")]
    return resolve(get_plugins().registry, *names)


def _load_trained(run_dir: Path, task: str) -> tuple[Any, Any]:
    """(model, tokenizer) saved by a run: the full model, or the adapter on its rebuilt base."""
    from transformers import AutoTokenizer

    from tunelab.train.auto_models import auto_model_class

    model_dir = Path(run_dir) / "model"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    request = ModelRequest(task=task)
    if (model_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        base = rebuild_base_model(_run_config(run_dir), request, tokenizer if task == "masked_lm" else None)
        model = PeftModel.from_pretrained(base, model_dir)
    else:
        model = auto_model_class(request).from_pretrained(model_dir)
    return model.eval(), tokenizer


def _reward(run_dir: Path, texts: list[str]) -> list[dict[str, Any]]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = Path(run_dir) / "model"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        return [{"reward": float(model(**tokenizer(text or "", return_tensors="pt")).logits[0, 0])} for text in texts]


def _fill_mask(run_dir: Path, texts: list[str]) -> list[dict[str, Any]]:
    import torch

    model, tokenizer = _load_trained(run_dir, "masked_lm")
    out = []
    for text in texts:
        enc = tokenizer(text or "", return_tensors="pt", truncation=True)
        with torch.no_grad():
            logits = model(**enc).logits[0]
        ids = enc["input_ids"][0].clone()
        masked = (ids == tokenizer.mask_token_id).nonzero().flatten().tolist()
        for position in masked:
            ids[position] = int(logits[position].argmax())
        tokens = [tokenizer.convert_ids_to_tokens(int(ids[p])) for p in masked]
        out.append({"text": tokenizer.decode(ids, skip_special_tokens=True), "tokens": tokens})
    return out


def _generate(run_dir: Path, texts: list[str], max_new_tokens: int, batch_size: int) -> list[dict[str, Any]]:
    import torch

    from tunelab.train.formatting import render_pair

    model, tokenizer = _load_trained(run_dir, "causal_lm")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    prompts = [render_pair(tokenizer, text or "", "")[0] for text in texts]
    out = []
    for start in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True)
        with torch.no_grad():
            generated = model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        new_tokens = generated[:, enc["input_ids"].shape[1] :]
        out += [{"text": text} for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return out


def predict(run_dir: Path, texts: list[str], *, max_new_tokens: int = 64, batch_size: int = 16) -> list[dict[str, Any]]:
    """One result per text: ``{"label", "score", "scores"}`` from a classifier run, or
    ``{"text"}`` (the generated completion of the text as a prompt) from a causal-LM run.

    Raises :class:`PredictError` when the run saved no model (``train.save_model=false``,
    a failed run, or ``tunelab prepare``)."""
    run_dir = Path(run_dir)
    model_dir = run_dir / "model"
    if not model_dir.is_dir():
        raise PredictError(f"{run_dir} has no saved model (run it with train.save_model=true)")
    if (model_dir / LABELS_FILE).is_file():
        return _classify(run_dir, list(texts), batch_size)
    approach = _approach(run_dir)
    if approach.produces == "reward_model":
        return _reward(run_dir, list(texts))
    if approach.task == "masked_lm":
        return _fill_mask(run_dir, list(texts))
    if approach.task != "causal_lm":
        raise PredictError(f"{run_dir}: nothing to predict with a {approach.produces} model")
    return _generate(run_dir, list(texts), max_new_tokens, batch_size)
