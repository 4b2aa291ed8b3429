"""Balancers (oversample, undersample, target_distribution, augment_minority,
class_weights) and splitters (stratified, random, group, kfold, stratified_kfold) with
the shared leakage check."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import SAMPLE, validate
from tunelab.api import StageContext
from tunelab.config import ConfigError
from tunelab.data.cache import prepare
from tunelab.data.ledger import read_ledger
from tunelab.plugins import get_plugins


def _prepare(overrides):
    return prepare(validate(overrides), get_plugins())


def _make(kind: str, name: str, params: dict):
    """Build a registered component the way the engine's factory does (validated config)."""
    from tunelab.config import Origin, typed_config

    try:
        component = get_plugins().registry.get(kind, name)
    except KeyError as exc:
        raise ConfigError(str(exc)) from None
    config = typed_config(
        component.config_schema, dict(params), kind=kind, name=name, origin=Origin(), group=kind, key_prefix=""
    )
    return component.cls(config)


def _ctx(tmp_path: Path, seed: int = 0) -> StageContext:
    return StageContext(seed=seed, num_proc=1, work_dir=tmp_path, factory=_make)


def _dataset(rows):
    """Rows as the engine hands them to a step (parent_id is a string column)."""
    from datasets import Dataset, Value

    return Dataset.from_list([{"parent_id": None, **row} for row in rows]).cast_column("parent_id", Value("string"))


def _tickets(per_class: dict[str, int] | None = None) -> list[dict]:
    """Distinct real tickets from the bundled sample, ``per_class`` of each label (all when None)."""
    seen, rows = set(), []
    taken: Counter[str] = Counter()
    for n, line in enumerate(SAMPLE.read_text(encoding="utf-8").splitlines(), start=1):
        record = json.loads(line)
        question, label = " ".join(record["question"].split()), record["category"]
        if len(question.split()) < 4 or question.casefold() in seen or not record["answer"]:
            continue
        if per_class is not None and taken[label] >= per_class.get(label, 0):
            continue
        seen.add(question.casefold())
        taken[label] += 1
        rows.append(
            {
                "id": f"t:{n}",
                "parent_id": None,
                "prompt": question,
                "completion": record["answer"],
                "label": label,
                "customer": f"C{n % 41}",
            }
        )
    return rows


def _derived(row: dict, op: str) -> dict:
    return {**row, "id": f"{row['id']}~{op}", "parent_id": row["id"], "prompt": row["prompt"] + " (variant)"}


def _split_of(splits) -> dict[str, str]:
    return {row_id: name for name, part in splits.items() for row_id in part["id"]}


# --- balancers -----------------------------------------------------------------------


def test_undersample_cuts_majority_classes_and_prefers_originals(tmp_path):
    from tunelab_builtin.balancers.undersample import Undersample, UndersampleConfig

    rows = _tickets({"billing": 12, "shipping": 8, "privacy": 5})
    billing = [r for r in rows if r["label"] == "billing"]
    rows += [_derived(r, "dup1") for r in billing[:4]]
    rows.append({"id": "nolabel", "prompt": "what?", "completion": "?", "label": None, "customer": "C0"})
    data = _dataset(rows)

    ctx = _ctx(tmp_path)
    out = Undersample(UndersampleConfig()).apply(data, ctx)
    counts = Counter(out["label"])
    assert counts == {"billing": 5, "shipping": 5, "privacy": 5, None: 1}  # unlabelled rows are left alone
    assert all(parent is None for parent in out["parent_id"])  # derived rows go first
    (drop,) = ctx.drops
    assert drop.reason == "undersampled" and len(drop.ids) == 16 - 5 + 8 - 5
    assert {d["label"] for d in drop.detail} == {"billing", "shipping"}
    assert ctx.metadata["max_per_class"] == 5

    # the same seed keeps the same rows, whatever the row order
    shuffled = data.shuffle(seed=3)
    again = Undersample(UndersampleConfig()).apply(shuffled, _ctx(tmp_path))
    assert sorted(again["id"]) == sorted(out["id"])
    other_seed = Undersample(UndersampleConfig()).apply(data, _ctx(tmp_path, seed=1))
    assert sorted(other_seed["id"]) != sorted(out["id"])

    half = Undersample(UndersampleConfig(target_ratio=0.5)).apply(data, _ctx(tmp_path))
    assert Counter(half["label"]) == {"billing": 10, "shipping": 8, "privacy": 5, None: 1}
    capped = Undersample(UndersampleConfig(max_per_class=6)).apply(data, _ctx(tmp_path))
    assert Counter(capped["label"]) == {"billing": 6, "shipping": 6, "privacy": 5, None: 1}


