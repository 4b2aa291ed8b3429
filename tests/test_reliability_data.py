"""Reliability against bad data (issue 7): property-based and table-driven tests.

Hypothesis writes junk rows — empty records, None values, huge strings, control and
binary characters, invalid UTF-8 bytes, wrong types (numbers, lists, objects where text
is expected), nested junk, duplicate ids — into the files every collector reads, and
runs every registered data operator on what the collectors make of them. Components are
enumerated from the plugin registry, so a new collector or operator is covered (or must
be listed in a skip table with a reason) without editing this file.

The invariants, for every generated case:

- nothing crashes without a clear message: a failure is a tunelab error (or a ValueError
  raised by tunelab's own code, which the engine turns into a DataError naming the step)
  that names the file or the step to fix, never an exception from deep inside a library;
- no row is lost: every input record is a row, or quarantined with source, line and
  reason; every operator passes the engine's ledger check (each row it removed was
  dropped with a reason, each row it added names its parent); a whole preparation
  balances (read + added == kept + dropped) and writes quarantine.jsonl.

The file-fault table at the end checks each broken-file case against the policy in
docs/components/collectors.md ("Bad input").
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import sqlite3
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import SOAK, tiny_translator, validate  # noqa: E402
from tunelab.api import KINDS, PARENT_ID, ROW_ID, StageContext  # noqa: E402
from tunelab.config import Origin, typed_config  # noqa: E402
from tunelab.data.cache import prepare  # noqa: E402
from tunelab.data.ledger import Ledger, LedgerError, read_ledger  # noqa: E402
from tunelab.data.pipeline import DataError  # noqa: E402
from tunelab.errors import TunelabError  # noqa: E402
from tunelab.plugins import get_plugins  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: an exception raised here is one of tunelab's own, written to be read by a user
OUR_CODE = (str(ROOT / "framework" / "tunelab"), str(ROOT / "plugins" / "tunelab_builtin"))
DATA_KINDS = ("cleaner", "annotator", "augmenter", "balancer", "splitter")
STAGE_OF = {
    "cleaner": "clean",
    "annotator": "annotate",
    "augmenter": "augment",
    "balancer": "balance",
    "splitter": "split",
}

#: every generated case of a test gets the loaded profile's example count; these settings
#: only relax the health checks that big generated strings and per-test fixtures trip
relaxed = settings(
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ]
)


@pytest.fixture(autouse=True, scope="module")
def _quiet_datasets():
    import datasets

    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


# --- junk ------------------------------------------------------------------------------

WORDS = (
    "order refund tent stove boots shipping invoice password account charged twice where is my "
    "package late broken pole return the a to of and please help need new why can I get"
).split()
CONTROL = "".join(map(chr, range(32))) + "\x7f\x85\u00a0\u200b\u200e\u202e\u2028\u2029\ufeff\ufffd"

sentences = st.lists(st.sampled_from(WORDS), min_size=1, max_size=25).map(" ".join)
junk_text = st.one_of(
    sentences,
    sentences,
    st.text(max_size=30),  # any code point except surrogates: emoji, combining marks, RTL, ...
    st.text(alphabet=CONTROL, max_size=8),
    st.sampled_from(
        [
            "",
            " ",
            "\n\n",
            "\t",
            "null",
            "None",
            "NaN",
            "<p></p>",
            "<script>alert(1)</script>",
            "Iâ€™m",
            "&amp;&#0;",
            "\x00",
            "a\r\nb",
            "[]",
            "{}",
            "1,234.5 on 05/03/2024 for $5",
            "jo@example.com +1 415 555 0100",
        ]
    ),
    # huge strings: cheap to generate, expensive to mishandle
    st.builds(
        lambda word, n: word * n,
        st.sampled_from(["word ", "ab", "x", "<b>", "é ", "\x00"]),
        st.sampled_from([1_000, 3_000, 100_000]),
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(min_value=2**64, max_value=2**80),  # too big for any Arrow integer
    st.floats(),  # NaN and infinities included (Python's json reads and writes them)
    junk_text,
)
nested = st.recursive(
    scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=5), kids, max_size=3)),
    max_leaves=6,
)
#: a value for a column that should hold text: mostly text, sometimes anything
text_value = st.one_of(junk_text, junk_text, junk_text, st.none(), nested)
label_value = st.one_of(
    st.sampled_from(["a", "b", "a", "b", "c", " ", "", "A "]),
    st.none(),
    st.integers(0, 2),
    st.floats(),
    st.booleans(),
    nested,
)
JUNK_KEYS = (
    "",
    " ",
    "id",
    "parent_id",
    "source",
    "source_id",
    "ünïcödé",
    "a.b",
    "__index_level_0__",
    "label ",
    "messages",
    "conversations",
    "instruction",
    "output",
    "chosen",
    "rejected",
)
#: label columns of one type each (what a typed source gives), or of mixed types
LABEL_KINDS = [
    label_value,
    st.sampled_from(["a", "b", "c"]),
    st.one_of(st.none(), st.sampled_from(["a", "b", " ", "", "ünï", "\x00"])),
    st.integers(-1, 2),
    st.floats(),  # NaN and infinities as labels
    st.booleans(),
    st.none(),  # an all-null column
]


def records_with(label: Any = label_value, text: Any = text_value) -> Any:
    """Records with the columns the operators read (some values junk), plus up to two
    junk columns (ids, reserved names, chat-format keys) each."""
    base = st.fixed_dictionaries(
        {
            "prompt": text,
            "completion": text,
            "text": text,
            "label": label,
            "group": st.sampled_from(["g1", "g2", None, 3]),
            "a1": label,
            "a2": label,
        }
    )
    return st.builds(
        lambda row, extra: {**row, **extra}, base, st.dictionaries(st.sampled_from(JUNK_KEYS), nested, max_size=2)
    )


records = records_with()
#: lines of a JSON Lines file that are not a good record
BAD_LINES = st.sampled_from(
    [
        b"{not json",
        b"[1, 2]",
        b"null",
        b'"just a string"',
        b"123",
        b"\xff\xfe\x00 broken bytes",
        b'{"prompt": "\xe9t\xe9", "completion": "latin-1"}',
        b'{"prompt": "lone \\ud800 surrogate", "completion": "x"}',
        b'{"\\udfff": 1, "text": "surrogate key"}',
        b'{"prompt": {"deep": "\\udc00"}, "text": "nested surrogate"}',
        b"{" * 3 + b"}" * 3,
        b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b"}",  # nested deeper than Python's recursion limit
        b'{"prompt": "deep", "a": ' + b"[" * 100 + b"]" * 100 + b"}",  # readable, too deep to keep
        b'{"prompt": "dup", "prompt": "keys", "completion": "c"}',
        b"{}",
        b'{"prompt": "x", "completion": "y"} trailing',
        b"   ",
        b"\t\r",
    ]
)


def jsonl_lines(draw: Any, rows: list[dict[str, Any]], bad: Any = BAD_LINES) -> list[bytes]:
    lines = [json.dumps(row, ensure_ascii=draw(st.booleans())).encode() for row in rows]
    for _ in range(draw(st.integers(0, 4))):
        at, line = draw(st.integers(0, len(lines))), draw(bad)
        if line.startswith(b"[") and not any(earlier.strip() for earlier in lines[:at]):
            continue  # a file that starts with "[" is a JSON array document, not JSON Lines
        lines.insert(at, line)
    return lines


def text_cell(value: Any) -> str:
    """How a generated value looks in a CSV cell or a database text column."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


