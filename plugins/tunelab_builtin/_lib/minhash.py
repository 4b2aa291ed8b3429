"""Near-duplicate detection with MinHash and LSH banding, vectorized with numpy.

A library, not a component: the cleaner ``near_dedup`` and the splitters' leakage
check use it.

How it works
------------
1. **Normalize** each text: case-folded, apostrophes removed ("don't" == "dont"), every
   other punctuation character treated as a word break, whitespace collapsed.
2. **Shingle**: the set of word n-grams (``unit="word"``) or character n-grams
   (``unit="char"``, over the normalized text with single spaces) of the text. A text
   shorter than one shingle is one shingle: the whole normalized text.
3. **Hash shingles** once, to 32-bit values: a word is hashed with CRC-32 of its UTF-8
   bytes, a character by its code point; an n-gram combines its n parts with fixed
   64-bit multipliers and a final mix. Everything after tokenizing is numpy over
   thousands of texts at once, so the cost per shingle is a few machine operations,
   not a Python call.
4. **MinHash**: ``num_perm`` multiply-shift hash functions ``h_k(x) = (a_k·x + b_k mod
   2^64) >> 32`` (``a_k`` odd; Dietzfelbinger's universal family) drawn from ``seed``;
   the signature of a text is, per function, the minimum over its shingles. The
   fraction of positions where two signatures agree estimates the Jaccard similarity of
   the two shingle sets (standard error ``sqrt(J(1-J)/num_perm)``, 0.035 at J=0.8 with
   128 functions).
5. **LSH banding**: the signature is cut into ``b`` bands of ``r`` rows; two texts whose
   band agrees exactly become a candidate pair. The probability that a pair with
   similarity ``s`` becomes a candidate is ``P(s) = 1 - (1 - s^r)^b``. The default
   choice is the largest ``r`` (fewest spurious candidates) with ``b = num_perm // r``
   for which ``P(threshold) >= 0.99``, i.e. fewer than 1 in 100 pairs right at the
   threshold (and far fewer above it) are missed; see :func:`lsh_bands`.
6. **Verify** every candidate pair by its estimated Jaccard (signature agreement)
   ``>= threshold``, then **cluster** verified pairs with union-find. The survivor of a
   cluster is its earliest index; clustering is transitive, so a member can be linked
   to the survivor through another member and be less similar to the survivor itself.

Defaults: word bigrams, threshold 0.7, 128 functions (LSH: 32 bands of 4 rows). They
were chosen on labelled support tickets (tests/test_near_dedup.py): copies with case,
punctuation and up to one word edit per 15 words, against different tickets of the
same topic. There, bigram Jaccard of true copies is >= 0.74 and of different tickets
<= 0.32, and the defaults reach F1 = 1.0. The 5-gram/0.8 setting common for long web
pages needs near-verbatim copies on texts this short: one edited word removes five
shingles, and it found only 40% of the copies (F1 0.57).

Empty texts (None, "", or only punctuation/whitespace) have no shingles. Their
signature is all ``EMPTY_SLOT`` (2^32 - 1); the functions here never pair them with
anything, not even with each other (dropping blank rows is ``drop_missing``'s job).
Everything is deterministic for a given seed: no dependence on ``PYTHONHASHSEED``,
on row order within a band, or on the number of workers.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - type hints only
    import numpy as np

#: Signature value of an empty text (no shingles) at every position.
EMPTY_SLOT = 0xFFFFFFFF
UNITS = ("word", "char")
#: Candidate recall required at the threshold when bands are chosen automatically.
BAND_RECALL_AT_THRESHOLD = 0.99
#: Buckets with more members than this are verified as a star and a chain (each member
#: against the bucket's first member and against its neighbour) instead of all pairs,
#: so a block of thousands of identical boilerplate rows stays linear, not quadratic.
MAX_ALL_PAIRS_BUCKET = 64

_APOSTROPHES = str.maketrans("", "", "'\u2019\u02bc\u00b4`")
_HAS_APOSTROPHE = re.compile("['\u2019\u02bc\u00b4`]")
_WORD = re.compile(r"\w+")
# ~16k shingle-hash rows x num_perm uint64 per block keeps the working set cache-sized
_BLOCK_SHINGLES = 16_384
_TEXTS_PER_CHUNK = 8_192
_MASK64 = (1 << 64) - 1


def normalize_for_shingles(text: str) -> list[str]:
    """The words of ``text`` after case folding and punctuation stripping."""
    text = text.casefold()
    if _HAS_APOSTROPHE.search(text):  # str.translate is slow; most texts need no deletion
        text = text.translate(_APOSTROPHES)
    return _WORD.findall(text)


def check_params(*, num_perm: int, ngram: int, unit: str, threshold: float | None = None) -> None:
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {list(UNITS)}, got {unit!r}")
    if not isinstance(num_perm, int) or not 16 <= num_perm <= 1024:
        raise ValueError(f"num_perm must be an integer from 16 to 1024, got {num_perm!r}")
    if not isinstance(ngram, int) or not 1 <= ngram <= 64:
        raise ValueError(f"ngram must be an integer from 1 to 64, got {ngram!r}")
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0.0 < threshold <= 1.0):
        raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}")


def _as_text(value: Any, position: int) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise TypeError(f"text {position} is a {type(value).__name__}, not a str (or None); pass text only")


def _multipliers(count: int, salt: int) -> np.ndarray:
    """Fixed odd 64-bit multipliers for combining the parts of an n-gram (seed-independent,
    so shingle hashes are the same in every call)."""
    import numpy as np

    rng = np.random.default_rng([0x5EED, salt])
    return rng.integers(0, 2**63, size=count, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def _mix32(values: np.ndarray) -> np.ndarray:
    """Fold 64-bit combined n-gram values to well-mixed 32-bit shingle hashes (in place)."""
    import numpy as np

    values ^= values >> np.uint64(31)
    values *= np.uint64(0x9E3779B97F4A7C15)
    values >>= np.uint64(32)
    return values


def _units(texts: Sequence[Any], unit: str, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The token stream of every text concatenated (uint64 token hashes) and each
    text's token count."""
    import numpy as np

    if unit == "word":
        flat: list[str] = []
        lengths = np.empty(len(texts), dtype=np.int64)
        for i, value in enumerate(texts):
            words = normalize_for_shingles(_as_text(value, offset + i))
            flat.extend(words)
            lengths[i] = len(words)
        # CRC-32 of each word's UTF-8 bytes: stable across processes (unlike hash()),
        # and two C-level maps per word are cheaper than building a vocabulary first
        encode = functools.partial(str.encode, encoding="utf-8", errors="surrogatepass")
        return np.fromiter(map(zlib.crc32, map(encode, flat)), dtype=np.uint64, count=len(flat)), lengths
    normalized = [" ".join(normalize_for_shingles(_as_text(value, offset + i))) for i, value in enumerate(texts)]
    lengths = np.fromiter(map(len, normalized), dtype=np.int64, count=len(normalized))
    codepoints = np.frombuffer("".join(normalized).encode("utf-32-le"), dtype=np.uint32)
    return codepoints.astype(np.uint64), lengths


