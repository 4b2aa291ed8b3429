"""Annotators: auto_label (zero-shot and trained, with a local encoder) and consensus
(multi-annotator labels, agreement metrics)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from conftest import SAMPLE, validate
from tunelab.api import StageContext
from tunelab.config import ConfigError
from tunelab.data.cache import prepare
from tunelab.data.ledger import read_ledger
from tunelab.plugins import get_plugins

SUPPORT_LABELS = {
    "billing": "billing, payments, charges, invoices and refunds of money",
    "shipping": "shipping, delivery, tracking and packages",
    "account": "user account, login and password",
    "product": "product quality, defects, sizes and stock",
    "privacy": "privacy, personal data and deletion of data",
}


def _prepare(overrides):
    return prepare(validate(overrides), get_plugins())


def _dataset(rows):
    """Rows as the engine hands them to a step (parent_id is a string column)."""
    from datasets import Dataset, Value

    return Dataset.from_list([{"parent_id": None, **row} for row in rows]).cast_column("parent_id", Value("string"))


def _ctx(tmp_path: Path, seed: int = 0) -> StageContext:
    return StageContext(seed=seed, num_proc=1, work_dir=tmp_path)


def _review(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _sample_rows() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def tiny_encoder(tmp_path: Path) -> Path:
    """A random 1-layer BERT with a word vocabulary: fast, and real transformers files."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path / "tiny-encoder"
    folder.mkdir()
    words = sorted({w.strip("?.,!'").lower() for row in _sample_rows()[:120] for w in row["question"].split()} - {""})
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    BertTokenizer(vocab=vocab).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    return folder


# --- auto_label: zero-shot with the real MiniLM -----------------------------------------------


def test_zero_shot_minilm_labels_obvious_tickets_and_sends_unsure_ones_to_review(tmp_path):
    from tunelab_builtin.annotators.auto_label import AutoLabel, AutoLabelConfig

    texts = {
        "t1": ("I was charged twice for my order", "billing"),
        "t2": ("Can I get an invoice for my purchase?", "billing"),
        "t3": ("My package hasn't arrived yet, where is it?", "shipping"),
        "t4": ("How do I reset my password?", "account"),
        "t5": ("Please delete all my personal data", "privacy"),
        "t6": ("The zipper on the jacket broke after a week", "product"),
    }
    rows = [{"id": k, "prompt": text, "label": None} for k, (text, _) in texts.items()]
    rows += [
        {"id": "h1", "prompt": "Where can I track my parcel?", "label": "shipping"},  # a human label stays
        {"id": "u1", "prompt": "hello?", "label": ""},
        {"id": "u2", "prompt": "   ", "label": None},
    ]
    ctx = _ctx(tmp_path)
    out = AutoLabel(AutoLabelConfig(labels=SUPPORT_LABELS, threshold=0.6)).apply(_dataset(rows), ctx)
    by_id = {r["id"]: r for r in out}
    for row_id, (_, expected) in texts.items():
        assert by_id[row_id]["label"] == expected, (row_id, by_id[row_id])
        assert by_id[row_id]["label_source"] == "model"
        assert 0.6 <= by_id[row_id]["label_confidence"] <= 1.0
    assert by_id["h1"]["label"] == "shipping" and by_id["h1"]["label_source"] == "human"
    assert by_id["h1"]["label_confidence"] is None
    # unsure and empty rows keep an empty label and are listed for review
    assert by_id["u1"]["label"] is None and by_id["u1"]["label_source"] is None
    review = {r["id"]: r for r in _review(tmp_path / "review_auto_label.jsonl")}
    assert set(review) == {"u1", "u2"}
    candidates = review["u1"]["candidates"]
    assert len(candidates) == 3 and {c["label"] for c in candidates} <= set(SUPPORT_LABELS)
    assert candidates[0]["score"] < 0.6 and [c["score"] for c in candidates] == sorted(
        (c["score"] for c in candidates), reverse=True
    )
    assert review["u2"]["reason"] == "no text to label" and review["u2"]["candidates"] == []
    assert ctx.metadata["labelled_by_model"] == 6 and ctx.metadata["sent_to_review"] == 2
    assert ctx.metadata["predicted_labels"]["billing"] == 2
    assert ctx.counters["already labelled"] == 1


