"""The content-addressed cache of the prepared splits.

:func:`prepare` returns the splits of ``<cache>/prepared/<key>`` when an identical
preparation exists and every file matches its manifest, else runs the pipeline
(:mod:`tunelab.data.pipeline`) once under a file lock. A preparation that fails keeps its
quarantine and ledger, and its error lists the first reasons.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab import __version__
from tunelab.api import KIND_TABLE, file_lock
from tunelab.config import RunConfig
from tunelab.data.pipeline import SPLITS_DIR, run_pipeline, step_errors
from tunelab.errors import TunelabError
from tunelab.plugins import Plugins

log = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE.json"
#: sha256 and size of every file of a prepared-data directory, written last (atomically): a
#: copy is used only when it has a manifest and every file matches it (see :func:`verify`)
MANIFEST = "MANIFEST.json"


@dataclass
class Prepared:
    """The prepared splits and how they were made."""

    splits: dict[str, Any]
    directory: Path
    key: str
    cache_hit: bool
    summary: dict[str, Any] = field(default_factory=dict)


def cache_key(rc: RunConfig, plugins: Plugins) -> str:
    """Key of the prepared data: the data and pipeline config, the data seed, the versions of
    the components used, and the size and mtime of every input file."""
    used = [rc.collector, rc.splitter, *(s for stage in rc.steps.values() for s in stage)]
    files = []
    for selected in used:
        component = selected.instantiate(plugins.registry)
        with step_errors(KIND_TABLE[selected.kind].stage, selected.step):
            files += getattr(component, "input_files", lambda: [])()
    versions = sorted({f"{s.kind}/{s.name}={plugins.registry.get(s.kind, s.name).supplier.version}" for s in used})
    inputs = []
    for path in files:
        try:
            st = path.stat()
            inputs.append([str(path.resolve()), st.st_size, st.st_mtime_ns])
        except OSError:
            inputs.append([str(path), None, None])
    payload = {
        "data": rc.resolved["data"],
        "pipeline": rc.resolved["pipeline"],
        "seed": rc.data_seed,
        "components": versions,
        "inputs": inputs,
        "tunelab": __version__,
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def prepare(rc: RunConfig, plugins: Plugins, failed_dir: Path | None = None) -> Prepared:
    """Return the prepared splits, from the cache when an identical preparation exists.

    Concurrent callers with the same key (the jobs of a sweep) wait on a file lock, so
    the data is prepared once and every caller reads the same complete copy.

    A preparation that fails leaves its quarantine and ledger (partial, as far as it got) in
    ``failed_dir`` (the run directory; by default ``<cache>/prepared/<key>.failed``) — its
    staging directory is deleted — and its error names them and lists the first reasons.
    """
    key = cache_key(rc, plugins)
    root = rc.cache_dir / "prepared"
    target = root / key
    failed_dir = failed_dir if failed_dir is not None else root / f"{key}{FAILED_SUFFIX}"
    rebuilt = ""
    with file_lock(root / f"{key}.lock"):
        for stale in root.glob(f"{key}.tmp-*"):  # a preparation killed half-way (we hold the lock: none is running)
            log.warning("prepared data: removing %s, a preparation that was interrupted before it finished", stale)
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():
            problem = verify(target)
            if problem is None:
                try:
                    prepared = _load(target, key, cache_hit=True)
                    log.info("prepared data: cache hit %s", target)
                    for warning in prepared.summary.get("warnings", []):  # said again: the data has not changed
                        log.warning("prepared data: %s", warning)
                    return prepared
                except Exception as exc:  # verified, yet unreadable: rebuild rather than fail
                    problem = f"it cannot be loaded ({type(exc).__name__}: {exc})"
            rebuilt = problem
            log.warning("prepared data in %s is not usable: %s; it is rebuilt", target, problem)
            shutil.rmtree(target)
        staging = root / f"{key}.tmp-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            summary = run_pipeline(rc, plugins, staging)
            summary["key"] = key
            (staging / COMPLETE_MARKER).write_text(json.dumps(summary, indent=2, default=str))
            write_manifest(staging)  # last: a directory without it is never used
            os.replace(staging, target)
        except BaseException as exc:
            # the staging directory goes: what the error points at must outlive it
            _keep_failed(staging, failed_dir, exc)
            raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(root / f"{key}{FAILED_SUFFIX}", ignore_errors=True)  # an earlier failure's files: fixed now
        with (root / "preparations.log").open("a") as fh:  # one line per real preparation
            fh.write(f"{time.time():.3f} {key} pid={os.getpid()}" + (f" rebuilt: {rebuilt}" if rebuilt else "") + "\n")
    return _load(target, key, cache_hit=False)


#: What a failed preparation keeps (partial but true: the rows as far as it got).
FAILED_FILES = ("quarantine.jsonl", "ledger.jsonl")
#: ``<key>.failed``: where a failed preparation keeps them when no run directory is given
FAILED_SUFFIX = ".failed"
#: How many reasons a failed preparation's error lists (one line each).
FIRST_REASONS = 5


def _keep_failed(staging: Path, failed_dir: Path, exc: BaseException) -> None:
    """Copy :data:`FAILED_FILES` of a failed preparation out of its staging directory into
    ``failed_dir`` and, for tunelab's own errors, make the message point at the copies and
    list the first reasons the files give (redacted like every message)."""
    from tunelab.redaction import redact_text

    kept = []
    try:
        failed_dir.mkdir(parents=True, exist_ok=True)
        for name in FAILED_FILES:
            source = staging / name
            if source.is_file():
                shutil.copyfile(source, failed_dir / name)
                kept.append(failed_dir / name)
    except OSError as copy_error:  # the original error matters more than its files
        log.warning("could not keep the files of the failed preparation in %s: %s", failed_dir, copy_error)
        return
    if not kept or not isinstance(exc, TunelabError) or len(exc.args) != 1 or not isinstance(exc.args[0], str):
        return
    message = exc.args[0]
    pointed = str(staging) in message
    message = message.replace(str(staging), str(failed_dir))
    if not pointed:  # a step that raised (its error is the reason): the rows so far are still worth a look
        exc.args = (message + f" (the quarantine and ledger so far: {', '.join(str(p) for p in kept)})",)
        return
    lines = _first_reasons(failed_dir, message)
    if lines:
        message += "\nfirst reasons:\n" + "\n".join(f"  {redact_text(line)}" for line in lines)
    exc.args = (message,)


def _first_reasons(directory: Path, message: str) -> list[str]:
    """Up to :data:`FIRST_REASONS` lines ``id: reason`` from the file ``message`` points at:
    the quarantine, or the drops of the step that left no rows (the ledger's last step)."""
    records: list[dict[str, Any]] = []
    for name in FAILED_FILES:
        if str(directory / name) not in message:
            continue
        try:
            with (directory / name).open(encoding="utf-8") as fh:
                records = [json.loads(line) for line in fh if line.strip()]
        except (OSError, ValueError):
            return []
        if name == "ledger.jsonl":
            drops = [r for r in records if r.get("action") in ("dropped", "quarantined")]
            last = (drops[-1].get("stage"), drops[-1].get("step")) if drops else None
            records = [r for r in drops if (r.get("stage"), r.get("step")) == last]
        break
    lines = []
    for record in records[:FIRST_REASONS]:
        if "source" in record:  # a quarantined record: file and line
            where = f"{record['source']}:{record['line']}" if record.get("line") is not None else str(record["source"])
        else:
            where = str(record.get("id"))
        line = f"{where}: {' '.join(str(record.get('reason', '')).split())}"
        detail = record.get("detail")
        if isinstance(detail, dict):  # the measured value and the limit, e.g. (field=prompt, value=65, limit=10000)
            scalars = [
                f"{k}={v}"
                for k, v in detail.items()
                if isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 40)
            ]
            line += f" ({', '.join(scalars)})" if scalars else ""
        lines.append(line if len(line) <= 200 else line[:197] + "...")
    if len(records) > FIRST_REASONS:
        lines.append(f"... and {len(records) - FIRST_REASONS} more")
    return lines


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path) -> None:
    """Write :data:`MANIFEST` (size and sha256 of every file below ``directory``), atomically."""
    files = {
        path.relative_to(directory).as_posix(): {"size": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    tmp = directory / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"files": files}, indent=1))
    os.replace(tmp, directory / MANIFEST)


