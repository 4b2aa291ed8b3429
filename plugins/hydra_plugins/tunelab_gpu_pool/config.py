"""The config of ``hydra/launcher=gpu_pool``, stored in Hydra's ConfigStore when Hydra's
plugin scan imports this module (see docs/sweeps.md).

No ``from __future__ import annotations`` here: the scan runs this module before it is in
``sys.modules``, where ``@dataclass`` cannot resolve string annotations."""

from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class GpuPoolLauncherConf:
    """``hydra.launcher.*`` of ``hydra/launcher=gpu_pool`` (see docs/sweeps.md)."""

    # Hydra instantiates a launcher only when its class is named inside the
    # ``hydra_plugins`` namespace (hydra.core.plugins.Plugins.is_in_toplevel_plugins_module)
    _target_: str = "hydra_plugins.tunelab_gpu_pool.gpu_pool_launcher.GpuPoolLauncher"
    #: "auto" (the visible GPUs: $CUDA_VISIBLE_DEVICES, else torch, else nvidia-smi -L) or
    #: a list of device ids, e.g. [0,1]; [] runs on the CPU
    gpus: Any = "auto"
    #: devices each job gets; 0 runs every job on the CPU
    gpus_per_job: int = 1
    #: most jobs running at once; null: as many as the GPUs allow, or on the CPU
    #: max(1, min(8, cores // 2)) (each job then has at least two cores)
    workers: Optional[int] = None
    #: OMP/MKL threads of each job; null: cores // jobs running at once
    threads_per_job: Optional[int] = None
    #: seconds a job gets to exit after SIGTERM (on Ctrl-C) before it is killed
    terminate_grace_s: float = 10.0


ConfigStore.instance().store(group="hydra/launcher", name="gpu_pool", node=GpuPoolLauncherConf, provider="tunelab")
