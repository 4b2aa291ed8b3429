"""How a prompt/completion row becomes model text — shared by training and evaluation,
so that both see exactly the same tokens."""

from __future__ import annotations

from typing import Any


def render_pair(tokenizer: Any, prompt: str, completion: str) -> tuple[str, str]:
    """Render a row as (prompt text, completion text ending in the EOS token).

    With a chat template (instruct models) the prompt is a user turn followed by the
    generation prompt; otherwise the texts are used as they are.
    """
    eos = tokenizer.eos_token or ""
    if getattr(tokenizer, "chat_template", None):
        prompt_text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    else:
        prompt_text = prompt.rstrip() + "\n"
    return prompt_text, completion.strip() + eos


def tokenize_pair(tokenizer: Any, prompt_text: str, completion_text: str, max_length: int) -> tuple[list[int], int]:
    """Token ids of prompt+completion (truncated to ``max_length``) and the prompt length.

    Mirrors TRL's SFT tokenization: the completion starts where the tokenized prompt and
    the tokenized prompt+completion diverge.
    """
    prompt_ids = tokenizer(prompt_text)["input_ids"]
    full_ids = tokenizer(prompt_text + completion_text)["input_ids"]
    prompt_len = 0
    for a, b in zip(prompt_ids, full_ids):
        if a != b:
            break
        prompt_len += 1
    return full_ids[:max_length], min(prompt_len, max_length)
