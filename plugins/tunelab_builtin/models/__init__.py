"""Model loaders: a tiny in-process causal LM, SmolLM2-135M from a PyPI package, any HF model;
for classification, a tiny in-process BERT encoder and MiniLM (all-MiniLM-L6-v2) from a PyPI package."""

from tunelab.api import Component
from tunelab_builtin.models.hf import HfModel, HfModelConfig
from tunelab_builtin.models.minilm import MiniLM, MiniLMConfig
from tunelab_builtin.models.smollm2 import SmolLM2, SmolLM2Config
from tunelab_builtin.models.tiny import TinyEncoder, TinyEncoderConfig, TinyModel, TinyModelConfig

COMPONENTS = [
    Component("tiny", TinyModel, TinyModelConfig),
    Component("smollm2_135m", SmolLM2, SmolLM2Config),
    Component("hf", HfModel, HfModelConfig),
    Component("tiny_encoder", TinyEncoder, TinyEncoderConfig),
    Component("minilm", MiniLM, MiniLMConfig),
]
