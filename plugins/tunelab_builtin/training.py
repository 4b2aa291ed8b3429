"""The SFT objective (TRL) and the LM evaluator. Adaptation methods (``peft=``) are in adapters.py."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tunelab.api import (
    COMPLETION,
    PROMPT,
    Component,
    Evaluator,
    Method,
    TrainJob,
    TrainOutcome,
    evaluation_split,
    write_example_scores,
)
from tunelab.train.arguments import common_training_arguments, loss_metrics, run_trainer, save_trained
from tunelab.train.formatting import render_pair, tokenize_pair


def rendered(split: Any, tokenizer: Any) -> Any:
    """prompt/completion columns rendered as model text (chat template when there is one)."""

    def render(batch: dict[str, list]) -> dict[str, list]:
        pairs = [render_pair(tokenizer, p or "", c or "") for p, c in zip(batch[PROMPT], batch[COMPLETION])]
        return {PROMPT: [p for p, _ in pairs], COMPLETION: [c for _, c in pairs]}

    return split.map(render, batched=True, remove_columns=split.column_names, desc="render")


@dataclass
class SftConfig:
    #: compute the loss on completion tokens only (not on the prompt)
    completion_only_loss: bool = True
    #: pack several short examples into one sequence
    packing: bool = False
    #: the column holding the answer to learn; e.g. ``chosen`` trains on the preferred
    #: answers of preference data (prompt/chosen/rejected)
    completion_column: str = COMPLETION


class Sft(Method):
    """Supervised / instruction fine-tuning on prompt/completion rows (TRL SFTTrainer)."""

    required_columns = (PROMPT, COMPLETION)

    def __init__(self, config: SftConfig):
        super().__init__(config)
        if not isinstance(config.completion_column, str) or not config.completion_column.strip():
            raise ValueError(f"sft.completion_column must name a column, got {config.completion_column!r}")
        self.required_columns = (PROMPT, config.completion_column)

    def train(self, job: TrainJob) -> TrainOutcome:
        from trl import SFTConfig, SFTTrainer

        s = job.settings
        tokenizer = job.model.tokenizer
        args = SFTConfig(
            **common_training_arguments(job),
            max_length=s.max_length,
            packing=self.config.packing,
            completion_only_loss=self.config.completion_only_loss,
        )
        train = job.splits["train"]
        if self.config.completion_column != COMPLETION:
            train = train.select_columns([PROMPT, self.config.completion_column]).rename_column(
                self.config.completion_column, COMPLETION
            )
        train_rows = rendered(train, tokenizer)
        trainer = SFTTrainer(
            model=job.model.model,
            args=args,
            train_dataset=train_rows,
            processing_class=tokenizer,
            peft_config=job.peft_config,
            callbacks=job.callbacks,
        )
        result = run_trainer(trainer, job)
        metrics = {
            **loss_metrics(trainer, result),
            "train_rows": len(trainer.train_dataset),
            # TRL drops rows whose completion is cut off entirely by train.max_length
            "train_rows_truncated_away": len(train_rows) - len(trainer.train_dataset),
        }
        saved_to = save_trained(trainer, tokenizer, job)
        return TrainOutcome(model=trainer.model, tokenizer=tokenizer, metrics=metrics, saved_to=saved_to)


# --- evaluation ----------------------------------------------------------------------


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


def token_scores(logits: Any, labels: Any, accuracy: str, count: str) -> tuple[float, int, int, list[dict[str, Any]]]:
    """Cross-entropy and argmax accuracy of the scored tokens (``labels`` != -100) of a batch:
    (summed loss, tokens, correct tokens), and per row its mean token loss (``loss``), its
    accuracy (key ``accuracy``) and its token count (key ``count``); None for a row with none."""
    import torch

    mask = labels != -100
    token_loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100, reduction="none"
    ).view(labels.shape)
    hits = (logits.argmax(-1) == labels) & mask
    row_loss, row_tokens, row_hits = token_loss.sum(1), mask.sum(1), hits.sum(1)
    rows = [
        {"loss": loss_sum / tokens if tokens else None, accuracy: hit / tokens if tokens else None, count: tokens}
        for loss_sum, tokens, hit in zip(row_loss.tolist(), row_tokens.tolist(), row_hits.tolist())
    ]
    return float(token_loss.sum()), int(row_tokens.sum()), int(row_hits.sum()), rows


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
        self, model: Any, tokenizer: Any, pairs: list[tuple[str, str]], split: Any, device: Any, per_row: list[dict[str, Any]] | None = None
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


COMPONENTS = [
    ("method", Component("sft", Sft, SftConfig)),
    ("evaluator", Component("lm", LmEvaluator, LmEvalConfig)),
]
