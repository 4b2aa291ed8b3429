"""Trackers: plugins on the lifecycle hooks, registered for the length of one run (and,
for ``tunelab_sweep_end``, for the end of a sweep).

``csv`` writes ``metrics.csv`` in the run directory; ``wandb`` logs to Weights & Biases
(offline without an API key), with opt-in dataset/model artifacts and a comparison run
at the end of a sweep; ``tensorboard`` writes event files under the run directory;
``mlflow`` logs to an MLflow tracking store (a local SQLite file by default). The
libraries are imported only when a run starts: ``tunelab --help`` imports none of them.
"""

from __future__ import annotations

from tunelab.api import Component
from tunelab_builtin.trackers.csv import CsvTracker, CsvTrackerConfig
from tunelab_builtin.trackers.mlflow import MlflowTracker, MlflowTrackerConfig
from tunelab_builtin.trackers.tensorboard import TensorboardTracker, TensorboardTrackerConfig
from tunelab_builtin.trackers.wandb import WandbTracker, WandbTrackerConfig

COMPONENTS = [
    Component("csv", CsvTracker, CsvTrackerConfig),
    Component("wandb", WandbTracker, WandbTrackerConfig),
    Component("tensorboard", TensorboardTracker, TensorboardTrackerConfig),
    Component("mlflow", MlflowTracker, MlflowTrackerConfig),
]
