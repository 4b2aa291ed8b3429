"""Data fidelity of strip_markup (issue 15, item 1): only real markup is removed.

Text that only looks like markup — code generics, comparisons, placeholders, heredocs,
a lone ``<template>`` in a chat answer — comes out byte for byte; every edit is in the
ledger with a short before/after; a field that would lose most of its text is set aside
for review, not shortened. The property tests generate markup-like plain text (the
generator below) and check that nothing in it changes, alone or next to real markup.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from conftest import SOAK, validate
from tunelab.api import StageContext
from tunelab.data.cache import prepare
from tunelab.data.ledger import read_ledger
from tunelab.plugins import get_plugins
from tunelab_builtin.cleaners._edits import snippet
from tunelab_builtin.cleaners.strip_markup import StripMarkup, StripMarkupConfig, strip_html, strip_html_counted

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _quiet_datasets():
    import datasets

    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def _rows(*prompts: str, completion: str = "Thanks, we will look into it.") -> Dataset:
    return Dataset.from_list(
        [{"id": f"r{i}", "parent_id": None, "prompt": p, "completion": completion} for i, p in enumerate(prompts)]
    )


def _ctx(tmp_path: Path) -> StageContext:
    return StageContext(seed=0, num_proc=1, work_dir=tmp_path, step="strip_markup")


# --- the examples of the issue, exact ---------------------------------------------------

LOOKS_LIKE_MARKUP = [
    "Why does List<Object> fail here?",
    "if (x<y && y>z) { return; }",
    "Reply with <order id> and <name>, e.g. List<String> or Map<String, List<Integer>>.",
    "Wrap the page in a <template> element and keep reading: this sentence must survive.",
    "The <svg> icon is blurry on retina screens; everything after the tag matters.",
    "Put your CSS in a <style> block, and your JS in a <script> tag.",
    "Use <head> for metadata, <object> for plugins and <Object> in Java.",
    "a<b then x = 5 and y>z",
    "cat <<EOF > notes.txt\nline one\nEOF",
    "0 <= i < n, f: A -> B, <x, y> = 0, a <=> b, x >> 2, <- back",
    "AT&T; R&D; &copy 2024; &foo; &#xZZ; & nbsp;",
    "Enter the date as <dd>/<mm>/<yyyy>, then POST <body> and choose <option>.",
    "<context>the document</context> <user>hi</user>",
    "  leading and trailing spaces,\ttabs   and\n\n\n\nblank lines stay  ",
]


@pytest.mark.parametrize("text", LOOKS_LIKE_MARKUP)
def test_text_that_only_looks_like_markup_is_unchanged(text):
    assert strip_html(text) == text
    assert StripMarkup(StripMarkupConfig()).clean(text) == text


def test_text_that_only_looks_like_markup_is_not_recorded_as_edited(tmp_path):
    ctx = _ctx(tmp_path)
    out = StripMarkup(StripMarkupConfig()).apply(_rows(*LOOKS_LIKE_MARKUP), ctx)
    assert out["prompt"] == LOOKS_LIKE_MARKUP
    assert ctx.modifications == [] and ctx.drops == [] and ctx.quarantined == []


def test_real_markup_next_to_markup_like_text_only_loses_the_markup():
    assert strip_html("Why does <b>List<Object></b> fail?") == "Why does List<Object> fail?"
    assert strip_html("<p>if (x<y && y>z)</p><p>then <i>swap</i></p>") == "if (x<y && y>z)\n\nthen swap"
    assert strip_html("A <template> stays,<br>a <template>x</template> goes") == "A <template> stays,\na goes"
    assert strip_html("<script>let a = 1;</script>Keep <svg> and this") == "Keep <svg> and this"
    assert strip_html("Tom &amp; Jerry &copy 2024 &#169;") == "Tom & Jerry &copy 2024 ©"
    # tags pair as written (found by the soak run: the placeholder <B> inside <b>...</b>)
    assert strip_html("<b><B> is a placeholder</b>") == "<B> is a placeholder"
    assert strip_html("<B>old</B> <i>new</i>") == "old new"
    # unclosed <p>/<li> and stray end tags count in a field with unmistakable markup, not alone
    assert strip_html("<ul><li>One<li>Two</ul>") == "One\nTwo"
    assert strip_html("<p>First<p>Second") == "<p>First<p>Second"
    assert strip_html("<b>Note</b>: <dd>/<mm>, POST <body>") == "Note: <dd>/<mm>, POST <body>"
    assert strip_html("<!DOCTYPE html><html><head><title>T</title></head><body><p>Hi<p>There") == "Hi\n\nThere"
    # <pre> keeps its indentation; only the newline right after <pre> goes (as in HTML)
    assert strip_html("<pre>\n  def f():\n      return 1</pre>Done") == "  def f():\n      return 1\n\nDone"


HH_RLHF = (
    "\n\nHuman: Why does `List<Object> xs = new ArrayList<String>();` not compile?"
    "\n\nAssistant: Generics in Java are invariant: a List<String> is not a List<Object>, even though"
    " String is a subtype of Object. Use a wildcard, as in <b>List<? extends Object></b>, when you only"
    " read from the list:\n\n    List<? extends Object> xs = new ArrayList<String>();\n    if (xs.size() > 0 && i<n) {"
    "\n        Object first = xs.get(0);\n    }\n\nIn an HTML page you would write <template> or <svg> tags"
    " for markup, but here <T> is a type parameter."
)


def test_hh_rlhf_transcript_keeps_every_character_but_the_two_tags(tmp_path):
    """The public hh-rlhf transcripts lost whole answers ("Assistant: <long answer>" became
    "Assistant:"): now only the <b> and </b> go, and the ledger says so."""
    ctx = _ctx(tmp_path)
    out = StripMarkup(StripMarkupConfig()).apply(_rows(HH_RLHF), ctx)
    assert out["prompt"][0] == HH_RLHF.replace("<b>", "").replace("</b>", "")
    assert ctx.modifications == [
        (
            ["r0"],
            "markup stripped",
            [
                {
                    "field": "prompt",
                    "removed": "2 tags",
                    "before": (
                        "…Object. Use a wildcard, as in <b>List<? extends Object></b>, when you only read from the…"
                    ),
                    "after": "…Object. Use a wildcard, as in List<? extends Object>, when you only read from the…",
                }
            ],
        )
    ]


def test_edits_are_in_the_ledger_with_field_and_before_after(tmp_path):
    ctx = _ctx(tmp_path)
    data = _rows("plain", "Hello,<br>world &amp; more", completion="<i>thanks</i>")
    out = StripMarkup(StripMarkupConfig()).apply(data, ctx)
    assert out["prompt"] == ["plain", "Hello,\nworld & more"]
    assert out["completion"] == ["thanks", "thanks"]
    ((ids, what, details),) = ctx.modifications
    assert ids == ["r0", "r1"] and what == "markup stripped"
    assert details == [
        {"field": "completion", "removed": "2 tags", "before": "<i>thanks</i>", "after": "thanks"},
        {
            "field": "prompt",
            "removed": "1 tag, 1 entity",
            "before": "Hello,<br>world &amp; more",
            "after": "Hello,\nworld & more",
            "also": ["completion"],
        },
    ]


def test_snippet_shows_the_changed_part_with_context():
    assert snippet("<b>x</b> and a tail", "x and a tail", context=3) == ("<b>x</b> an…", "x an…")
    before, after = snippet("x" * 200 + "<b>y</b>" + "z" * 200, "x" * 200 + "y" + "z" * 200, context=5)
    assert (before, after) == ("…xxxxx<b>y</b>zzzzz…", "…xxxxxyzzzzz…")


# --- a field that would lose most of its text is set aside ---------------------------------


STYLE_DISCUSSION = (
    "Put the rules in a <style> element in the head. Everything you write between the tags is CSS, "
    "for example body { margin: 0 } and p { color: red }, and the browser never shows it as text; "
    "close it with </style> and go on."
)


def test_a_field_that_would_lose_most_of_its_text_is_set_aside_not_shortened(tmp_path):
    ctx = _ctx(tmp_path)
    data = _rows("<p>Fine <b>row</b></p>", STYLE_DISCUSSION)
    out = StripMarkup(StripMarkupConfig()).apply(data, ctx)
    assert out["id"] == ["r0"] and out["prompt"] == ["Fine row"]
    (drop,) = ctx.drops
    assert drop.ids == ["r1"]
    assert drop.reason == "markup would remove over 50% of the text: set aside for review"
    assert drop.detail[0]["field"] == "prompt"
    assert drop.detail[0]["why"].startswith("removing the markup would drop 85% of the text (2 tags, 175 characters")
    (item,) = ctx.quarantined
    assert item["id"] == "r1" and item["step"] == "strip_markup" and item["raw"] == STYLE_DISCUSSION
    assert item["reason"].startswith("strip_markup: removing the markup would drop 85% of the text")
    assert "raise pipeline.params.strip_markup.max_removed_fraction" in item["reason"]
    assert ctx.counters["set aside for review"] == 1
    assert [m[0] for m in ctx.modifications] == [["r0"]]

    # the threshold is the user's: 1.0 never sets a row aside
    ctx = _ctx(tmp_path)
    out = StripMarkup(StripMarkupConfig(max_removed_fraction=1.0)).apply(data, ctx)
    assert out["prompt"][1] == "Put the rules in a and go on." and not ctx.drops
    with pytest.raises(ValueError, match=r"max_removed_fraction must be between 0 and 1.*got 1.5"):
        StripMarkup(StripMarkupConfig(max_removed_fraction=1.5))


def test_prepare_puts_a_set_aside_row_in_quarantine_ledger_and_report(tmp_path):
    data = tmp_path / "tickets.jsonl"
    rows = [
        {"question": f"Question {i} about <b>order</b> {i}?", "answer": f"Answer {i}.", "category": "ab"[i % 2]}
        for i in range(20)
    ]
    rows[3]["question"] = STYLE_DISCUSSION
    rows[4]["question"] = "Why does List<Object> fail here?"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    prepared = prepare(
        validate(["pipeline=minimal", f"data.path={data}", "pipeline.clean=[strip_markup,drop_missing]"]), get_plugins()
    )
    quarantine = [json.loads(line) for line in (prepared.directory / "quarantine.jsonl").read_text().splitlines()]
    assert [(q["id"], q["step"], q["raw"]) for q in quarantine] == [
        ("tickets.jsonl:4", "strip_markup", STYLE_DISCUSSION)
    ]
    ledger = read_ledger(prepared.directory / "ledger.jsonl")
    (dropped,) = [r for r in ledger if r["action"] == "dropped"]
    assert dropped["id"] == "tickets.jsonl:4"
    assert dropped["reason"] == "markup would remove over 50% of the text: set aside for review"
    edits = {r["id"]: r for r in ledger if r["action"] == "modified"}
    assert len(edits) == 18 and "tickets.jsonl:5" not in edits
    assert edits["tickets.jsonl:1"]["detail"] == {
        "field": "prompt",
        "removed": "2 tags",
        "before": "Question 0 about <b>order</b> 0?",
        "after": "Question 0 about order 0?",
    }
    kept = {i for split in prepared.splits.values() for i in split["id"]}
    assert len(kept) == 19 and "tickets.jsonl:4" not in kept
    prompts = {p for split in prepared.splits.values() for p in split["prompt"]}
    assert "Why does List<Object> fail here?" in prompts
    step = next(s for s in prepared.summary["steps"] if s["step"] == "strip_markup")
    assert step["dropped"] == {"markup would remove over 50% of the text: set aside for review": 1}
    assert step["counters"]["set aside for review"] == 1
    report = (prepared.directory / "data_report.md").read_text()
    assert "| strip_markup | markup would remove over 50% of the text: set aside for review | 1 |" in report


# --- property: generated markup-like plain text is left alone ----------------------------

#: phrases with <, > and & that are not markup: code generics, comparisons, maths, arrows,
#: placeholders (HTML element names among them), heredocs, shell redirects, entity look-alikes
PHRASES = [
    "List<Object>",
    "List<String>",
    "Map<String, List<Integer>>",
    "Vec<u8>",
    "Option<Box<dyn Error>>",
    "std::vector<int>",
    "Array<number>",
    "Promise<void>",
    "HashMap<K, V>",
    "Pair<A,B>",
    "<T>",
    "<T extends Comparable<T>>",
    "x<y",
    "y>z",
    "x<y && y>z",
    "a < b",
    "5 > 3",
    "if (a<b)",
    "i<n;",
    "a<b then",
    "x = 5",
    "n >= 0",
    "<= 1",
    "a<=b",
    "0 <= i < n",
    "<x, y>",
    "<psi|phi>",
    "2<3>1",
    "->",
    "<-",
    "=>",
    "<=>",
    "<->",
    "<<",
    ">>",
    "x >> 2",
    "1 << 4",
    "<name>",
    "<order id>",
    "<your email>",
    "<YOUR_API_KEY>",
    "<dd>/<mm>/<yyyy>",
    "<file>",
    "<dir>",
    "<Enter>",
    "<Ctrl>+<C>",
    "<template>",
    "<svg>",
    "<script>",
    "<style>",
    "<head>",
    "<object>",
    "<Object>",
    "<title>",
    "<address>",
    "<input>",
    "<source>",
    "<option>",
    "<body>",
    "<B>",
    "<I>",
    "<Button>",
    "<Select>",
    "<context>doc</context>",
    "<user>hi</user>",
    "</T>",
    "</name>",
    "cat <<EOF > out.txt\nhello\nEOF",
    "<<-'END'",
    "cmd < in.txt > out.txt 2>&1",
    "echo $((1<<3))",
    "AT&T",
    "R&D;",
    "&copy 2024",
    "&foo;",
    "&#xZZ;",
    "& nbsp;",
    "&&",
    "a & b",
    "<!-",
    "<!x>",
    "<?php",
    "<3",
]
# filler between phrases: no <, >, &, = or quotes (so phrases cannot join into a tag with attributes)
FILLER = st.text(st.characters(blacklist_characters="<>&=\"'", blacklist_categories=("Cs",)), max_size=12)


@st.composite
def markup_like_text(draw) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 8))):
        parts.append(draw(FILLER))
        parts.append(draw(st.sampled_from(PHRASES)))
    parts.append(draw(FILLER))
    return "".join(parts)


EXAMPLES = 400 if not SOAK else 10_000
_generated = {"plain": 0, "wrapped": 0}


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(markup_like_text())
def test_property_markup_like_plain_text_comes_out_identical(text):
    _generated["plain"] += 1
    assert strip_html(text) == text
    cleaned, _, note = StripMarkup(StripMarkupConfig())._clean(text)
    assert cleaned == text and note is None


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(markup_like_text(), st.sampled_from(["b", "i", "span", "code", "em"]))
def test_property_markup_like_text_inside_real_markup_loses_only_the_tags(text, tag):
    """Next to real markup, too, the plain text survives: only the wrapper goes (and the
    whitespace at the field's edges that touched it)."""
    _generated["wrapped"] += 1
    result = strip_html_counted(f"<{tag}>{text}</{tag}>")
    assert result.text == text.strip(" \t\n\r\f") and result.tags == 2 and result.lost_chars == 0


@settings(
    max_examples=20 if not SOAK else 300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(markup_like_text(), min_size=1, max_size=6))
def test_property_strip_markup_step_records_nothing_for_plain_text(tmp_path, texts):
    ctx = _ctx(tmp_path)
    out = StripMarkup(StripMarkupConfig()).apply(_rows(*texts, completion=texts[0]), ctx)
    assert out["prompt"] == texts and out["completion"] == [texts[0]] * len(texts)
    assert ctx.modifications == [] and ctx.drops == []


def test_property_suites_ran_their_cases():
    """The generated-case counts (printed with -s); both suites must have run them all."""
    if not all(_generated.values()):
        pytest.skip("run with the property tests above")
    print(f"markup-like plain text: {_generated['plain']} cases alone, {_generated['wrapped']} inside real markup")
    assert _generated["plain"] >= EXAMPLES and _generated["wrapped"] >= EXAMPLES


def test_explain_shows_what_strip_markup_changed_in_a_row(tmp_path):
    from tunelab.data.ledger import Ledger
    from tunelab.explain import explain

    ctx = _ctx(tmp_path)
    StripMarkup(StripMarkupConfig()).apply(_rows("Hi <b>there</b>"), ctx)
    ledger = Ledger()
    ledger.modified("clean", "strip_markup", ctx.modifications)
    ledger.write(tmp_path / "ledger.jsonl")
    assert explain("r0", tmp_path / "ledger.jsonl") == [
        "row r0",
        "  edited by clean/strip_markup: markup stripped (field: prompt, removed: 2 tags, "
        "before: Hi <b>there</b>, after: Hi there)",
    ]


def test_before_after_in_the_ledger_goes_through_the_pii_step(tmp_path):
    """strip_markup runs before pii: the snippets it records for the ledger are scrubbed
    like drop details, so an e-mail inside removed markup never reaches ledger.jsonl."""
    data = tmp_path / "tickets.jsonl"
    rows = [
        {
            "question": f"Mail <b>jane.doe{i}@example.com</b> about order {i}",
            "answer": f"Done {i}.",
            "category": "ab"[i % 2],
        }
        for i in range(20)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    prepared = prepare(
        validate(["pipeline=minimal", f"data.path={data}", "pipeline.clean=[strip_markup,pii]"]), get_plugins()
    )
    ledger_text = (prepared.directory / "ledger.jsonl").read_text()
    assert "example.com" not in ledger_text and "jane.doe" not in ledger_text
    edits = [r for r in read_ledger(prepared.directory / "ledger.jsonl") if r.get("step") == "strip_markup"]
    assert len(edits) == 20 and edits[0]["detail"]["before"] == "Mail <b><EMAIL></b> about order 0"


# --- the markdown option: code is not emphasis ----------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        # unchanged: CommonMark delimiter rules, dunder identifiers, code spans and fences
        ("def f(*args, **kwargs): return g(**kwargs)", "def f(*args, **kwargs): return g(**kwargs)"),
        ("class A:\n    def __init__(self): pass", "class A:\n    def __init__(self): pass"),
        ("if __name__ == '__main__': main()", "if __name__ == '__main__': main()"),
        ("a * b * c and 2*3*4 and snake_case_name", "a * b * c and 2*3*4 and snake_case_name"),
        # only the markdown goes; code keeps its "#" comments and asterisks
        (
            "Intro **bold** text\n```python\n# compute x\nx = a*b*c  # **not bold**\n```\n# Title",
            "Intro bold text\n# compute x\nx = a*b*c  # **not bold**\nTitle",
        ),
        (
            "run `a_b_c` or `**x**`, **Free** within _30 days_, __two words__",
            "run a_b_c or **x**, Free within 30 days, two words",
        ),
    ],
)
def test_markdown_option_leaves_code_alone(text, expected):
    assert StripMarkup(StripMarkupConfig(markdown=True)).clean(text) == expected


def test_a_step_that_quarantines_a_row_it_keeps_is_caught():
    """A row in quarantine.jsonl and in the splits would be counted twice: the engine refuses."""
    from tunelab.api import Cleaner, Component, NoConfig, hookimpl
    from tunelab.data.ledger import LedgerError
    from tunelab.plugins import add_plugin

    class Hoarder(Cleaner):
        """Sets a row aside for review but keeps it in the data."""

        def apply(self, data, ctx):
            ctx.quarantine(data[0]["id"], None, "looks odd", data[0]["prompt"], row_id=data[0]["id"])
            return data

    class Plugin:
        @hookimpl
        def tunelab_register_cleaners(self):
            return [Component("hoarder", Hoarder, NoConfig)]

    add_plugin(Plugin(), "hoarder-test")
    with pytest.raises(
        LedgerError,
        match=r"step 'hoarder' \(clean\) quarantined rows it did not drop, e\.g\. \['support_tickets\.jsonl:1'\]",
    ):
        prepare(validate(["pipeline=minimal", "pipeline.clean=[hoarder]"]), get_plugins())
