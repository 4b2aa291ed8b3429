"""Per-token scores of a batch, shared by the ``lm`` and ``masked_lm`` evaluators."""

from __future__ import annotations

from typing import Any


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