@pytest.mark.parametrize(
    "total, expected",
    [
        ("keep", {"billing": 12, "shipping": 6, "privacy": 6}),
        ("grow", {"billing": 16, "shipping": 8, "privacy": 8}),
        ("shrink", {"billing": 6, "shipping": 3, "privacy": 3}),
        ("40", {"billing": 20, "shipping": 10, "privacy": 10}),
    ],
)
def test_target_distribution_reaches_the_shares(tmp_path, total, expected):
    from tunelab_builtin.balancers.target_distribution import TargetDistribution, TargetDistributionConfig

    data = _dataset(_tickets({"billing": 16, "shipping": 3, "privacy": 5}))
    config = TargetDistributionConfig(distribution={"billing": 0.5, "shipping": 0.25, "privacy": 0.25}, total=total)
    ctx = _ctx(tmp_path)
    out = TargetDistribution(config).apply(data, ctx)
    assert dict(Counter(out["label"])) == expected
    ids = out["id"]
    assert len(ids) == len(set(ids))
    copies = [(i, p) for i, p in zip(ids, out["parent_id"]) if p is not None]
    assert all(i.startswith(f"{p}~dup") for i, p in copies)
    dropped = sum(len(d.ids) for d in ctx.drops)
    assert len(data) + len(copies) - dropped == len(out)
    if total == "grow":
        assert dropped == 0
    if total == "shrink":
        assert not copies


def test_target_distribution_bad_configuration(tmp_path):
    from tunelab_builtin.balancers.target_distribution import TargetDistribution, TargetDistributionConfig

    with pytest.raises(ConfigError, match="distribution shares must sum to 1, they sum to 0.9"):
        validate(
            [
                "pipeline.balance=[target_distribution]",
                "++pipeline.params.target_distribution.distribution={billing: 0.5, shipping: 0.4}",
            ]
        )
    with pytest.raises(
        ConfigError, match="target_distribution.total must be one of keep, grow, shrink or a positive number"
    ):
        validate(
            [
                "pipeline.balance=[target_distribution]",
                "++pipeline.params.target_distribution.distribution={billing: 1.0}",
                "++pipeline.params.target_distribution.total=double",
            ]
        )
    data = _dataset(_tickets({"billing": 4, "shipping": 3}))
    with pytest.raises(ValueError, match=r"labels \['shipping'\] are in the data but not in distribution"):
        TargetDistribution(TargetDistributionConfig(distribution={"billing": 1.0})).apply(data, _ctx(tmp_path))
    with pytest.raises(ValueError, match=r"labels \['biling'\] have a share but no rows"):
        TargetDistribution(
            TargetDistributionConfig(distribution={"biling": 0.5, "billing": 0.25, "shipping": 0.25})
        ).apply(data, _ctx(tmp_path))
    with pytest.raises(ValueError, match="label column 'category' not in the data"):
        TargetDistribution(TargetDistributionConfig(distribution={"billing": 1.0}, label_column="category")).apply(
            data, _ctx(tmp_path)
        )


def test_augment_minority_runs_an_augmenter_for_several_rounds_with_unique_ids(tmp_path):
    from tunelab_builtin.balancers.augment_minority import AugmentMinority, AugmentMinorityConfig

    rows = _tickets({"billing": 14, "privacy": 3, "shipping": 10})
    privacy = [r for r in rows if r["label"] == "privacy"]
    # an augment step earlier in the pipeline already made `~eda1` rows: no id may clash
    rows.append(
        {**privacy[0], "id": privacy[0]["id"] + "~eda1", "parent_id": privacy[0]["id"], "prompt": "earlier variant"}
    )
    data = _dataset(rows)
    ctx = _ctx(tmp_path)
    out = AugmentMinority(AugmentMinorityConfig(augmenter="eda", params={"fields": ["prompt"]})).apply(data, ctx)

    counts = Counter(out["label"])
    assert counts == {"billing": 14, "privacy": 14, "shipping": 14}
    new = [row for row in out if row["id"] not in set(data["id"])]
    assert len(new) == 10 + 4
    assert len(set(out["id"])) == len(out)
    originals = {r["id"]: r for r in rows}
    for row in new:
        parent = originals[row["parent_id"]]
        assert row["id"].startswith(parent["id"] + "~eda") and row["label"] == parent["label"]
        assert row["prompt"] != parent["prompt"] and row["completion"] == parent["completion"]
    assert len({r["prompt"] for r in new}) == len(new)  # no variant repeats another
    assert ctx.metadata["rounds"] >= 4  # 3 privacy rows cannot give 10 variants in one round
    assert ctx.metadata["added"] == {"privacy": 10, "shipping": 4} and ctx.metadata["shortfall"] == {}

    # same seed, same rows
    again = AugmentMinority(AugmentMinorityConfig(augmenter="eda", params={"fields": ["prompt"]})).apply(
        data, _ctx(tmp_path)
    )
    assert again["id"] == out["id"] and again["prompt"] == out["prompt"]


