"""Secrets out of everything tunelab writes: one redaction for configs, overrides, log
lines, saved files and tracker payloads.

A secret is

* the value of a key named like one (:func:`is_secret_key`: ``password``, ``passwd``,
  ``secret``, ``token``, ``api_key``/``apikey``, ``salt``, ``credentials`` as words of the
  key, so ``db_password`` and ``hf_token`` are secrets and ``max_new_tokens`` and
  ``pad_token_id`` are not), in a mapping, a ``key=value`` override or a ``key: value`` line;
* the password in a URL (``postgresql://user:secret@host/db``, also in Hydra's escaped
  form ``postgresql\\://user\\:secret@host/db``);
* the value of a URL query parameter that holds a credential (:func:`is_secret_param`:
  ``?password=``, ``&pwd=``, ``&token=``, ``&key=``, ``&sslpassword=``, a presigned URL's
  ``X-Amz-Signature``/``X-Amz-Credential``/``sig``, ...): ``sqlite:///x.db?password=***``,
  ``postgresql://h/db?user=etl&password=***`` (``user=etl`` stays);
* the value of an environment variable named like a secret (``WANDB_API_KEY``,
  ``HF_TOKEN``, ``DB_PASSWORD``, ...), wherever it shows up;
* every secret value of the current run's config (:func:`remember_config`), wherever it
  shows up later: in an error message, a log line, Hydra's ``override_dirname``.

Each is replaced by ``***``. An unresolved ``${oc.env:NAME}`` interpolation is kept: it
names the variable, not its value (the way to keep a secret out of a config file).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

MASK = "***"
#: Words that make a key's value a secret (whole words of the key, split at ``_``/``-``/``.``).
SECRET_WORDS = {"password", "passwd", "secret", "token", "apikey", "salt", "credentials"}
#: "token" is also a vocabulary item: ``pad_token``, ``eos_token_id`` and ``token_type_ids`` are not secrets.
_VOCABULARY_WORDS = {
    "pad",
    "eos",
    "bos",
    "unk",
    "sep",
    "cls",
    "mask",
    "id",
    "ids",
    "type",
    "types",
    "special",
    "vocab",
    "count",
    "counts",
    "length",
    # metric names: test_token_accuracy, token_loss, train_token_rate are numbers, not secrets
    "accuracy",
    "acc",
    "loss",
    "entropy",
    "perplexity",
    "ppl",
    "rate",
    "f1",
    "precision",
    "recall",
    "score",
    "scores",
    "frac",
    "fraction",
}
#: URL query parameters whose value is a credential, besides every name :func:`is_secret_key`
#: accepts (``db_password``, ``hf_token``): database drivers' ``password``/``pwd``/``sslpassword``,
#: API keys, and the signature and credential of presigned URLs (S3, GCS, Azure SAS). Not
#: ``sslkey``/``sslcert``: their values are file paths.
SECRET_PARAMS = {
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "sslpassword",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "session_token",
    "api_key",
    "apikey",
    "key",
    "auth",
    "authorization",
    "signature",
    "sig",
    "credential",
    "credentials",
    "private_key",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
}
#: Shorter secret values are masked where their key names them, but not searched for as
#: free text (masking every "abc" in a log would garble it and reveal nothing anyway).
MIN_FREE_TEXT_LENGTH = 6

_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*\\?://[^:/@\s'\"]*\\?:)([^@\s'\"]+)(@)")
# name=value after ? & ; (or &amp; in HTML) of a URL's query string, also in Hydra's escaped
# form (password\=x); the value is an interpolation, or ends at & ; , # whitespace, a quote or
# a closing bracket (URLs percent-encode those in a value), and a backslash escapes the
# character after it (Hydra writes a comma of a value as \,)
_URL_QUERY_PARAM = re.compile(
    r"(?P<lead>(?:[?&;]|&amp;)\\?)(?P<name>[A-Za-z][\w.\-%]*)(?P<eq>\\?=)"
    r"(?P<value>\$\\?\{[^}\n]*\}|(?:\\\S|[^&;,#\s'\"<>\]}\\])*)"
)
_ENV_INTERPOLATION = re.compile(r"^\$\{oc\.env:[A-Za-z_][A-Za-z0-9_]*\}$")
# key=value (overrides, override_dirname, command lines) and key: value (YAML, inline
# mappings); the key may be dotted (pipeline.params.pii.salt) and quoted ("salt": ...)
_ASSIGNMENT = re.compile(
    r"(?P<key>[+~]{0,2}[A-Za-z_][\w.@/-]*)(?P<quote>['\"]?)(?P<sep>=|:[ \t]*)"
    r"(?P<value>\$\\?\{[^}\n]*\}|'[^'\n]*'|\"[^\"\n]*\"|\[[^\]\n]*\]|[^\s,;'\"\[\]{}][^\s,;'\"\]}]*)"
)
_remembered: set[str] = set()


def is_secret_key(key: Any) -> bool:
    """``db_password``, ``hf_token``, ``WANDB_API_KEY``, ``clientSecret``, ``salt``: yes.
    ``max_new_tokens``, ``pad_token_id``: no."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(key)).lower()  # camelCase: words too
    words = set(re.split(r"[_\-.\s]+", text))
    found = SECRET_WORDS & words
    if found == {"token"} and words & _VOCABULARY_WORDS:
        return False
    return bool(found) or "api_key" in text or "apikey" in text


