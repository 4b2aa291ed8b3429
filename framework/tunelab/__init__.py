"""tunelab: prepare fine-tuning datasets and compare fine-tuning approaches.

Importing this package is cheap; torch, transformers, trl and datasets are imported
only by the engines that need them.
"""

__version__ = "0.1.0"
