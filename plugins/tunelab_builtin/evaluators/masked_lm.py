"""The ``masked_lm`` evaluator: masked-token loss, perplexity and accuracy of an encoder
(cpt on encoders), on the same masked positions for every model compared."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, List  # noqa: UP035 (field types are printed as written: List[...] stays)

from tunelab.api import COMPLETION, PROMPT, Evaluator, TrainJob, TrainOutcome, evaluation_split, write_example_scores
from tunelab_builtin._lib.train_inputs import documents
from tunelab_builtin.evaluators._tokens import token_scores


@dataclass
class MaskedLmEvalConfig:
    #: columns joined (with ``separator``) into the text when the data has no ``text`` column
    text_fields: List[str] = field(default_factory=lambda: [PROMPT, COMPLETION])
    #: put between the joined text_fields
    separator: str = "\n"
    #: fraction of tokens masked (the same positions for every model: seeded by ``mask_seed``)
    mask_probability: float = 0.15
    #: seed of the masked positions (keep it fixed to compare models on the same positions)
    mask_seed: int = 0
    #: rows scored per forward pass
    batch_size: int = 16
    #: which split to score
    split: str = "test"


class MaskedLmEvaluator(Evaluator):
    """Masked-token loss, its exponent (perplexity over masked tokens) and masked-token
    accuracy on the test split, with the same masked positions for every model compared."""

    scores = ("masked_lm",)

    def __init__(self, config: MaskedLmEvalConfig):
        super().__init__(config)
        if not 0.0 < config.mask_probability < 1.0:
            raise ValueError(f"eval.mask_probability must be in (0, 1), got {config.mask_probability}")
        if config.batch_size < 1:
            raise ValueError(f"eval.batch_size must be positive, got {config.batch_size}")

    def evaluate(self, job: TrainJob, outcome: TrainOutcome) -> dict[str, float]:
        import torch

        c = self.config
        split = evaluation_split(job, c.split)
        tokenizer, model = outcome.tokenizer, outcome.model
        if tokenizer.mask_token_id is None:
            raise ValueError("eval=masked_lm: the tokenizer has no mask token")
        texts = documents(split, c.text_fields, c.separator, "eval=masked_lm")
        enc = tokenizer(texts, truncation=True, max_length=job.settings.max_length)
        special = set(tokenizer.all_special_ids)
        generator = torch.Generator().manual_seed(c.mask_seed)
        device = next(model.parameters()).device
        model.eval()
        total_loss, total, correct = 0.0, 0, 0
        #: per-example scores (mean NLL and accuracy over the row's masked tokens)
        per_row: list[dict[str, Any]] = []
        with torch.no_grad():
            for start in range(0, len(texts), c.batch_size):
                rows = enc["input_ids"][start : start + c.batch_size]
                width = max(len(r) for r in rows)
                ids = torch.full((len(rows), width), tokenizer.pad_token_id or 0, dtype=torch.long)
                attention = torch.zeros_like(ids)
                for i, r in enumerate(rows):
                    ids[i, : len(r)] = torch.tensor(r)
                    attention[i, : len(r)] = 1
                maskable = attention.bool() & ~torch.isin(ids, torch.tensor(sorted(special)))
                chosen = (torch.rand(ids.shape, generator=generator) < c.mask_probability) & maskable
                labels = torch.where(chosen, ids, torch.full_like(ids, -100))
                inputs = torch.where(chosen, torch.full_like(ids, tokenizer.mask_token_id), ids)
                logits = model(input_ids=inputs.to(device), attention_mask=attention.to(device)).logits.float().cpu()
                loss_sum, tokens, hits, scored = token_scores(logits, labels, "masked_accuracy", "masked_tokens")
                total_loss += loss_sum
                total += tokens
                correct += hits
                per_row += scored
        write_example_scores(job, per_row, split)
        loss = total_loss / total if total else float("nan")
        return {
            "test_loss": loss,
            "test_perplexity": math.exp(min(loss, 50.0)) if total else float("nan"),
            "test_masked_accuracy": correct / total if total else float("nan"),
            "test_masked_tokens": total,
            "test_rows": len(texts),
        }
