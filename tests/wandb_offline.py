"""Read an offline W&B run (``run-*.wandb``) back, to check what the tracker logged.

wandb writes its transaction log in the LevelDB log format (32 KiB blocks of
checksummed records) after a 7-byte header; each record is a protobuf ``Record``.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7  # b":W&B" + magic (2 bytes) + version (1 byte)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(path: Path):
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, pending = HEADER, b""
    while pos + 7 <= len(data):
        block_left = BLOCK - (pos % BLOCK)
        if block_left < 7:  # trailer padding
            pos += block_left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        body = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        if kind == FULL:
            yield body
        elif kind == FIRST:
            pending = body
        elif kind == MIDDLE:
            pending += body
        elif kind == LAST:
            yield pending + body
            pending = b""


def _settled(path: Path, timeout: float = 30.0) -> None:
    """Wait until wandb's service has finished writing the file: ``run.finish()`` returns
    before the background writer has flushed every record to disk."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        size = path.stat().st_size
        if size == last:
            return
        last = size
        time.sleep(0.5)


def read_offline_run(run_dir: Path) -> dict[str, Any]:
    """run/config/history/summary/artifacts/exit of the (latest) offline run under ``run_dir``,
    and ``dir``, its ``offline-run-*`` directory."""
    from wandb.proto import wandb_internal_pb2 as pb

    files = sorted(Path(run_dir).rglob("offline-run-*/run-*.wandb"))
    assert files, f"no offline W&B run under {run_dir}"
    _settled(files[-1])
    out: dict[str, Any] = {
        "config": {},
        "history": [],
        "summary": {},
        "run": None,
        "exit": None,
        "artifacts": [],
        "dir": files[-1].parent,
    }
    for payload in _payloads(files[-1]):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = {
                "group": record.run.run_group,
                "job_type": record.run.job_type,
                "name": record.run.display_name,
            }
            for item in record.run.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            )
        elif kind == "summary":
            for item in record.summary.update:
                out["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "artifact":
            a = record.artifact
            out["artifacts"].append(
                {
                    "type": a.type,
                    "name": a.name,
                    "digest": a.digest,
                    "metadata": json.loads(a.metadata) if a.metadata else {},
                    "aliases": list(a.aliases),
                    "files": {entry.path: entry.local_path for entry in a.manifest.contents},
                }
            )
        elif kind == "exit":
            out["exit"] = record.exit.exit_code
    return out


def read_table(logged: dict[str, Any], key: str) -> dict[str, Any]:
    """The ``wandb.Table`` a run logged under ``key``: ``{"columns": [...], "data": [[...], ...]}``,
    read from the table file in the offline run's ``files/`` directory."""
    paths = [h[f"{key}/path"] for h in logged["history"] if h.get(f"{key}/_type") == "table-file"]
    assert paths, f"no table logged under {key!r}"
    return json.loads((logged["dir"] / "files" / paths[-1]).read_text())
