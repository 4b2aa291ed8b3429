"""Format adapters: turn the record layouts of common fine-tuning datasets into the
canonical row schema of :mod:`tunelab.api` (prompt/completion, text/label,
prompt/chosen/rejected, messages).

Every collector takes a ``format`` option. An adapter gets one record (a dict, after
the collector's ``columns`` renaming) and returns the canonical row; it raises
:class:`FormatMismatch` with a reason when the record does not fit, and the collector
quarantines that record. Fields an adapter does not consume are kept as they are.

Policy for values: a required field that is absent, or holds the wrong type, does not
fit; a required text field that is null is kept as None, so that the ``drop_missing``
cleaner drops the row with a reason the report shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tunelab.api import CHOSEN, COMPLETION, LABEL, MESSAGES, PROMPT, REJECTED, TEXT

#: ``none`` keeps the columns as they are; ``auto`` picks one of the others from the
#: keys of the first record it recognises.
FORMAT_NAMES = (
    "auto",
    "none",
    "alpaca",
    "sharegpt",
    "messages",
    "prompt_completion",
    "preference",
    "hh_rlhf",
    "text_label",
)

# Speaker names seen in public chat datasets, mapped onto the three canonical roles.
ROLE_ALIASES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
}
ASSISTANT_MARK = "\n\nAssistant:"

Record = dict[str, Any]
Message = dict[str, str]


class FormatMismatch(ValueError):
    """A record does not have the layout of the selected format (the message says why)."""


def check_format_name(name: str, parameter: str = "format") -> None:
    if name not in FORMAT_NAMES:
        raise ValueError(f"{parameter} must be one of {', '.join(FORMAT_NAMES)}; got {name!r}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _require(record: Record, key: str, fmt: str) -> Any:
    if key not in record:
        present = ", ".join(sorted(map(str, record))) or "none"
        raise FormatMismatch(
            f"format '{fmt}' needs a column '{key}' (columns present: {present}); map yours with data.columns"
        )
    return record[key]


def _text_or_none(record: Record, key: str, fmt: str) -> str | None:
    value = _require(record, key, fmt)
    if value is not None and not isinstance(value, str):
        raise FormatMismatch(f"column '{key}' holds {_kind(value)}, expected text")
    return value


def _content(value: Any, where: str) -> str:
    """Message content as text; OpenAI-style lists of text parts are joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for part in value:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else _kind(part)
                raise FormatMismatch(f"{where}: content part of type '{kind}' is not text")
        return "\n".join(texts)
    raise FormatMismatch(f"{where}: content holds {_kind(value)}, expected text")


def conversation(turns: Any, column: str, role_key: str = "role", content_key: str = "content") -> list[Message]:
    """Validate a list of turns and return canonical ``{"role", "content"}`` messages."""
    if not isinstance(turns, list) or not turns:
        raise FormatMismatch(
            f"column '{column}' must be a non-empty list of turns, "
            f"found {_kind(turns) if not isinstance(turns, list) else 'an empty list'}"
        )
    messages: list[Message] = []
    for number, turn in enumerate(turns, start=1):
        where = f"{column} turn {number}"
        if not isinstance(turn, dict):
            raise FormatMismatch(f"{where} is {_kind(turn)}, expected an object with '{role_key}' and '{content_key}'")
        if role_key not in turn or content_key not in turn:
            raise FormatMismatch(f"{where} lacks '{role_key}' or '{content_key}' (keys: {', '.join(map(str, turn))})")
        speaker = turn[role_key]
        role = ROLE_ALIASES.get(speaker.strip().lower()) if isinstance(speaker, str) else None
        if role is None:
            raise FormatMismatch(f"{where} has role {speaker!r}; known roles: {', '.join(sorted(ROLE_ALIASES))}")
        messages.append({"role": role, "content": _content(turn[content_key], where)})
    return messages


