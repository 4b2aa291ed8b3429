"""The ``back_translation`` augmenter: rewrites texts through two seq2seq translation
models (e.g. en->de->en), in batches."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from tunelab.api import StageContext
from tunelab_builtin.augmenters._base import Rewrite, RowAugmenter
from tunelab_builtin.augmenters._generation import (
    GenerationConfig,
    check_generation,
    generate_texts,
    input_limit,
    resolve_device,
    same_text,
    token_counts,
)


# The two models of the last back-translation step stay loaded: the jobs of a sweep run
# in one process and would otherwise load them again for every job.
@lru_cache(maxsize=2)
def _cached_translator(name: str, device: str, saved_at: int) -> tuple[Any, Any]:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    local = Path(name).expanduser().is_dir()
    path = str(Path(name).expanduser()) if local else name
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
        model = AutoModelForSeq2SeqLM.from_pretrained(path, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"back_translation cannot load translation model {name!r}: {str(exc).splitlines()[0]}. "
            "Give a local directory written by save_pretrained(), or a hub id with network access."
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer


def _load_translator(name: str, device: str) -> tuple[Any, Any]:
    # a model saved again under the same directory must not be served from the cache
    config_file = Path(name).expanduser() / "config.json"
    saved_at = config_file.stat().st_mtime_ns if config_file.is_file() else 0
    return _cached_translator(name, device, saved_at)


@dataclass
class BackTranslationConfig(GenerationConfig):
    #: translation model into the pivot language: a local directory (save_pretrained) or a hub id
    #: (downloaded by transformers)
    forward_model: str = "???"
    #: translation model from the pivot language back: a local directory or a hub id
    backward_model: str = "???"


class BackTranslation(RowAugmenter):
    """Back-translation through two local seq2seq translation models (e.g. en->de->en)."""

    op = "back_translation"

    def __init__(self, config: BackTranslationConfig):
        super().__init__(config)
        check_generation(config, self.op)
        for name in ("forward_model", "backward_model"):
            value = getattr(config, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"back_translation.{name} must name a model directory or hub id, got {value!r}")
            if value.startswith(("/", "./", "../", "~")) and not Path(value).expanduser().is_dir():
                raise ValueError(f"back_translation.{name}: no model directory at {value}")

    def load(self, name: str) -> tuple[Any, Any]:
        """(model, tokenizer) of a translation model."""
        return _load_translator(name, resolve_device(self.config.device))

    def translate(self, name: str, texts: list[str], seed: int, salt: str) -> list[str]:
        model, tokenizer = self.load(name)
        return generate_texts(model, tokenizer, texts, self.config, seed, salt, decoder_only=False)

    def fitting(self, name: str, texts: list[str]) -> list[bool]:
        """Whether each text is short enough for translation model ``name``."""
        model, tokenizer = self.load(name)
        limit = input_limit(model, tokenizer, self.config.max_input_tokens)
        return [n <= limit for n in token_counts(tokenizer, texts)]

    def rewrite(self, requests: list[Rewrite], ctx: StageContext) -> list[Optional[str]]:
        c = self.config
        # sorted, so batches (and the seeded sampling in them) do not depend on row order
        order = sorted(range(len(requests)), key=lambda i: (requests[i].parent, requests[i].copy, requests[i].column))
        fits = [i for i, ok in zip(order, self.fitting(c.forward_model, [requests[i].text for i in order])) if ok]
        too_long = len(order) - len(fits)
        results: list[Optional[str]] = [None] * len(requests)
        pivots = self.translate(c.forward_model, [requests[i].text for i in fits], ctx.seed, "back_translation:forward")
        carried = [(i, pivot) for i, pivot in zip(fits, pivots) if pivot]
        if len(carried) < len(fits):
            ctx.count("rejected_empty_pivot", len(fits) - len(carried))
        fitting_pivots = self.fitting(c.backward_model, [p for _, p in carried])
        too_long += fitting_pivots.count(False)
        carried = [pair for pair, ok in zip(carried, fitting_pivots) if ok]
        if too_long:
            ctx.count("skipped_too_long", too_long)
        finals = self.translate(c.backward_model, [p for _, p in carried], ctx.seed, "back_translation:backward")
        empty = identical = 0
        for (i, _), text in zip(carried, finals):
            if not text:
                empty += 1
            elif same_text(text, requests[i].text):
                identical += 1
            else:
                results[i] = text
        if empty:
            ctx.count("rejected_empty", empty)
        if identical:
            ctx.count("rejected_identical", identical)
        return results
