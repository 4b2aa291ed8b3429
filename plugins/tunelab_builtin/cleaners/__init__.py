"""The built-in cleaners: one module per cleaner; code they share is in ``_columns``
(reading and checking columns, changed-row bookkeeping) and ``_edits`` (in-place text edits).

All of them work on whole batches through ``Dataset.map``/``Dataset.filter``-style
passes; the drops they make are recorded in the ledger with a reason.
"""

from __future__ import annotations

from tunelab.api import Component
from tunelab_builtin.cleaners.drop_missing import DropMissing, DropMissingConfig
from tunelab_builtin.cleaners.exact_dedup import ExactDedup, ExactDedupConfig
from tunelab_builtin.cleaners.language_filter import LanguageFilter, LanguageFilterConfig
from tunelab_builtin.cleaners.missing_values import MissingValues, MissingValuesConfig
from tunelab_builtin.cleaners.near_dedup import NearDedup, NearDedupConfig
from tunelab_builtin.cleaners.normalize import Normalize, NormalizeConfig
from tunelab_builtin.cleaners.pii import Pii, PiiConfig
from tunelab_builtin.cleaners.quality_filter import QualityFilter, QualityFilterConfig
from tunelab_builtin.cleaners.standardize_formats import StandardizeFormats, StandardizeFormatsConfig
from tunelab_builtin.cleaners.strip_markup import StripMarkup, StripMarkupConfig
from tunelab_builtin.cleaners.word_filter import WordFilter, WordFilterConfig

COMPONENTS = [
    Component("normalize", Normalize, NormalizeConfig),
    Component("drop_missing", DropMissing, DropMissingConfig),
    Component("exact_dedup", ExactDedup, ExactDedupConfig),
    Component("strip_markup", StripMarkup, StripMarkupConfig),
    Component("standardize_formats", StandardizeFormats, StandardizeFormatsConfig),
    Component("missing_values", MissingValues, MissingValuesConfig),
    Component("near_dedup", NearDedup, NearDedupConfig),
    Component("pii", Pii, PiiConfig),
    Component("quality_filter", QualityFilter, QualityFilterConfig),
    Component("language_filter", LanguageFilter, LanguageFilterConfig),
    Component("word_filter", WordFilter, WordFilterConfig),
]
