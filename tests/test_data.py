from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from conftest import SAMPLE, validate
from tunelab.config import ConfigError
from tunelab.data.cache import prepare
from tunelab.data.ledger import LedgerError, read_ledger
from tunelab.data.pipeline import DataError
from tunelab.plugins import add_plugin, get_plugins


def _prepare(overrides):
    return prepare(validate(overrides), get_plugins())


def _all_ids(prepared):
    return [i for split in prepared.splits.values() for i in split["id"]]


def test_every_input_row_is_accounted_for():
    prepared = _prepare([])
    ledger = read_ledger(prepared.directory / "ledger.jsonl")
    lines = [n for n, line in enumerate(SAMPLE.read_text(encoding="utf-8").splitlines(), start=1) if line.strip()]
    originals = {f"support_tickets.jsonl:{n}" for n in lines}
    kept = set(_all_ids(prepared))
    dropped = {r["id"] for r in ledger if r["action"] in ("dropped", "quarantined")}
    added = {r["id"] for r in ledger if r["action"] == "added"}
    assert not kept & dropped
    # every original line is either in a split or dropped with a reason
    assert originals <= kept | dropped
    assert originals - kept == {i for i in dropped if "~" not in i}
    # and every derived row was recorded when it was made, with a parent that existed
    assert {i for i in kept | dropped if "~" in i} <= added
    s = prepared.summary
    assert s["rows_read"] == len(lines)
    assert s["rows_read"] + s["rows_added"] == s["rows_final"] + s["rows_dropped"]
    reasons = Counter(r["reason"] for r in ledger if r["action"] == "dropped")
    assert reasons["exact duplicate"] > 0 and reasons["missing completion"] > 0


def test_dedup_ledger_names_the_surviving_row():
    prepared = _prepare(["pipeline=minimal"])
    by_id = {}
    for split in prepared.splits.values():
        for row in split:
            by_id[row["id"]] = row
    dupes = [r for r in read_ledger(prepared.directory / "ledger.jsonl") if r.get("reason") == "exact duplicate"]
    assert dupes
    raw = {
        f"support_tickets.jsonl:{n}": json.loads(line)
        for n, line in enumerate(SAMPLE.read_text().splitlines(), 1)
        if line.strip()
    }
    for record in dupes:
        survivor = record["detail"]["kept"]
        assert survivor in by_id
        mine, theirs = raw[record["id"]], raw[survivor]
        assert " ".join(mine["question"].casefold().split()) == " ".join(theirs["question"].casefold().split())


def test_derived_rows_keep_parent_and_never_cross_splits():
    prepared = _prepare([])
    split_of = {i: name for name, split in prepared.splits.items() for i in split["id"]}
    derived = [(i, name) for i, name in split_of.items() if "~" in i]
    assert any("~eda" in i for i, _ in derived) and any("~dup" in i for i, _ in derived)
    for row_id, name in derived:
        assert name == "train"
        assert split_of.get(row_id.split("~")[0]) in (None, "train")
    train = prepared.splits["train"]
    parents = dict(zip(train["id"], train["parent_id"]))
    assert all(parents[i] == i.rsplit("~", 1)[0] for i in parents if "~" in i)


def test_stratified_split_keeps_every_class_in_train_and_proportions_close():
    prepared = _prepare(["pipeline=minimal"])
    sizes = {name: len(split) for name, split in prepared.splits.items()}
    total = sum(sizes.values())
    assert abs(sizes["test"] / total - 0.1) < 0.03 and abs(sizes["validation"] / total - 0.1) < 0.03
    train_labels = Counter(prepared.splits["train"]["label"])
    test_labels = Counter(prepared.splits["test"]["label"])
    assert set(test_labels) <= set(train_labels)
    assert test_labels["billing"] > test_labels["privacy"]


def test_oversampling_raises_minority_classes():
    prepared = _prepare(
        [
            "pipeline.augment=[]",
            "pipeline.params.oversample.target_ratio=1.0",
            "++pipeline.params.stratified.eval_derived=keep",
            "++pipeline.params.stratified.leakage=report",
        ]
    )
    counts = Counter(label for split in prepared.splits.values() for label in split["label"])
    assert max(counts.values()) - min(counts.values()) <= 1


