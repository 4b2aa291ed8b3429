"""The ``eda`` augmenter: Easy Data Augmentation (random swap, deletion, insertion and,
with WordNet, synonym replacement)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Optional

from tunelab_builtin.augmenters._base import AugmentConfig, TextAugmenter, check_choices
from tunelab_builtin.augmenters._text import POS_NAMES, SynonymSource, replace_synonyms

EDA_OPERATIONS = ("swap", "delete", "insert", "synonym")


@dataclass
class EdaConfig(AugmentConfig):
    #: fraction of the words each operation touches (EDA's alpha)
    alpha: float = 0.1
    #: any of swap, delete, insert (a word from the same text), synonym (WordNet; needs a WordNet database)
    operations: list[str] = field(default_factory=lambda: ["swap", "delete", "insert"])
    #: WordNet directory for the synonym operation; None = auto-detect (see the synonym augmenter)
    wordnet_dir: Optional[str] = None


class Eda(TextAugmenter):
    """Easy Data Augmentation: random swap, deletion, insertion and (with WordNet) synonym replacement."""

    op = "eda"

    def __init__(self, config: EdaConfig):
        super().__init__(config)
        check_choices(config.operations, EDA_OPERATIONS, "eda.operations")
        if not 0.0 < config.alpha <= 1.0:
            raise ValueError(f"eda.alpha must be in (0, 1], got {config.alpha}")
        self.synonyms: SynonymSource | None = None
        if "synonym" in config.operations:
            self.synonyms = SynonymSource(config.wordnet_dir, list(POS_NAMES), 3, "eda.wordnet_dir")

    def rewrite_text(self, text: str, rng: random.Random) -> str:
        words = text.split()
        if len(words) < 2:
            return text
        n = max(1, int(round(self.config.alpha * len(words))))
        operation = rng.choice(self.config.operations)
        if operation == "synonym":
            assert self.synonyms is not None  # set whenever the operation is configured
            return replace_synonyms(text, n, rng, self.synonyms)
        for _ in range(n):
            if operation == "swap":
                i, j = rng.sample(range(len(words)), 2)
                words[i], words[j] = words[j], words[i]
            elif operation == "delete" and len(words) > 1:
                del words[rng.randrange(len(words))]
            elif operation == "insert":
                words.insert(rng.randrange(len(words) + 1), rng.choice(words))
        return " ".join(words)
