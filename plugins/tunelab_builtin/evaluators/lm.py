"""The ``lm`` evaluator: completion loss, perplexity and token accuracy of a causal LM, and
exact match, token F1 and ROUGE-L of its greedy generations."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tunelab.api import COMPLETION, PROMPT, Evaluator, TrainJob, TrainOutcome, evaluation_split, write_example_scores
from tunelab.train.formatting import render_pair, tokenize_pair
from tunelab_builtin.evaluators._tokens import token_scores


@dataclass
class LmEvalConfig:
    #: rows scored per forward pass (completion loss)
    batch_size: int = 8
    #: test rows to generate answers for (exact match, token F1, ROUGE-L); 0 turns generation off
    max_generate: int = 16
    #: longest generated answer, in tokens (greedy decoding)
    max_new_tokens: int = 64
    #: which split to score
    split: str = "test"


_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def _words(text: str) -> list[str]:
    return _PUNCT.sub(" ", text.casefold()).split()


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = _words(prediction), _words(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists (O(len(a)·len(b)) time, O(len(b)) memory)."""
    if len(b) > len(a):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (Lin, 2004; beta = 1): F1 of the longest common subsequence of
    lowercased word tokens (punctuation removed), as a fraction in [0, 1]."""
    pred, ref = _words(prediction), _words(reference)
    if not pred or not ref:
        return float(pred == ref)
    lcs = _lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


class LmEvaluator(Evaluator):
    """Completion loss, perplexity and token accuracy; exact match, token F1 and ROUGE-L of generations."""

    scores = ("causal_lm",)
    required_columns = (PROMPT, COMPLETION)

    def __init__(self, config: LmEvalConfig):
        super().__init__(config)
        for key, least in (("batch_size", 1), ("max_generate", 0), ("max_new_tokens", 1)):
            if getattr(config, key) < least:
                raise ValueError(f"eval.{key} must be >= {least}, got {getattr(config, key)}")

    def evaluate(self, job: TrainJob, outcome: TrainOutcome) -> dict[str, float]:
        import torch

        c = self.config
        split = evaluation_split(job, c.split)
        model, tokenizer = outcome.model, outcome.tokenizer
        device = next(model.parameters()).device
        model.eval()
        pairs = [render_pair(tokenizer, p or "", a or "") for p, a in zip(split[PROMPT], split[COMPLETION])]
        encoded = [tokenize_pair(tokenizer, p, a, job.settings.max_length) for p, a in pairs]
        total_loss = 0.0
        total_tokens = 0
        correct = 0
        #: per-example scores (mean token NLL and token accuracy over the completion tokens)
        per_row: list[dict[str, Any]] = []
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        with torch.no_grad():
            for start in range(0, len(encoded), c.batch_size):
                batch = encoded[start : start + c.batch_size]
                width = max(len(ids) for ids, _ in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                attention = torch.zeros((len(batch), width), dtype=torch.long)
                labels = torch.full((len(batch), width), -100, dtype=torch.long)
                for row, (ids, prompt_len) in enumerate(batch):
                    input_ids[row, : len(ids)] = torch.tensor(ids)
                    attention[row, : len(ids)] = 1
                    labels[row, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
                logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
                logits = logits[:, -width:, :].float().cpu()  # prompt-learning methods prepend virtual tokens
                loss_sum, tokens, hits, rows = token_scores(logits[:, :-1], labels[:, 1:], "token_accuracy", "tokens")
                total_loss += loss_sum
                total_tokens += tokens
                correct += hits
                per_row += rows
        mean_loss = total_loss / total_tokens if total_tokens else float("nan")
        metrics = {
            "test_loss": mean_loss,
            "test_perplexity": math.exp(min(mean_loss, 50.0)) if total_tokens else float("nan"),
            "test_token_accuracy": correct / total_tokens if total_tokens else float("nan"),
            "test_rows": len(split),
        }
        if c.max_generate > 0:
            metrics.update(self._generate(model, tokenizer, pairs[: c.max_generate], split, device, per_row))
        write_example_scores(job, per_row, split)
        return metrics

    def _generate(
        self,
        model: Any,
        tokenizer: Any,
        pairs: list[tuple[str, str]],
        split: Any,
        device: Any,
        per_row: list[dict[str, Any]] | None = None,
    ) -> dict[str, float]:
        """Greedy generations for ``pairs`` (the first rows of ``split``) and their mean scores;
        each row's scores are added to ``per_row[i]`` when given."""
        import torch

        references = [a or "" for a in split[COMPLETION][: len(pairs)]]
        predictions: list[str] = []
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        try:
            for start in range(0, len(pairs), self.config.batch_size):
                prompts = [p for p, _ in pairs[start : start + self.config.batch_size]]
                enc = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
                with torch.no_grad():
                    out = model.generate(
                        **enc,
                        max_new_tokens=self.config.max_new_tokens,
                        do_sample=False,
                        pad_token_id=tokenizer.pad_token_id,
                    )
                new_tokens = out[:, enc["input_ids"].shape[1] :]
                predictions += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        finally:
            tokenizer.padding_side = side
        exact = [float(_words(p) == _words(r)) for p, r in zip(predictions, references)]
        f1 = [token_f1(p, r) for p, r in zip(predictions, references)]
        rouge = [rouge_l(p, r) for p, r in zip(predictions, references)]
        if per_row is not None:
            for row, e, f, r in zip(per_row, exact, f1, rouge):
                row.update(exact_match=e, token_f1=f, rouge_l=r)
        return {
            "test_exact_match": sum(exact) / len(exact),
            "test_token_f1": sum(f1) / len(f1),
            "test_rouge_l": sum(rouge) / len(rouge),
            "test_generated": len(predictions),
        }