def test_augment_minority_works_with_another_augmenter(tmp_path):
    from tunelab_builtin.balancers.augment_minority import AugmentMinority, AugmentMinorityConfig

    data = _dataset(_tickets({"billing": 10, "privacy": 3}))
    ctx = _ctx(tmp_path)
    out = AugmentMinority(AugmentMinorityConfig(augmenter="char_noise")).apply(data, ctx)
    assert Counter(out["label"]) == {"billing": 10, "privacy": 10}
    new = [(i, p) for i, p in zip(out["id"], out["parent_id"]) if p is not None]
    assert len(new) == 7 and all(i.startswith(f"{p}~char_noise") for i, p in new)
    assert len(set(out["id"])) == len(out) and ctx.metadata["rounds"] >= 3


def test_augment_minority_shortfall_and_oversample_fallback(tmp_path):
    from tunelab_builtin.balancers.augment_minority import AugmentMinority, AugmentMinorityConfig

    rows = [{"id": f"b{i}", "prompt": f"I was charged twice for order {i}", "label": "billing"} for i in range(6)]
    rows += [
        {"id": "p1", "prompt": "GDPR", "label": "privacy"},
        {"id": "p2", "prompt": "delete", "label": "privacy"},
    ]  # one word: eda cannot vary it
    data = _dataset(rows)
    ctx = _ctx(tmp_path)
    out = AugmentMinority(AugmentMinorityConfig()).apply(data, ctx)
    assert len(out) == len(data) and ctx.metadata["shortfall"] == {"privacy": 4}
    ctx = _ctx(tmp_path)
    out = AugmentMinority(AugmentMinorityConfig(fallback="oversample")).apply(data, ctx)
    assert Counter(out["label"]) == {"billing": 6, "privacy": 6}
    assert sorted(i for i in out["id"] if "~" in i) == ["p1~dup1", "p1~dup2", "p2~dup1", "p2~dup2"]
    with pytest.raises(ConfigError, match="unknown augmenter 'nope'"):
        AugmentMinority(AugmentMinorityConfig(augmenter="nope")).apply(data, _ctx(tmp_path))


def test_augment_minority_and_class_weights_in_the_pipeline():
    prepared = _prepare(
        [
            "pipeline=minimal",
            "pipeline.balance=[augment_minority,class_weights]",
            "++pipeline.params.augment_minority.target_ratio=0.5",
        ]
    )
    after = prepared.summary["labels_after"]
    assert min(after.values()) >= int(0.5 * max(after.values()))
    added = [
        r
        for r in read_ledger(prepared.directory / "ledger.jsonl")
        if r["action"] == "added" and r["step"] == "augment_minority"
    ]
    assert added and all(r["id"].startswith(r["parent_id"] + "~eda") for r in added)
    meta = prepared.summary["metadata"]
    weights = meta["class_weights"]["class_weights"]
    n, k = sum(after.values()), len(after)
    assert weights == {label: pytest.approx(n / (k * count), abs=1e-5) for label, count in after.items()}
    step = next(s for s in prepared.summary["steps"] if s["step"] == "class_weights")
    assert step["rows_in"] == step["rows_out"]


