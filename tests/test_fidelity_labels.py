"""Labels keep one spelling per class (pipeline.label_case), multi-label and id-like label
columns are refused or warned about, and classes or splits too small for a stratified
split are reported at prepare time with fixes that change something (issue 15, items 2-3)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import validate
from tunelab.config import ConfigError
from tunelab.data.cache import prepare
from tunelab.data.ledger import read_ledger
from tunelab.data.pipeline import DataError
from tunelab.plugins import get_plugins

QUESTIONS = [
    "I was charged twice for my order",
    "Where is my parcel right now",
    "How do I reset my password",
    "Can I return these shoes",
    "My invoice shows the wrong address",
    "The package arrived damaged",
    "I cannot log in to my account",
    "Please refund my last payment",
    "When will my order ship",
    "Change the email on my account",
    "Why is there a fee on my card",
    "The tracking number does not work",
    "I forgot my username",
    "Cancel my subscription please",
    "Do you deliver on weekends",
    "Two factor codes never arrive",
    "Was my coupon applied",
    "The courier left it at the wrong door",
    "Lock my account, it was hacked",
    "Send me a copy of the receipt",
    "My delivery is three days late",
    "I want to close my account",
    "Why was I billed in dollars",
    "Can I pick the parcel up myself",
]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _prepare(tmp_path: Path, records: list[dict], *overrides: str):
    path = _write(tmp_path / "tickets.jsonl", records)
    rc = validate(["pipeline=minimal", "data=jsonl", f"data.path={path}", "data.format=none", *overrides])
    return prepare(rc, get_plugins())


def _records(labels: list) -> list[dict]:
    return [
        {"prompt": f"{QUESTIONS[i % len(QUESTIONS)]} (ticket {i})", "completion": f"Answer {i}.", "label": label}
        for i, label in enumerate(labels)
    ]


def _report(prepared) -> str:
    return (prepared.directory / "data_report.md").read_text(encoding="utf-8")


# --- item 2: label variants -----------------------------------------------------------------

VARIANTS = ["Billing"] * 6 + ["billing "] * 3 + [" billing"] * 2 + ["BILLING"] * 1 + ["billing"] * 8 + ["shipping"] * 20


def test_surrounding_whitespace_is_stripped_always_and_case_variants_are_warned_about(tmp_path, caplog):
    prepared = _prepare(tmp_path, _records(VARIANTS), "pipeline.split=random")
    # whitespace variants merged into 'billing'; case variants kept apart (label_case=keep)
    assert prepared.summary["labels_before"] == {"BILLING": 1, "Billing": 6, "billing": 13, "shipping": 20}
    assert prepared.summary["label_normalisation"]["merges"] == [
        {"variant": "billing ", "label": "billing", "rows": 3, "why": "surrounding whitespace stripped"},
        {"variant": " billing", "label": "billing", "rows": 2, "why": "surrounding whitespace stripped"},
    ]
    warning = (
        "labels: labels in 'label' that differ only by case or spacing are separate classes: 'BILLING' (1 rows), "
        "'Billing' (6 rows), 'billing' (13 rows). If they are one class each, set pipeline.label_case=fold to "
        "merge them"
    )
    assert prepared.summary["warnings"] == [warning]
    assert warning in caplog.text
    report = _report(prepared)
    assert "## Warnings\n\n- " + warning in report
    assert "| 'billing ' | 'billing' | 3 | surrounding whitespace stripped |" in report
    assert "| ' billing' | 'billing' | 2 | surrounding whitespace stripped |" in report
    # every edited row is in the ledger with its before/after
    edits = [
        r
        for r in read_ledger(prepared.directory / "ledger.jsonl")
        if r["action"] == "modified" and r["step"] == "labels"
    ]
    assert Counter(r["reason"] for r in edits) == {
        "label 'billing ' -> 'billing' (surrounding whitespace stripped)": 3,
        "label ' billing' -> 'billing' (surrounding whitespace stripped)": 2,
    }
    assert sorted(r["id"] for r in edits) == [f"tickets.jsonl:{n}" for n in (10, 11, 7, 8, 9)]
    collect = prepared.summary["steps"][0]
    assert collect["counters"]["labels: surrounding whitespace stripped"] == 5


def test_label_case_fold_merges_every_variant_and_the_report_names_each_merge(tmp_path):
    prepared = _prepare(tmp_path, _records(VARIANTS), "pipeline.label_case=fold", "pipeline.split=random")
    assert prepared.summary["labels_before"] == {"billing": 20, "shipping": 20}
    assert prepared.summary["label_normalisation"] == {
        "column": "label",
        "case": "fold",
        "merges": [
            {"variant": "Billing", "label": "billing", "rows": 6, "why": "case and spacing folded"},
            {"variant": "billing ", "label": "billing", "rows": 3, "why": "surrounding whitespace stripped"},
            {"variant": " billing", "label": "billing", "rows": 2, "why": "surrounding whitespace stripped"},
            {"variant": "BILLING", "label": "billing", "rows": 1, "why": "case and spacing folded"},
        ],
    }
    assert prepared.summary["warnings"] == []
    report = _report(prepared)
    assert "## Label spellings merged (`label`, pipeline.label_case=fold)" in report
    assert "| 'Billing' | 'billing' | 6 | case and spacing folded |" in report
    assert "| 'BILLING' | 'billing' | 1 | case and spacing folded |" in report
    assert "## Warnings" not in report
    assert sorted(set(prepared.splits["train"]["label"])) == ["billing", "shipping"]


def test_label_case_is_validated_and_reaches_every_pipeline():
    with pytest.raises(
        ConfigError, match=r"pipeline.label_case must be one of keep, fold, got 'lower' \(from the command-line"
    ):
        validate(["pipeline.label_case=lower"])
    for pipeline in ("default", "minimal", "strict", "preference"):
        assert validate([f"pipeline={pipeline}", "pipeline.label_case=fold"]).label_case == "fold"
    assert validate([]).label_case == "keep"


def test_list_valued_labels_are_refused_naming_the_rows(tmp_path):
    labels = ["billing", ["billing", "refund"], "shipping", {"primary": "account"}] + ["shipping"] * 4
    prepared = _prepare(tmp_path, _records(labels), "pipeline.split=random")
    # each such row is quarantined with the reason and the fix (not turned into the class '["billing", "refund"]')
    quarantined = [json.loads(line) for line in (prepared.directory / "quarantine.jsonl").read_text().splitlines()]
    assert [(q["line"], q["reason"]) for q in quarantined] == [
        (
            2,
            "column 'label' holds a list (['billing', 'refund']), expected one class per row (tunelab has no "
            "multi-label methods); keep one class per row in the source, or map the column that holds the classes "
            "with data.columns={<column>: label}",
        ),
        (
            4,
            "column 'label' holds a mapping ({'primary': 'account'}), expected one class per row (tunelab has no "
            "multi-label methods); keep one class per row in the source, or map the column that holds the classes "
            "with data.columns={<column>: label}",
        ),
    ]
    assert prepared.summary["labels_before"] == {"billing": 1, "shipping": 5}
    # every row a list: nothing is usable, and the error says so
    with pytest.raises(DataError, match=r"found no usable rows \(3 quarantined"):
        _prepare(tmp_path, _records([["a"], ["b", "c"], []]), "data_seed=1")


def test_a_list_typed_label_column_from_any_collector_is_refused(tmp_path):
    from datasets import Dataset

    from tunelab.data.labels import LabelError, normalize_labels

    data = Dataset.from_dict({"id": ["a", "b"], "label": [["x"], ["y", "z"]]})
    with pytest.raises(LabelError, match=r"holds lists or mappings in 2 of 2 rows \(row 'a' has \['x'\], row 'b' has"):
        normalize_labels(data, "label", "keep")


def test_a_label_column_with_nearly_one_class_per_row_is_warned_about(tmp_path):
    records = _records([f"T-{1000 + i}" for i in range(20)] + ["billing"] * 4)
    prepared = _prepare(tmp_path, records, "pipeline.split=random")
    assert prepared.summary["warnings"][0] == (
        "labels: the label column 'label' has 21 distinct values among 24 labelled rows (88%), nearly one class per "
        "row: it looks like an id or free-text column, not classes (a class of one or two rows can be neither learned "
        "nor evaluated). Map the column that holds the classes with data.columns={<column>: label} or set "
        "pipeline.label_column=<column>"
    )
    # 19 rows (under 20) or half distinct: no warning
    few = _prepare(tmp_path, _records([f"T-{i}" for i in range(19)]), "pipeline.split=random", "data_seed=1")
    assert not any("distinct values" in w for w in few.summary["warnings"])
    half = _prepare(tmp_path, _records([f"c{i % 12}" for i in range(24)]), "pipeline.split=random", "data_seed=2")
    assert not any("distinct values" in w for w in half.summary["warnings"])


def test_numbers_none_and_blank_labels_are_left_alone(tmp_path):
    from datasets import Dataset

    from tunelab.data.labels import normalize_labels

    numbers = Dataset.from_dict({"id": ["a", "b", "c"], "label": [1, 2, 1]})
    out, report = normalize_labels(numbers, "label", "fold")
    assert out["label"] == [1, 2, 1] and report.merges == [] and report.warnings == []
    text = Dataset.from_dict({"id": ["a", "b", "c", "d"], "prompt": ["p"] * 4, "label": [None, "  ", " x", "X"]})
    out, report = normalize_labels(text, "label", "fold")
    assert out.column_names == ["id", "prompt", "label"]  # the column keeps its place
    assert out["label"] == [None, "", "x", "x"]
    assert [(m["variant"], m["label"], m["rows"]) for m in report.merges] == [
        ("  ", "", 1),
        (" x", "x", 1),
        ("X", "x", 1),
    ]
    # "1" and 1 in one column: the collector stores both as the text "1", one class
    mixed = _prepare(tmp_path, _records([1, "1", 2, "2"] * 3), "pipeline.split=random")
    assert mixed.summary["labels_before"] == {"1": 6, "2": 6}


# --- item 3: classes and splits too small for the split ------------------------------------------


def test_a_class_of_one_row_is_named_at_prepare_time_with_the_splits_it_misses(tmp_path, caplog):
    labels = ["billing"] * 20 + ["shipping"] * 20 + ["refund"] + ["gift"] * 4
    prepared = _prepare(
        tmp_path, _records(labels), "pipeline.balance=[oversample]", "+pipeline.params.oversample.target_ratio=0.5"
    )
    warning = (
        "stratified: 2 classes have too few original rows to reach every split and are in train only: "
        "'gift' (4 original rows + 6 derived copies; not in validation or test), "
        "'refund' (1 original row + 9 derived copies; not in validation or test). No evaluation scores them, and "
        "copies a balancer made (oversample) repeat the same text in train. With validation=0.1 and test=0.1 a class "
        "needs at least 6 original rows. Fix: collect at least 6 rows per class, relabel these rows into another "
        "class, or drop these classes with ++pipeline.params.stratified.rare_classes=drop"
    )
    assert prepared.summary["warnings"] == [warning]
    assert warning in caplog.text and "## Warnings\n\n- " + warning in _report(prepared)
    assert prepared.summary["split_labels"]["train"]["refund"] == 10
    assert "refund" not in prepared.summary["split_labels"]["test"]
    assert prepared.summary["metadata"]["stratified"]["classes_only_in_train"]["refund"] == {
        "originals": 1,
        "copies": 9,
        "missing": ["validation", "test"],
    }


def test_rare_classes_drop_removes_the_class_and_its_copies_with_a_reason(tmp_path):
    labels = ["billing"] * 20 + ["shipping"] * 20 + ["refund"]
    prepared = _prepare(
        tmp_path,
        _records(labels),
        "pipeline.balance=[oversample]",
        "+pipeline.params.oversample.target_ratio=0.5",
        "++pipeline.params.stratified.rare_classes=drop",
    )
    assert all("refund" not in counts for counts in prepared.summary["split_labels"].values())
    drops = [
        r
        for r in read_ledger(prepared.directory / "ledger.jsonl")
        if r["action"] == "dropped" and r["step"] == "stratified"
    ]
    dropped = sorted(r["id"] for r in drops if r["reason"] == "class too small for validation/test (rare_classes=drop)")
    assert dropped == ["tickets.jsonl:41"] + [f"tickets.jsonl:41~dup{n}" for n in range(1, 10)]
    assert prepared.summary["warnings"] == [
        "stratified: 1 classes had too few original rows for validation/test and were dropped with every row derived "
        "from them (rare_classes=drop): 'refund' (1 original row + 9 derived copies; not in validation or test)"
    ]
    with pytest.raises(ConfigError, match="stratified.rare_classes must be one of keep, drop, got 'merge'"):
        validate(["+pipeline.params.stratified.rare_classes=merge"])


def test_a_rare_case_variant_points_to_label_case_fold(tmp_path):
    prepared = _prepare(tmp_path, _records(["billing"] * 20 + ["shipping"] * 20 + ["Billing"]))
    stratified = next(w for w in prepared.summary["warnings"] if w.startswith("stratified:"))
    assert "'Billing' and 'billing' differ only by case or spacing: pipeline.label_case=fold merges them." in stratified


def test_an_empty_test_split_is_reported_at_prepare_time_with_a_fix_that_gives_it_rows(tmp_path):
    # four classes of 4 rows: 10% of each rounds to 0, so stratified leaves validation and test empty
    labels = ["billing", "shipping", "account", "returns"] * 4
    prepared = _prepare(tmp_path, _records(labels))
    assert prepared.summary["splits"] == {"train": 16, "validation": 0, "test": 0}
    empty = prepared.summary["metadata"]["stratified"]["empty_splits"]
    assert empty["test"] == {
        "why": "a stratified split cuts each class on its own, and 0.1 of every class (the largest has 4 original "
        "rows) rounds down to 0 rows",
        "fix": "pipeline.split=random (no stratification: 0.1 of all 16 original rows gives it 2), or "
        "++pipeline.params.stratified.test=0.13 (one row from each class of at least 4 original rows), or "
        "collect at least 6 "
        "original rows per class",
    }
    assert "stratified: the 'test' split is empty: a stratified split cuts each class" in _report(prepared)
    # the suggested fixes do give the split rows
    assert _prepare(tmp_path, _records(labels), "pipeline.split=random").summary["splits"]["test"] == 2
    assert _prepare(tmp_path, _records(labels), "++pipeline.params.stratified.test=0.13").summary["splits"]["test"] == 4


def test_random_split_too_small_suggests_the_fraction_that_works(tmp_path):
    prepared = _prepare(tmp_path, _records(["billing", "shipping"] * 2), "pipeline.split=random")
    assert prepared.summary["metadata"]["random"]["empty_splits"]["test"] == {
        "why": "0.1 of the 4 original rows rounds down to 0 rows",
        "fix": "++pipeline.params.random.test=0.13 or collect more data",
    }
    assert (
        _prepare(
            tmp_path,
            _records(["billing", "shipping"] * 2),
            "pipeline.split=random",
            "++pipeline.params.random.test=0.13",
        ).summary["splits"]["test"]
        == 1
    )


def test_the_training_time_message_suggests_the_splitters_fix_not_the_value_already_set(tmp_path):
    from tunelab.train.compat import check_evaluation_rows

    path = _write(tmp_path / "tickets.jsonl", _records(["billing", "shipping", "account", "returns"] * 4))
    rc = validate(["pipeline=minimal", "data=jsonl", f"data.path={path}", "data.format=none"])
    prepared = prepare(rc, get_plugins())
    with pytest.raises(ConfigError) as info:
        check_evaluation_rows(rc, prepared.summary["splits"], prepared.summary)
    message = str(info.value)
    assert message.startswith(
        "eval.split is 'test' but the prepared data has no 'test' rows (splits: train (16 rows), "
        "validation (0 rows), test (0 rows)); it is empty because a stratified split cuts each class"
    )
    assert "fix: pipeline.split=random (no stratification" in message
    assert (
        "pipeline.params.stratified.test=0.1 " not in message and "pipeline.params.stratified.test=0.1)" not in message
    )
    # without the splitter's explanation the set fraction is named as too small, not suggested again
    with pytest.raises(ConfigError, match=r"pipeline.params.stratified.test=0.1 is too small for this data"):
        check_evaluation_rows(rc, prepared.summary["splits"])


# --- the same defect where labels are written later: annotators' votes --------------------------


def test_consensus_counts_spellings_of_one_class_as_one_vote(tmp_path):
    from datasets import Dataset, Value

    from tunelab.api import StageContext
    from tunelab_builtin.annotators.consensus import Consensus, ConsensusConfig

    data = Dataset.from_dict(
        {
            "id": ["r1", "r2"],
            "parent_id": [None, None],
            "prompt": ["charged twice", "parcel late"],
            "a1": ["billing", "Shipping"],
            "a2": ["billing ", "shipping"],
            "a3": ["refund", "returns"],
        }
    ).cast_column("parent_id", Value("string"))
    config = ConsensusConfig(annotator_columns=["a1", "a2", "a3"])
    out = Consensus(config).apply(data, StageContext(seed=0, num_proc=1, work_dir=tmp_path))
    # 'billing ' is 'billing': 2 of 3 votes (was a three-way tie); case stays apart with label_case=keep
    assert out["label"] == ["billing", None]
    folded = Consensus(config).apply(data, StageContext(seed=0, num_proc=1, work_dir=tmp_path, label_case="fold"))
    assert folded["label"] == ["billing", "shipping"]
    assert folded["label_confidence"] == [pytest.approx(2 / 3, abs=1e-6)] * 2


def test_labels_an_annotator_writes_are_normalised_too(tmp_path):
    from tunelab.api import Annotator, Component
    from tunelab.plugins import Supplier

    class Upper(Annotator):
        """A plugin annotator that writes labels in its own spelling."""

        def apply(self, data, ctx):
            labels = [f" {v.upper()}" if i % 4 >= 2 else v for i, v in enumerate(data["label"])]
            return data.remove_columns("label").add_column("label", labels)

    get_plugins().registry.add("annotator", Component("upper", Upper, None), Supplier("test", "test", "0"))
    labels = ["billing", "shipping"] * 10
    prepared = _prepare(tmp_path, _records(labels), "pipeline.annotate=[upper]", "pipeline.split=random")
    assert prepared.summary["labels_after"] == {"BILLING": 5, "SHIPPING": 5, "billing": 5, "shipping": 5}
    edits = [
        r
        for r in read_ledger(prepared.directory / "ledger.jsonl")
        if r["stage"] == "annotate" and r["step"] == "labels"
    ]
    assert Counter(r["reason"] for r in edits) == {
        "label ' BILLING' -> 'BILLING' (surrounding whitespace stripped)": 5,
        "label ' SHIPPING' -> 'SHIPPING' (surrounding whitespace stripped)": 5,
    }
    assert any(
        w.startswith("labels (after annotation): labels in 'label' that differ only by case")
        for w in prepared.summary["warnings"]
    )
    folded = _prepare(
        tmp_path, _records(labels), "pipeline.annotate=[upper]", "pipeline.split=random", "pipeline.label_case=fold"
    )
    assert folded.summary["labels_after"] == {"billing": 10, "shipping": 10}


# --- property: spellings of a class ---------------------------------------------------------------

try:
    from hypothesis import given
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - a dev dependency
    given = None

if given is not None:
    SPACES = st.sampled_from(["", " ", "  ", "\t", "\u00a0", "\n"])
    CASES = st.sampled_from([str.lower, str.upper, str.title, lambda s: s])

    @st.composite
    def spelled_labels(draw):
        """Labels of a few base classes, each row spelled with random case and surrounding space."""
        bases = draw(
            st.lists(
                st.sampled_from(["billing", "shipping", "account", "credit card", "returns"]),
                min_size=1,
                max_size=4,
                unique=True,
            )
        )
        rows = draw(st.lists(st.tuples(st.sampled_from(bases), CASES, SPACES, SPACES), min_size=1, max_size=30))
        return [(base, f"{before}{case(base)}{after}") for base, case, before, after in rows]

    @given(spelled_labels())
    def test_every_spelling_of_a_class_becomes_that_class(rows):
        from datasets import Dataset

        from tunelab.data.labels import normalize_labels

        data = Dataset.from_dict({"id": [f"r{i}" for i in range(len(rows))], "label": [s for _, s in rows]})
        folded, report = normalize_labels(data, "label", "fold")
        assert folded["label"] == [base for base, _ in rows]  # exactly the class, for every row
        assert sum(m["rows"] for m in report.merges) == sum(s != base for base, s in rows)
        kept, report = normalize_labels(data, "label", "keep")
        assert kept["label"] == [s.strip() for _, s in rows]  # only surrounding whitespace goes
        split = {base for base, _ in rows if len({s.strip() for b, s in rows if b == base}) > 1}
        assert len(report.warnings) == (1 if split else 0)
        for base in split:
            assert all(repr(s.strip()) in report.warnings[0] for b, s in rows if b == base)