# --- running components like the engine does --------------------------------------------


def registry():
    return get_plugins().registry


def make(kind: str, name: str, params: dict[str, Any] | None = None) -> Any:
    component = registry().get(kind, name)
    config = typed_config(
        component.config_schema, dict(params or {}), kind=kind, name=name, origin=Origin(), group=kind, key_prefix=""
    )
    return component.cls(config)


def context(work_dir: Path, step: str = "") -> StageContext:
    return StageContext(seed=0, num_proc=1, work_dir=work_dir, label_column="label", factory=make, step=step)


def assert_clear_error(exc: BaseException, *names: str) -> None:
    """``exc`` is a message for a user: a tunelab error, or a ValueError that tunelab code
    raised on purpose (the engine turns those into a DataError naming the step). It must
    name one of ``names`` (the file, the step or the parameter to fix). A lost row
    (LedgerError) or an exception thrown from inside a library is a bug."""
    assert not isinstance(exc, LedgerError), f"rows were lost: {exc}"
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    ours = where is not None and where.filename.startswith(OUR_CODE)
    detail = "".join(traceback.format_exception(exc))
    assert isinstance(exc, (TunelabError, ValueError)) and ours, f"unclear failure ({type(exc).__name__}):\n{detail}"
    assert not isinstance(exc, (UnicodeError, json.JSONDecodeError)), f"unclear failure:\n{detail}"
    message = str(exc)
    assert any(name in message for name in names), f"the message names none of {names}: {message}"


def account(data: Any, ctx: StageContext, expected: dict[str, int]) -> None:
    """Every record of every file is a row or quarantined; a file that could not be read
    at all is one quarantine entry (line None, or 'the file was not read')."""
    ids = list(data[ROW_ID])
    assert len(ids) == len(set(ids)), f"duplicate row ids: {[i for i, n in Counter(ids).items() if n > 1][:5]}"
    rows = Counter(data["source"]) if len(data) else Counter()
    entries: dict[str, list[dict[str, Any]]] = {}
    for item in ctx.quarantined:
        assert set(item) >= {"source", "line", "reason"} and item["reason"], item
        assert item["line"] is None or isinstance(item["line"], int), item
        json.dumps(item, ensure_ascii=False).encode("utf-8")  # quarantine.jsonl can be written
        entries.setdefault(item["source"], []).append(item)
    assert set(rows) | set(entries) <= set(expected), (set(rows) | set(entries), set(expected))
    for source, count in expected.items():
        mine = entries.get(source, [])
        whole = [q for q in mine if q["line"] is None and count != 1 or "the file was not read" in q["reason"]]
        if whole:
            assert len(mine) == 1 and rows[source] == 0, (source, mine, rows[source])
        else:
            assert rows[source] + len(mine) == count, (
                f"{source}: {rows[source]} rows + {len(mine)} quarantined != {count} records: {mine}"
            )


def collect(name: str, params: dict[str, Any], work_dir: Path) -> tuple[Any, StageContext]:
    ctx = context(work_dir, name)
    return make("collector", name, params).collect(ctx), ctx


# --- writers: one per collector ----------------------------------------------------------
# Each draws the files of one source from generated records and returns the collector's
# params and, per source label, how many records the files hold.

Writer = Callable[[Any, Path], tuple[dict[str, Any], dict[str, int]]]


def write_jsonl(draw: Any, root: Path) -> tuple[dict[str, Any], dict[str, int]]:
    expected = {}
    for n in range(draw(st.integers(1, 2))):
        lines = jsonl_lines(draw, draw(st.lists(records, max_size=6)))
        gz = draw(st.booleans())
        name = f"part{n}.jsonl" + (".gz" if gz else "")
        blob = b"\n".join(lines) + draw(st.sampled_from([b"\n", b"", b"\r\n"]))
        (root / name).write_bytes(gzip.compress(blob) if gz else blob)
        expected[name] = sum(1 for line in lines if line.strip())
    return {"path": str(root)}, expected


def write_json(draw: Any, root: Path) -> tuple[dict[str, Any], dict[str, int]]:
    items = draw(st.lists(st.one_of(records, records, nested), max_size=6))
    key = draw(st.sampled_from(["", "data"]))
    document = {"version": 2, key: items} if key else items
    blob = json.dumps(document, ensure_ascii=draw(st.booleans())).encode()
    count = len(items)
    if draw(st.integers(0, 5)) == 0:
        blob = blob[: draw(st.integers(0, len(blob) - 1))]  # cut short: the file is one quarantine entry
        count = 1
    (root / "doc.json").write_bytes(blob)
    return {"path": str(root / "doc.json"), "records_key": key}, {"doc.json": count}


def write_delimited(delimiter: str, suffix: str) -> Writer:
    def write(draw: Any, root: Path) -> tuple[dict[str, Any], dict[str, int]]:
        rows = draw(st.lists(records, max_size=6))
        header = ["prompt", "completion", "text", "label", "group"]
        buffer = io.StringIO()
        # "\r\n" line ends: Python's writer then quotes a field holding a bare \r too
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(header)
        count = 0
        for row in rows:
            cells = [text_cell(row.get(column)) for column in header]
            if draw(st.integers(0, 6)) == 0:
                cells = cells[: draw(st.integers(1, len(cells) - 1))]  # a ragged row
            writer.writerow(cells)
            count += 1
        blob = buffer.getvalue().encode("utf-8", "surrogatepass")
        (root / f"t{suffix}").write_bytes(blob)
        return {"path": str(root / f"t{suffix}")}, {f"t{suffix}": count}

    return write