def test_trained_mode_learns_from_labelled_tickets(tmp_path):
    """Logistic regression on MiniLM embeddings of 36 labelled tickets labels 12 held-out ones."""
    from tunelab_builtin.annotators.auto_label import AutoLabel, AutoLabelConfig

    per_class: dict[str, list[dict]] = {}
    for n, row in enumerate(_sample_rows(), start=1):
        if row["category"] in ("billing", "shipping", "account") and row["question"].strip():
            per_class.setdefault(row["category"], []).append(
                {"id": f"s{n}", "prompt": row["question"], "label": row["category"]}
            )
    rows, hidden = [], {}
    for label, members in per_class.items():
        for row in members[:12]:
            rows.append(row)
        for row in members[12:16]:
            hidden[row["id"]] = label
            rows.append({**row, "label": None})
    ctx = _ctx(tmp_path)
    out = AutoLabel(AutoLabelConfig(mode="trained", threshold=0.0)).apply(_dataset(rows), ctx)
    predicted = {r["id"]: r["label"] for r in out if r["id"] in hidden}
    correct = sum(predicted[i] == hidden[i] for i in hidden)
    assert correct >= 9, (correct, predicted)
    assert {r["label_source"] for r in out if r["id"] in hidden} == {"model"}
    assert ctx.metadata["trained_on"] == 36 and ctx.metadata["train_counts"] == {
        "account": 12,
        "billing": 12,
        "shipping": 12,
    }
    assert 0.5 <= ctx.metadata["cv_accuracy"] <= 1.0


# --- auto_label: mechanics with a tiny random encoder ------------------------------------------------


def test_low_confidence_rows_dropped_with_reason_and_listed(tmp_path, tiny_encoder):
    from tunelab_builtin.annotators.auto_label import AutoLabel, AutoLabelConfig

    rows = [
        {"id": f"r{i}", "prompt": text, "label": None}
        for i, text in enumerate(["my order was charged twice", "where is my package", "reset password please"])
    ]
    rows.append({"id": "kept", "prompt": "refund for boots", "label": "billing"})
    ctx = _ctx(tmp_path)
    config = AutoLabelConfig(
        labels={"billing": "charge", "shipping": "package"},
        model_path=str(tiny_encoder),
        threshold=1.0,
        low_confidence="drop",
    )
    out = AutoLabel(config).apply(_dataset(rows), ctx)
    assert out["id"] == ["kept"]
    (drop,) = ctx.drops
    assert drop.reason == "low-confidence label" and sorted(drop.ids) == ["r0", "r1", "r2"]
    assert all(d["best_label"] in ("billing", "shipping") and 0 < d["score"] < 1 for d in drop.detail)
    review = _review(tmp_path / "review_auto_label.jsonl")
    assert [r["id"] for r in review] == ["r0", "r1", "r2"]
    assert all(len(r["candidates"]) == 2 for r in review)  # only two labels exist


def test_threshold_zero_labels_everything_and_review_file_is_empty(tmp_path, tiny_encoder):
    from tunelab_builtin.annotators.auto_label import AutoLabel, AutoLabelConfig

    rows = [
        {"id": f"r{i}", "text": t, "label": None} for i, t in enumerate(["charged twice", "package late", "x " * 5000])
    ]
    ctx = _ctx(tmp_path)
    config = AutoLabelConfig(
        labels={"billing": "charge", "shipping": "package"},
        model_path=str(tiny_encoder),
        threshold=0.0,
        max_length=32,
        review_file="queue.jsonl",
    )
    out = AutoLabel(config).apply(_dataset(rows), ctx)  # a very long row is truncated, not an error
    assert set(out["label"]) <= {"billing", "shipping"} and None not in out["label"]
    assert out["label_source"] == ["model"] * 3
    assert (tmp_path / "queue.jsonl").read_text() == ""


