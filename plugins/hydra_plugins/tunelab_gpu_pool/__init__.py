"""tunelab's ``hydra/launcher=gpu_pool``: a Hydra launcher plugin that runs a sweep's jobs in
parallel subprocesses, one GPU set each (or ``workers`` jobs at a time on the CPU).

Hydra finds it by scanning the ``hydra_plugins`` namespace package: the scan imports
:mod:`.config` (which stores ``hydra/launcher=gpu_pool`` in Hydra's ConfigStore) and
:mod:`.gpu_pool_launcher` (the Launcher class); :mod:`._core` holds the rest.
"""
