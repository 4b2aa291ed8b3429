"""The check of a setting that takes one of a few named values."""

from __future__ import annotations

from typing import Any


def check_choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Refuse ``value`` unless it is one of ``allowed``, naming the key (``peft.bias``) and the choices."""
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