def write_parquet(draw: Any, root: Path) -> tuple[dict[str, Any], dict[str, int]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = draw(st.integers(0, 6))
    columns = {
        "prompt": (pa.string(), text_value.map(lambda v: v if v is None or isinstance(v, str) else text_cell(v))),
        "completion": (pa.string(), st.one_of(st.none(), junk_text)),
        "label": draw(
            st.sampled_from(
                [
                    (pa.string(), st.sampled_from(["a", "b", None])),
                    (pa.int64(), st.one_of(st.none(), st.integers(0, 3))),
                    (pa.float64(), st.floats()),
                ]
            )
        ),
        "text": draw(
            st.sampled_from(
                [
                    (pa.string(), junk_text),
                    (pa.binary(), st.binary(max_size=20)),
                    (pa.list_(pa.string()), st.lists(junk_text, max_size=2)),
                ]
            )
        ),
        "meta": (
            pa.struct([("k", pa.string()), ("n", pa.int64())]),
            st.fixed_dictionaries(
                {"k": st.one_of(st.none(), junk_text), "n": st.one_of(st.none(), st.integers(-5, 5))}
            ),
        ),
        "big": (pa.uint64(), st.integers(0, 2**64 - 1)),
    }
    table = pa.table(
        {name: pa.array([draw(values) for _ in range(n)], type=kind) for name, (kind, values) in columns.items()}
    )
    pq.write_table(table, root / "rows.parquet")
    return {"path": str(root / "rows.parquet")}, {"rows.parquet": n}


def write_text(draw: Any, root: Path) -> tuple[dict[str, Any], dict[str, int]]:
    unit = draw(st.sampled_from(["file", "paragraph", "line"]))
    parts = draw(
        st.lists(st.one_of(junk_text.map(lambda s: s.encode("utf-8")), st.just(b""), st.binary(max_size=8)), max_size=8)
    )
    blob = b"\n".join(parts)
    (root / "notes.txt").write_bytes(blob)
    lines = blob.removeprefix(b"\xef\xbb\xbf").splitlines()  # a UTF-8 byte-order mark is not text
    if unit == "file":
        count = int(any(line.strip() for line in lines))
    elif unit == "line":
        count = sum(1 for line in lines if line.strip())
    else:
        count = sum(1 for i, line in enumerate(lines) if line.strip() and (i == 0 or not lines[i - 1].strip()))
    return {"path": str(root / "notes.txt"), "unit": unit}, ({"notes.txt": count} if count else {"notes.txt": 0})


def write_html(draw: Any, root: Path) -> tuple[dict[str, Any], dict[str, int]]:
    expected = {}
    for n in range(draw(st.integers(1, 3))):
        body = draw(
            st.one_of(
                junk_text.map(
                    lambda s: f"<html><head><title>t</title></head><body><main><p>{s}</p></main></body></html>".encode(
                        "utf-8", "replace"
                    )
                ),
                st.sampled_from(
                    [
                        b"",
                        b"<html><body></body></html>",
                        b"<html><body><script>x()</script><nav>menu</nav></body></html>",
                        b"<p>unclosed <b>tags",
                    ]
                ),
                st.binary(max_size=60),
            )
        )
        (root / f"page{n}.html").write_bytes(body)
        expected[f"page{n}.html"] = 1
    return {"path": str(root)}, expected


def pdf_bytes(pages: list[str], password: str | None = None) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=10)
    for text in pages:
        pdf.add_page()
        printable = (
            "".join(ch for ch in text if ch.isprintable() or ch == "\n").encode("latin-1", "replace").decode("latin-1")
        )
        if printable.strip():
            pdf.multi_cell(0, 5, printable[:2000])
    if password is not None:
        pdf.set_encryption(owner_password="owner", user_password=password)
    return bytes(pdf.output())


def write_pdf(draw: Any, root: Path) -> tuple[dict[str, Any], dict[str, int]]:
    unit = draw(st.sampled_from(["file", "page"]))
    expected = {}
    for n in range(draw(st.integers(1, 2))):
        pages = draw(st.lists(junk_text, min_size=1, max_size=3))
        blob = pdf_bytes(pages, password=draw(st.sampled_from([None, None, "secret"])))
        fault = draw(st.sampled_from(["none", "none", "truncate", "garbage"]))
        if fault == "truncate":
            blob = blob[: draw(st.integers(0, len(blob) - 1))]
        elif fault == "garbage":
            blob = draw(st.binary(max_size=40))
        (root / f"doc{n}.pdf").write_bytes(blob)
        expected[f"doc{n}.pdf"] = 1 if unit == "file" else len(pages)
    return {"path": str(root), "unit": unit}, expected


def write_sql(draw: Any, root: Path) -> tuple[dict[str, Any], dict[str, int]]:
    database = root / "rows.db"
    rows = draw(st.lists(records, max_size=6))
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.execute("CREATE TABLE t (prompt TEXT, completion, text, label, extra BLOB)")
        for row in rows:
            values = []
            for column in ("prompt", "completion", "text", "label"):
                value = row.get(column)
                if isinstance(value, (list, dict)) or isinstance(value, int) and not -(2**63) <= value < 2**63:
                    value = text_cell(value)
                values.append(value)
            raw = draw(st.sampled_from([None, b"\x00\xff", "plain"]))
            connection.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", values + [raw])
        if rows and draw(st.booleans()):  # text that is not valid UTF-8 in a TEXT column
            connection.execute("UPDATE t SET prompt = CAST(x'ff41' AS TEXT) WHERE rowid = 1")
        connection.commit()
    url = f"sqlite:///{database}"
    return {"url": url, "query": "SELECT * FROM t"}, {url: len(rows)}


def write_hf_dataset(draw: Any, root: Path) -> tuple[dict[str, Any], dict[str, int]]:
    from datasets import Dataset

    mode = draw(st.sampled_from(["saved", "json"]))
    rows = draw(st.lists(records, min_size=0 if mode == "json" else 1, max_size=6))
    if mode == "json":
        # (a file starting with "[" is a JSON array document to datasets: one record per item)
        lines = jsonl_lines(draw, rows, BAD_LINES.filter(lambda line: not line.startswith(b"[")))
        (root / "rows.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        return {"path": "json", "data_files": [str(root / "rows.jsonl")]}, {
            "json:train": sum(1 for line in lines if line.strip())
        }
    # a saved dataset has one type per column: text columns as text (or null)
    table = {
        column: [text_cell(row[column]) if row[column] is not None else None for row in rows]
        for column in ("prompt", "completion", "text", "label")
    }
    Dataset.from_dict(table).save_to_disk(str(root / "saved"))
    return {"path": str(root / "saved")}, {"saved:train": len(rows)}


