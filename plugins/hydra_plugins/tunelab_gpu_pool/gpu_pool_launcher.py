"""The ``hydra/launcher=gpu_pool`` Launcher class: it keeps the settings and Hydra's context;
``launch`` hands the sweep to :func:`._core.launch` (planning, job processes, summary).

Hydra's plugin scan imports this module when the ``tunelab`` command starts, so it
imports nothing heavy; :mod:`._core` is imported only when a sweep launches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, ListConfig, OmegaConf


class GpuPoolLauncher(Launcher):
    def __init__(
        self,
        gpus: Any = "auto",
        gpus_per_job: int = 1,
        workers: Optional[int] = None,
        threads_per_job: Optional[int] = None,
        terminate_grace_s: float = 10.0,
    ) -> None:
        super().__init__()
        if isinstance(gpus, ListConfig):
            gpus = OmegaConf.to_container(gpus)
        self.settings = {
            "gpus": gpus,
            "gpus_per_job": gpus_per_job,
            "workers": workers,
            "threads_per_job": threads_per_job,
        }
        self.terminate_grace_s = float(terminate_grace_s)
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None
        self.records: dict[int, dict[str, Any]] = {}  # job num -> summary row, over every launch() batch

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from . import _core

        return _core.launch(self, job_overrides, initial_job_idx)
