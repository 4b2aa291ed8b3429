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
    """At the end of a multirun: write the comparison and call ``tunelab_sweep_end``, with
    the trackers the sweep selected registered for that call (so W&B, TensorBoard, MLflow
    can log the comparison next to the runs they tracked)."""

    #: runs of the last sweep that did not finish ok (the CLI's exit code reports them)
    failed_runs: int = 0

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from tunelab.compare import render_terminal, write_comparison
        from tunelab.plugins import call_safely, get_plugins
        from tunelab.run import group_of

        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        from tunelab.redaction import redact_file

        for name in ("multirun.yaml", "launcher_summary.json"):  # written by Hydra's sweeper and the launcher
            if (sweep_dir / name).is_file():
                redact_file(sweep_dir / name)
        comparison = write_comparison(sweep_dir)
        SweepEnd.failed_runs = sum(1 for row in comparison.runs if row.get("status") != "ok")
        plugins = get_plugins()
        registered = []
        try:
            for name, tracker in SweepEnd.trackers(config, sweep_dir, comparison.runs, plugins.registry):
                registered.append(f"tracker:{name}:sweep:{id(tracker)}")
                plugins.pm.register(tracker, name=registered[-1])
            # each tracker/plugin on its own: one that raises is a warning, the others still log
            call_safely(
                plugins.pm,
                "tunelab_sweep_end",
                plugins.suppliers,
                set(),
                plugins.registry,
                sweep_dir=sweep_dir,
                rows=comparison.runs,
                comparison=comparison,
                group=group_of(sweep_dir),
            )
        except Exception:  # the comparison is written; a plugin failing here must not hide it
            log.exception("a plugin failed in tunelab_sweep_end (the comparison files are complete)")
        finally:
            for name in registered:
                plugins.pm.unregister(name=name)
        if comparison.approaches:
            print(render_terminal(comparison))
        print(
            f"tunelab: comparison of {len(comparison.runs)} runs in {len(comparison.approaches)} approaches: "
            f"{comparison.md}",
            file=sys.stderr,
        )

    @staticmethod
    def trackers(config: Any, sweep_dir: Path, rows: list[dict[str, Any]], registry: Any) -> list[tuple[str, Any]]:
        """(name, instance) of the trackers a sweep selected: the ``tracker`` section of the
        sweep's composed config, plus any tracker only some jobs selected (``tracker=csv,wandb``
        swept) with the settings in the first such job's ``config.yaml``. Each is validated like
        a run's trackers; one that does not validate is skipped with a warning naming the key."""
        import yaml
        from omegaconf import DictConfig, OmegaConf

        from tunelab.config import ConfigError, Origin
        from tunelab.config.validation import _trackers

        sections: dict[str, Any] = {}
        section = config.get("tracker") if isinstance(config, DictConfig) else None
        if section is not None:
            try:
                sections.update(OmegaConf.to_container(section, resolve=True))  # type: ignore[arg-type]
            except Exception as exc:
                log.warning(
                    "sweep end: cannot resolve the sweep's 'tracker' section (%s); using the jobs' trackers", exc
                )
        for row in rows:
            path = sweep_dir / str(row.get("dir", "")) / "config.yaml"
            try:
                job_section = (yaml.safe_load(path.read_text()) or {}).get("tracker") if path.is_file() else None
            except (OSError, yaml.YAMLError, AttributeError):
                continue
            if isinstance(job_section, dict):
                for name, values in job_section.items():
                    sections.setdefault(name, values)
        origin = Origin.from_hydra()
        found = []
        for name, values in sections.items():
            try:
                for selected in _trackers(registry, origin, {name: values}):
                    found.append((name, selected.instantiate(registry)))
            except (ConfigError, ValueError, TypeError) as exc:
                log.warning("sweep end: tracker '%s' is not told about the sweep: %s", name, exc)
        return found


def register_hydra_plugins() -> None:
    # hydra/launcher=gpu_pool is the Hydra plugin package hydra_plugins.tunelab_gpu_pool: Hydra's
    # plugin scan (HydraPlugins.instance() below) imports it and stores its config in the ConfigStore
    from tunelab.redaction import install_log_redaction
    from tunelab.security import install_hydra_guard

    install_hydra_guard()  # no config may name code for Hydra to run (callbacks, logging factories)
    install_log_redaction()  # no secret in a log line, Hydra's "Launching jobs" lines included
    HydraPlugins.instance().register(TunelabSearchPath)