def test_auto_label_bad_inputs_fail_clearly(tmp_path, tiny_encoder):
    from tunelab_builtin.annotators.auto_label import AutoLabel, AutoLabelConfig

    labels = {"billing": "charge", "shipping": "package"}
    with pytest.raises(ValueError, match="auto_label.labels must map each label"):
        AutoLabel(AutoLabelConfig())
    with pytest.raises(ValueError, match="auto_label.mode must be 'zero_shot' or 'trained'"):
        AutoLabel(AutoLabelConfig(mode="magic", labels=labels))
    with pytest.raises(ValueError, match="model_path '.*nowhere' is not a folder with a config.json"):
        AutoLabel(AutoLabelConfig(labels=labels, model_path=str(tmp_path / "nowhere")))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="is not a loadable encoder"):
        AutoLabel(AutoLabelConfig(labels=labels, model_path=str(broken))).apply(
            _dataset([{"id": "a", "prompt": "hi", "label": None}]), _ctx(tmp_path)
        )

    annotator = AutoLabel(AutoLabelConfig(labels=labels, model_path=str(tiny_encoder)))
    with pytest.raises(ValueError, match=r"text column\(s\) \['prompt'\] not in the data"):
        annotator.apply(_dataset([{"id": "a", "question": "hi", "label": None}]), _ctx(tmp_path))
    with pytest.raises(ValueError, match="column 'prompt' holds int in row 'b'"):
        annotator.apply(
            _dataset([{"id": "a", "prompt": None, "label": None}, {"id": "b", "prompt": 7, "label": None}]),
            _ctx(tmp_path),
        )

    trained = AutoLabel(AutoLabelConfig(mode="trained", model_path=str(tiny_encoder)))
    one_class = [{"id": f"a{i}", "prompt": "charged twice", "label": "billing"} for i in range(3)] + [
        {"id": "u", "prompt": "late", "label": None}
    ]
    with pytest.raises(
        ValueError, match=r"needs at least 2 labels with >= 2 labelled rows each; found \{'billing': 3\}"
    ):
        trained.apply(_dataset(one_class), _ctx(tmp_path))
    with pytest.raises(ValueError, match="label column 'label' not in the data"):
        trained.apply(_dataset([{"id": "a", "prompt": "hi"}]), _ctx(tmp_path))


def test_auto_label_in_the_pipeline_writes_review_file_and_ledger(tmp_path, tiny_encoder):
    rows = []
    for n, row in enumerate(_sample_rows()[:60]):
        rows.append({**row, "category": row["category"] if n % 3 else ""})
    data = tmp_path / "tickets.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    prepared = _prepare(
        [
            f"data.path={data}",
            "pipeline=minimal",
            "pipeline.annotate=[auto_label]",
            "++pipeline.params.auto_label.mode=trained",
            f"++pipeline.params.auto_label.model_path={tiny_encoder}",
            "++pipeline.params.auto_label.threshold=0.4",
            "++pipeline.params.auto_label.low_confidence=drop",
        ]
    )
    step = next(s for s in prepared.summary["steps"] if s["step"] == "auto_label")
    meta = prepared.summary["metadata"]["auto_label"]
    review = _review(prepared.directory / "review_auto_label.jsonl")
    ledger = read_ledger(prepared.directory / "ledger.jsonl")
    dropped = [r for r in ledger if r.get("reason") == "low-confidence label"]
    modified = [r for r in ledger if r["action"] == "modified" and r["step"] == "auto_label"]
    assert len(modified) == meta["labelled_by_model"] > 0 and {r["reason"] for r in modified} == {"label set by model"}
    assert meta["sent_to_review"] == len(review) == step["dropped"]["low-confidence label"] == len(dropped) > 0
    assert meta["labelled_by_model"] + meta["sent_to_review"] == step["rows_in"] - meta["already_labelled"]
    assert {r["id"] for r in dropped} == {r["id"] for r in review}
    kept = [row for split in prepared.splits.values() for row in split]
    assert all(row["label"] for row in kept)  # every kept row has a label now
    assert {row["label_source"] for row in kept} <= {"human", "model"}


def test_bad_auto_label_parameter_fails_at_validation():
    with pytest.raises(ConfigError, match="auto_label.low_confidence must be 'keep' or 'drop'"):
        validate(
            [
                "pipeline.annotate=[auto_label]",
                "++pipeline.params.auto_label.labels={a: x}",
                "++pipeline.params.auto_label.low_confidence=maybe",
            ]
        )


# --- agreement metrics against textbook values ----------------------------------------------------


def test_cohen_kappa_textbook_example():
    """Cohen's kappa, kappa = (p_o - p_e) / (1 - p_e). The classic 50-item table:
    both yes 20, A yes/B no 5, A no/B yes 10, both no 15: p_o = 35/50 = 0.7,
    p_e = 0.5*0.6 + 0.5*0.4 = 0.5, so kappa = 0.2 / 0.5 = 0.4."""
    from sklearn.metrics import cohen_kappa_score

    from tunelab_builtin.annotators.consensus import cohen_kappa

    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    # and an uneven three-class case against an independent implementation
    x = list("aabbccabcabcaaab")
    y = list("abbbccacbabcaacb")
    assert cohen_kappa(x, y) == pytest.approx(cohen_kappa_score(x, y))
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # undefined: one label only


