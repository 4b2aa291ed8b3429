"""The ``hf`` model loader: any transformers model by local path or hub id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tunelab.api import MODEL_TASKS, LoadedModel, ModelLoader, ModelRequest
from tunelab.train.auto_models import auto_model_class
from tunelab_builtin.models._common import check_dtype, label_kwargs, quantization_kwargs, torch_dtype


@dataclass
class HfModelConfig:
    #: a local model directory, or a hub id (needs network)
    path: str = "???"
    #: a branch, tag or commit of a hub model; None: the default branch
    revision: Optional[str] = None
    #: auto (bfloat16 on a GPU that supports it, float32 otherwise), float32, bfloat16 or float16
    dtype: str = "auto"
    #: a GGUF file inside ``path``
    gguf_file: Optional[str] = None
    #: run code shipped with the model (only for models you trust); only the command line can
    #: turn it on (model.trust_remote_code=true), a config file or experiment preset cannot
    trust_remote_code: bool = False


class HfModel(ModelLoader):
    """Any transformers model by local path or hub id, loaded for the task the method trains."""

    tasks = MODEL_TASKS
    quantizable = True

    def __init__(self, config: HfModelConfig):
        super().__init__(config)
        check_dtype(config.dtype, "model.dtype")
        if not str(config.path).strip():
            raise ValueError("model.path is empty: give a local model directory or a hub id")

    def load(self, data, cache_dir: Path, request: ModelRequest | None = None) -> LoadedModel:
        from transformers import AutoTokenizer

        c = self.config
        kwargs = {"revision": c.revision, "trust_remote_code": c.trust_remote_code}
        if c.gguf_file:
            kwargs["gguf_file"] = c.gguf_file
        tokenizer = AutoTokenizer.from_pretrained(c.path, **kwargs)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = auto_model_class(request).from_pretrained(
            c.path, dtype=torch_dtype(c.dtype), **label_kwargs(request), **quantization_kwargs(request), **kwargs
        )
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        return LoadedModel(
            model, tokenizer, name=Path(c.path).name, source=c.path, task=request.task if request else "causal_lm"
        )