def test_second_run_hits_the_cache_and_a_change_misses_it():
    first = _prepare(["pipeline=minimal"])
    second = _prepare(["pipeline=minimal"])
    assert not first.cache_hit and second.cache_hit
    assert second.key == first.key and _all_ids(second) == _all_ids(first)
    # the training seed does not touch the data; the data seed does
    other_training_seed = _prepare(["pipeline=minimal", "seed=1"])
    assert other_training_seed.cache_hit and other_training_seed.key == first.key
    changed = _prepare(["pipeline=minimal", "data_seed=1"])
    assert not changed.cache_hit and changed.key != first.key
    assert changed.splits["test"]["id"] != first.splits["test"]["id"]  # another split
    tied = _prepare(["pipeline=minimal", "seed=1", "data_seed=${seed}"])
    assert tied.cache_hit and tied.key == changed.key
    log = (first.directory.parent / "preparations.log").read_text().splitlines()
    assert len(log) == 2


def test_data_seed_must_be_an_integer():
    with pytest.raises(ConfigError, match=r"data_seed must be an integer.*got 'first'.*data_seed=\$\{seed\}"):
        _prepare(["pipeline=minimal", "data_seed=first"])


def test_cache_key_follows_the_input_file(tmp_path):
    data = tmp_path / "tickets.jsonl"
    data.write_text(SAMPLE.read_text())
    overrides = ["pipeline=minimal", f"data.path={data}"]
    first = _prepare(overrides)
    with data.open("a") as fh:
        fh.write(
            json.dumps(
                {"question": "Is the Ridgeline tent waterproof?", "answer": "Yes, 3000 mm.", "category": "product"}
            )
            + "\n"
        )
    second = _prepare(overrides)
    assert not second.cache_hit and second.key != first.key


def test_operator_that_loses_rows_silently_is_caught():
    from tunelab.api import Cleaner, Component, NoConfig, hookimpl

    class Lossy(Cleaner):
        """Drops every other row and tells no one."""

        def apply(self, data, ctx):
            return data.select(range(0, len(data), 2))

    class Plugin:
        @hookimpl
        def tunelab_register_cleaners(self):
            return [Component("lossy", Lossy, NoConfig)]

    add_plugin(Plugin(), "lossy-test")
    with pytest.raises(LedgerError, match=r"step 'lossy' \(clean\) removed \d+ rows without recording why"):
        _prepare(["pipeline.clean=[lossy]"])


def test_operator_inventing_rows_without_parent_is_caught():
    from tunelab.api import Augmenter, Component, NoConfig, hookimpl

    class Inventor(Augmenter):
        """Adds a row from nowhere."""

        def apply(self, data, ctx):
            from datasets import Dataset, concatenate_datasets

            row = dict(data[0])
            row["id"] = "made-up"
            return concatenate_datasets([data, Dataset.from_list([row], features=data.features)])

    class Plugin:
        @hookimpl
        def tunelab_register_augmenters(self):
            return [Component("inventor", Inventor, NoConfig)]

    add_plugin(Plugin(), "inventor-test")
    with pytest.raises(LedgerError, match="made-up"):
        _prepare(["pipeline.augment=[inventor]"])


def test_malformed_jsonl_rows_are_quarantined_with_file_line_and_reason(tmp_path):
    good = {"question": "Where is my order NW-1?", "answer": "It ships today.", "category": "shipping"}
    lines = [json.dumps(good), "{not json", json.dumps([1, 2]), json.dumps({**good, "question": {"nested": 1}}), ""]
    lines += [json.dumps({**good, "question": f"Order NW-{i} status?"}) for i in range(20)]
    path = tmp_path / "bad.jsonl"
    path.write_bytes("\n".join(lines).encode() + b"\n" + b'{"question": "\xff\xfe broken"}\n')
    prepared = _prepare(["pipeline=minimal", f"data.path={path}"])
    quarantine = [json.loads(line) for line in (prepared.directory / "quarantine.jsonl").read_text().splitlines()]
    by_line = {q["line"]: q for q in quarantine}
    assert set(by_line) == {2, 3, 4, 26}
    assert all(q["source"] == "bad.jsonl" for q in quarantine)
    assert "invalid JSON" in by_line[2]["reason"]
    assert "expected a JSON object" in by_line[3]["reason"]
    assert "column 'prompt' holds dict" in by_line[4]["reason"]
    assert "not valid utf-8" in by_line[26]["reason"]
    assert prepared.summary["rows_quarantined"] == 4
    assert prepared.summary["rows_read"] == 25