def test_fleiss_kappa_textbook_example():
    """Fleiss (1971) kappa on the standard 10 subjects x 14 raters x 5 categories table:
    P_bar = 0.378, P_e = sum p_j^2 = 0.213 (p = .143 .200 .279 .150 .229), so
    kappa = (0.378 - 0.213) / (1 - 0.213) = 0.210."""
    from tunelab_builtin.annotators.consensus import fleiss_kappa

    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa(table) == pytest.approx(0.2099, abs=5e-4)
    assert fleiss_kappa([[3, 0], [0, 3]]) == pytest.approx(1.0)  # perfect agreement


def _alpha_by_pairs(units):
    """Krippendorff's alpha (nominal) straight from its definition, 1 - D_o / D_e: D_o
    averages disagreement over the pairs of values inside each unit (weighted 1/(m_u-1)),
    D_e over all pairs of pairable values regardless of unit."""
    pairable = [[v for v in unit if v is not None] for unit in units]
    pairable = [unit for unit in pairable if len(unit) >= 2]
    values = [v for unit in pairable for v in unit]
    n = len(values)
    observed = sum(sum(a != b for a, b in itertools.permutations(unit, 2)) / (len(unit) - 1) for unit in pairable) / n
    expected = sum(a != b for a, b in itertools.permutations(values, 2)) / (n * (n - 1))
    return 1 - observed / expected


def test_krippendorff_alpha_textbook_example_with_missing_values():
    """Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", nominal example:
    4 observers, 12 units, missing values; alpha = 0.743 (unit 12 has one value only
    and is not pairable)."""
    from tunelab_builtin.annotators.consensus import krippendorff_alpha_nominal

    observers = [
        "1 2 3 3 2 1 4 1 2 . . .",
        "1 2 3 3 2 2 4 1 2 5 . 3",
        ". 3 3 3 2 3 4 2 2 5 1 .",
        "1 2 3 3 2 4 4 1 2 5 1 .",
    ]
    units = [[None if v == "." else v for v in column] for column in zip(*(o.split() for o in observers))]
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha_nominal(units) == pytest.approx(_alpha_by_pairs(units))
    assert krippendorff_alpha_nominal([["a", "a"], ["a", "a", "a"]]) is None  # one category: undefined


# --- consensus ---------------------------------------------------------------------------


def _three_annotator_rows():
    return [
        {"id": "r1", "prompt": "charged twice", "a1": "billing", "a2": "billing", "a3": "billing"},
        {"id": "r2", "prompt": "parcel late", "a1": "shipping", "a2": "shipping", "a3": "billing"},
        {"id": "r3", "prompt": "refund?", "a1": "billing", "a2": "returns", "a3": None},  # tie
        {"id": "r4", "prompt": "login broken", "a1": "account", "a2": "account", "a3": "account"},
        {"id": "r5", "prompt": "where is it", "a1": "shipping", "a2": "returns", "a3": "billing"},  # three-way tie
        {"id": "r6", "prompt": "no votes", "a1": None, "a2": "", "a3": None, "label": "product"},
    ]


