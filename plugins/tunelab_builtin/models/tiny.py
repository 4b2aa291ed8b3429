"""The in-process test models, built with random weights and without any download: ``tiny``
(a small Llama-style causal LM with a byte-level tokenizer) and ``tiny_encoder`` (a small
BERT encoder with a WordPiece or byte-level tokenizer)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.api import LoadedModel, ModelLoader, ModelRequest
from tunelab.train.auto_models import auto_model_class
from tunelab_builtin.models._common import ENCODER_TASKS, encoder_task, label_kwargs

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


# --- tiny_encoder ---------------------------------------------------------------------

ENCODER_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


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
        for key in (
            "hidden_size",
            "num_layers",
            "num_heads",
            "intermediate_size",
            "max_position_embeddings",
            "vocab_size",
        ):
            if getattr(config, key) < 1:
                raise ValueError(f"tiny_encoder.{key} must be positive, got {getattr(config, key)}")
        if config.hidden_size % config.num_heads:
            raise ValueError(
                f"tiny_encoder.num_heads ({config.num_heads}) must divide hidden_size ({config.hidden_size})"
            )
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
        task = encoder_task(request, "tiny_encoder")
        tokenizer = self.tokenizer(data)
        model = self.build(tokenizer, request)
        return LoadedModel(
            model,
            tokenizer,
            name="tiny_encoder",
            source=f"built in-process ({model.num_parameters():,} params)",
            task=task,
        )