def test_csv_tsv_gzip_and_parquet_collectors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {
            "question": f"How do I reset password number {i}?",
            "answer": f"Use the link {i}.",
            "category": "account" if i % 3 else "billing",
        }
        for i in range(30)
    ]
    csv_path = tmp_path / "t.csv.gz"
    with gzip.open(csv_path, "wt", newline="") as fh:
        fh.write("question,answer,category\n")
        for r in rows:
            fh.write(f'"{r["question"]}","{r["answer"]}",{r["category"]}\n')
        fh.write("ragged,row\n")
    prepared = _prepare(["pipeline=minimal", "data.name=csv", f"data.path={csv_path}"])
    assert prepared.summary["rows_read"] == 31 and prepared.summary["rows_quarantined"] == 1
    quarantine = json.loads((prepared.directory / "quarantine.jsonl").read_text().splitlines()[0])
    assert quarantine["line"] == 32 and "expected 3 fields, found 2" in quarantine["reason"]

    tsv = tmp_path / "t.tsv"
    tsv.write_text(
        "question\tanswer\tcategory\n" + "".join(f"{r['question']}\t{r['answer']}\t{r['category']}\n" for r in rows)
    )
    prepared = _prepare(["pipeline=minimal", "data.name=csv", f"data.path={tsv}"])
    assert prepared.summary["rows_final"] == 30
    assert "t.tsv:2" in _all_ids(prepared)

    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:15]), folder / "a.parquet")
    pq.write_table(pa.Table.from_pylist(rows[15:]), folder / "b.parquet")
    prepared = _prepare(["pipeline=minimal", "data.name=parquet", f"data.path={folder}"])
    assert prepared.summary["rows_final"] == 30
    assert {i.split(":")[0] for i in _all_ids(prepared)} == {"a.parquet", "b.parquet"}


def test_missing_file_and_empty_data_fail_clearly(tmp_path):
    with pytest.raises(DataError, match=r"collect step 'jsonl' failed: data.path '.*nope.jsonl' does not exist"):
        _prepare([f"data.path={tmp_path / 'nope.jsonl'}"])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match=r"data.path '.*empty.jsonl' holds no records: empty.jsonl: no records"):
        _prepare([f"data.path={empty}"])


def test_step_order_and_params_come_from_the_command_line():
    prepared = _prepare(
        [
            "pipeline.clean=[exact_dedup,drop_missing]",
            "pipeline.augment=[]",
            "pipeline.balance=[]",
            "pipeline.params.exact_dedup.fields=[prompt]",
        ]
    )
    steps = [s["step"] for s in prepared.summary["steps"]]
    assert steps == ["jsonl", "exact_dedup", "drop_missing", "stratified"]


def test_normalize_repairs_text_and_reports_examples():
    prepared = _prepare(["pipeline.clean=[normalize]", "pipeline.augment=[]", "pipeline.balance=[]"])
    step = next(s for s in prepared.summary["steps"] if s["step"] == "normalize")
    assert step["counters"]["modified: text normalized"] > 10
    assert step["examples"]
    text = " ".join(t for split in prepared.splits.values() for t in split["prompt"] if t)
    assert "\u200b" not in text and "\u00a0" not in text and "\t" not in text
    report = (prepared.directory / "data_report.md").read_text()
    assert "## Examples of edits" in report and "Accounting:" in report


@pytest.mark.parametrize(
    "broken, fixed",
    [
        ("Iâ€™m sorry, weâ€™ll ship", "I’m sorry, we’ll ship"),
        ("je n'arrive pas Ã\xa0 rÃ©initialiser", "je n'arrive pas à réinitialiser"),
        ("Ãœber 5â‚¬ and 日本 donâ€™t", "Über 5€ and 日本 don’t"),
        ("naïve café résumé", "naïve café résumé"),  # correct text is left alone
        ("", ""),
    ],
)
def test_mojibake_repair(broken, fixed):
    from tunelab_builtin.cleaners.normalize import fix_mojibake

    assert fix_mojibake(broken) == fixed


def test_bundled_mojibake_rows_are_repaired():
    prepared = _prepare(["pipeline.augment=[]", "pipeline.balance=[]"])
    text = " ".join(t for split in prepared.splits.values() for col in ("prompt", "completion") for t in split[col])
    assert "â€" not in text and "Ã©" not in text


def test_bad_parameter_value_fails_at_validation():
    from tunelab.config import ConfigError

    with pytest.raises(ConfigError, match=r"pipeline.augment: augmenter 'eda': eda.operations must be"):
        validate(["++pipeline.params.eda.operations=[swap,teleport]"])


def test_an_empty_evaluation_split_is_kept_as_an_empty_split(tmp_path):
    rows = [
        {"question": f"Question number {i} about tents?", "answer": f"Answer {i}.", "category": "product"}
        for i in range(6)
    ]
    path = tmp_path / "few.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = ["pipeline=minimal", f"data.path={path}", "++pipeline.params.stratified.validation=0.0"]
    for prepared in (_prepare(overrides), _prepare(overrides)):  # built, then from the cache
        assert len(prepared.splits["validation"]) == 0
        assert len(prepared.splits["train"]) + len(prepared.splits["test"]) == 6