def is_secret_param(name: str) -> bool:
    """``password``, ``pwd``, ``sslpassword``, ``token``, ``key``, ``X-Amz-Signature``: a URL query
    parameter holding a credential. ``user``, ``sslmode``, ``sslkey`` (a path): no."""
    from urllib.parse import unquote

    name = unquote(name).strip()
    return name.lower() in SECRET_PARAMS or is_secret_key(name)


def _mask_query_param(match: re.Match) -> str:
    value = match.group("value")
    if (
        not value
        or value == MASK
        or not is_secret_param(match.group("name"))
        or _ENV_INTERPOLATION.match(value.replace("\\", ""))
    ):
        return match.group(0)
    return f"{match.group('lead')}{match.group('name')}{match.group('eq')}{MASK}"


def url_secrets(text: str) -> list[str]:
    """The credentials written into the URLs of ``text``: userinfo passwords and the values of
    secret query parameters (``?password=...``), as written (percent-encoded or not)."""
    found = [m.group(2) for m in _URL_PASSWORD.finditer(text)]
    found += [
        m.group("value")
        for m in _URL_QUERY_PARAM.finditer(text)
        if m.group("value") and is_secret_param(m.group("name"))
    ]
    return [value for value in found if value != MASK]


def redact_url(url: str) -> str:
    """``url`` with its userinfo password and secret query parameters masked:
    ``postgresql://etl:***@h/db?sslmode=require&sslpassword=***``."""
    return _URL_QUERY_PARAM.sub(_mask_query_param, _URL_PASSWORD.sub(rf"\1{MASK}\3", url))


def env_secrets() -> list[str]:
    """Values of the environment variables named like secrets (``WANDB_API_KEY``, ``HF_TOKEN``, ...)."""
    values = []
    for name, value in os.environ.items():
        if name.upper().endswith(("_PATH", "_FILE", "_DIR")) or len(value) < MIN_FREE_TEXT_LENGTH:
            continue
        if is_secret_key(name):
            values.append(value)
    return values


def remember(*values: Any) -> None:
    """Mask these values wherever they appear from now on in this process."""
    from urllib.parse import unquote

    for value in values:
        if isinstance(value, str) and len(value) >= MIN_FREE_TEXT_LENGTH and value != MASK:
            _remembered.update({value, unquote(value)})


def remember_config(config: Any) -> None:
    """Remember every secret value of a (resolved) config: values of secret-named keys and URL passwords."""
    if isinstance(config, dict):
        for key, value in config.items():
            if is_secret_key(key) and isinstance(value, (str, int, float)) and not isinstance(value, bool):
                remember(str(value))
            else:
                remember_config(value)
    elif isinstance(config, (list, tuple)):
        for value in config:
            remember_config(value)
    elif isinstance(config, str):
        remember(*url_secrets(config))