WRITERS: dict[str, Writer] = {
    "jsonl": write_jsonl,
    "json": write_json,
    "csv": write_delimited(",", ".csv"),
    "tsv": write_delimited("\t", ".tsv"),
    "parquet": write_parquet,
    "text": write_text,
    "html": write_html,
    "pdf": write_pdf,
    "sql": write_sql,
    "hf_dataset": write_hf_dataset,
}
#: collectors whose documented policy fails the whole source for some generated bad
#: records (with a clear message); every other collector must quarantine them one by one
WHOLE_SOURCE_ERRORS = {
    # datasets' json builder reads a file whole: a line that is not an object fails it (the
    # message names the file and line and points to data=jsonl, which quarantines per line)
    "hf_dataset": "a bad line fails the file",
}


# --- operators -----------------------------------------------------------------------------


def _labels(rows: Any) -> list[str]:
    """The labels a balancer sees in generated rows (as it names them: str(value))."""
    return (
        sorted({str(v) for v in rows["label"] if v is not None and not (isinstance(v, str) and not v.strip())})
        if "label" in rows.column_names
        else []
    )


#: params that make an operator runnable on the generated rows (a required field, or one
#: that points it at the generated columns; a function of the rows for the ones that must
#: name the labels present); the defaults are used for everything else
OPERATOR_PARAMS: dict[str, Any] = {
    "consensus": {"annotator_columns": ["a1", "a2"], "tie_policy": "review"},
    "template": lambda rows: {
        "templates": [{"prompt": "Is the {item} {state}?", "completion": "Yes, the {item}.", "text": "{item} {state}"}],
        "slots": {"item": ["tent", "stove"], "state": ["late", "broken"]},
        "label": (_labels(rows) or [None])[0],
        "count": 3,
    },
    "target_distribution": lambda rows: {
        "distribution": {label: 1 / len(_labels(rows)) for label in _labels(rows)} or {"a": 1.0}
    },
    "kfold": {"k": 2},
    "stratified_kfold": {"k": 2},
    "group": {"group_column": "group"},
    "language_filter": {"fields": ["prompt"], "min_chars": 5},
    "quality_filter": {"fields": ["prompt"]},
    "strip_markup": {"fields": ["prompt", "completion"]},
    "standardize_formats": {"fields": ["prompt", "completion"]},
    "word_filter": {"fields": ["prompt"]},
    "near_dedup": {"fields": ["prompt"], "num_perm": 32},
}
#: operators that run a (tiny, random) transformer: fewer generated cases, built models
MODEL_OPERATORS = {"auto_label", "back_translation", "paraphrase"}


def _skipped_operators() -> dict[str, str]:
    """Operators this machine cannot run, and why; every other registered operator runs.
    Nothing is skipped where the dev dependencies are installed: the model-backed ones run
    on tiny random models built by the ``tiny_models`` fixture (nothing is downloaded)."""
    import importlib.util

    from tunelab_builtin._lib.wordnet import locate

    skipped = {}
    try:
        locate(None, "wordnet_dir")
    except ValueError:
        for name in ("synonym", "eda", "augment_minority"):  # augment_minority augments with eda
            skipped[name] = "needs the WordNet database (apt-get install wordnet-base), not found on this machine"
    if importlib.util.find_spec("py3langid") is None:
        skipped["language_filter"] = "needs py3langid (pip install 'tunelab[data]'), not installed"
    return skipped


#: operators this test does not run, and why (an operator not listed here is covered)
SKIPPED_OPERATORS: dict[str, str] = _skipped_operators()


def operator_names(models: bool = False) -> list[str]:
    reg = get_plugins(reload=True).registry
    return [f"{kind}/{name}" for kind in DATA_KINDS for name in reg.names(kind) if (name in MODEL_OPERATORS) == models]


def collected(draw: Any, root: Path, most: int = 12) -> Any:
    """Rows as the engine hands them to the first step: generated records written as JSON
    Lines, read by the jsonl collector, with parent_id added; some rows then derived from
    others (as augmenters and oversampling leave them), some parents already dropped."""
    from datasets import Dataset, Value, concatenate_datasets

    kind = draw(st.sampled_from(LABEL_KINDS))
    # text columns: junk text and None, wrong types now and then (those rows are quarantined)
    texts = draw(
        st.sampled_from(
            [st.one_of(junk_text, st.none()), st.one_of(junk_text, junk_text, st.none(), nested), sentences]
        )
    )
    rows = draw(st.lists(records_with(kind, texts), min_size=2, max_size=most))
    path = root / "input.jsonl"
    path.write_bytes(b"\n".join(jsonl_lines(draw, rows)) + b"\n")
    data, _ = collect("jsonl", {"path": str(path), "format": draw(st.sampled_from(["none", "none", "auto"]))}, root)
    if not len(data):
        return data
    data = data.add_column(PARENT_ID, [None] * len(data)).cast_column(PARENT_ID, Value("string"))
    derived = draw(st.lists(st.integers(0, len(data) - 1), max_size=4, unique=True))
    if derived:
        children = data.select(derived).to_list()
        for n, child in enumerate(children):
            child[PARENT_ID] = child[ROW_ID] if n % 3 else child[ROW_ID] + "~gone1"  # a parent an earlier step dropped
            child[ROW_ID] = f"{child[ROW_ID]}~gen{n + 1}"
        data = concatenate_datasets([data, Dataset.from_list(children, features=data.features)])
    return data


def run_operator(kind: str, name: str, data: Any, work_dir: Path, params: dict[str, Any]) -> Any:
    """One step as the engine's checked_step runs it: the result must pass the ledger."""
    operator = make(kind, name, params)
    ctx = context(work_dir, name)
    ids_in = list(data[ROW_ID])
    result = operator.split(data, ctx) if kind == "splitter" else operator.apply(data, ctx)
    parts = list(result.values()) if isinstance(result, dict) else [result]
    ids_out: list[str] = []
    parents_out: list[str | None] = []
    for part in parts:
        assert ROW_ID in part.column_names and PARENT_ID in part.column_names, (
            f"{name} removed the id or parent_id column"
        )
        ids_out += list(part[ROW_ID])
        parents_out += list(part[PARENT_ID])
    Ledger().check_step(STAGE_OF[kind], name, ids_in, ids_out, parents_out, ctx)  # raises LedgerError
    dropped = {row_id for drop in ctx.drops for row_id in drop.ids}
    for entry in ctx.quarantined:
        # a step may set a row aside for review (strip_markup): only a row it dropped, named by id
        assert entry.get("id") in dropped and entry.get("step") == name and entry["reason"], (
            f"{name} quarantined {entry}; a step may only quarantine rows it dropped, with row_id"
        )
    json.dumps(ctx.metadata, default=None)  # the report must be able to hold it
    return result