def test_class_weights_methods(tmp_path):
    from tunelab_builtin.balancers.class_weights import ClassWeights, ClassWeightsConfig

    data = _dataset(_tickets({"billing": 9, "shipping": 3, "privacy": 3}))
    ctx = _ctx(tmp_path)
    out = ClassWeights(ClassWeightsConfig()).apply(data, ctx)
    assert out["id"] == data["id"] and not ctx.drops
    # balanced: n / (k * count) = 15 / (3 * 9) and 15 / (3 * 3)
    assert ctx.metadata["class_weights"] == {
        "billing": pytest.approx(15 / 27, abs=1e-6),
        "privacy": pytest.approx(5 / 3, abs=1e-6),
        "shipping": pytest.approx(5 / 3, abs=1e-6),
    }
    ctx = _ctx(tmp_path)
    ClassWeights(ClassWeightsConfig(method="inverse_sqrt")).apply(data, ctx)
    assert ctx.metadata["class_weights"]["billing"] == pytest.approx((15 / 27) ** 0.5, abs=1e-6)
    json.dumps(ctx.metadata)  # the report stores it as JSON
    with pytest.raises(ConfigError, match="class_weights.method must be one of balanced, inverse_sqrt"):
        validate(["pipeline.balance=[class_weights]", "++pipeline.params.class_weights.method=log"])


def test_oversample_twice_keeps_ids_unique_and_copies_originals_evenly(tmp_path):
    from tunelab_builtin.balancers.oversample import Oversample, OversampleConfig

    data = _dataset(_tickets({"billing": 12, "privacy": 3}))
    once = Oversample(OversampleConfig(target_ratio=0.5)).apply(data, _ctx(tmp_path))
    twice = Oversample(OversampleConfig(target_ratio=1.0)).apply(once, _ctx(tmp_path))
    assert Counter(twice["label"]) == {"billing": 12, "privacy": 12}
    assert len(set(twice["id"])) == len(twice)
    parents = Counter(p for p in twice["parent_id"] if p is not None)
    assert set(parents.values()) == {3}  # 9 copies dealt evenly over the 3 originals
    shuffled = Oversample(OversampleConfig(target_ratio=0.5)).apply(data.shuffle(seed=5), _ctx(tmp_path))
    assert sorted(shuffled["id"]) == sorted(once["id"])


def test_count_balancers_pass_unlabelled_data_through_unless_the_step_names_a_column(tmp_path, caplog):
    """The default pipeline oversamples by `label`; data with no such column (plain
    prompt/completion pairs) passes unchanged, with a warning and a note in the report."""
    from tunelab_builtin.balancers.oversample import Oversample, OversampleConfig
    from tunelab_builtin.balancers.undersample import Undersample, UndersampleConfig

    data = _dataset(_tickets({"billing": 6, "privacy": 2})).remove_columns("label")
    for step in (Oversample(OversampleConfig(target_ratio=1.0)), Undersample(UndersampleConfig())):
        ctx = _ctx(tmp_path)
        with caplog.at_level("WARNING"):
            out = step.apply(data, ctx)
        assert out["id"] == data["id"] and ctx.metadata == {"skipped": "no label column 'label'"}
        assert "rows pass unchanged" in caplog.text
    with pytest.raises(ValueError, match=r"oversample: label column 'category' not in the data"):
        Oversample(OversampleConfig(label_column="category")).apply(data, _ctx(tmp_path))


# --- splitters -----------------------------------------------------------------------


def _splitter(name: str, **params):
    return _make("splitter", name, params)


def test_random_split_fractions_and_determinism(tmp_path):
    data = _dataset(_tickets())
    splits = _splitter("random", leakage="off").split(data, _ctx(tmp_path))
    sizes = {name: len(part) for name, part in splits.items()}
    n = len(data)
    assert sum(sizes.values()) == n
    assert abs(sizes["test"] - 0.1 * n) <= 1 and abs(sizes["validation"] - 0.1 * n) <= 1
    again = _splitter("random", leakage="off").split(data.shuffle(seed=9), _ctx(tmp_path))
    assert _split_of(again) == _split_of(splits)  # row order does not matter
    other = _splitter("random", leakage="off").split(data, _ctx(tmp_path, seed=1))
    assert _split_of(other) != _split_of(splits)
    custom = _splitter("random", validation=0.0, test=0.3, leakage="off").split(data, _ctx(tmp_path))
    assert len(custom["validation"]) == 0 and abs(len(custom["test"]) - 0.3 * n) <= 1


