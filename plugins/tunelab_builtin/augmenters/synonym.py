"""The ``synonym`` augmenter: WordNet synonym replacement from an offline WordNet database."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Optional

from tunelab_builtin.augmenters._base import AugmentConfig, TextAugmenter, check_choices
from tunelab_builtin.augmenters._text import POS_NAMES, SynonymSource, replace_synonyms


@dataclass
class SynonymConfig(AugmentConfig):
    #: words replaced per text (ignored when alpha is set)
    n: int = 1
    #: replace this fraction of the words instead of n (at least one word); None uses n
    alpha: Optional[float] = None
    #: parts of speech whose synonyms may be used: any of noun, verb, adj, adv
    pos: list[str] = field(default_factory=lambda: list(POS_NAMES))
    #: senses per part of speech whose lemmas count as synonyms, most frequent first; 0 = all
    max_senses: int = 3
    #: WordNet database directory (or NLTK wordnet.zip); None = /usr/share/wordnet, then $NLTK_DATA and ~/nltk_data
    wordnet_dir: Optional[str] = None


class Synonym(TextAugmenter):
    """WordNet synonym replacement from an offline WordNet database (no nltk needed)."""

    op = "synonym"

    def __init__(self, config: SynonymConfig):
        super().__init__(config)
        if config.n < 1:
            raise ValueError(f"synonym.n must be at least 1, got {config.n}")
        if config.alpha is not None and not 0.0 < config.alpha <= 1.0:
            raise ValueError(f"synonym.alpha must be in (0, 1] or null, got {config.alpha}")
        check_choices(config.pos, POS_NAMES, "synonym.pos")
        if config.max_senses < 0:
            raise ValueError(f"synonym.max_senses must be 0 (all) or more, got {config.max_senses}")
        self.synonyms = SynonymSource(config.wordnet_dir, config.pos, config.max_senses, "synonym.wordnet_dir")

    def candidates(self, word: str) -> list[str]:
        """The synonyms ``word`` may be replaced with."""
        return self.synonyms(word.lower())

    def rewrite_text(self, text: str, rng: random.Random) -> str:
        count = self.config.n
        if self.config.alpha is not None:
            count = max(1, round(self.config.alpha * len(text.split())))
        return replace_synonyms(text, count, rng, self.synonyms)
