"""Row-derivation helpers shared by augmenters and balancers.

Derived rows get a new id ``<parent>~<op><n>`` and ``parent_id`` = the row they came
from. Randomness is seeded per row (seed + row id), so results do not depend on row
order or worker count.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any


def row_rng(seed: int, *parts: Any) -> random.Random:
    """A random generator determined by the seed and the given parts (e.g. a row id)."""
    digest = hashlib.blake2b(":".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def append_rows(data: Any, rows: list[dict[str, Any]]) -> Any:
    """``data`` with ``rows`` appended (same features)."""
    from datasets import Dataset, concatenate_datasets

    if not rows:
        return data
    extra = Dataset.from_list(rows, features=data.features)
    return concatenate_datasets([data, extra])