def _shingle_hashes(tokens: np.ndarray, lengths: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of every shingle, grouped by text in order, and each text's count."""
    import numpy as np

    multipliers = _multipliers(ngram, salt=ngram)
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    total = len(tokens)
    if total >= ngram:
        windows = total - ngram + 1
        combined = tokens[:windows] * multipliers[0]
        for k in range(1, ngram):
            combined += tokens[k : k + windows] * multipliers[k]
        # a window is a shingle of one text only if it ends inside that text
        owner = np.repeat(np.arange(len(lengths)), lengths)[:windows]
        valid = np.arange(windows) + ngram <= (starts + lengths)[owner]
        hashes = _mix32(combined[valid])
        counts = np.maximum(lengths - ngram + 1, 0)
    else:
        hashes = np.empty(0, dtype=np.uint64)
        counts = np.zeros(len(lengths), dtype=np.int64)
    short = np.flatnonzero((lengths > 0) & (lengths < ngram))
    if len(short):
        # a text shorter than one shingle is one shingle; the length is mixed in so a
        # 2-word text never collides with the first two words of a longer text
        whole = np.empty(len(short), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for slot, text in enumerate(short):
                parts = tokens[starts[text] : starts[text] + lengths[text]]
                whole[slot] = (parts * multipliers[: len(parts)]).sum(dtype=np.uint64) + np.uint64(lengths[text])
        _mix32(whole)
        counts = counts.copy()
        counts[short] = 1
        # splice the whole-text shingles in at their texts' positions
        first_of_text = np.zeros(len(counts), dtype=np.int64)
        np.cumsum(counts[:-1], out=first_of_text[1:])
        merged = np.empty(int(counts.sum()), dtype=np.uint64)
        is_whole = np.zeros(len(merged), dtype=bool)
        is_whole[first_of_text[short]] = True
        merged[is_whole] = whole
        merged[~is_whole] = hashes
        hashes = merged
    return hashes, counts


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    rng = np.random.default_rng([0x4D48, seed & _MASK64])
    a = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + rng.integers(
        0, 2, size=num_perm, dtype=np.uint64
    )
    return a, b


def minhash_signatures(
    texts: Sequence[str | None], *, num_perm: int = 128, ngram: int = 2, seed: int = 1, unit: str = "word"
) -> np.ndarray:
    """MinHash signatures, one row of ``num_perm`` uint32 values per text.

    Texts with no shingles (None, empty, only punctuation) get ``EMPTY_SLOT`` at every
    position; :func:`near_duplicate_clusters` and :func:`cross_duplicates` never pair
    them. Signatures from different calls are comparable when the parameters match.
    """
    import numpy as np

    check_params(num_perm=num_perm, ngram=ngram, unit=unit)
    texts = list(texts)
    signatures = np.full((len(texts), num_perm), EMPTY_SLOT, dtype=np.uint32)
    a, b = _permutations(num_perm, seed)
    block = np.empty((_BLOCK_SHINGLES, num_perm), dtype=np.uint64)
    # texts are tokenized a chunk at a time so the Python token lists stay small
    for first in range(0, len(texts), _TEXTS_PER_CHUNK):
        chunk = texts[first : first + _TEXTS_PER_CHUNK]
        tokens, lengths = _units(chunk, unit, offset=first)
        hashes, counts = _shingle_hashes(tokens, lengths, ngram)
        present = np.flatnonzero(counts)
        if len(present):
            signatures[first + present] = _minhash(hashes, counts[present], a, b, block)
    return signatures


def _minhash(hashes: np.ndarray, counts: np.ndarray, a: np.ndarray, b: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Per text (``counts`` consecutive shingle hashes each, all > 0), the minimum of
    ``(a·x + b) mod 2^64`` over its shingles, shifted down to the top 32 bits."""
    import numpy as np

    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    minima = np.full((len(counts), len(a)), np.iinfo(np.uint64).max, dtype=np.uint64)
    total = int(offsets[-1])
    # fixed-size blocks of shingles, whatever the text boundaries: a text longer than a
    # block is spread over several and its minimum combined, so memory stays bounded
    for lo in range(0, total, len(block)):
        hi = min(lo + len(block), total)
        first = int(np.searchsorted(offsets, lo, side="right")) - 1
        last = int(np.searchsorted(offsets, hi, side="left"))
        work = block[: hi - lo]
        np.multiply(hashes[lo:hi, None], a[None, :], out=work)
        work += b
        starts = np.maximum(offsets[first:last], lo) - lo
        partial = np.minimum.reduceat(work, starts, axis=0)
        np.minimum(minima[first:last], partial, out=minima[first:last])
    # the top 32 bits are the multiply-shift hash; the minimum commutes with the shift
    return (minima >> np.uint64(32)).astype(np.uint32)


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that a pair with this Jaccard similarity shares at least one band."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """``(bands, rows)`` for a threshold: the largest ``rows`` (fewest spurious
    candidates) with ``bands = num_perm // rows`` and ``P(threshold) >= 0.99``."""
    check_params(num_perm=num_perm, ngram=1, unit="word", threshold=threshold)
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if candidate_probability(threshold, bands, rows) >= BAND_RECALL_AT_THRESHOLD:
            best = (bands, rows)
    return best


def _band_keys(signatures: np.ndarray, band: int, rows: int) -> np.ndarray:
    import numpy as np

    part = signatures[:, band * rows : (band + 1) * rows].astype(np.uint64)
    weights = _multipliers(rows, salt=1_000_003 + band)
    keys = part[:, 0] * weights[0]
    for k in range(1, rows):
        keys += part[:, k] * weights[k]
    return keys


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions ordered by (key, position), and the start and size of each run of equal keys."""
    import numpy as np

    order = np.argsort(keys, kind="stable")  # stable: equal keys stay in position order
    ordered = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    sizes = np.diff(np.concatenate((starts, [len(keys)])))
    return order, starts, sizes


def _band_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs ``(i, j)``, ``i < j``, of positions sharing a band key."""
    import numpy as np

    order, starts, sizes = _groups(keys)
    left: list[np.ndarray] = []
    right: list[np.ndarray] = []
    for size in np.unique(sizes[sizes >= 2]).tolist():
        group_starts = starts[sizes == size]
        if size <= MAX_ALL_PAIRS_BUCKET:
            # every pair, for all buckets of this size at once: rows are buckets
            members = order[group_starts[:, None] + np.arange(size)]
            first, second = np.triu_indices(size, 1)
            left.append(members[:, first].ravel())
            right.append(members[:, second].ravel())
            continue
        for begin in group_starts.tolist():
            members = order[begin : begin + size]
            left += [np.full(size - 1, members[0]), members[1:-1]]  # star, then chain
            right += [members[1:], members[2:]]
    if not left:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(left), np.concatenate(right)


def agreement(left: np.ndarray, right: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Estimated Jaccard (fraction of equal signature slots) of pairs (left[i], right[j])."""
    import numpy as np

    out = np.empty(len(i), dtype=np.float64)
    step = 8_192  # pairs per chunk: two 8192 x num_perm gathers stay a few MB
    for lo in range(0, len(i), step):
        hi = lo + step
        out[lo:hi] = (left[i[lo:hi]] == right[j[lo:hi]]).mean(axis=1)
    return out


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting: on millions of pair codes (a true pair shows up in many
    bands) this is several times faster than numpy 2's hash-based unique."""
    import numpy as np

    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def _with_shingles(signatures: np.ndarray) -> np.ndarray:
    """Indices of the rows that are not all EMPTY_SLOT (texts that have shingles)."""
    import numpy as np

    return np.flatnonzero((signatures != EMPTY_SLOT).any(axis=1))


def resolve_bands(threshold: float, num_perm: int, bands: int | None) -> tuple[int, int]:
    if bands is None:
        return lsh_bands(threshold, num_perm)
    if not isinstance(bands, int) or not 1 <= bands <= num_perm:
        raise ValueError(f"bands must be an integer from 1 to num_perm ({num_perm}), got {bands!r}")
    return bands, num_perm // bands


def similar_pairs(
    signatures: np.ndarray, *, threshold: float = 0.7, bands: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Verified pairs ``(i, j, estimated_jaccard)`` with ``i < j``, sorted, from signatures."""
    import numpy as np

    n, num_perm = signatures.shape
    check_params(num_perm=num_perm, ngram=1, unit="word", threshold=threshold)
    band_count, rows = resolve_bands(threshold, num_perm, bands)
    live = _with_shingles(signatures)
    live_signatures = signatures[live]
    encoded: list[np.ndarray] = []
    for band in range(band_count):
        first, second = _band_pairs(_band_keys(live_signatures, band, rows))
        if len(first):
            encoded.append(first * len(live) + second)
    if not encoded:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float64)
    unique = _sorted_unique(np.concatenate(encoded))
    left, right = unique // len(live), unique % len(live)
    similarity = agreement(live_signatures, live_signatures, left, right)
    keep = similarity >= threshold
    return live[left[keep]], live[right[keep]], similarity[keep]


def cluster_survivors(n: int, left: np.ndarray, right: np.ndarray) -> list[int]:
    """Union-find over the pairs; every index maps to the smallest index of its cluster."""
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in zip(left.tolist(), right.tolist()):
        ri, rj = root(i), root(j)
        if ri != rj:
            # the smaller index becomes the root, so a root is always its cluster's minimum
            parent[max(ri, rj)] = min(ri, rj)
    return [root(x) for x in range(n)]


def near_duplicate_clusters(
    texts: Sequence[str | None],
    *,
    threshold: float = 0.7,
    num_perm: int = 128,
    ngram: int = 2,
    seed: int = 1,
    unit: str = "word",
    bands: int | None = None,
) -> list[int]:
    """For each text, the index of its cluster's survivor: the earliest index in the
    cluster (a text with no near duplicate, or an empty text, maps to itself)."""
    check_params(num_perm=num_perm, ngram=ngram, unit=unit, threshold=threshold)
    resolve_bands(threshold, num_perm, bands)
    texts = list(texts)
    signatures = minhash_signatures(texts, num_perm=num_perm, ngram=ngram, seed=seed, unit=unit)
    left, right, _ = similar_pairs(signatures, threshold=threshold, bands=bands)
    return cluster_survivors(len(texts), left, right)


def cross_duplicates(
    texts_a: Sequence[str | None],
    texts_b: Sequence[str | None],
    *,
    threshold: float = 0.7,
    num_perm: int = 128,
    ngram: int = 2,
    seed: int = 1,
    unit: str = "word",
) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, estimated_jaccard)``, ``i`` indexing ``texts_a`` and ``j``
    ``texts_b``, whose estimated Jaccard is at least ``threshold``; sorted by (i, j).
    Every a-b pair sharing an LSH band is verified (no star shortcut), since a missed
    pair here is a leak between splits."""
    import numpy as np

    check_params(num_perm=num_perm, ngram=ngram, unit=unit, threshold=threshold)
    texts_a, texts_b = list(texts_a), list(texts_b)
    signatures = minhash_signatures([*texts_a, *texts_b], num_perm=num_perm, ngram=ngram, seed=seed, unit=unit)
    side_a, side_b = signatures[: len(texts_a)], signatures[len(texts_a) :]
    band_count, rows = lsh_bands(threshold, num_perm)
    live_a, live_b = _with_shingles(side_a), _with_shingles(side_b)
    if not len(live_a) or not len(live_b):
        return []
    combined = np.concatenate([side_a[live_a], side_b[live_b]])
    boundary = len(live_a)
    encoded: list[np.ndarray] = []
    for band in range(band_count):
        order, starts, sizes = _groups(_band_keys(combined, band, rows))
        from_b = np.add.reduceat((order >= boundary).astype(np.int64), starts)
        mixed = (from_b > 0) & (from_b < sizes)  # only buckets holding both sides hold a pair
        for begin, size in zip(starts[mixed].tolist(), sizes[mixed].tolist()):
            bucket = order[begin : begin + size]
            side_a_members, side_b_members = bucket[bucket < boundary], bucket[bucket >= boundary] - boundary
            encoded.append((side_a_members[:, None] * len(live_b) + side_b_members[None, :]).ravel())
    if not encoded:
        return []
    unique = _sorted_unique(np.concatenate(encoded))
    i, j = unique // len(live_b), unique % len(live_b)
    similarity = agreement(side_a[live_a], side_b[live_b], i, j)
    keep = similarity >= threshold
    return [(int(a), int(b), float(s)) for a, b, s in zip(live_a[i[keep]], live_b[j[keep]], similarity[keep])]