def test_consensus_from_annotator_columns_with_tie_policies(tmp_path):
    from tunelab_builtin.annotators.consensus import Consensus, ConsensusConfig, krippendorff_alpha_nominal

    rows = [{"label": None, **row} for row in _three_annotator_rows()]
    data = _dataset(rows)

    ctx = _ctx(tmp_path)
    out = Consensus(ConsensusConfig(annotator_columns=["a1", "a2", "a3"], tie_policy="drop")).apply(data, ctx)
    by_id = {r["id"]: r for r in out}
    assert set(by_id) == {"r1", "r2", "r4", "r6"}
    assert by_id["r2"]["label"] == "shipping" and by_id["r2"]["label_confidence"] == pytest.approx(2 / 3)
    assert by_id["r1"]["label_source"] == "human" and by_id["r1"]["label_confidence"] == 1.0
    assert by_id["r6"]["label"] == "product"  # no annotations: the existing label stays
    (drop,) = ctx.drops
    assert drop.reason == "annotator tie" and sorted(drop.ids) == ["r3", "r5"]
    assert drop.detail[drop.ids.index("r3")] == {"votes": {"billing": 1, "returns": 1}}
    meta = ctx.metadata["agreement"]
    assert meta["ties"] == 2 and meta["consensus"] == 3 and meta["rows_without_annotations"] == 1
    assert meta["label_counts"] == {"account": 3, "billing": 6, "returns": 2, "shipping": 3}
    assert meta["annotators"] == ["a1", "a2", "a3"] and meta["cohen_kappa_method"] == "mean over annotator pairs"
    units = [[v for v in (r["a1"], r["a2"], r["a3"]) if v] for r in rows if any((r["a1"], r["a2"], r["a3"]))]
    assert meta["krippendorff_alpha"] == pytest.approx(krippendorff_alpha_nominal(units), abs=1e-6)

    ctx = _ctx(tmp_path)
    out = Consensus(ConsensusConfig(annotator_columns=["a1", "a2", "a3"], tie_policy="first")).apply(data, ctx)
    by_id = {r["id"]: r for r in out}
    assert by_id["r3"]["label"] == "billing" and by_id["r5"]["label"] == "shipping" and not ctx.drops

    ctx = _ctx(tmp_path)
    out = Consensus(ConsensusConfig(annotator_columns=["a1", "a2", "a3"], min_agreement=0.9)).apply(data, ctx)
    by_id = {r["id"]: r for r in out}
    assert len(out) == 6 and by_id["r2"]["label"] is None and by_id["r3"]["label"] is None
    review = {r["id"]: r for r in _review(tmp_path / "review_consensus.jsonl")}
    assert set(review) == {"r2", "r3", "r5"}
    assert review["r2"]["reason"] == "low annotator agreement" and review["r3"]["reason"] == "annotator tie"
    assert review["r2"]["votes"] == {"billing": 1, "shipping": 2}
    assert ctx.metadata["agreement"]["low_agreement"] == 1


def test_consensus_two_annotators_reports_cohen_kappa_of_the_pair(tmp_path):
    from sklearn.metrics import cohen_kappa_score

    from tunelab_builtin.annotators.consensus import Consensus, ConsensusConfig

    first = ["billing", "billing", "shipping", "account", "shipping", "billing", "returns", "account"]
    second = ["billing", "shipping", "shipping", "account", "shipping", "returns", "returns", "account"]
    rows = [
        {
            "id": f"r{i}",
            "prompt": "x",
            "label": None,
            "ann": [{"annotator": "ana", "label": a}, {"annotator": "ben", "label": b}],
        }
        for i, (a, b) in enumerate(zip(first, second))
    ]
    ctx = _ctx(tmp_path)
    Consensus(ConsensusConfig(annotations_column="ann", tie_policy="first")).apply(_dataset(rows), ctx)
    meta = ctx.metadata["agreement"]
    assert meta["cohen_kappa_method"] == "two annotators"
    assert meta["cohen_kappa"] == pytest.approx(cohen_kappa_score(first, second), abs=1e-6)
    assert meta["percent_agreement"] == pytest.approx(6 / 8)


def test_consensus_from_a_jsonl_list_column_through_the_pipeline(tmp_path):
    records = []
    for n, row in enumerate(_sample_rows()[:40]):
        truth = row["category"]
        other = "billing" if truth != "billing" else "shipping"
        votes = [truth, truth, truth if n % 4 else other]
        if n % 10 == 0:
            votes = [truth, other]  # a tie
        row = {**row, "annotations": [{"annotator": f"ann{k}", "label": v} for k, v in enumerate(votes)]}
        records.append(row)
    data = tmp_path / "annotated.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    prepared = _prepare(
        [
            f"data.path={data}",
            "pipeline=minimal",
            "pipeline.clean=[]",
            "pipeline.annotate=[consensus]",
            "++pipeline.params.consensus.annotations_column=annotations",
            "++pipeline.params.consensus.tie_policy=drop",
        ]
    )
    meta = prepared.summary["metadata"]["consensus"]["agreement"]
    assert meta["ties"] == 4 and meta["units"] == 40 and meta["annotators"] == ["ann0", "ann1", "ann2"]
    assert 0.5 < meta["fleiss_kappa"] < 1 and 0.5 < meta["krippendorff_alpha"] < 1
    ties = [r for r in read_ledger(prepared.directory / "ledger.jsonl") if r.get("reason") == "annotator tie"]
    assert len(ties) == 4 and all(sum(r["detail"]["votes"].values()) == 2 for r in ties)
    kept = [row for split in prepared.splits.values() for row in split]
    truth = {f"annotated.jsonl:{n}": r["category"] for n, r in enumerate(records, start=1)}
    assert all(row["label"] == truth[row["id"]] for row in kept)  # the majority is the true class


