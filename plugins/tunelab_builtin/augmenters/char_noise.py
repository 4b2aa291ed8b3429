"""The ``char_noise`` augmenter: character noise and keyboard typos (QWERTY neighbours,
insertions, deletions, transpositions, case flips), leaving links, e-mail addresses and
words with digits untouched."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tunelab_builtin.augmenters._base import AugmentConfig, TextAugmenter, check_choices
from tunelab_builtin.augmenters._text import match_case, protected_mask

_KEY_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    """Keys next to each key on a QWERTY keyboard, letters for letters and digits for
    digits (a typo must not turn a word into a number). Rows are staggered: key i of a
    row touches keys i and i+1 of the row above and i-1 and i of the row below."""
    neighbours: dict[str, str] = {}
    for r, row in enumerate(_KEY_ROWS):
        for i, key in enumerate(row):
            near = [row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)]
            if r > 0:
                near += [_KEY_ROWS[r - 1][j] for j in (i, i + 1) if j < len(_KEY_ROWS[r - 1])]
            if r + 1 < len(_KEY_ROWS):
                near += [_KEY_ROWS[r + 1][j] for j in (i - 1, i) if 0 <= j < len(_KEY_ROWS[r + 1])]
            neighbours[key] = "".join(k for k in near if k.isdigit() == key.isdigit())
    return neighbours


KEYBOARD_NEIGHBOURS = _keyboard_neighbours()
CHAR_OPERATIONS = ("keyboard", "insert", "delete", "transpose", "case")


@dataclass
class CharNoiseConfig(AugmentConfig):
    #: edits per eligible character (at least one edit per text); ignored when n > 0
    rate: float = 0.03
    #: exact number of edits per text; 0 = use rate
    n: int = 0
    #: any of keyboard (a QWERTY neighbour), insert (a neighbour after the key), delete,
    #: transpose (with the next letter), case (flip)
    operations: list[str] = field(default_factory=lambda: list(CHAR_OPERATIONS))
    #: leave links, e-mail addresses and words with digits (order numbers, prices) untouched, and edit letters only
    protect_entities: bool = True


class CharNoise(TextAugmenter):
    """Character noise and keyboard typos: neighbour-key substitution, insertion, deletion, transposition, case flips."""  # noqa: E501 (the first line is the `tunelab plugins` description)

    op = "char_noise"

    def __init__(self, config: CharNoiseConfig):
        super().__init__(config)
        check_choices(config.operations, CHAR_OPERATIONS, "char_noise.operations")
        if not 0.0 < config.rate <= 1.0:
            raise ValueError(f"char_noise.rate must be in (0, 1], got {config.rate}")
        if config.n < 0:
            raise ValueError(f"char_noise.n must be 0 (use rate) or more, got {config.n}")

    def eligible(self, text: str) -> list[int]:
        """Positions that may be edited: keys of the keyboard map, outside protected spans."""
        if not self.config.protect_entities:
            return [i for i, ch in enumerate(text) if ch.lower() in KEYBOARD_NEIGHBOURS]
        mask = protected_mask(text)
        return [i for i, ch in enumerate(text) if ch.isalpha() and ch.lower() in KEYBOARD_NEIGHBOURS and not mask[i]]

    def rewrite_text(self, text: str, rng: random.Random) -> str:
        positions = self.eligible(text)
        if not positions:
            return text
        count = self.config.n or max(1, round(self.config.rate * len(positions)))
        chosen = sorted(rng.sample(positions, min(count, len(positions))), reverse=True)
        chars = list(text)
        # kept in step with chars, so a transposition never pulls in a protected character
        editable = [False] * len(text)
        for i in positions:
            editable[i] = True
        # right to left, so an edit never shifts a position still to be edited
        for i in chosen:
            operation = rng.choice(self.config.operations)
            key = chars[i]
            if operation == "transpose" and i + 1 < len(chars) and editable[i + 1] and chars[i + 1] != key:
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
            elif operation == "delete":
                del chars[i], editable[i]
            elif operation == "case" and key.isalpha():
                chars[i] = key.swapcase()
            else:  # keyboard and insert, and the fallback when transpose or case cannot apply
                neighbour = match_case(key, rng.choice(KEYBOARD_NEIGHBOURS[key.lower()]))
                if operation == "insert":
                    chars.insert(i + 1, neighbour)
                    editable.insert(i + 1, False)
                else:
                    chars[i] = neighbour
        return "".join(chars)
