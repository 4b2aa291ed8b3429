"""Dataset helpers shared by the built-in operators: seeded per-row randomness,
appending derived rows, and taking a subset of rows cheaply.

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


def take_rows(data: Any, indices: Any) -> Any:
    """``data.select(indices)`` without the cost of fingerprinting the index list.

    ``datasets`` hashes every argument of ``select`` (pickling the whole index list) to
    name the result; with 100k rows that costs more than the step itself. The
    fingerprint here is a fast digest of the indices instead.
    """
    import numpy as np

    idx = np.asarray(indices, dtype=np.int64)
    if len(idx) == len(data) and bool((idx == np.arange(len(data))).all()):
        return data
    digest = hashlib.blake2b(data._fingerprint.encode() + idx.tobytes(), digest_size=16).hexdigest()
    return data.select(idx, new_fingerprint=digest)


def append_rows(data: Any, rows: list[dict[str, Any]]) -> Any:
    """``data`` with ``rows`` appended (same features)."""
    from datasets import Dataset, concatenate_datasets

    if not rows:
        return data
    # a column that holds only None so far (type null) cannot take the new rows' values: give
    # it the type those values have (e.g. text a template wrote into an all-empty prompt column)
    features = data.features.copy()
    filled = [
        c
        for c, f in features.items()
        if getattr(f, "dtype", None) == "null" and any(row.get(c) is not None for row in rows)
    ]
    for column in filled:
        features[column] = Dataset.from_list([{column: row.get(column)} for row in rows]).features[column]
    if filled:
        data = data.cast(features)
    extra = Dataset.from_list(rows, features=features)
    return concatenate_datasets([data, extra])