def test_group_split_keeps_every_group_and_its_derived_rows_together(tmp_path):
    rows = _tickets()
    rows += [_derived(r, "eda1") for r in rows[::7]]
    rows.append(
        {
            "id": "lonely",
            "prompt": "no customer on this one at all",
            "completion": "ok",
            "label": "billing",
            "customer": None,
        }
    )
    data = _dataset(rows)
    ctx = _ctx(tmp_path)
    splits = _splitter(
        "group", group_column="customer", validation=0.15, test=0.15, eval_derived="keep", leakage="off"
    ).split(data, ctx)
    split_of = _split_of(splits)
    groups: dict[str, set[str]] = {}
    for row in rows:
        if row["customer"] is not None:
            groups.setdefault(row["customer"], set()).add(split_of[row["id"]])
    assert all(len(s) == 1 for s in groups.values())
    assert all(split_of[r["id"]] == split_of[r["parent_id"]] for r in rows if r.get("parent_id"))
    n = len(rows)
    for name, share in (("validation", 0.15), ("test", 0.15)):
        assert abs(len(splits[name]) / n - share) < 0.05, (name, len(splits[name]), n)
    assert sum(ctx.metadata["groups"].values()) == 42  # 41 customers + the row without one
    assert ctx.counters["rows without a group (own group)"] == 1
    again = _splitter(
        "group", group_column="customer", validation=0.15, test=0.15, eval_derived="keep", leakage="off"
    ).split(data, _ctx(tmp_path))
    assert _split_of(again) == split_of

    with pytest.raises(ValueError, match="1 rows have no value in 'customer'.*missing_group=own"):
        _splitter("group", group_column="customer", missing_group="error").split(data, _ctx(tmp_path))
    with pytest.raises(ValueError, match="group_column 'thread' not in the data"):
        _splitter("group", group_column="thread").split(data, _ctx(tmp_path))
    with pytest.raises(
        ConfigError, match="missing value for 'pipeline.params.group.group_column' of splitter 'group'.*Set it"
    ):
        validate(["pipeline.split=group"])


@pytest.mark.parametrize("name", ["kfold", "stratified_kfold"])
def test_kfold_test_folds_partition_the_originals(tmp_path, name):
    rows = _tickets()
    rows += [_derived(r, "dup1") for r in rows[::5]]
    data = _dataset(rows)
    originals = {r["id"] for r in rows if r["parent_id"] is None}
    labels = {r["id"]: r["label"] for r in rows}
    seen: list[str] = []
    for fold in range(5):
        ctx = _ctx(tmp_path)
        splits = _splitter(name, k=5, fold=fold, leakage="off").split(data, ctx)
        test, validation, train = (set(splits[s]["id"]) for s in ("test", "validation", "train"))
        assert not test & train and not validation & train and not test & validation
        assert all("~" not in i for i in test | validation)  # derived rows never evaluate
        assert test | validation | {i for i in train if "~" not in i} == originals
        assert abs(len(validation) - 0.1 * (len(originals) - len(test))) <= 6  # rounding per class
        seen += sorted(test)
        assert ctx.metadata["folds"]["fold"] == fold and sum(ctx.metadata["folds"]["fold_sizes"]) == len(originals)
        if name == "stratified_kfold":
            share = Counter(labels[i] for i in test)
            overall = Counter(labels[i] for i in originals)
            assert all(abs(share[c] - overall[c] / 5) <= 1 for c in overall), share
    assert len(seen) == len(set(seen)) and set(seen) == originals
    sizes = _splitter(name, k=5, fold=0, leakage="off").split(data, _ctx(tmp_path))
    no_val = _splitter(name, k=5, fold=0, validation=0.0, leakage="off").split(data, _ctx(tmp_path))
    assert len(no_val["validation"]) == 0 and set(no_val["test"]["id"]) == set(sizes["test"]["id"])