def test_consensus_from_an_annotations_file(tmp_path):
    from tunelab_builtin.annotators.consensus import Consensus, ConsensusConfig

    rows = [{"id": f"f:{n}", "ticket_id": f"T-{n}", "prompt": "q", "label": None} for n in range(1, 5)]
    path = tmp_path / "labels.csv"
    path.write_text(
        "ticket_id,annotator,label\n"
        "T-1,ana,billing\nT-1,ben,billing\n"
        "T-2,ana,shipping\nT-2,ben,returns\n"
        "T-3,ana,account\nT-3,ben,account\nT-3,ana,account\n"
        "T-99,ana,billing\n"
        "T-4,ana,\n",
        encoding="utf-8",
    )
    ctx = _ctx(tmp_path)
    out = Consensus(ConsensusConfig(annotations_path=str(path), key_column="ticket_id")).apply(_dataset(rows), ctx)
    assert out["label"] == ["billing", None, "account", None]
    assert ctx.counters["annotations for unknown rows"] == 1 and ctx.metadata["unmatched_keys"] == ["T-99"]
    assert ctx.metadata["agreement"]["rows_without_annotations"] == 1  # T-4's only label is empty
    assert [r["id"] for r in _review(tmp_path / "review_consensus.jsonl")] == ["f:2"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "f:1", "annotator": "ana", "label": "billing"}\n{"id": "f:2", "label": "x"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: missing field\(s\) \['annotator'\]"):
        Consensus(ConsensusConfig(annotations_path=str(bad))).apply(_dataset(rows), _ctx(tmp_path))
    bad.write_text('{"id": "f:1", "annotator": "ana", "label": "billing"}\n{oops\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: invalid JSON"):
        Consensus(ConsensusConfig(annotations_path=str(bad))).apply(_dataset(rows), _ctx(tmp_path))
    bad.write_bytes(b'{"id": "f:1", "annotator": "ana", "label": "\xff"}\n')
    with pytest.raises(ValueError, match="is not valid UTF-8"):
        Consensus(ConsensusConfig(annotations_path=str(bad))).apply(_dataset(rows), _ctx(tmp_path))


def test_consensus_bad_configuration_and_bad_columns(tmp_path):
    from tunelab_builtin.annotators.consensus import Consensus, ConsensusConfig

    with pytest.raises(ConfigError, match="consensus: set exactly one of annotations_column"):
        validate(
            [
                "pipeline.annotate=[consensus]",
                "++pipeline.params.consensus.annotations_column=ann",
                "++pipeline.params.consensus.annotator_columns=[a,b]",
            ]
        )
    with pytest.raises(ConfigError, match="consensus.tie_policy must be one of drop, first, review"):
        validate(
            [
                "pipeline.annotate=[consensus]",
                "++pipeline.params.consensus.annotator_columns=[a,b]",
                "++pipeline.params.consensus.tie_policy=coin",
            ]
        )
    with pytest.raises(ValueError, match="annotations_path '.*missing.csv' is not a file"):
        Consensus(ConsensusConfig(annotations_path=str(tmp_path / "missing.csv")))
    with pytest.raises(ValueError, match=r"annotator_columns \['a9'\] not in the data"):
        Consensus(ConsensusConfig(annotator_columns=["a1", "a9"])).apply(
            _dataset(_three_annotator_rows()), _ctx(tmp_path)
        )
    rows = [{"id": "r1", "prompt": "x", "ann": '[{"who": "ana", "label": "billing"}]'}]
    with pytest.raises(
        ValueError, match=r"row 'r1': annotations_column 'ann' must hold a list of \{annotator, label\}"
    ):
        Consensus(ConsensusConfig(annotations_column="ann")).apply(_dataset(rows), _ctx(tmp_path))
    rows = [{"id": "r1", "prompt": "x", "ann": "billing"}]
    with pytest.raises(ValueError, match="holds text that is not a JSON list"):
        Consensus(ConsensusConfig(annotations_column="ann")).apply(_dataset(rows), _ctx(tmp_path))
