"""Annotators: labels from a model (``auto_label``) and from several human annotators
(``consensus``, with inter-annotator agreement).

Both add ``label_source`` (human | model) and ``label_confidence`` columns, and list the
rows a person should look at in a review file in the prepared-data folder
(``review_<step>.jsonl``), which is copied into every run directory.
"""

from __future__ import annotations

from tunelab.api import Component
from tunelab_builtin.annotators.auto_label import AutoLabel, AutoLabelConfig
from tunelab_builtin.annotators.consensus import Consensus, ConsensusConfig

COMPONENTS = [
    Component("auto_label", AutoLabel, AutoLabelConfig),
    Component("consensus", Consensus, ConsensusConfig),
]