def test_kfold_from_the_command_line_and_fixed_shuffle_seed(tmp_path):
    prepared = _prepare(["pipeline=minimal", "pipeline.split=kfold", "++pipeline.params.kfold.fold=3"])
    folds = prepared.summary["metadata"]["kfold"]["folds"]
    assert folds["fold"] == 3 and folds["k"] == 5
    assert abs(len(prepared.splits["test"]) - sum(folds["fold_sizes"]) / 5) <= 3  # minus leaking rows
    # a fixed shuffle_seed keeps the folds when the run seed changes
    data = _dataset(_tickets())
    fixed = [
        _splitter("kfold", fold=3, shuffle_seed=7, leakage="off").split(data, _ctx(tmp_path, seed=s)) for s in (0, 5)
    ]
    assert fixed[0]["test"]["id"] == fixed[1]["test"]["id"]
    free = [_splitter("kfold", fold=3, leakage="off").split(data, _ctx(tmp_path, seed=s)) for s in (0, 5)]
    assert free[0]["test"]["id"] != free[1]["test"]["id"]
    with pytest.raises(ConfigError, match=r"kfold.fold must be in 0 .. k-1 = 0 .. 4, got 5"):
        validate(["pipeline.split=kfold", "++pipeline.params.kfold.fold=5"])
    with pytest.raises(ConfigError, match="stratified_kfold.k must be at least 2"):
        validate(["pipeline.split=stratified_kfold", "++pipeline.params.stratified_kfold.k=1"])


@pytest.mark.parametrize(
    "name, params",
    [
        ("stratified", {}),
        ("random", {}),
        ("group", {"group_column": "customer"}),
        ("kfold", {}),
        ("stratified_kfold", {}),
    ],
)
def test_every_splitter_keeps_derived_rows_with_their_original(tmp_path, name, params):
    rows = _tickets()
    rows += [_derived(r, "eda1") for r in rows[::3]]
    rows += [{**_derived(r, "eda1"), "id": r["id"] + "~eda1~dup1", "parent_id": r["id"] + "~eda1"} for r in rows[:30:3]]
    data = _dataset(rows)
    ctx = _ctx(tmp_path)
    splits = _splitter(name, leakage="off", **params).split(data, ctx)
    split_of = _split_of(splits)
    assert all(split_of[i] == "train" for i in split_of if "~" in i)
    dropped = {i for d in ctx.drops for i in d.ids}
    assert dropped and all("~" in i and split_of.get(i.split("~")[0]) in ("validation", "test") for i in dropped)
    assert {d.reason for d in ctx.drops} == {"derived from a validation/test row"}
    keep = _splitter(name, leakage="off", eval_derived="keep", **params).split(data, _ctx(tmp_path))
    keep_of = _split_of(keep)
    assert len(keep_of) == len(rows)
    assert all(keep_of[i] == keep_of[i.split("~")[0]] for i in keep_of)


def test_stratified_split_tolerates_derived_rows_whose_original_was_undersampled(tmp_path):
    rows = _tickets({"billing": 8, "privacy": 8})
    orphan = _derived(rows[0], "eda1")
    rows = rows[1:] + [orphan]  # the original was dropped by an earlier step
    splits = _splitter("stratified", leakage="off").split(_dataset(rows), _ctx(tmp_path))
    assert orphan["id"] in splits["train"]["id"]


# --- leakage -------------------------------------------------------------------------


def _leak_rows():
    return [
        {"id": "tr1", "parent_id": None, "prompt": "Where is my order NW-100200?", "completion": "It ships today."},
        {
            "id": "tr2",
            "parent_id": None,
            "prompt": "How do I change the email address on my account?",
            "completion": "Go to Settings, then Account, and edit the email field.",
        },
        {
            "id": "tr3",
            "parent_id": None,
            "prompt": "Do you ship to Canada?",
            "completion": "Yes, within 5-7 business days.",
        },
        {
            "id": "te1",
            "parent_id": None,
            "prompt": "  where IS my order  NW-100200? ",
            "completion": "It ships today.",
        },  # exact after normalising
        {
            "id": "te2",
            "parent_id": None,
            "prompt": "How do I change the email address on my account? Thanks!",
            "completion": "Go to Settings, then Account, and edit the email field.",
        },  # near
        {
            "id": "te3",
            "parent_id": None,
            "prompt": "Can I pay with PayPal?",
            "completion": "Yes, PayPal and all major cards.",
        },  # clean
        {
            "id": "tr3~eda1",
            "parent_id": "tr3",
            "prompt": "Do you ship Canada to?",
            "completion": "Yes, within 5-7 business days.",
        },  # in test, parent in train
        {
            "id": "te1~dup1",
            "parent_id": "te1",
            "prompt": "where is my order NW-100200?",
            "completion": "It ships today.",
        },  # copy of a leaking row
        {
            "id": "va1",
            "parent_id": None,
            "prompt": "Do you ship to Canada?",
            "completion": "Yes, within 5-7 business days.",
        },
    ]