def _known_values() -> list[str]:
    values = {v for v in [*env_secrets(), *_remembered] if v}
    return sorted(values, key=len, reverse=True)  # longest first: a secret containing another


def _mask_assignment(match: re.Match) -> str:
    key, value = match.group("key"), match.group("value")
    last = key.lstrip("+~").rsplit(".", 1)[-1]
    bare = value.strip("'\"")
    if (
        not is_secret_key(last)
        or bare in ("", MASK, "null", "None", "~")
        or _ENV_INTERPOLATION.match(bare.replace("\\", ""))
    ):
        return match.group(0)
    quote = value[0] if value[:1] in ("'", '"') and value[-1:] == value[:1] and len(value) > 1 else ""
    return f"{key}{match.group('quote')}{match.group('sep')}{quote}{MASK}{quote}"


def redact_text(text: str, known: Iterable[str] | None = None) -> str:
    """``text`` with URL passwords and secret query parameters, values of secret-named keys and
    every known secret value masked."""
    if not text:
        return text
    text = redact_url(text)  # first: a key: value pattern would take the whole URL as one value
    text = _ASSIGNMENT.sub(_mask_assignment, text)
    for value in _known_values() if known is None else known:
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_secrets(value: Any, known: Iterable[str] | None = None) -> Any:
    """A copy of a config (mappings, lists, strings) with every secret masked; the keys stay."""
    from omegaconf import DictConfig, ListConfig

    known = _known_values() if known is None else list(known)
    if isinstance(value, (dict, DictConfig)):
        out = {}
        for key, item in value.items():
            if (
                is_secret_key(key)
                and item not in (None, "")
                and not (isinstance(item, str) and _ENV_INTERPOLATION.match(item))
            ):
                out[key] = MASK
            else:
                out[key] = redact_secrets(item, known)
        return out
    if isinstance(value, (list, tuple, ListConfig)):
        return [redact_secrets(v, known) for v in value]
    if isinstance(value, str):
        return redact_text(value, known)
    return value


def redact_file(path: Path) -> bool:
    """Rewrite a text file (YAML, JSON, logs) with its secrets masked; True if it changed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    clean = redact_text(text)
    if clean == text:
        return False
    tmp = path.with_name(f".{path.name}.redact-{os.getpid()}")
    tmp.write_text(clean, encoding="utf-8")
    os.replace(tmp, path)
    return True


def redact_hydra_outputs() -> None:
    """Mask secrets in the files Hydra wrote for this job before it started: ``.hydra/config.yaml``,
    ``hydra.yaml`` and ``overrides.yaml``, and a sweep's ``multirun.yaml``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    paths = []
    if hc.output_subdir is not None and hc.runtime.output_dir:
        hydra_dir = Path(hc.runtime.output_dir) / str(hc.output_subdir)
        paths += [hydra_dir / name for name in ("config.yaml", "hydra.yaml", "overrides.yaml")]
    if hc.mode == RunMode.MULTIRUN:
        paths.append(Path(str(hc.sweep.dir)) / "multirun.yaml")
    for path in paths:
        if path.is_file():
            redact_file(path)


@contextlib.contextmanager
def redacted_argv() -> Iterator[None]:
    """``sys.argv`` with secrets masked for the duration (libraries that record the command
    line, like wandb's run metadata, see only the masked form)."""
    saved = sys.argv
    sys.argv = [redact_text(arg) for arg in saved]
    try:
        yield
    finally:
        sys.argv = saved


def install_log_redaction() -> None:
    """Mask secrets in every log record this process creates (Hydra's "Launching jobs"
    lines, library warnings), whatever handler writes it."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "tunelab_redacting", False):
        return
    factory = log_record_rewriter(previous, redact_text)
    factory.tunelab_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def log_record_rewriter(
    previous: Callable[..., logging.LogRecord], rewrite: Callable[[str], str]
) -> Callable[..., logging.LogRecord]:
    """A log-record factory that makes records with ``previous`` and hands them on with their
    message passed through ``rewrite``."""

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return record
        clean = rewrite(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return record

    return factory