def verify(directory: Path) -> str | None:
    """None when every file :data:`MANIFEST` lists is there with its size and sha256, else
    what is wrong. Files the manifest does not list are not checked: ``datasets`` adds its
    own caches (``cache-*.arrow``) next to the splits when a job maps over them."""
    try:
        files = json.loads((directory / MANIFEST).read_text())["files"]
        if not isinstance(files, dict) or COMPLETE_MARKER not in files:
            raise ValueError(f"it does not list {COMPLETE_MARKER}")
    except FileNotFoundError:
        return f"it has no {MANIFEST} (a preparation that did not finish, or a copy made before checksums)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its {MANIFEST} is unreadable ({exc})"
    for name, expected in files.items():
        path = directory / name
        if not isinstance(expected, dict):
            return f"its {MANIFEST} is unreadable (entry {name!r} is not a mapping)"
        try:
            size = path.stat().st_size
        except OSError:
            return f"{name} is missing"
        if size != expected.get("size"):
            return f"{name} has {size} bytes, the manifest says {expected.get('size')} (truncated or rewritten)"
        if _sha256(path) != expected.get("sha256"):
            return f"the sha256 of {name} does not match the manifest (the file was damaged or changed)"
    return None


def _load(directory: Path, key: str, cache_hit: bool) -> Prepared:
    from datasets import Dataset, load_from_disk

    splits = dict(load_from_disk(str(directory / SPLITS_DIR)))
    summary = json.loads((directory / COMPLETE_MARKER).read_text())
    summary["cache_hit"] = cache_hit
    features = splits["train"].features
    for name, size in summary["splits"].items():
        if size == 0:
            splits[name] = Dataset.from_dict({column: [] for column in features}, features=features)
    return Prepared({name: splits[name] for name in summary["splits"]}, directory, key, cache_hit, summary)


def copy_artifacts(prepared: Prepared, run_dir: Path) -> None:
    """Put the data report, ledger, quarantine and every file a step wrote (review
    queues, plots) into a run dir."""
    for source in prepared.directory.iterdir():
        if source.is_file() and source.name not in (COMPLETE_MARKER, MANIFEST):
            shutil.copyfile(source, run_dir / source.name)
