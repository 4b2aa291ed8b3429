"""The Hydra application: config location, plugin config search paths, sweep end."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.plugins import Plugins as HydraPlugins
from hydra.experimental.callback import Callback
from hydra.plugins.search_path_plugin import SearchPathPlugin

log = logging.getLogger("tunelab")


def conf_dir() -> Path:
    """tunelab's config groups: ``tunelab/conf`` in an installed wheel, ``conf/`` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"tunelab's config directory is missing (looked in {here / 'conf'}); reinstall tunelab")


class TunelabSearchPath(SearchPathPlugin):
    """Adds the config directories that plugins return from ``tunelab_config_search_paths``."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from tunelab.plugins import get_plugins

        for path in get_plugins().config_search_paths():
            search_path.append(provider="tunelab-plugin", path=path)


class SweepEnd(Callback):
    """At the end of a multirun: write the comparison and call ``tunelab_sweep_end``."""

    #: runs of the last sweep that did not finish ok (the CLI's exit code reports them)
    failed_runs: int = 0

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from tunelab.compare import write_comparison
        from tunelab.plugins import get_plugins

        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        comparison = write_comparison(sweep_dir)
        SweepEnd.failed_runs = sum(1 for row in comparison.runs if row.get("status") != "ok")
        get_plugins().pm.hook.tunelab_sweep_end(sweep_dir=sweep_dir, rows=comparison.runs)
        print(
            f"tunelab: comparison of {len(comparison.runs)} runs in {len(comparison.approaches)} approaches: {comparison.md}",
            file=sys.stderr,
        )


def register_hydra_plugins() -> None:
    # importing the launcher stores its config (hydra/launcher=gpu_pool) in Hydra's ConfigStore
    from tunelab.launcher import GpuPoolLauncher

    HydraPlugins.instance().register(TunelabSearchPath)
    HydraPlugins.instance().register(GpuPoolLauncher)
