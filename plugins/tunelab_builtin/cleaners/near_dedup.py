"""The cleaner ``near_dedup``: drops near duplicates found by MinHash LSH, keeping each
cluster's first row. The algorithm, its defaults and how they were chosen are in
:mod:`tunelab_builtin._lib.minhash`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunelab.api import COMPLETION, PROMPT, ROW_ID, Cleaner, StageContext
from tunelab_builtin._lib.minhash import (
    agreement,
    check_params,
    cluster_survivors,
    minhash_signatures,
    resolve_bands,
    similar_pairs,
)
from tunelab_builtin._lib.rows import take_rows
from tunelab_builtin.cleaners._columns import require_columns


@dataclass
class NearDedupConfig:
    #: columns compared; a row's text is these columns joined with newlines (None counts as empty)
    fields: list[str] = field(default_factory=lambda: [PROMPT, COMPLETION])
    #: estimated Jaccard similarity of the shingle sets at or above which two rows are near duplicates
    threshold: float = 0.7
    #: MinHash functions per row; more gives a closer estimate (error ~ sqrt(J(1-J)/num_perm)) but costs linearly
    num_perm: int = 128
    #: shingle size: words (or characters with unit=char) per shingle
    ngram: int = 2
    #: word (word n-grams; fast, for prose) or char (character n-grams; robust to typos, ~6x slower)
    unit: str = "word"
    #: LSH bands (signature slices); null picks them from threshold and num_perm
    bands: int | None = None
    #: seed of the MinHash functions (results are deterministic for a seed)
    seed: int = 1


class NearDedup(Cleaner):
    """Drops near duplicates (MinHash LSH over word/char n-grams), keeping each cluster's first row."""

    def __init__(self, config: NearDedupConfig):
        super().__init__(config)
        if not config.fields:
            raise ValueError("near_dedup.fields must name at least one column, e.g. [prompt, completion]")
        try:
            check_params(num_perm=config.num_perm, ngram=config.ngram, unit=config.unit, threshold=config.threshold)
            resolve_bands(config.threshold, config.num_perm, config.bands)
        except ValueError as exc:
            raise ValueError(f"near_dedup.{exc}") from None

    def _texts(self, data: Any) -> list[str]:
        columns = []
        for name in self.config.fields:
            values = data[name][:]  # a slice is a plain list, fast; iterating the column formats row by row
            for position, value in enumerate(values):
                if value is not None and not isinstance(value, str):
                    raise ValueError(
                        f"near_dedup: column '{name}' holds {type(value).__name__} values (row "
                        f"{data[position][ROW_ID]!r}); it compares text, so list only text columns in "
                        f"pipeline.params.near_dedup.fields"
                    )
            columns.append(values)
        if len(columns) == 1:
            return columns[0]
        return ["\n".join(v for v in parts if v) for parts in zip(*columns)]

    def apply(self, data, ctx: StageContext):
        import numpy as np

        require_columns(data, self.config.fields, "near_dedup")
        c = self.config
        texts = self._texts(data)
        signatures = minhash_signatures(texts, num_perm=c.num_perm, ngram=c.ngram, seed=c.seed, unit=c.unit)
        left, right, _ = similar_pairs(signatures, threshold=c.threshold, bands=c.bands)
        survivors = np.asarray(cluster_survivors(len(texts), left, right), dtype=np.int64)
        dropped = np.flatnonzero(survivors != np.arange(len(texts)))
        bands, rows = resolve_bands(c.threshold, c.num_perm, c.bands)
        ctx.metadata.update(
            {"bands": bands, "rows_per_band": rows, "clusters": int(len(np.unique(survivors[dropped])))}
        )
        ctx.count("near_duplicates", len(dropped))
        if not len(dropped):
            return data
        kept_of = survivors[dropped]
        similarity = agreement(signatures, signatures, dropped, kept_of)
        ids = data[ROW_ID][:]
        ctx.drop(
            [ids[i] for i in dropped],
            "near duplicate",
            [{"kept": ids[k], "similarity": round(float(s), 4)} for k, s in zip(kept_of, similarity)],
        )
        for i, k in zip(dropped[:3], kept_of[:3]):
            # before = the row that stays, after = the near duplicate that goes
            ctx.example(ids[i], _preview(texts[k]), _preview(texts[i]))
        keep = np.ones(len(texts), dtype=bool)
        keep[dropped] = False
        return take_rows(data, np.flatnonzero(keep))


def _preview(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