def last_exchange(messages: list[Message], column: str) -> tuple[str, str]:
    """Prompt and completion: the last assistant turn that directly follows a user turn."""
    for i in range(len(messages) - 1, 0, -1):
        if messages[i]["role"] == "assistant" and messages[i - 1]["role"] == "user":
            return messages[i - 1]["content"], messages[i]["content"]
    raise FormatMismatch(f"column '{column}' has no user turn followed by an assistant turn")


def _last_user(messages: list[Message], column: str) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            return message["content"]
    raise FormatMismatch(f"the conversation in '{column}' has no user turn")


def _rest(record: Record, *consumed: str) -> Record:
    return {k: v for k, v in record.items() if k not in consumed}


# --- the adapters -------------------------------------------------------------------


def alpaca(record: Record) -> Record:
    instruction = _text_or_none(record, "instruction", "alpaca")
    extra = record.get("input")
    if extra is not None and not isinstance(extra, str):
        raise FormatMismatch(f"column 'input' holds {_kind(extra)}, expected text")
    output = _text_or_none(record, "output", "alpaca")
    prompt = instruction
    if instruction is not None and extra and extra.strip():
        prompt = f"{instruction}\n\n{extra}"
    return {**_rest(record, "instruction", "input", "output"), PROMPT: prompt, COMPLETION: output}


def sharegpt(record: Record) -> Record:
    turns = _require(record, "conversations", "sharegpt")
    messages = conversation(turns, "conversations", role_key="from", content_key="value")
    system = record.get("system")
    if isinstance(system, str) and system.strip() and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    prompt, completion = last_exchange(messages, "conversations")
    return {**_rest(record, "conversations", "system"), MESSAGES: messages, PROMPT: prompt, COMPLETION: completion}


def messages_format(record: Record) -> Record:
    messages = conversation(_require(record, MESSAGES, "messages"), MESSAGES)
    prompt, completion = last_exchange(messages, MESSAGES)
    return {**record, MESSAGES: messages, PROMPT: prompt, COMPLETION: completion}


def prompt_completion(record: Record) -> Record:
    prompt, completion = (
        _require(record, PROMPT, "prompt_completion"),
        _require(record, COMPLETION, "prompt_completion"),
    )
    if isinstance(prompt, list) or isinstance(completion, list):
        # the conversational layout: prompt and completion are lists of messages
        messages = conversation(prompt, PROMPT) + conversation(completion, COMPLETION)
        prompt_text, completion_text = last_exchange(messages, f"{PROMPT}+{COMPLETION}")
        return {**record, MESSAGES: messages, PROMPT: prompt_text, COMPLETION: completion_text}
    return {
        **record,
        PROMPT: _text_or_none(record, PROMPT, "prompt_completion"),
        COMPLETION: _text_or_none(record, COMPLETION, "prompt_completion"),
    }


def _strip_prefix(messages: list[Message], prefix: list[Message]) -> list[Message]:
    return messages[len(prefix) :] if messages[: len(prefix)] == prefix else messages


def _answer(remainder: list[Message], column: str) -> str:
    if len(remainder) != 1 or remainder[0]["role"] != "assistant":
        roles = [m["role"] for m in remainder] or ["nothing"]
        raise FormatMismatch(
            f"after the shared conversation, '{column}' must hold exactly one assistant turn, found {', '.join(roles)}"
        )
    return remainder[0]["content"]


