"""The ``paraphrase`` augmenter: paraphrases written by a local causal LM (a tunelab model
preset) from a prompt template, in batches, with a quality filter that rejects echoes,
answers and outputs that lose numbers or wording."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
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
from tunelab_builtin.augmenters._text import STOP_WORDS

DEFAULT_PARAPHRASE_TEMPLATE = (
    "Rewrite the following customer message in different words. Keep its meaning, its language "
    "and every detail such as names, numbers and links. Reply with the rewritten message only.\n\n{text}"
)

# Labels instruction-tuned models like to put before the answer.
_ANSWER_LABEL = re.compile(
    r"^\s*(?:(?:sure|okay|ok)[,!.]?\s*)?(?:here(?:'s| is) (?:a |the |one |your )?(?:possible )?"
    r"(?:paraphrase|rewrite|rewritten (?:message|version|text))[^:\n]*:|"
    r"(?:paraphrase|paraphrased|rewritten)(?: (?:message|version|text))?:)\s*",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "“": "”", "'": "'", "«": "»"}
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _is_label_line(line: str) -> bool:
    """A short line ending in a colon ("The customer message:") introduces text; it is not text."""
    stripped = line.strip()
    return stripped.endswith(":") and len(stripped.split()) <= 8


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[^\W_]+", text.casefold()) if len(w) >= 3 and w not in STOP_WORDS}


@dataclass
class ParaphraseConfig(GenerationConfig):
    #: tunelab model preset that writes the paraphrases (smollm2_135m, tiny, hf, ...)
    model: str = "smollm2_135m"
    #: parameters of that model preset (e.g. {path: /models/my-llm} for hf)
    model_params: dict[str, Any] = field(default_factory=dict)
    #: instruction with a {text} placeholder for the source text
    template: str = DEFAULT_PARAPHRASE_TEMPLATE
    #: send the instruction as a user message through the tokenizer's chat template when it has one
    use_chat_template: bool = True
    #: reject outputs shorter than this fraction of the source length (characters)
    min_length_ratio: float = 0.5
    #: reject outputs longer than this multiple of the source length (characters)
    max_length_ratio: float = 2.0
    #: reject outputs whose numbers (prices, order numbers, sizes) differ from the source's
    keep_numbers: bool = True
    #: reject outputs without a question mark when the source asks a question (an answer is not a paraphrase)
    keep_questions: bool = True
    #: reject outputs that share less than this fraction of the source's content words (0 = off)
    min_word_overlap: float = 0.2
    #: sample, so that copies differ (per_row > 1) and wording varies
    do_sample: bool = True
    #: sampling temperature: higher gives freer paraphrases and more rejections
    temperature: float = 0.7
    #: nucleus sampling probability mass
    top_p: float = 0.9
    #: tokens generated per paraphrase at most; support tickets need well under 100
    max_new_tokens: int = 96


class Paraphrase(RowAugmenter):
    """Paraphrases written by a local causal LM from a prompt template, with a quality filter."""

    op = "paraphrase"

    def __init__(self, config: ParaphraseConfig):
        super().__init__(config)
        check_generation(config, self.op)
        if config.template.count("{text}") != 1:
            raise ValueError("paraphrase.template must contain the placeholder {text} exactly once")
        if not 0.0 <= config.min_length_ratio < 1.0 < config.max_length_ratio:
            raise ValueError(
                "paraphrase.min_length_ratio must be in [0, 1) and paraphrase.max_length_ratio above 1, "
                f"got {config.min_length_ratio} and {config.max_length_ratio}"
            )
        if not 0.0 <= config.min_word_overlap <= 1.0:
            raise ValueError(f"paraphrase.min_word_overlap must be between 0 and 1, got {config.min_word_overlap}")
        # pieces of the instruction long enough that an output containing one is an echo
        instruction = config.template.replace("{text}", "\n")
        self.template_fragments = [
            piece.strip().casefold() for piece in re.split(r"[\n.!?:]+", instruction) if len(piece.split()) >= 4
        ]
        self._loaded: Any = None

    def model(self, ctx: StageContext) -> Any:
        """The LoadedModel, built once through the model registry."""
        if self._loaded is None:
            loader = ctx.make("model", self.config.model, self.config.model_params)
            cache_dir = Path(os.environ.get("TUNELAB_CACHE_DIR") or Path.home() / ".cache" / "tunelab")
            import torch

            # a model built in-process with random weights (tiny) is then the same in every run
            torch.manual_seed(ctx.seed)
            loaded = loader.load({}, cache_dir)
            tokenizer = loaded.tokenizer
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            tokenizer.padding_side = "left"  # a causal LM continues from the right end of the prompt
            loaded.model.to(resolve_device(self.config.device)).eval()
            self._loaded = loaded
        return self._loaded

    def prompt(self, tokenizer: Any, text: str) -> str:
        instruction = self.config.template.replace("{text}", text)
        if self.config.use_chat_template and getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True
            )
        return instruction

    @staticmethod
    def clean(output: str, source: str) -> str:
        """The paraphrase without leading labels ("Here is a paraphrase:", "Message:"),
        wrapping quotes, or notes after it (when the source is one paragraph)."""
        text = _ANSWER_LABEL.sub("", output.strip(), count=1).strip()
        lines = text.splitlines()
        while lines and (not lines[0].strip() or _is_label_line(lines[0])):
            lines.pop(0)
        text = "\n".join(lines).strip()
        if "\n\n" not in source.strip():
            text = text.split("\n\n", 1)[0].strip()
        if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1] and text.count(text[0]) <= 2:
            text = text[1:-1].strip()
        return text

    def reject_reason(self, source: str, output: str) -> Optional[str]:
        """Why an output is not a usable paraphrase of ``source`` (None: it is)."""
        c = self.config
        if not output.strip():
            return "empty"
        if same_text(output, source):
            return "identical"
        folded = output.casefold()
        if any(fragment in folded for fragment in self.template_fragments):
            return "prompt_echo"
        ratio = len(output) / max(1, len(source))
        if not c.min_length_ratio <= ratio <= c.max_length_ratio:
            return "length"
        if c.keep_numbers and set(_NUMBER.findall(output)) != set(_NUMBER.findall(source)):
            return "numbers_changed"
        if c.keep_questions and "?" in source and "?" not in output:
            return "not_a_question"  # small models answer the question instead of rewording it
        source_words = _content_words(source)
        if source_words and len(source_words & _content_words(output)) < c.min_word_overlap * len(source_words):
            return "unrelated"
        return None

    def rewrite(self, requests: list[Rewrite], ctx: StageContext) -> list[Optional[str]]:
        loaded = self.model(ctx)
        tokenizer = loaded.tokenizer
        order = sorted(range(len(requests)), key=lambda i: (requests[i].parent, requests[i].copy, requests[i].column))
        prompts = [self.prompt(tokenizer, requests[i].text) for i in order]
        limit = input_limit(loaded.model, tokenizer, self.config.max_input_tokens, reserve=self.config.max_new_tokens)
        fits = [(i, p) for i, p, n in zip(order, prompts, token_counts(tokenizer, prompts)) if n <= limit]
        if len(fits) < len(order):
            ctx.count("skipped_too_long", len(order) - len(fits))
        # an output longer than max_length_ratio times the source is rejected anyway: stop
        # generating there (a few tokens of slack), which saves most of the time on short rows
        source_tokens = token_counts(tokenizer, [requests[i].text for i, _ in fits])
        budgets = [int(self.config.max_length_ratio * n) + 8 for n in source_tokens]
        outputs = generate_texts(
            loaded.model,
            tokenizer,
            [p for _, p in fits],
            self.config,
            ctx.seed,
            "paraphrase",
            decoder_only=True,
            budgets=budgets,
        )
        results: list[Optional[str]] = [None] * len(requests)
        rejected: Counter[str] = Counter()
        for (i, _), raw in zip(fits, outputs):
            text = self.clean(raw, requests[i].text)
            reason = self.reject_reason(requests[i].text, text)
            if reason:
                rejected[reason] += 1
            else:
                results[i] = text
        for reason, n in sorted(rejected.items()):
            ctx.count(f"rejected_{reason}", n)
        return results