# --- the tests ---------------------------------------------------------------------------


def test_every_collector_has_a_writer():
    assert set(registry().names("collector")) == set(WRITERS), (
        "give each collector a writer in WRITERS (or a skip reason)"
    )
    assert set(DATA_KINDS) | {"collector"} <= set(KINDS)
    assert all(reason.strip() for reason in SKIPPED_OPERATORS.values())


@pytest.mark.parametrize("name", sorted(WRITERS))
@relaxed
@given(data=st.data())
def test_collector_accounts_for_every_record(name, data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        params, expected = WRITERS[name](data.draw, root)
        try:
            collected_rows, ctx = collect(name, params, root)
        except Exception as exc:  # noqa: BLE001 - judged below
            if not any(expected.values()) and "holds no records" in str(exc):
                # a source without a single record is refused, naming each of its files
                assert_clear_error(exc, "data.path")
                assert all(label in str(exc) for label in expected), str(exc)
                return
            if name not in WHOLE_SOURCE_ERRORS:
                raise
            given = [str(v) for v in params.values() if isinstance(v, str)] + list(params.get("data_files", []))
            assert_clear_error(exc, *expected, *(str(root / label) for label in expected), *given, "data.")
            return
        account(collected_rows, ctx, expected)


def check_operators(components: list[str], data: Any, extra: dict[str, dict[str, Any]], most: int = 12) -> None:
    """Each operator on the same generated rows (each on its own copy, as the first step
    of a pipeline would get them): it passes the ledger check or fails clearly."""
    with tempfile.TemporaryDirectory() as tmp:
        rows = collected(data.draw, Path(tmp), most)
        if not len(rows):
            return
        for component in components:
            kind, name = component.split("/")
            fixed = OPERATOR_PARAMS.get(name, {})
            params = {**(fixed(rows) if callable(fixed) else fixed), **extra.get(name, {})}
            try:
                run_operator(kind, name, rows, Path(tmp), params)
            except Exception as exc:  # noqa: BLE001 - judged below
                try:
                    assert_clear_error(exc, name)
                except AssertionError as failure:
                    raise AssertionError(f"{component} with params {params}: {failure}") from exc


#: the operators the property test runs, in pipeline order
OPERATORS = [c for c in operator_names() if c.split("/")[1] not in SKIPPED_OPERATORS]


def test_operator_lists_are_complete():
    names = {name for kind in DATA_KINDS for name in registry().names(kind)}
    covered = {c.split("/")[1] for c in OPERATORS + operator_names(models=True)}
    assert names == covered | (set(SKIPPED_OPERATORS) & names)
    assert set(SKIPPED_OPERATORS) <= names, (
        "a skipped operator that is not registered any more: drop it from SKIPPED_OPERATORS"
    )


# every operator runs on each generated case: that is ~25 steps per case, so fewer cases
@settings(relaxed, max_examples=20 if not SOAK else 800)
@given(data=st.data())
def test_every_operator_accounts_for_every_row(data):
    check_operators(OPERATORS, data, {})


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """Params that point the model-backed operators at tiny random models built here."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    root = tmp_path_factory.mktemp("tiny-models")
    torch.manual_seed(0)
    encoder = root / "encoder"
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS))])}
    BertTokenizer(vocab=vocab).save_pretrained(encoder)
    BertModel(
        BertConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
        )
    ).save_pretrained(encoder)
    translator = root / "translator"
    tiny_translator(translator, seed=0, tie_embeddings=True)  # BartConfig's default ties them
    return {
        "auto_label": {
            "labels": {"a": "refund charged invoice", "b": "package shipping late"},
            "model_path": str(encoder),
            "max_length": 32,
        },
        "back_translation": {
            "forward_model": str(translator),
            "backward_model": str(translator),
            "max_new_tokens": 8,
            "fraction": 0.5,
        },
        "paraphrase": {"model": "tiny", "max_new_tokens": 8, "fraction": 0.5},
    }


# a transformer forward pass per row (tiny random models, still the slowest steps)
@settings(relaxed, max_examples=4 if not SOAK else 200)
@given(data=st.data())
def test_model_backed_operators_account_for_every_row(data, tiny_models):
    check_operators(
        [c for c in operator_names(models=True) if c.split("/")[1] not in SKIPPED_OPERATORS], data, tiny_models, most=5
    )


# --- a whole preparation ---------------------------------------------------------------------


def random_pipeline(draw: Any) -> list[str]:
    """Overrides for a pipeline of registered steps in a random order and combination."""
    reg = registry()

    def usable(kind: str) -> list[str]:
        # (steps whose params depend on the data are left to the operator test)
        return [
            n
            for n in reg.names(kind)
            if n not in SKIPPED_OPERATORS and n not in MODEL_OPERATORS and not callable(OPERATOR_PARAMS.get(n))
        ]

    overrides = ["pipeline=minimal"]
    chosen = []
    for kind, most in (("cleaner", 4), ("annotator", 1), ("augmenter", 2), ("balancer", 2)):
        steps = draw(st.lists(st.sampled_from(usable(kind)), unique=True, max_size=most))
        overrides.append(f"pipeline.{STAGE_OF[kind]}=[{','.join(steps)}]")
        chosen += steps
    splitter = draw(st.sampled_from(usable("splitter")))
    overrides.append(f"pipeline.split={splitter}")
    for name in [*chosen, splitter]:
        overrides += [
            f"++pipeline.params.{name}.{key}={json.dumps(value)}"
            for key, value in OPERATOR_PARAMS.get(name, {}).items()
        ]
    return overrides


@settings(relaxed, max_examples=8 if not SOAK else 300)
@given(data=st.data())
def test_prepare_accounts_for_every_input_line(data):
    """The real engine (prepare) on a generated JSON Lines file, with a ready-made pipeline
    or registered steps in a random combination: it fails with a tunelab error naming the
    step, or every non-blank input line is in a split, dropped with a reason in
    ledger.jsonl, or in quarantine.jsonl with its line."""
    pipeline = data.draw(st.sampled_from(["default", "strict", "minimal", "random", "random"]))
    overrides = random_pipeline(data.draw) if pipeline == "random" else [f"pipeline={pipeline}"]
    texts = data.draw(st.sampled_from([text_value, st.one_of(sentences, sentences, junk_text, st.none())]))
    lines = jsonl_lines(
        data.draw,
        data.draw(st.lists(records_with(data.draw(st.sampled_from(LABEL_KINDS)), texts), min_size=5, max_size=30)),
    )
    overrides += ["data=jsonl", f"data.format={data.draw(st.sampled_from(['none', 'none', 'auto']))}"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        try:
            prepared = prepare(validate([*overrides, f"data.path={path}"]), get_plugins())
        except Exception as exc:  # noqa: BLE001 - judged below
            assert isinstance(exc, DataError), "".join(traceback.format_exception(exc))
            assert_clear_error(exc, "step '", "collector '", "splitter '", "input.jsonl")
            if exc.__cause__ is not None:  # the operator's own error, turned into a DataError by the engine
                assert_clear_error(exc.__cause__, *str(exc.__cause__)[:1])
            return
        numbers = [n for n, line in enumerate(lines, start=1) if line.strip()]
        summary = prepared.summary
        assert summary["rows_read"] == len(numbers)
        assert summary["rows_read"] + summary["rows_added"] == summary["rows_final"] + summary["rows_dropped"]
        text = (prepared.directory / "quarantine.jsonl").read_text(encoding="utf-8")
        quarantine = [json.loads(line) for line in text.split("\n") if line]  # (str.splitlines also splits at U+2028)
        assert len(quarantine) == summary["rows_quarantined"]
        assert all(q["source"] == "input.jsonl" and q["line"] in numbers and q["reason"] for q in quarantine), (
            quarantine
        )
        ledger = read_ledger(prepared.directory / "ledger.jsonl")
        kept = {row_id for split in prepared.splits.values() for row_id in split[ROW_ID]}
        dropped = {r["id"] for r in ledger if r["action"] in ("dropped", "quarantined")}
        assert not kept & dropped
        assert {f"input.jsonl:{n}" for n in numbers} == {i for i in kept | dropped if "~" not in i}
        assert {r["id"] for r in ledger if r["action"] == "kept"} == kept


# --- broken files: the documented policy, case by case ------------------------------------------


def _gzip_cut(tmp: Path) -> dict[str, Any]:
    blob = gzip.compress(
        b"".join(json.dumps({"prompt": f"question {i}", "completion": "answer"}).encode() + b"\n" for i in range(200))
    )
    (tmp / "rows.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    return {"path": str(tmp / "rows.jsonl.gz")}


def _gzip_corrupt(tmp: Path) -> dict[str, Any]:
    blob = bytearray(
        gzip.compress(
            b"".join(json.dumps({"prompt": f"question {i}", "completion": "a"}).encode() + b"\n" for i in range(200))
        )
    )
    blob[20:40] = b"\xff" * 20  # damaged deflate data, intact header
    (tmp / "rows.jsonl.gz").write_bytes(bytes(blob))
    return {"path": str(tmp / "rows.jsonl.gz")}


def _parquet_cut(tmp: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"prompt": [f"question {i}" for i in range(100)], "completion": ["answer"] * 100}),
        tmp / "rows.parquet",
    )
    blob = (tmp / "rows.parquet").read_bytes()
    (tmp / "rows.parquet").write_bytes(blob[: len(blob) * 2 // 3])
    return {"path": str(tmp / "rows.parquet")}


def _write(name: str, blob: bytes, **params: Any) -> Callable[[Path], dict[str, Any]]:
    def write(tmp: Path) -> dict[str, Any]:
        (tmp / name).write_bytes(blob)
        return {"path": str(tmp / name), **params}

    return write


def _pdf(encryption: str | None, **params: Any) -> Callable[[Path], dict[str, Any]]:
    text = ["How to pitch the Ridgeline tent in wind."]
    return _write(
        "manual.pdf", pdf_bytes(text, password=encryption) if encryption != "cut" else pdf_bytes(text)[:300], **params
    )


def _sqlite(query: str) -> Callable[[Path], dict[str, Any]]:
    def write(tmp: Path) -> dict[str, Any]:
        with contextlib.closing(sqlite3.connect(tmp / "tickets.db")) as connection:
            connection.execute("CREATE TABLE tickets (prompt TEXT, completion TEXT)")
            connection.execute("INSERT INTO tickets VALUES ('where is my order?', 'it ships today')")
            connection.commit()
        return {"url": f"sqlite:///{tmp / 'tickets.db'}", "query": query}

    return write


def _hf_saved_cut(tmp: Path) -> dict[str, Any]:
    from datasets import Dataset

    Dataset.from_dict({"prompt": [f"question {i}" for i in range(50)], "completion": ["a"] * 50}).save_to_disk(
        str(tmp / "saved")
    )
    arrow = next((tmp / "saved").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:200])
    return {"path": str(tmp / "saved")}


#: (collector, write the file and return params, expected) — expected is ("error", pattern)
#: for a source that cannot be read (the message names the file and the fix), or
#: ("quarantine", line, pattern, rows kept) for a record that is quarantined
FILE_FAULTS: dict[str, tuple[str, Callable[[Path], dict[str, Any]], tuple[Any, ...]]] = {
    "truncated parquet": ("parquet", _parquet_cut, ("error", r"rows\.parquet is not a readable Parquet file")),
    "empty parquet file": (
        "parquet",
        _write("rows.parquet", b""),
        ("error", r"rows\.parquet is not a readable Parquet file"),
    ),
    "csv renamed parquet": (
        "parquet",
        _write("rows.parquet", b"prompt,completion\na,b\n"),
        ("error", r"rows\.parquet is not a readable Parquet file"),
    ),
    "csv ragged row": (
        "csv",
        _write("t.csv", b"prompt,completion\na,b\nc\ng,h\n"),
        ("quarantine", 3, r"expected 2 fields, found 1", 2),
    ),
    "csv unterminated quote": (
        "csv",
        _write("t.csv", b'prompt,completion\na,b\n"c,d\n'),
        (
            "quarantine",
            3,
            (
                r"^malformed CSV: unterminated quote: a quoted field that opens on line 3 and is never closed "
                r"\(read as one field it runs to the end of the file\)$"
            ),
            1,
        ),
    ),
    "csv unterminated quote, rows after it": (
        "csv",
        _write("t.csv", b'prompt,completion\n"a,b\nc,d\ne,f\n'),
        (
            "quarantine",
            2,
            r"unterminated quote: a quoted field that opens on line 2 .*; lines 3-4 are read again as records$",
            2,
        ),
    ),
    "csv only a header": (
        "csv",
        _write("t.csv", b"prompt,completion\n"),
        (
            "error",
            r"data\.path '.*t\.csv' holds no records: t\.csv: only a header row \(prompt, completion\), no records",
        ),
    ),
    "csv empty file": (
        "csv",
        _write("t.csv", b""),
        ("error", r"data\.path '.*t\.csv' holds no records: t\.csv: empty \(0 bytes\)"),
    ),
    "csv gzip without .gz": ("csv", _write("t.csv", gzip.compress(b"prompt,completion\na,b\n")), ("rows", 1)),
    "csv zip archive": (
        "csv",
        _write("t.csv", b"PK\x03\x04" + b"\x00" * 26),
        ("error", r"t\.csv is a ZIP archive, not CSV text: unzip it and set data\.path to the files inside"),
    ),
    "csv utf-16 with a byte-order mark": (
        "csv",
        _write("t.csv", "prompt,completion\nÉté,b\n".encode("utf-16")),
        ("rows", 1),
    ),
    "jsonl array on the first line": (
        "jsonl",
        _write("t.jsonl", b'[1, 2]\n{"prompt": "a", "completion": "b"}\n'),
        (
            "quarantine",
            1,
            r"^expected a JSON object, found list on one line \(JSON Lines holds one object per line\)$",
            1,
        ),
    ),
    "jsonl repeated key": (
        "jsonl",
        _write("t.jsonl", b'{"prompt": "a", "prompt": "b", "completion": "c"}\n{"prompt": "a", "completion": "b"}\n'),
        ("quarantine", 1, r"^the key 'prompt' appears twice in one JSON object", 1),
    ),
    "jsonl bzip2 data": (
        "jsonl",
        _write("t.jsonl", __import__("bz2").compress(b'{"prompt": "a"}\n')),
        ("error", r"t\.jsonl is bzip2-compressed, not JSON Lines text: decompress it"),
    ),
    "json repeated key in a record": (
        "json",
        _write("d.json", b'[{"prompt": "a", "completion": "b"}, {"prompt": "c", "prompt": "d"}]'),
        ("quarantine", 2, r"^record 2: the key 'prompt' appears twice", 1),
    ),
    "csv NUL byte": ("csv", _write("t.csv", b"prompt,completion\na\x00b,c\n"), ("rows", 1)),
    "csv not utf-8": (
        "csv",
        _write("t.csv", b"prompt,completion\n\xe9t\xe9,b\n"),
        ("error", r"t\.csv is not valid utf-8 .*set data\.encoding"),
    ),
    "csv repeated header": (
        "csv",
        _write("t.csv", b"prompt,prompt\na,b\n"),
        ("error", r"t\.csv: the header repeats a column name"),
    ),
    "csv field over 32 MiB": (
        "csv",
        _write("t.csv", b'prompt,completion\n"' + b"x" * (32 * 1024 * 1024 + 10) + b'",b\nc,d\n'),
        ("quarantine", 2, r"malformed CSV: field larger than field limit", 1),
    ),
    "gzip ends early": (
        "jsonl",
        _gzip_cut,
        ("error", r"cannot read .*rows\.jsonl\.gz: Compressed file ended before the end-of-stream marker"),
    ),
    "gzip damaged": (
        "jsonl",
        _gzip_corrupt,
        ("error", r"cannot read .*rows\.jsonl\.gz: .*(invalid|incorrect|corrupt)"),
    ),
    "gzip csv ends early": (
        "csv",
        lambda tmp: _write(
            "t.csv.gz",
            gzip.compress(b"prompt,completion\n" + b"".join(b"q%d,a%d\n" % (i, i * i) for i in range(5000)))[:3000],
        )(tmp),
        ("error", r"cannot read .*t\.csv\.gz: Compressed file ended"),
    ),
    "json document cut short": (
        "json",
        _write("doc.json", b'[{"prompt": "a", "completion": "b"}, {"prompt": "c"'),
        ("quarantine", 1, r"invalid JSON: .*the file was not read", 0),
    ),
    "jsonl NUL in a column name": (
        "jsonl",
        _write(
            "t.jsonl", b'{"prompt": "a", "completion": "b"}\n{"pro\\u0000mpt": "c", "completion": "d"}\n', format="none"
        ),
        ("quarantine", 2, r"column name 'pro\\x00mpt' holds a NUL character", 1),
    ),
    "jsonl invalid utf-8 line": (
        "jsonl",
        _write("t.jsonl", b'{"prompt": "a", "completion": "b"}\n{"prompt": "\xff"}\n'),
        ("quarantine", 2, r"not valid utf-8", 1),
    ),
    "text invalid utf-8 line": (
        "text",
        _write("notes.txt", b"good line\n\xff\xfe bad\n", unit="line"),
        ("quarantine", 2, r"not valid utf-8", 1),
    ),
    "html page without text": (
        "html",
        _write("page.html", b"<html><head><script>var x = 1;</script></head><body><nav></nav></body></html>"),
        ("quarantine", 1, r"no extractable text", 0),
    ),
    "html empty file": ("html", _write("page.html", b""), ("quarantine", 1, r"no extractable text|cannot decode", 0)),
    "pdf encrypted, no password": (
        "pdf",
        _pdf("secret"),
        ("quarantine", None, r"encrypted PDF; set data\.password", 0),
    ),
    "pdf encrypted, wrong password": (
        "pdf",
        _pdf("secret", password="nope"),
        ("quarantine", None, r"encrypted PDF; data\.password does not open it", 0),
    ),
    "pdf encrypted, right password": ("pdf", _pdf("secret", password="secret"), ("rows", 1)),
    "pdf cut short": ("pdf", _pdf("cut"), ("quarantine", None, r"not a readable PDF", 0)),
    "pdf not a pdf": (
        "pdf",
        _write("manual.pdf", b"<html>not a pdf</html>"),
        ("quarantine", None, r"not a readable PDF", 0),
    ),
    "pdf blank page": (
        "pdf",
        _write("manual.pdf", pdf_bytes([""]), unit="page"),
        ("quarantine", 1, r"no extractable text on this page", 0),
    ),
    "sql failing query": (
        "sql",
        _sqlite("SELECT * FROM no_such_table"),
        ("error", r"data\.query failed: no such table: no_such_table\. Query: SELECT"),
    ),
    "sql syntax error": (
        "sql",
        _sqlite("SELECT prompt FROM tickets WHERE"),
        ("error", r"data\.query failed: (incomplete input|.*syntax error)\. Query: SELECT"),
    ),
    "sql unbound parameter": (
        "sql",
        _sqlite("SELECT * FROM tickets WHERE prompt = :p"),
        ("error", r"data\.query failed: .*give its value in data\.params"),
    ),
    "sql not a database": (
        "sql",
        lambda tmp: {
            "url": f"sqlite:///{_write('tickets.db', b'not a database at all, just text' * 40)(tmp)['path']}",
            "query": "SELECT * FROM tickets",
        },
        ("error", r"file is not a database"),
    ),
    "sql text not utf-8": (
        "sql",
        lambda tmp: {
            **_sqlite("SELECT * FROM tickets")(tmp),
            "query": "SELECT CAST(x'ff41' AS TEXT) AS prompt, 'b' AS completion UNION ALL SELECT 'ok', 'fine'",
        },
        ("quarantine", 1, r"not valid UTF-8", 1),
    ),
    "hf saved dataset cut short": ("hf_dataset", _hf_saved_cut, ("error", r"saved")),
    "hf json builder, nesting too deep": (
        "hf_dataset",
        lambda tmp: {
            "path": "json",
            "data_files": [
                _write("rows.jsonl", b'{"prompt": "a", "deep": ' + b"[" * 300 + b"1" + b"]" * 300 + b"}\n")(tmp)["path"]
            ],
        },
        ("error", r"rows\.jsonl with the 'json' builder: .*(Recursion|nested too deeply)"),
    ),
    "hf json builder, columns that do not merge": (
        "hf_dataset",
        lambda tmp: {
            "path": "json",
            "data_files": [
                _write("rows.jsonl", b'{"prompt": "a", "label": 0, "": [null, null]}\n{"prompt": "b", "label": 0.0}\n')(
                    tmp
                )["path"]
            ],
        },
        ("error", r"rows\.jsonl with the 'json' builder: Unable to merge: Field label has incompatible types"),
    ),
    "hf json builder, an integer too big for Arrow": (
        "hf_dataset",
        lambda tmp: {
            "path": "json",
            "data_files": [
                _write(
                    "rows.jsonl", b'{"prompt": "a", "": [27670116110564327424]}\n{"prompt": "b", " ": [null, null]}\n'
                )(tmp)["path"]
            ],
        },
        ("error", r"rows\.jsonl with the 'json' builder: OverflowError: Python int too large"),
    ),
    # pyarrow crashed the process on this (a column of mixed types and a line longer than its parse block)
    "hf json builder, a 500 kB line, a column of mixed types": (
        "hf_dataset",
        lambda tmp: {
            "path": "json",
            "data_files": [
                _write(
                    "rows.jsonl", b'{"prompt": "a", "a1": 1}\n{"prompt": "' + b"word " * 100_000 + b'", "a1": true}\n'
                )(tmp)["path"]
            ],
        },
        ("rows", 2),
    ),
    "hf json builder, 300 kB lines, columns that change type": (
        "hf_dataset",
        lambda tmp: {
            "path": "json",
            "data_files": [
                _write(
                    "rows.jsonl",
                    b'{"a1": 0.5, "prompt": "'
                    + "\u00e9 ".encode() * 100_000
                    + b'"}\n{"a1": 0, "label": 0}\n{"a1": "a", "label": true, "prompt": "'
                    + b"<b>" * 100_000
                    + b'"}\n',
                )(tmp)["path"]
            ],
        },
        ("rows", 3),
    ),
    "hf json builder, a null record": (
        "hf_dataset",
        lambda tmp: {"path": "json", "data_files": [_write("rows.jsonl", b'null\n{"prompt": "a"}\n')(tmp)["path"]]},
        ("error", r"rows\.jsonl line 1: a JSON Lines record must be an object"),
    ),
}


@pytest.mark.parametrize("case", sorted(FILE_FAULTS))
def test_broken_file_gets_a_clear_error_or_a_quarantine(case, tmp_path):
    name, write, expected = FILE_FAULTS[case]
    params = write(tmp_path)
    if expected[0] == "error":
        with pytest.raises(Exception) as caught:
            collect(name, params, tmp_path)
        assert_clear_error(caught.value, str(tmp_path), "data.")
        assert __import__("re").search(expected[1], str(caught.value)), str(caught.value)
        return
    data, ctx = collect(name, params, tmp_path)
    if expected[0] == "rows":
        assert len(data) == expected[1] and not ctx.quarantined, ctx.quarantined
        return
    _, line, reason, kept = expected
    assert len(ctx.quarantined) == 1, ctx.quarantined
    (entry,) = ctx.quarantined
    assert entry["line"] == line and __import__("re").search(reason, entry["reason"]), entry
    assert entry["source"] and len(data) == kept


# --- huge values ---------------------------------------------------------------------------

HUGE_TEXTS = [
    "x" * 200_000,
    "ab1" * 60_000,
    "a@" + "b" * 200_000,
    "https://" + "y" * 200_000,
    "<b>" * 60_000,
    "word " * 40_000,
    "\x00" * 100_000,
    "é" * 100_000,
    "1," * 100_000,
    "$" + "9" * 100_000,
    "&amp;" * 40_000,
    "*_" * 100_000,
    "[a](b)" * 30_000,
]


def test_noise_protection_is_linear_in_a_huge_token():
    """A 200 kB run without spaces once took the synonym, eda and char_noise augmenters
    minutes per row (a regular expression backtracking quadratically)."""
    import time

    from tunelab_builtin.augmenters._text import protected_mask

    started = time.perf_counter()
    for text in HUGE_TEXTS:
        mask = protected_mask(text)
        assert len(mask) == len(text)
    assert time.perf_counter() - started < 10
    text = "order 1234 at https://x.com/a or jo@mail.example.com, thanks"
    shown = "".join(ch if protected else "_" for ch, protected in zip(text, protected_mask(text)))
    assert shown == "______1234____https://x.com/a____jo@mail.example.com________"


@pytest.mark.soak
def test_every_operator_handles_huge_values_quickly(tmp_path):
    """Each operator on rows of 100-200 kB values (every row augmented): done in seconds."""
    import time

    from datasets import Dataset, Value

    rows = [
        {
            "id": f"r{i}",
            "parent_id": None,
            "prompt": t,
            "completion": t,
            "text": t,
            "label": "ab"[i % 2],
            "group": "g",
            "a1": "a",
            "a2": "b",
        }
        for i, t in enumerate(HUGE_TEXTS)
    ]
    data = Dataset.from_list(rows).cast_column(PARENT_ID, Value("string"))
    for component in OPERATORS:
        kind, name = component.split("/")
        fixed = OPERATOR_PARAMS.get(name, {})
        params = {
            **(fixed(data) if callable(fixed) else fixed),
            **({"fraction": 1.0} if kind == "augmenter" and name != "template" else {}),
        }
        started = time.perf_counter()
        try:
            run_operator(kind, name, data, tmp_path, params)
        except Exception as exc:  # noqa: BLE001 - judged below
            assert_clear_error(exc, name)
        assert time.perf_counter() - started < 60, f"{component} took {time.perf_counter() - started:.0f} s"