def preference(record: Record) -> Record:
    chosen, rejected = _require(record, CHOSEN, "preference"), _require(record, REJECTED, "preference")
    prompt = record.get(PROMPT)
    if isinstance(chosen, list) or isinstance(rejected, list):
        good, bad = conversation(chosen, CHOSEN), conversation(rejected, REJECTED)
        if isinstance(prompt, list):
            context = conversation(prompt, PROMPT)
        elif isinstance(prompt, str):
            context = [{"role": "user", "content": prompt}]
        elif prompt is None:
            # implicit prompt: the turns chosen and rejected have in common
            shared = 0
            while shared < min(len(good), len(bad)) - 1 and good[shared] == bad[shared]:
                shared += 1
            context = good[:shared]
        else:
            raise FormatMismatch(f"column '{PROMPT}' holds {_kind(prompt)}, expected text or a list of messages")
        good, bad = _strip_prefix(good, context), _strip_prefix(bad, context)
        return {
            **record,
            MESSAGES: context,
            PROMPT: _last_user(context, PROMPT),
            CHOSEN: _answer(good, CHOSEN),
            REJECTED: _answer(bad, REJECTED),
        }
    if PROMPT not in record:
        hint = (
            "; transcripts in the '\\n\\nHuman: ... \\n\\nAssistant: ...' style need format hh_rlhf"
            if isinstance(chosen, str) and ASSISTANT_MARK in chosen
            else ""
        )
        raise FormatMismatch(f"format 'preference' needs a column '{PROMPT}' when chosen/rejected are text{hint}")
    return {
        **record,
        PROMPT: _text_or_none(record, PROMPT, "preference"),
        CHOSEN: _text_or_none(record, CHOSEN, "preference"),
        REJECTED: _text_or_none(record, REJECTED, "preference"),
    }


def transcript_messages(transcript: str) -> list[Message]:
    """Turns of a '\\n\\nHuman: ... \\n\\nAssistant: ...' transcript (empty turns left out)."""
    if not transcript.startswith("\n\n"):  # some copies drop the leading blank line
        transcript = "\n\n" + transcript.lstrip("\n")
    parts = re.split(r"\n\n(Human|Assistant):", transcript)
    messages = []
    for speaker, text in zip(parts[1::2], parts[2::2]):
        if text.strip():
            messages.append({"role": "user" if speaker == "Human" else "assistant", "content": text.strip()})
    return messages


def hh_rlhf(record: Record) -> Record:
    chosen, rejected = _text_or_none(record, CHOSEN, "hh_rlhf"), _text_or_none(record, REJECTED, "hh_rlhf")
    if chosen is None or rejected is None:
        raise FormatMismatch("format 'hh_rlhf' needs both transcripts; 'chosen' or 'rejected' is null")
    shared = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        shared += 1
    # the last assistant cue that lies wholly inside the shared part
    cut = chosen.rfind(ASSISTANT_MARK, 0, shared)
    if cut < 0:
        raise FormatMismatch(
            "chosen and rejected share no transcript ending in '\\n\\nAssistant:'; "
            "format 'hh_rlhf' expects '\\n\\nHuman: ... \\n\\nAssistant: ...' transcripts"
        )
    end = cut + len(ASSISTANT_MARK)
    prompt = chosen[:end]
    return {
        **record,
        MESSAGES: transcript_messages(prompt),
        PROMPT: prompt,
        CHOSEN: chosen[end:].strip(),
        REJECTED: rejected[end:].strip(),
    }


def text_label(record: Record) -> Record:
    text = _text_or_none(record, TEXT, "text_label")
    label = _require(record, LABEL, "text_label")
    if isinstance(label, (list, dict)):
        raise FormatMismatch(f"column '{LABEL}' holds {_kind(label)}, expected one value (text or number)")
    return {**record, TEXT: text, LABEL: label}


ADAPTERS: dict[str, Callable[[Record], Record]] = {
    "alpaca": alpaca,
    "sharegpt": sharegpt,
    "messages": messages_format,
    "prompt_completion": prompt_completion,
    "preference": preference,
    "hh_rlhf": hh_rlhf,
    "text_label": text_label,
}


def detect_format(record: Record) -> str | None:
    """The format whose keys this record has (most specific first); None when no format fits."""
    keys = set(record)
    if "conversations" in keys:
        return "sharegpt"
    if MESSAGES in keys and isinstance(record[MESSAGES], list):
        return "messages"
    if {"instruction", "output"} <= keys:
        return "alpaca"
    if {CHOSEN, REJECTED} <= keys:
        chosen = record[CHOSEN]
        if PROMPT not in keys and isinstance(chosen, str) and ASSISTANT_MARK in chosen:
            return "hh_rlhf"
        return "preference"
    if {PROMPT, COMPLETION} <= keys:
        return "prompt_completion"
    if {TEXT, LABEL} <= keys:
        return "text_label"
    return None
