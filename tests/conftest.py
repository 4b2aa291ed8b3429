"""Shared fixtures: an isolated cache, Hydra composition, in-process CLI runs, and a
way to install a plugin distribution for real (a .dist-info on sys.path)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: ``make soak`` sets TUNELAB_SOAK=1: property-based tests generate many more cases and the
#: tests marked ``soak`` (long fault-injection loops) run; CI runs the fast subset.
SOAK = os.environ.get("TUNELAB_SOAK") == "1"

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
    )
    settings.register_profile("soak", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("soak" if SOAK else "ci")
except ImportError:  # hypothesis is a dev dependency; tests that need it import it themselves
    pass


def pytest_collection_modifyitems(config, items):
    if SOAK:
        return
    skip = pytest.mark.skip(reason="long fault-injection loop: run with `make soak`")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


SAMPLE = Path(__file__).resolve().parents[1] / "plugins" / "tunelab_builtin" / "data" / "support_tickets.jsonl"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("TUNELAB_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(autouse=True)
def fresh_plugins():
    """Each test sees the installed plugins only (tests may add their own)."""
    from tunelab.plugins import get_plugins

    get_plugins(reload=True)
    yield
    get_plugins(reload=True)


def compose(overrides: list[str]):
    """Compose the run config like the CLI does, with HydraConfig set (so errors can
    name config files and overrides)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from tunelab.app import conf_dir, register_hydra_plugins
    from tunelab.config import register_resolvers

    register_hydra_plugins()
    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
    return cfg


def validate(overrides: list[str]):
    from tunelab.config import Origin
    from tunelab.config import validate as validate_config
    from tunelab.plugins import get_plugins

    cfg = compose(overrides)
    return validate_config(cfg, get_plugins().registry, Origin.from_hydra())


def run_cli(args: list[str]) -> int:
    """Run the tunelab CLI in this process."""
    from tunelab.cli import main

    return main(args)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


def job_from_run(run_dir: Path, max_length: int = 128) -> Any:
    """A TrainJob over the test split a finished run was evaluated on, read from the
    prepared-data cache (the run must have used the ``isolated_cache`` fixture)."""
    from datasets import load_from_disk

    from tunelab.api import TrainJob, TrainSettings
    from tunelab.data.pipeline import SPLITS_DIR

    key = read_metrics(run_dir)["data_key"]
    splits = load_from_disk(str(Path(os.environ["TUNELAB_CACHE_DIR"]) / "prepared" / key / SPLITS_DIR))
    return TrainJob(None, {"test": splits["test"]}, None, TrainSettings(max_length=max_length), run_dir, 0)


def tiny_translator(directory: Path, seed: int, tie_embeddings: bool = False) -> str:
    """A tiny random BART translator and its byte-level tokenizer saved in ``directory``. With tied
    embeddings a random decoder ends at once: every output is empty."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    from tunelab_builtin.models.tiny import byte_level_tokenizer

    tokenizer = byte_level_tokenizer()
    torch.manual_seed(seed)
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=None,
        tie_word_embeddings=tie_embeddings,
    )
    BartForConditionalGeneration(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


@pytest.fixture
def smoke_args(tmp_path: Path) -> list[str]:
    return ["experiment=smoke", f"hydra.run.dir={tmp_path / 'run'}"]


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a plugin distribution for real: a module plus a .dist-info with a
    ``tunelab`` entry point, on sys.path. Returns a function(name, source, version)."""

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def install(module: str, source: str, version: str = "1.0.0", dist: str | None = None) -> str:
        dist = dist or f"tunelab-{module.replace('_', '-')}"
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[tunelab]\n{module} = {module}\n")
        sys.modules.pop(module, None)
        import importlib

        importlib.invalidate_caches()
        return dist

    yield install