def _leak_indices():
    return {"train": [0, 1, 2], "validation": [8], "test": [3, 4, 5, 6, 7]}


def test_leakage_fix_drops_leaking_eval_rows_with_reasons(tmp_path):
    from tunelab_builtin.splitters._leakage import check_leakage

    data = _dataset(_leak_rows())
    ctx = _ctx(tmp_path)
    kept = check_leakage(data, _leak_indices(), ctx, mode="fix", near_threshold=0.5)
    assert [data["id"][i] for i in kept["test"]] == ["te3"] and kept["validation"] == [] and kept["train"] == [0, 1, 2]
    reasons = {i: d.reason for d in ctx.drops for i in d.ids}
    details = {i: detail for d in ctx.drops for i, detail in zip(d.ids, d.detail)}
    assert reasons == {
        "te1": "leak: exact duplicate of a train row",
        "va1": "leak: exact duplicate of a train row",
        "te2": "leak: near duplicate of a train row",
        "tr3~eda1": "leak: derived from a row in another split",
        "te1~dup1": "leak: derived from a leaking row",
    }
    assert details["te1"]["train_row"] == "tr1" and details["va1"]["train_row"] == "tr3"
    assert details["te2"]["train_row"] == "tr2" and 0.5 <= details["te2"]["similarity"] <= 1
    assert details["tr3~eda1"] == {"related_row": "tr3", "related_split": "train", "split": "test"}
    meta = ctx.metadata["leakage"]
    assert meta["exact_duplicate"] == {"validation": 1, "test": 1} and meta["near_duplicate"]["test"] == 1
    assert meta["dropped"] == 5 and meta["fields"] == ["prompt", "completion"]


def test_leakage_report_only_counts_and_off_does_nothing(tmp_path):
    from tunelab_builtin.splitters._leakage import check_leakage

    data = _dataset(_leak_rows())
    ctx = _ctx(tmp_path)
    kept = check_leakage(data, _leak_indices(), ctx, mode="report", near_threshold=0.5)
    assert kept == _leak_indices() and not ctx.drops
    meta = ctx.metadata["leakage"]
    assert meta["dropped"] == 0 and meta["exact_duplicate"]["test"] == 1 and meta["derived_from_leak"]["test"] == 1
    assert ctx.counters["leak_exact_duplicate"] == 2
    ctx = _ctx(tmp_path)
    assert check_leakage(data, _leak_indices(), ctx, mode="off") == _leak_indices()
    assert ctx.metadata["leakage"] == {"mode": "off"}
    # comparing only the answer makes te2 (and the eda row) exact duplicates too; no near check
    ctx = _ctx(tmp_path)
    check_leakage(data, _leak_indices(), ctx, mode="report", fields=["completion"], near_threshold=0)
    assert (
        ctx.metadata["leakage"]["exact_duplicate"]["test"] == 3
        and ctx.metadata["leakage"]["near_duplicate"]["test"] == 0
    )
    with pytest.raises(ValueError, match=r"leakage_fields \['answer'\] not in the data"):
        check_leakage(data, _leak_indices(), _ctx(tmp_path), fields=["answer"])
    with pytest.raises(ConfigError, match="stratified.leakage must be one of fix, report, off"):
        validate(["++pipeline.params.stratified.leakage=maybe"])


def test_leakage_fix_in_the_pipeline_names_the_train_row():
    prepared = _prepare(["pipeline=minimal", "pipeline.split=random"])
    split_of = _split_of(prepared.splits)
    ledger = read_ledger(prepared.directory / "ledger.jsonl")
    leaks = [r for r in ledger if r.get("reason", "").startswith("leak:")]
    meta = prepared.summary["metadata"]["random"]["leakage"]
    assert meta["dropped"] == len(leaks) > 0
    texts = {}
    for line_no, line in enumerate(SAMPLE.read_text(encoding="utf-8").splitlines(), start=1):
        texts[f"support_tickets.jsonl:{line_no}"] = json.loads(line)["question"]
    for record in leaks:
        assert record["id"] not in split_of and split_of[record["detail"]["train_row"]] == "train"
        mine, theirs = (
            set(texts[record["id"]].casefold().split()),
            set(texts[record["detail"]["train_row"]].casefold().split()),
        )
        assert len(mine & theirs) / len(mine | theirs) > 0.5  # really the same question
