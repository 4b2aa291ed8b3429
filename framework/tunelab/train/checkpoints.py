"""Training checkpoints (``train.save_steps``): a killed sweep job continues from its latest
complete checkpoint when the sweep is rerun with ``resume=true``.

The trainer writes ``<run dir>/trainer/checkpoint-<step>/``; after it has written one
completely, :func:`checkpoint_callback` adds :data:`COMPLETE` to it, so a checkpoint cut off
by a kill is never loaded. ``trainer/`` also holds :data:`OWNER`, the fingerprint of the job
(tunelab.run.config_fingerprint) the checkpoints belong to: a rerun continues only from
checkpoints of the same config.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: the trainer's output directory inside a run directory
TRAINER_DIR = "trainer"
#: written into a checkpoint directory once the trainer has saved it completely
COMPLETE = "tunelab_checkpoint.json"
#: in TRAINER_DIR: the fingerprint of the job whose checkpoints these are
OWNER = "tunelab_fingerprint"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_callback() -> Any:
    """A transformers callback that marks each saved checkpoint complete (:data:`COMPLETE`)."""
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):  # noqa: D401 - transformers API
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                _write_atomic(folder / COMPLETE, json.dumps({"step": state.global_step, "max_steps": state.max_steps}))
            return control

    return MarkComplete()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def checkpoints(directory: Path) -> list[tuple[int, Path, bool]]:
    """(step, path, complete) of every ``checkpoint-<step>`` directory, oldest first."""
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = _CHECKPOINT.match(path.name)
            if match and path.is_dir():
                found.append((int(match.group(1)), path, (path / COMPLETE).is_file()))
    return sorted(found)


def claim(run_dir: Path, fingerprint: str, resume: bool) -> Path | None:
    """Before training: the latest complete checkpoint to continue from (``resume`` and the
    checkpoints are this job's), else None after removing any checkpoints left in the run
    directory; incomplete checkpoints are removed either way. Marks the directory as this job's."""
    directory = Path(run_dir) / TRAINER_DIR
    owner = directory / OWNER
    try:
        previous = owner.read_text().strip()
    except OSError:
        previous = None
    found = checkpoints(directory)
    mine = resume and previous == fingerprint
    latest = None
    for _step, path, complete in found:
        if mine and complete:
            latest = path
            continue
        why = (
            "incomplete (cut off while being saved)"
            if mine
            else ("resume is off" if not resume else "it belongs to another config")
        )
        log.info("removing checkpoint %s: %s", path, why)
        shutil.rmtree(path, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomic(owner, fingerprint)
    if latest is not None:
        log.warning("resume: continuing this job from its checkpoint %s", latest)
    return latest


def step_of(checkpoint: Path) -> int:
    match = _CHECKPOINT.match(Path(checkpoint).name)
    return int(match.group(1)) if match else 0


def remove(run_dir: Path) -> None:
    """After a run finished ok: its checkpoints are of no further use."""
    directory = Path(run_dir) / TRAINER_DIR
    for _, path, _ in checkpoints(directory):
        shutil.rmtree(path, ignore_errors=True)
    (directory / OWNER).unlink(missing_ok=True)
