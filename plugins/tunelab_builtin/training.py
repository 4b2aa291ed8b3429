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
)
from tunelab.train.formatting import render_pair, tokenize_pair


def _precision_flags(precision: str) -> dict[str, bool]:
    import torch

    cuda = torch.cuda.is_available()
    if precision == "auto":
        return {"bf16": cuda and torch.cuda.is_bf16_supported(), "fp16": False}
    if precision in ("bf16", "fp16") and not cuda:
        raise ValueError(f"train.precision={precision} needs a CUDA GPU; use auto or fp32 on CPU")
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"train.precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


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


class Sft(Method):
    """Supervised / instruction fine-tuning on prompt/completion rows (TRL SFTTrainer)."""

    required_columns = (PROMPT, COMPLETION)

    def train(self, job: TrainJob) -> TrainOutcome:
        import torch
        from trl import SFTConfig, SFTTrainer

        s = job.settings
        tokenizer = job.model.tokenizer
        args = SFTConfig(
            output_dir=str(job.output_dir / "trainer"),
            max_steps=s.max_steps,
            num_train_epochs=s.num_epochs,
            learning_rate=s.learning_rate,
            per_device_train_batch_size=s.batch_size,
            gradient_accumulation_steps=s.grad_accum,
            warmup_steps=s.warmup_steps,
            weight_decay=s.weight_decay,
            logging_steps=s.logging_steps,
            max_length=s.max_length,
            packing=self.config.packing,
            completion_only_loss=self.config.completion_only_loss,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            seed=job.seed,
            data_seed=job.seed,
            use_cpu=not torch.cuda.is_available(),
            disable_tqdm=True,
            include_num_input_tokens_seen=True,
            dataloader_num_workers=0,
            activation_checkpointing=s.gradient_checkpointing,
            **_precision_flags(s.precision),
        )
        train_rows = rendered(job.splits["train"], tokenizer)
        trainer = SFTTrainer(
            model=job.model.model,
            args=args,
            train_dataset=train_rows,
            processing_class=tokenizer,
            peft_config=job.peft_config,
            callbacks=job.callbacks,
        )
        result = trainer.train()
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        runtime = result.metrics.get("train_runtime") or float("nan")
        tokens = trainer.state.num_input_tokens_seen or 0
        metrics = {
            "train_loss": float(result.training_loss),
            "train_loss_first": float(losses[0]) if losses else float("nan"),
            "train_loss_last": float(losses[-1]) if losses else float("nan"),
            "train_steps": trainer.state.global_step,
            "train_rows": len(trainer.train_dataset),
            # TRL drops rows whose completion is cut off entirely by train.max_length
            "train_rows_truncated_away": len(train_rows) - len(trainer.train_dataset),
            "train_samples_per_second": float(result.metrics.get("train_samples_per_second", float("nan"))),
            "train_tokens": int(tokens),
            "train_tokens_per_second": float(tokens / runtime) if tokens and runtime else float("nan"),
        }
        saved_to = None
        if s.save_model:
            saved_to = job.output_dir / "model"
            trainer.save_model(str(saved_to))
            tokenizer.save_pretrained(str(saved_to))
        return TrainOutcome(model=trainer.model, tokenizer=tokenizer, metrics=metrics, saved_to=saved_to)


# --- evaluation ----------------------------------------------------------------------


@dataclass
class LmEvalConfig:
    batch_size: int = 8
    #: test rows to generate answers for (exact match, token F1, ROUGE-L); 0 turns generation off
    max_generate: int = 16
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

    def evaluate(self, job: TrainJob, outcome: TrainOutcome) -> dict[str, float]:
        import torch

        c = self.config
        split = job.splits.get(c.split)
        if split is None or len(split) == 0:
            raise ValueError(f"eval: the prepared data has no '{c.split}' rows (splits: {list(job.splits)})")
        model, tokenizer = outcome.model, outcome.tokenizer
        device = next(model.parameters()).device
        model.eval()
        pairs = [render_pair(tokenizer, p or "", a or "") for p, a in zip(split[PROMPT], split[COMPLETION])]
        encoded = [tokenize_pair(tokenizer, p, a, job.settings.max_length) for p, a in pairs]
        total_loss = 0.0
        total_tokens = 0
        correct = 0
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
                shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
                mask = shift_labels != -100
                loss = torch.nn.functional.cross_entropy(
                    shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1), ignore_index=-100, reduction="sum"
                )
                total_loss += float(loss)
                total_tokens += int(mask.sum())
                correct += int(((shift_logits.argmax(-1) == shift_labels) & mask).sum())
        mean_loss = total_loss / total_tokens if total_tokens else float("nan")
        metrics = {
            "test_loss": mean_loss,
            "test_perplexity": math.exp(min(mean_loss, 50.0)) if total_tokens else float("nan"),
            "test_token_accuracy": correct / total_tokens if total_tokens else float("nan"),
            "test_rows": len(split),
        }
        if c.max_generate > 0:
            metrics.update(self._generate(model, tokenizer, pairs[: c.max_generate], split, device))
        return metrics

    def _generate(self, model: Any, tokenizer: Any, pairs: list[tuple[str, str]], split: Any, device: Any) -> dict[str, float]:
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
