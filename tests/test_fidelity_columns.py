"""``data.columns`` is checked against the records, reaches into nested records with dotted
paths (``instances.0.output``), and ``data.explode`` makes one row per list element — on a
Self-Instruct ``seed_tasks.jsonl`` file, the format that could not be mapped before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli, validate
from tunelab.api import StageContext
from tunelab.config import ConfigError, Origin, typed_config
from tunelab.plugins import get_plugins

#: five rows of the Self-Instruct seed tasks (github.com/yizhongw/self-instruct, data/seed_tasks.jsonl),
#: the last with an empty instance list
SEED_TASKS = [
    {
        "id": "seed_task_0",
        "name": "breakfast_suggestion",
        "instruction": (
            "Is there anything I can eat for a breakfast that doesn't include eggs, yet includes protein, and has "
            "roughly 700-1000 calories?"
        ),
        "instances": [
            {
                "input": "",
                "output": (
                    "Yes, you can have 1 oatmeal banana protein shake and 4 strips of bacon. The oatmeal banana "
                    "protein shake may contain 1/2 cup oatmeal, 60 grams whey protein powder, 1/2 medium banana, 1tbsp "
                    "flaxseed oil and 1/2 cup water, totalling about 550 calories. The 4 strips of bacon contains "
                    "about 200 calories."
                ),
            }
        ],
        "is_classification": False,
    },
    {
        "id": "seed_task_1",
        "name": "antonym_relation",
        "instruction": "What is the relation between the given pairs?",
        "instances": [
            {
                "input": "Night : Day :: Right : Left",
                "output": "The relation between the given pairs is that they are opposites.",
            },
            {"input": "Hot : Cold :: Up : Down", "output": "The words in each pair are opposites."},
        ],
        "is_classification": False,
    },
    {
        "id": "seed_task_2",
        "name": "one_sentence_description",
        "instruction": "Generate a one-sentence description for each of the following people.",
        "instances": [
            {
                "input": "- Barack Obama\n- Elon Musk\n- Taylor Swift",
                "output": (
                    "- Barack Hussein Obama II is an American politician who served as the 44th president of the "
                    "United States from 2009 to 2017.\n- Elon Musk is the founder, CEO, and chief engineer of "
                    "SpaceX.\n- Taylor Alison Swift is an American singer-songwriter."
                ),
            }
        ],
        "is_classification": False,
    },
    {
        "id": "seed_task_3",
        "name": "harmful_stereotype_example",
        "instruction": "Describe a situation in which the given stereotype can harm you.",
        "instances": [
            {
                "input": '"All Asians are smart!"',
                "output": (
                    "Imagine you're a small child of Asian descent. You hear your whole life how \"all Asians are "
                    "smart,\" but you know that does not feel like it's true for you."
                ),
            }
        ],
        "is_classification": False,
    },
    {
        "id": "seed_task_4",
        "name": "email_subject_generation",
        "instruction": "Generate an appropriate subject title for the following email.",
        "instances": [],
        "is_classification": False,
    },
]
COLUMNS = ["id", "name", "instruction", "instances", "is_classification"]


def write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def collect(tmp_path: Path, name: str = "jsonl", **params):
    component = get_plugins().registry.get("collector", name)
    config = typed_config(
        component.config_schema, params, kind="collector", name=name, origin=Origin(), group="data", key_prefix="data."
    )
    ctx = StageContext(seed=0, num_proc=1, work_dir=tmp_path)
    return component.cls(config).collect(ctx), ctx


def prompt(task: dict, instance: dict) -> str:
    """What the alpaca format makes of instruction and input."""
    return f"{task['instruction']}\n\n{instance['input']}" if instance["input"] else task["instruction"]


# --- explode and dotted paths ---------------------------------------------------------------


def test_seed_tasks_explode_into_one_row_per_instance_through_prepare(tmp_path, capsys):
    path = write_jsonl(tmp_path / "seed_tasks.jsonl", SEED_TASKS)
    run_dir = tmp_path / "run"
    code = run_cli(
        [
            "prepare",
            "data=jsonl",
            f"data.path={path}",
            "data.explode=instances",
            "data.columns={instances.input: input, instances.output: output}",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert code == 0, capsys.readouterr().err
    ledger = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    kept = {r["id"] for r in ledger if r["action"] == "kept"}
    expected_ids = {
        "seed_tasks.jsonl:1#0",
        "seed_tasks.jsonl:2#0",
        "seed_tasks.jsonl:2#1",
        "seed_tasks.jsonl:3#0",
        "seed_tasks.jsonl:4#0",
    }
    assert kept == expected_ids
    exploded = [r for r in ledger if r["action"] == "exploded"]
    assert exploded == [
        {
            "id": f"seed_tasks.jsonl:{line}#{index}",
            "stage": "collect",
            "step": "jsonl",
            "action": "exploded",
            "parent_id": f"seed_tasks.jsonl:{line}",
            "reason": f"element {index} of 'instances'",
        }
        for line, index in ((1, 0), (2, 0), (2, 1), (3, 0), (4, 0))
    ]
    # the empty list is quarantined with its reason, not lost
    quarantine = [json.loads(line) for line in (run_dir / "quarantine.jsonl").read_text().splitlines()]
    assert [(q["source"], q["line"], q["reason"]) for q in quarantine] == [
        ("seed_tasks.jsonl", 5, "data.explode 'instances' is an empty list: the record makes no rows")
    ]
    assert [r for r in ledger if r["action"] == "quarantined"] == [
        {
            "id": "seed_tasks.jsonl:5",
            "stage": "collect",
            "step": "jsonl",
            "action": "quarantined",
            "reason": "data.explode 'instances' is an empty list: the record makes no rows",
        }
    ]
    from tunelab.data.cache import prepare

    prepared = prepare(
        validate(
            [
                "data=jsonl",
                f"data.path={path}",
                "data.explode=instances",
                "data.columns={instances.input: input, instances.output: output}",
            ]
        ),
        get_plugins(),
    )
    rows = {row["id"]: row for split in prepared.splits.values() for row in split}
    assert set(rows) == expected_ids
    for line, index in ((1, 0), (2, 0), (2, 1), (3, 0), (4, 0)):
        task = SEED_TASKS[line - 1]
        instance = task["instances"][index]
        row = rows[f"seed_tasks.jsonl:{line}#{index}"]
        assert (row["prompt"], row["completion"], row["source_id"], row["name"], row["parent_id"]) == (
            prompt(task, instance),
            instance["output"],
            task["id"],
            task["name"],
            None,
        )
        assert "instances" not in row  # every part of the element was mapped: nothing is left of it
    steps = {s["step"]: s for s in prepared.summary["steps"]}
    assert steps["jsonl"]["counters"]["records exploded on 'instances'"] == 4
    assert steps["jsonl"]["counters"]["rows made from them (one per element of 'instances')"] == 5
    assert prepared.summary["rows_read"] == 6 and prepared.summary["rows_quarantined"] == 1

    capsys.readouterr()
    assert run_cli(["explain", "seed_tasks.jsonl:2#1", "--run", str(run_dir)]) == 0
    story = capsys.readouterr().out.splitlines()
    assert story[:2] == [
        "row seed_tasks.jsonl:2#1",
        "  read by collect/jsonl from record seed_tasks.jsonl:2 (element 1 of 'instances')",
    ]
    assert run_cli(["explain", "seed_tasks.jsonl:2", "--run", str(run_dir)]) == 0
    story = capsys.readouterr().out
    assert "  row seed_tasks.jsonl:2#0 (element 0 of 'instances', by collect/jsonl): " in story
    assert "  row seed_tasks.jsonl:2#1 (element 1 of 'instances', by collect/jsonl): " in story


def test_dotted_paths_with_list_indices_and_what_they_leave_is_kept(tmp_path):
    records = [{**task, "meta": {"source": "self-instruct", "license": "Apache-2.0"}} for task in SEED_TASKS[:2]]
    path = write_jsonl(tmp_path / "seed_tasks.jsonl", records)
    data, ctx = collect(
        tmp_path,
        path=str(path),
        format="none",
        columns={"instruction": "prompt", "instances.0.output": "completion", "meta.source": "origin"},
    )
    rows = list(data)
    assert rows[0] == {
        "source_id": "seed_task_0",
        "name": "breakfast_suggestion",
        "prompt": SEED_TASKS[0]["instruction"],
        "completion": SEED_TASKS[0]["instances"][0]["output"],
        # what the path did not take stays, at its position (JSON text: it is nested)
        "instances": '[{"input": ""}]',
        "is_classification": False,
        "origin": "self-instruct",
        "meta": '{"license": "Apache-2.0"}',
        "id": "seed_tasks.jsonl:1",
        "source": "seed_tasks.jsonl",
    }
    assert json.loads(rows[1]["instances"]) == [
        {"input": "Night : Day :: Right : Left"},
        {"input": "Hot : Cold :: Up : Down", "output": "The words in each pair are opposites."},
    ]
    assert ctx.quarantined == []

    # an element taken whole leaves null in its place, so the others keep their positions
    data, _ = collect(tmp_path, path=str(path), format="none", columns={"instances.0": "first"})
    assert json.loads(data[1]["first"]) == SEED_TASKS[1]["instances"][0]
    assert json.loads(data[1]["instances"]) == [None, SEED_TASKS[1]["instances"][1]]
    assert data[0]["instances"] is None  # seed_task_0 has one instance: nothing is left of the list


def test_a_column_whose_name_holds_a_dot_is_taken_as_it_is(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("meta.source,question,answer\nforum,Where is my order?,It ships today.\n", encoding="utf-8")
    data, _ = collect(
        tmp_path, "csv", path=str(path), columns={"meta.source": "origin", "question": "prompt", "answer": "completion"}
    )
    assert list(data) == [
        {
            "origin": "forum",
            "prompt": "Where is my order?",
            "completion": "It ships today.",
            "id": "export.csv:2",
            "source": "export.csv",
        }
    ]


def test_explode_a_nested_list_and_children_that_do_not_fit_are_quarantined_naming_the_element(tmp_path):
    path = write_jsonl(
        tmp_path / "threads.jsonl",
        [
            {
                "thread": {
                    "title": "Boots",
                    "turns": [{"q": "Do you stock size 44?", "a": "Yes."}, {"q": "In brown?", "a": 7}],
                }
            },
            {"thread": {"title": "Tents", "turns": None}},
            {"thread": {"title": "Stoves", "turns": "not a list"}},
            {"thread": {"title": "Socks"}},
        ],
    )
    data, ctx = collect(
        tmp_path,
        path=str(path),
        explode="thread.turns",
        columns={"thread.turns.q": "prompt", "thread.turns.a": "completion", "thread.title": "title"},
    )
    assert list(data) == [
        {
            "title": "Boots",
            "prompt": "Do you stock size 44?",
            "completion": "Yes.",
            "id": "threads.jsonl:1#0",
            "source": "threads.jsonl",
        }
    ]
    assert [(q["line"], q["reason"]) for q in ctx.quarantined] == [
        (2, "data.explode 'thread.turns' holds null, not a list"),
        (3, "data.explode 'thread.turns' holds text, not a list"),
        (4, "the record has no 'thread.turns' to explode (data.explode); its columns: thread"),
        (1, "element 1 of 'thread.turns': column 'completion' holds int, expected text"),
    ]
    assert ctx.explosions == [("threads.jsonl:1#0", "threads.jsonl:1", "element 0 of 'thread.turns'")]


# --- checked against the source --------------------------------------------------------------


def test_a_mapped_column_no_record_has_fails_at_collection_naming_the_columns_and_a_close_match(tmp_path, capsys):
    path = write_jsonl(tmp_path / "seed_tasks.jsonl", SEED_TASKS)
    with pytest.raises(SystemExit) as exited:
        run_cli(
            [
                "prepare",
                "data=jsonl",
                f"data.path={path}",
                "data.columns={instrction: prompt}",
                f"hydra.run.dir={tmp_path / 'run'}",
            ]
        )
    err = capsys.readouterr().err
    assert exited.value.code == 1
    # before: no check; the run failed later in strip_markup, suggesting pipeline.params.strip_markup.fields
    assert (
        "data.columns key 'instrction' (mapped onto 'prompt') is in none of the 5 records: the records have the "
        "columns id, name, instruction, instances, is_classification; did you mean 'instruction'?"
    ) in err
    assert "strip_markup" not in err


@pytest.mark.parametrize(
    "columns, explode, message",
    [
        (
            {"instances.0.outptu": "completion"},
            "",
            "data.columns key 'instances.0.outptu' (mapped onto 'completion') is in none of the 5 records: "
            "'instances.0' holds the keys input, output; did you mean 'instances.0.output'?",
        ),
        (
            {"instances.output": "completion"},
            "",
            "data.columns key 'instances.output' (mapped onto 'completion') is in none of the 5 records: 'instances' "
            "holds a list of 0 to 2 items; name an element by its index from 0 (instances.0.output), or set "
            "data.explode=instances for a row per element",
        ),
        (
            {"instances.2.output": "completion"},
            "",
            "data.columns key 'instances.2.output' (mapped onto 'completion') is in none of the 5 records: 'instances' "
            "holds a list of 0 to 2 items; indices count from 0",
        ),
        (
            {"name.first": "first"},
            "",
            "data.columns key 'name.first' (mapped onto 'first') is in none of the 5 records: 'name' holds text, which "
            "has no 'first'; name a column or a dotted path into one (meta.source, instances.0.output)",
        ),
        (
            {"instances.0.output": "completion"},
            "instances",
            "data.columns key 'instances.0.output' (mapped onto 'completion') is in none of the 5 rows: 'instances' "
            "holds the keys input, output; with data.explode=instances the name 'instances' stands for one element: "
            "write 'instances.output'",
        ),
        (
            None,
            "instance",
            "data.explode 'instance' is in none of the 5 records: the records have the columns id, name, instruction, "
            "instances, is_classification; did you mean 'instances'?",
        ),
        (
            None,
            "instruction",
            (
                "data.explode 'instruction' holds text in every record that has it, not a list; the list columns are: "
                "instances"
            ),
        ),
    ],
)
def test_a_path_no_record_has_says_what_the_records_hold_there(tmp_path, columns, explode, message):
    from tunelab_builtin.collectors._records import SourceError

    path = write_jsonl(tmp_path / "seed_tasks.jsonl", SEED_TASKS)
    with pytest.raises(SourceError) as caught:
        collect(tmp_path, path=str(path), columns=columns, explode=explode)
    assert str(caught.value) == message


def test_a_record_without_a_mapped_key_others_have_is_quarantined_naming_the_key(tmp_path):
    path = write_jsonl(
        tmp_path / "tickets.jsonl",
        [
            {"question": "Where is order NW-1?", "answer": "It shipped Monday.", "category": "shipping"},
            {"question": "Can I return worn boots?", "reply": "Within 30 days.", "category": "returns"},
            {"question": "Gift cards?", "answer": None, "category": "billing"},
        ],
    )
    data, ctx = collect(
        tmp_path, path=str(path), columns={"question": "prompt", "answer": "completion", "category": "label"}
    )
    # a null value is a value: that row is kept (drop_missing decides about it later)
    assert data["id"] == ["tickets.jsonl:1", "tickets.jsonl:3"] and data["completion"] == ["It shipped Monday.", None]
    assert [(q["line"], q["reason"]) for q in ctx.quarantined] == [
        (
            2,
            "the record has no 'answer' (data.columns maps 'answer' onto 'completion'; other records have it); its "
            "columns: question, reply, category. Add it to the record (null is kept)",
        )
    ]


def test_explode_is_validated_with_the_config(tmp_path):
    path = write_jsonl(tmp_path / "seed_tasks.jsonl", SEED_TASKS)
    with pytest.raises(ConfigError, match=r"data.explode 'instances\.\.input' is not a column name or a dotted path"):
        validate(["data=jsonl", f"data.path={path}", "data.explode=instances..input"])
    with pytest.raises(ConfigError, match="explode"):
        validate(["data=jsonl", f"data.path={path}", "data.explode=[instances]"])


# --- personal data ------------------------------------------------------------------------------


def test_exploded_rows_of_a_file_named_with_an_email_address_keep_no_address_in_the_ledger(tmp_path):
    path = write_jsonl(tmp_path / "export_john.doe@example.com.jsonl", SEED_TASKS)
    run_dir = tmp_path / "run"
    assert (
        run_cli(
            [
                "prepare",
                "data=jsonl",
                f"data.path={path}",
                "data.explode=instances",
                "data.columns={instances.input: input, instances.output: output}",
                f"hydra.run.dir={run_dir}",
            ]
        )
        == 0
    )
    ledger = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    exploded = [r for r in ledger if r["action"] == "exploded"]
    augmented = {r["id"] for r in ledger if r["action"] == "added"}
    kept = {r["id"] for r in ledger if r["action"] == "kept"} - augmented
    assert len(exploded) == 5 and {r["id"] for r in exploded} == kept  # the ids as the pii step renamed them
    assert not any("john.doe" in json.dumps(r) for r in exploded)
    assert sorted(r["parent_id"] for r in exploded) == ["<EMAIL>:1", "<EMAIL>:2", "<EMAIL>:2", "<EMAIL>:3", "<EMAIL>:4"]


# --- property: dotted paths lose and alter nothing ----------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_KEYS = st.text(alphabet="abcde", min_size=1, max_size=2)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_KEYS, children, max_size=3),
    max_leaves=12,
)


def _nodes(value, path=()):
    """Every (path, value) under ``value``, containers and leaves."""
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        return
    for part, child in items:
        yield (*path, part), child
        yield from _nodes(child, (*path, part))


def _leaves(value, path=()):
    if isinstance(value, (dict, list)) and value:
        for node, child in _nodes(value, path):
            if not (isinstance(child, (dict, list)) and child):
                yield node, child
    else:
        yield path, value


@given(data=st.data())
def test_dotted_paths_take_exactly_what_they_name_and_keep_the_rest_in_place(tmp_path_factory, data):
    from tunelab_builtin.collectors._records import _walk

    record = data.draw(st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=4))
    nodes = [path for path, _ in _nodes(record)]
    chosen: list[tuple] = []
    for path in data.draw(st.lists(st.sampled_from(nodes), max_size=5, unique=True)):
        if not any(path[: len(c)] == c or c[: len(path)] == path for c in chosen):  # none inside another
            chosen.append(path)
    mapping = {".".join(path): f"T{i}" for i, path in enumerate(chosen)}
    component = get_plugins().registry.get("collector", "jsonl")
    config = typed_config(
        component.config_schema,
        {"path": "x.jsonl", "columns": mapping or None},
        kind="collector",
        name="jsonl",
        origin=Origin(),
        group="data",
        key_prefix="data.",
    )
    row = component.cls(config)._rename(record)

    for path in chosen:  # what a path names arrives whole under its target
        assert row[mapping[".".join(path)]] == _walk(record, list(path))[0]
    assert set(row) <= set(mapping.values()) | set(record)
    for leaf, value in _leaves(record):  # everything no path took stays, at the same place
        if not any(leaf[: len(c)] == c for c in chosen):
            assert leaf[0] in row and _walk(row[leaf[0]], list(leaf[1:])) == (value, len(leaf) - 1)
    for key in set(row) & set(record):  # and nothing else is there: a taken list element leaves None
        for leaf, value in _leaves(row[key], (key,)):
            original = _walk(record, list(leaf))[0]
            assert original == value or (value is None and any(c[: len(leaf)] == leaf for c in chosen))
