"""The cleaner ``language_filter``: offline language identification (py3langid); rows in
other languages are dropped with the reason ``language:<code>``, and every kept row gets
its language in a column."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from tunelab.api import ROW_ID, Cleaner, StageContext
from tunelab_builtin._lib.rows import take_rows
from tunelab_builtin.cleaners._columns import columns_as_lists, text_fields

# py3langid reads the whole text; the first part of a long one decides its language just as well
_DETECT_CHARS = 20_000


@lru_cache(maxsize=1)
def _language_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@dataclass
class LanguageFilterConfig:
    #: text columns whose joined text is identified; empty = every canonical text column
    #: present (a question and its answer together identify better than the question alone)
    fields: list[str] = field(default_factory=list)
    #: ISO 639-1 codes of the languages to keep
    languages: list[str] = field(default_factory=lambda: ["en"])
    #: probability (0-1) the identifier must give its best guess for the guess to count
    min_confidence: float = 0.5
    #: rows whose best guess is below min_confidence: keep (marked "und") or drop (reason language:uncertain)
    uncertain: str = "keep"
    #: texts shorter than this (characters, all fields together) are too short to identify:
    #: kept and marked "und"
    min_chars: int = 20
    #: column that receives the detected code ("und" when undetermined); replaced if present
    language_column: str = "language"


class LanguageFilter(Cleaner):
    """Offline language identification (py3langid): keeps rows in the chosen languages and records the language."""

    def __init__(self, config: LanguageFilterConfig):
        super().__init__(config)
        if not config.languages:
            raise ValueError("language_filter.languages is empty; list the ISO 639-1 codes to keep, e.g. [en]")
        bad = [code for code in config.languages if not re.fullmatch(r"[a-z]{2,3}", str(code))]
        if bad:
            raise ValueError(
                f"language_filter.languages must be lower-case ISO 639-1 codes such as en or de, got {bad}"
            )
        if not 0.0 <= config.min_confidence <= 1.0:
            raise ValueError(f"language_filter.min_confidence must be between 0 and 1, got {config.min_confidence}")
        if config.uncertain not in ("keep", "drop"):
            raise ValueError(f"language_filter.uncertain must be keep or drop, got {config.uncertain!r}")
        if config.min_chars < 0:
            raise ValueError(f"language_filter.min_chars must be 0 or more, got {config.min_chars}")
        if not config.language_column or config.language_column in (ROW_ID, "parent_id"):
            raise ValueError("language_filter.language_column must name a new or language column (not id/parent_id)")

    def apply(self, data, ctx: StageContext):
        c = self.config
        fields = text_fields(data, c.fields, "language_filter")
        if c.language_column in fields:
            raise ValueError(
                f"language_filter.language_column '{c.language_column}' is one of the checked text fields; "
                "choose another name"
            )
        identifier = _language_identifier()
        unknown = sorted(set(c.languages) - set(identifier.labels))
        if unknown:
            raise ValueError(
                f"language_filter.languages: py3langid does not know {unknown}; "
                f"known codes include {identifier.labels[:20]}..."
            )
        wanted = set(c.languages)
        ids, *columns = columns_as_lists(data, ROW_ID, *fields)
        detected: list[str] = []
        keep: list[int] = []
        dropped: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
        for i, row_id in enumerate(ids):
            text = "\n".join(col[i] for col in columns if isinstance(col[i], str) and col[i].strip())
            if len(text.strip()) < c.min_chars:
                detected.append("und")
                keep.append(i)
                continue
            code, confidence = identifier.classify(text[:_DETECT_CHARS])
            confidence = round(float(confidence), 3)
            if confidence < c.min_confidence:
                detected.append("und")
                if c.uncertain == "keep":
                    keep.append(i)
                    continue
                reason = "language:uncertain"
            elif code in wanted:
                detected.append(code)
                keep.append(i)
                continue
            else:
                detected.append(code)
                reason = f"language:{code}"
            row_ids, details = dropped.setdefault(reason, ([], []))
            row_ids.append(row_id)
            details.append({"language": code, "confidence": confidence, "limit": c.min_confidence})
        for reason, (row_ids, details) in sorted(dropped.items()):
            ctx.drop(row_ids, reason, details)
        counts = Counter(detected)
        ctx.count("undetermined (und)", counts.get("und", 0))
        ctx.metadata.update(
            {"fields": fields, "detected": dict(sorted(counts.items())), "kept_languages": sorted(wanted)}
        )

        def label(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
            return {c.language_column: [detected[i] for i in indices]}

        out = data.map(label, batched=True, with_indices=True, desc="language_filter")
        return take_rows(out, keep) if len(keep) != len(out) else out
