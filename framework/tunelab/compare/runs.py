"""Collecting a sweep's runs: one row per ``metrics.json`` (or per Hydra job directory
without one), each with its approach (the overrides minus the seed axis and the settings that
do not change results) and its seed; and the metric columns of those rows in display order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Columns shown first, when present; any other numeric metric follows.
PREFERRED = [
    "test_accuracy",
    "test_macro_f1",
    "test_preference_accuracy",
    "test_reward_margin",
    "test_loss",
    "test_perplexity",
    "test_token_accuracy",
    "test_exact_match",
    "test_token_f1",
    "test_rouge_l",
    "trainable_params",
    "trainable_pct",
    "train_seconds",
    "train_tokens_per_second",
    "peak_rss_mb",
    "peak_gpu_mb",
    "energy_kwh",
    "co2_g",
]
#: Override keys that are the seed axis (aggregated over, not an approach).
SEED_KEYS = ("seed", "data_seed")
#: Override keys that do not change what a run computes (tunelab.run.VOLATILE_KEYS).
NOT_APPROACH_KEYS = frozenset({"hydra", "tracker", "cache_dir", "num_proc", "resume"})


def split_top(text: str) -> list[str]:
    """Split ``a=1,b=[x,y]`` at the commas outside brackets and quotes."""
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p]


def approach_of(overrides: Iterable[str]) -> tuple[str, str | None]:
    """(approach name, seed) of a run's overrides: the seed axes (``seed``, ``data_seed``) and
    the settings that do not change results (``hydra``, ``tracker``, ``cache_dir``,
    ``num_proc``, ``resume`` and their sub-keys) are not part of the approach. With both seed axes swept
    the seed is ``seed=S,data_seed=D``; with one, its value."""
    kept, seeds = [], []
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key.split(".", 1)[0] in NOT_APPROACH_KEYS or key.split("/", 1)[0] == "hydra":
            continue
        if key in SEED_KEYS:
            seeds.append((key, value))
            continue
        kept.append(override)
    if not seeds:
        seed = None
    elif len(seeds) == 1:
        seed = seeds[0][1]
    else:
        seed = ",".join(f"{key}={value}" for key, value in seeds)
    return ",".join(kept) or "default", seed


def _natural(path: str) -> list[Any]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", path) if part]


def _read_overrides(run_dir: Path) -> list[str] | None:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    try:
        import yaml

        loaded = yaml.safe_load(path.read_text())
    except Exception:  # an unreadable file only loses the name
        return None
    return [str(o) for o in loaded] if isinstance(loaded, list) else None


def collect_runs(root: Path) -> list[dict[str, Any]]:
    """One row per run below ``root``: every ``metrics.json`` (its metrics flattened into
    the row), plus every Hydra job directory without one (status ``missing``), so a partial
    sweep is accounted for in full. Each row has ``run``, ``dir``, ``status``, ``approach``
    and ``seed`` (strings) and, for failures, ``error``."""
    root = Path(root)
    found: dict[Path, Path | None] = {p.parent: p for p in root.rglob("metrics.json")}
    for hydra_dir in root.rglob(".hydra"):
        # a resumed job (resumed.txt) reused the metrics of a run that is counted where it is
        if (
            hydra_dir.is_dir()
            and (hydra_dir / "overrides.yaml").is_file()
            and not (hydra_dir.parent / "resumed.txt").exists()
        ):
            found.setdefault(hydra_dir.parent, None)
    rows = []
    for run_dir in sorted(found, key=lambda p: _natural(str(p.relative_to(root)))):
        path = found[run_dir]
        rel = str(run_dir.relative_to(root)) or "."
        overrides = _read_overrides(run_dir)
        if path is None:
            row: dict[str, Any] = {
                "run": run_dir.name,
                "dir": rel,
                "status": "missing",
                "error": "no metrics.json: the job did not finish (killed, crashed hard, or still running)",
            }
        else:
            try:
                payload = json.loads(path.read_text())
                if not isinstance(payload, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as exc:
                payload = None
                row = {"run": run_dir.name, "dir": rel, "status": "unreadable", "error": f"metrics.json: {exc}"}
            if payload is not None:
                metrics = payload.get("metrics") if isinstance(payload.get("metrics"), dict) else {}
                row = {"run": payload.get("run") or run_dir.name, "dir": rel}
                row.update(metrics)
                row["status"] = str(metrics.get("status") or "unknown")
                if isinstance(payload.get("overrides"), list):
                    overrides = [str(o) for o in payload["overrides"]]
        if overrides is None:  # name the approach from the run name (which has no hydra.*/cache_dir overrides)
            overrides = split_top(str(row["run"])) if path is not None and row["status"] != "unreadable" else [rel]
        row["approach"], row["seed"] = approach_of(overrides)
        if row["run"] == run_dir.name and overrides:
            row["run"] = ",".join(o for o in overrides if not o.startswith(("hydra.", "cache_dir="))) or row["run"]
        rows.append(row)
    return rows


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    numeric = {k for row in rows for k, v in row.items() if is_number(v)}
    if any(not k.startswith("data_") for k in numeric):  # a data-only sweep shows its split sizes
        numeric -= {k for k in numeric if k.startswith("data_")}
    ordered = [c for c in PREFERRED if c in numeric]
    return [*ordered, *sorted(numeric - set(ordered))]
