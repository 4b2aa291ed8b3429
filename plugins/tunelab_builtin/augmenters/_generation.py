"""What the model-based augmenters (``back_translation``, ``paraphrase``) share: the
generation settings, the device, the input-length limit and batched, seeded generation."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Optional

from tunelab_builtin._lib.rows import row_rng
from tunelab_builtin.augmenters._base import AugmentConfig

log = logging.getLogger(__name__)

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass
class GenerationConfig(AugmentConfig):
    #: texts per generate() call
    batch_size: int = 8
    #: tokens generated per output at most
    max_new_tokens: int = 128
    #: beam search width (1 = greedy or plain sampling)
    num_beams: int = 1
    #: sample instead of greedy/beam decoding (needed for different copies when per_row > 1)
    do_sample: bool = False
    #: sampling temperature (with do_sample)
    temperature: float = 1.0
    #: nucleus sampling probability mass (with do_sample)
    top_p: float = 1.0
    #: inputs longer than this many tokens (or than the model holds) are skipped and counted as skipped_too_long,
    #: never truncated
    max_input_tokens: int = 512
    #: auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps
    device: str = "auto"


def check_generation(config: GenerationConfig, op: str) -> None:
    for name in ("batch_size", "max_new_tokens", "num_beams", "max_input_tokens"):
        if getattr(config, name) < 1:
            raise ValueError(f"{op}.{name} must be at least 1, got {getattr(config, name)}")
    if config.temperature <= 0:
        raise ValueError(f"{op}.temperature must be above 0, got {config.temperature}")
    if not 0.0 < config.top_p <= 1.0:
        raise ValueError(f"{op}.top_p must be in (0, 1], got {config.top_p}")
    if not _DEVICE.match(config.device):
        raise ValueError(f"{op}.device must be auto, cpu, cuda, cuda:N or mps, got {config.device!r}")


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but torch sees no CUDA GPU here; use device=auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for, but torch sees no Apple GPU here; use device=auto or cpu")
    return name


def token_counts(tokenizer: Any, texts: list[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(texts)["input_ids"]] if texts else []


def input_limit(model: Any, tokenizer: Any, requested: int, reserve: int = 0) -> int:
    """The longest input (in tokens) worth sending: ``requested``, lowered to what the
    model's position embeddings hold (minus ``reserve`` tokens for the continuation of a
    causal LM) so that a long row is skipped instead of crashing inside the model."""
    limits = [requested]
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions - reserve)
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < 1_000_000:  # huge values mean "not set"
        limits.append(declared - reserve)
    return max(1, min(limits))


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    config: GenerationConfig,
    seed: int,
    salt: str,
    decoder_only: bool,
    budgets: Optional[list[int]] = None,
) -> list[str]:
    """Generate one output per prompt, ``batch_size`` prompts at a time; sampling is
    seeded per batch from (seed, salt, batch start), so a rerun gives the same texts.
    ``budgets`` caps the new tokens per prompt (a batch gets the largest cap in it)."""
    import torch

    outputs: list[str] = []
    device = next(model.parameters()).device
    options: dict[str, Any] = {"num_beams": config.num_beams}
    if config.do_sample:
        options.update(do_sample=True, temperature=config.temperature, top_p=config.top_p)
    else:
        options["do_sample"] = False
    for start in range(0, len(prompts), config.batch_size):
        batch = prompts[start : start + config.batch_size]
        limit = config.max_new_tokens
        if budgets:
            limit = max(1, min(limit, max(budgets[start : start + config.batch_size])))
        torch.manual_seed(row_rng(seed, salt, start).getrandbits(63))
        encoded = tokenizer(batch, return_tensors="pt", padding=True, return_token_type_ids=False).to(device)
        with torch.no_grad():
            generated = model.generate(**encoded, pad_token_id=tokenizer.pad_token_id, max_new_tokens=limit, **options)
        if decoder_only:  # a causal LM returns the prompt followed by the continuation
            generated = generated[:, encoded["input_ids"].shape[1] :]
        outputs += [text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]
        log.info("%s: generated %d/%d", salt, min(start + config.batch_size, len(prompts)), len(prompts))
    return outputs


def same_text(a: str, b: str) -> bool:
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())
