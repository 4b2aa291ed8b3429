"""Collectors read what a file really holds, and say so when they cannot (issue 15, items
4, 9, 10 and the empty-file part of 7): a stray CSV quote costs its own line, not the rows
after it; a repeated JSON key is quarantined, not resolved silently; a JSON Lines file is
read line by line even when its first line is an array; compressed, binary and UTF-16
files are recognised by their bytes; files of other formats in a folder and files
without records are named."""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import logging
import lzma
import re
import sqlite3
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import validate
from tunelab.api import StageContext
from tunelab.config import Origin, typed_config
from tunelab.data.cache import prepare
from tunelab.data.pipeline import DataError
from tunelab.plugins import get_plugins


def collect(name: str, tmp_path: Path, **params):
    component = get_plugins().registry.get("collector", name)
    config = typed_config(
        component.config_schema, params, kind="collector", name=name, origin=Origin(), group="data", key_prefix="data."
    )
    ctx = StageContext(seed=0, num_proc=1, work_dir=tmp_path)
    data = component.cls(config).collect(ctx)
    return data, ctx


def write(tmp_path: Path, name: str, blob: bytes) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return str(path)


def ids(data) -> list[str]:
    return list(data["id"]) if len(data) else []


def reasons(ctx) -> list[tuple[int | None, str]]:
    return [(q["line"], q["reason"]) for q in ctx.quarantined]


# --- item 4: CSV quoting --------------------------------------------------------------------


def test_unterminated_quote_costs_its_line_and_the_rows_after_it_are_read(tmp_path):
    """Was: one record 'expected 3 fields, found 1' at line 4 swallowing lines 3-4."""
    path = write(tmp_path, "t.csv", b'a,b,c\n1,2,3\n"4,5,6\n7,8,9\n')
    data, ctx = collect("csv", tmp_path, path=path)
    assert data.to_list() == [
        {"a": "1", "b": "2", "c": "3", "id": "t.csv:2", "source": "t.csv"},
        {"a": "7", "b": "8", "c": "9", "id": "t.csv:4", "source": "t.csv"},
    ]
    assert reasons(ctx) == [
        (
            3,
            "malformed CSV: unterminated quote: a quoted field that opens on line 3 and is never closed "
            "(read as one field it runs to the end of the file); line 4 is read again as a record",
        ),
    ]
    assert ctx.quarantined[0]["raw"] == '"4,5,6\n'


def test_unterminated_quote_no_longer_merges_rows_until_the_next_quote(tmp_path):
    """Was: lines 2-4 silently merged into ONE kept row (its prompt 'hello,world\\n2,foo,bar\\n3,quoted"')."""
    path = write(tmp_path, "t.csv", b'id,prompt,completion\n1,"hello,world\n2,foo,bar\n3,"quoted",baz\n')
    data, ctx = collect("csv", tmp_path, path=path, format="none")
    assert [(r["id"], r["source_id"], r["prompt"], r["completion"]) for r in data] == [
        ("t.csv:3", "2", "foo", "bar"),
        ("t.csv:4", "3", "quoted", "baz"),
    ]
    assert reasons(ctx) == [
        (
            2,
            "malformed CSV: unterminated quote: a quoted field that opens on line 2 and is never closed "
            "(read as one field it runs to line 4, where a quote cannot close it (',' expected after '\"')); "
            "lines 3-4 are read again as records",
        ),
    ]


def test_multi_line_records_are_named_by_their_first_line(tmp_path):
    """Was: t.csv:4 for the record on lines 2-4, and the ragged one quarantined at line 6."""
    blob = b'a,b\n1,"three\nline\nvalue"\n2,x\n3,"two\nlines",extra\n4,y\n'
    data, ctx = collect("csv", tmp_path, path=write(tmp_path, "t.csv", blob))
    assert [(r["id"], r["a"], r["b"]) for r in data] == [
        ("t.csv:2", "1", "three\nline\nvalue"),
        ("t.csv:5", "2", "x"),
        ("t.csv:8", "4", "y"),
    ]
    assert reasons(ctx) == [
        (6, "expected 2 fields, found 3 (the record runs from line 6 to line 7: a quoted field holds line breaks)")
    ]


def test_text_after_a_closing_quote_is_quarantined_not_altered(tmp_path):
    """Was: kept as 'abcdef' (the quotes silently dropped)."""
    data, ctx = collect("csv", tmp_path, path=write(tmp_path, "t.csv", b'a,b\n"abc"def,x\nok,1\nsize 5" wide,2\n'))
    assert [(r["id"], r["a"]) for r in data] == [("t.csv:3", "ok"), ("t.csv:4", 'size 5" wide')]
    assert reasons(ctx) == [(2, "malformed CSV: ',' expected after '\"'")]


def test_a_header_with_broken_quoting_names_the_file(tmp_path):
    path = write(tmp_path, "t.csv", b'"a,b\n1,2\n')
    with pytest.raises(
        ValueError, match=r"t\.csv: the header row cannot be read as CSV \(unexpected end of data\); fix its quoting"
    ):
        collect("csv", tmp_path, path=path)


PLAIN = st.text(alphabet="abcxyz 019", min_size=1, max_size=8).map(str.strip).filter(bool)
# legitimate quoted values: commas and line breaks inside, written by the csv module
QUOTED = st.text(alphabet="abc ,\n", min_size=1, max_size=10).filter(
    lambda v: v.strip() and not v.startswith((",", "\n"))
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    rows=st.lists(st.tuples(PLAIN, st.one_of(PLAIN, QUOTED), PLAIN), min_size=1, max_size=12),
    bad=st.data(),
)
def test_one_stray_quote_costs_exactly_its_record(tmp_path, rows, bad):
    """Property: in a file whose values hold commas and line breaks (quoted by the csv
    module), one field opened by a stray quote costs exactly its record (quarantined at
    its first line); every other record is kept with its values and its first line."""
    plain = [i for i, row in enumerate(rows) if all(v == v.strip() and "," not in v and "\n" not in v for v in row)]
    if not plain:
        rows.append(("p", "q", "r"))
        plain = [len(rows) - 1]
    k = bad.draw(st.sampled_from(plain), label="broken record")
    field = bad.draw(st.integers(0, 2), label="broken field")
    texts, lines, line = [], [], 2
    for i, row in enumerate(rows):
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(row)
        text = out.getvalue()
        if i == k:
            cells = list(row)
            cells[field] = '"' + cells[field]
            text = ",".join(cells) + "\n"
        texts.append(text)
        lines.append(line)
        line += text.count("\n")
    path = tmp_path / "p.csv"
    path.write_text("a,b,c\n" + "".join(texts), encoding="utf-8")
    data, ctx = collect("csv", tmp_path, path=str(path))
    kept = [(r["id"], (r["a"], r["b"], r["c"])) for r in data] if len(data) else []
    assert kept == [(f"p.csv:{lines[i]}", row) for i, row in enumerate(rows) if i != k]
    assert [q["line"] for q in ctx.quarantined] == [lines[k]], ctx.quarantined
    assert "unterminated quote" in ctx.quarantined[0]["reason"]


# --- item 4: repeated JSON keys -------------------------------------------------------------


def test_a_repeated_json_key_is_quarantined_in_json_lines(tmp_path):
    """Was: kept with the last value ('billing')."""
    blob = (
        b'{"prompt": "a", "label": "shipping", "label": "billing"}\n'
        b'{"prompt": "b", "meta": {"x": 1, "x": 2}}\n'
        b'{"prompt": "c", "label": "ok"}\n'
    )
    data, ctx = collect("jsonl", tmp_path, path=write(tmp_path, "t.jsonl", blob), format="none")
    assert ids(data) == ["t.jsonl:3"]
    assert reasons(ctx) == [
        (
            1,
            (
                "the key 'label' appears twice in one JSON object (only one value could be kept); remove or rename one "
                "of them"
            ),
        ),
        (
            2,
            "the key 'x' appears twice in one JSON object (only one value could be kept); remove or rename one of them",
        ),
    ]


def test_a_repeated_json_key_is_quarantined_in_json_documents(tmp_path):
    doc = b'[{"text": "a", "label": "x"}, {"text": "b", "text": "c"}, {"text": "d", "tags": [{"k": 1, "k": 2}]}]'
    data, ctx = collect("json", tmp_path, path=write(tmp_path, "d.json", doc), format="none")
    assert ids(data) == ["d.json:1"]
    assert reasons(ctx) == [
        (
            2,
            (
                "record 2: the key 'text' appears twice in one JSON object (only one value could be kept); remove or "
                "rename one of them"
            ),
        ),
        (
            3,
            (
                "record 3: the key 'k' appears twice in one JSON object (only one value could be kept); remove or "
                "rename one of them"
            ),
        ),
    ]
    data, ctx = collect(
        "json", tmp_path, path=write(tmp_path, "one.json", b'{"text": "a", "text": "b"}'), format="none"
    )
    assert ids(data) == [] and reasons(ctx) == [
        (
            1,
            (
                "the key 'text' appears twice in one JSON object (only one value could be kept); remove or rename one "
                "of them"
            ),
        )
    ]
    # the same array through the jsonl collector (a file starting with '[' is read whole)
    data, ctx = collect("jsonl", tmp_path, path=write(tmp_path, "a/d.json", doc), format="none")
    assert ids(data) == ["d.json:1"] and [q["line"] for q in ctx.quarantined] == [2, 3]


def test_a_repeated_records_key_fails_the_document(tmp_path):
    doc = b'{"data": [{"text": "a"}], "data": [{"text": "b"}]}'
    data, ctx = collect("json", tmp_path, path=write(tmp_path, "d.json", doc), records_key="data", format="none")
    assert ids(data) == []
    assert reasons(ctx) == [
        (
            1,
            (
                "the key 'data' appears twice in one JSON object (only one value could be kept); remove or rename one "
                "of them; the file was not read"
            ),
        )
    ]


# --- item 10: a JSON Lines file is line-based ------------------------------------------------


def test_a_first_line_array_is_one_quarantined_line_and_the_lines_after_it_are_read(tmp_path):
    """Was: the whole file quarantined as one entry ('invalid JSON: Extra data ... the file was not read')."""
    blob = (
        b'[{"prompt": "a", "completion": "b"}]\n'
        b'{"prompt": "c", "completion": "d"}\n'
        b'{"prompt": "e", "completion": "f"}\n'
    )
    data, ctx = collect("jsonl", tmp_path, path=write(tmp_path, "t.jsonl", blob))
    assert ids(data) == ["t.jsonl:2", "t.jsonl:3"]
    assert reasons(ctx) == [
        (1, "expected a JSON object, found list on one line (JSON Lines holds one object per line)")
    ]
    # a file that is one array, on one line or several, is still one document (records expanded)
    data, ctx = collect(
        "jsonl",
        tmp_path,
        path=write(
            tmp_path, "one.jsonl", b'[{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "d"}]\n'
        ),
    )
    assert ids(data) == ["one.jsonl:1", "one.jsonl:2"] and not ctx.quarantined


def test_a_broken_array_in_a_jsonl_file_is_read_line_by_line(tmp_path):
    """A .jsonl file that is not one valid document is read line by line (each line
    accounted for); a .json file keeps the document rule (one entry, 'the file was not read')."""
    blob = b'[1, 2\n{"prompt": "c", "completion": "d"}\n'
    data, ctx = collect("jsonl", tmp_path, path=write(tmp_path, "t.jsonl", blob))
    assert ids(data) == ["t.jsonl:2"]
    assert reasons(ctx) == [(1, "invalid JSON: Expecting ',' delimiter (column 6)")]
    data, ctx = collect("jsonl", tmp_path, path=write(tmp_path, "j/t.json", blob))
    assert ids(data) == [] and reasons(ctx) == [
        (2, "invalid JSON: Expecting ',' delimiter (line 2, column 1); the file was not read")
    ]


def test_a_json_file_with_an_array_then_lines_is_read_as_json_lines(tmp_path):
    blob = b'[1, 2]\n{"text": "a"}\n'
    data, ctx = collect("json", tmp_path, path=write(tmp_path, "t.json", blob), format="none")
    assert ids(data) == ["t.json:2"]
    assert reasons(ctx) == [
        (1, "expected a JSON object, found list on one line (JSON Lines holds one object per line)")
    ]


# --- item 10: say what a file really is -----------------------------------------------------

ROWS = b"prompt,completion\nwhere is my order?,it ships today\n"
LINES = b'{"prompt": "where is my order?", "completion": "it ships today"}\n'


def _zip(name: str, blob: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, blob)
    return out.getvalue()


def _sqlite(tmp_path: Path) -> bytes:
    db = tmp_path / "x.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE t (a TEXT)")
    blob = db.read_bytes()
    db.unlink()
    return blob


def _parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table({"prompt": ["a"]}), out)
    return out.getvalue()


#: (collector, file name, bytes (or a function of tmp_path), the error) — was: "not valid utf-8 ... set data.encoding"
#: or every line quarantined as invalid JSON
BINARY_FILES = {
    "zip named .csv": (
        "csv",
        "t.csv",
        _zip("t.csv", ROWS),
        r"t\.csv is a ZIP archive, not CSV text: unzip it and set data\.path to the files inside",
    ),
    "bzip2 named .csv": (
        "csv",
        "t.csv",
        bz2.compress(ROWS),
        (
            r"t\.csv is bzip2-compressed, not CSV text: decompress it \(bunzip2 FILE\), or recompress it with gzip: "
            r"gzipped files are read directly"
        ),
    ),
    "xz named .jsonl": (
        "jsonl",
        "t.jsonl",
        lzma.compress(LINES),
        r"t\.jsonl is xz-compressed, not JSON Lines text: decompress it \(unxz FILE\)",
    ),
    "zstd named .jsonl": (
        "jsonl",
        "t.jsonl",
        b"\x28\xb5\x2f\xfd\x24\x00" + LINES,
        r"t\.jsonl is zstd-compressed, not JSON Lines text: decompress it \(zstd -d FILE\)",
    ),
    "parquet named .jsonl": (
        "jsonl",
        "t.jsonl",
        _parquet(),
        r"t\.jsonl is a Parquet file, not JSON Lines text: read it with data=parquet",
    ),
    "pdf named .txt": (
        "text",
        "t.txt",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
        r"t\.txt is a PDF document, not plain text: read it with data=pdf",
    ),
    "sqlite named .csv": (
        "csv",
        "t.csv",
        _sqlite,
        r"t\.csv is an SQLite database, not CSV text: read it with data=sql data\.url=sqlite:///FILE",
    ),
    "zip inside gzip": (
        "json",
        "t.json.gz",
        gzip.compress(_zip("t.json", b"[]")),
        r"t\.json\.gz is gzip-compressed and holds a ZIP archive, not JSON text",
    ),
    "png named .md": (
        "text",
        "t.md",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        r"t\.md is a PNG image, not plain text: remove it from data\.path",
    ),
}


@pytest.mark.parametrize("case", sorted(BINARY_FILES))
def test_a_binary_or_compressed_file_is_named_for_what_it_is(case, tmp_path):
    name, file, blob, message = BINARY_FILES[case]
    path = write(tmp_path, file, blob(tmp_path) if callable(blob) else blob)
    with pytest.raises(ValueError, match=message) as caught:
        collect(name, tmp_path, path=path)
    assert "data.encoding" not in str(caught.value)


def test_gzip_data_is_read_whatever_the_file_is_called(tmp_path):
    """Was: 'not valid utf-8 (invalid start byte at byte 1); set data.encoding'."""
    data, ctx = collect("csv", tmp_path, path=write(tmp_path, "t.csv", gzip.compress(ROWS)))
    assert [(r["id"], r["prompt"]) for r in data] == [("t.csv:2", "where is my order?")]
    assert ctx.counters["files read as gzip (named without .gz)"] == 1
    # and a file named .gz that is not compressed is read as it is
    data, ctx = collect("jsonl", tmp_path, path=write(tmp_path, "p.jsonl.gz", LINES))
    assert ids(data) == ["p.jsonl.gz:1"] and not ctx.quarantined


UTF16_TEXT = "prompt,completion\nwhere is my café?,on rue de l'Été\n"


@pytest.mark.parametrize(
    "bom,codec",
    [
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
    ],
)
def test_a_byte_order_mark_settles_utf16_and_utf32(bom, codec, tmp_path):
    """Was: 'not valid utf-8 ... set data.encoding' (CSV) or every line quarantined (JSON Lines)."""
    data, ctx = collect("csv", tmp_path, path=write(tmp_path, "t.csv", bom + UTF16_TEXT.encode(codec)))
    assert [(r["id"], r["prompt"], r["completion"]) for r in data] == [
        ("t.csv:2", "where is my café?", "on rue de l'Été")
    ]
    wide = "UTF-32" if "32" in codec else "UTF-16"
    assert ctx.counters[f"files read as {wide} (byte-order mark)"] == 1
    lines = '{"prompt": "café", "completion": "Été"}\n\n{"prompt": "b", "completion": "c"}\n'
    data, ctx = collect("jsonl", tmp_path, path=write(tmp_path, "t.jsonl", bom + lines.encode(codec)))
    assert [(r["id"], r["prompt"]) for r in data] == [("t.jsonl:1", "café"), ("t.jsonl:3", "b")] and not ctx.quarantined
    data, ctx = collect(
        "text", tmp_path, path=write(tmp_path, "t.txt", bom + "Été\n\nsecond\n".encode(codec)), unit="paragraph"
    )
    assert [(r["id"], r["text"]) for r in data] == [("t.txt:1", "Été"), ("t.txt:3", "second")]


@pytest.mark.parametrize("junk", [b"\xff\xfe\x00 broken bytes", b"\xff\xfe\x00 broken"])
def test_utf8_lines_after_junk_that_starts_like_a_byte_order_mark_are_read(junk, tmp_path):
    """Found by the property test after the BOM rule: UTF-8 lines behind a first line that
    starts with FF FE were decoded as UTF-16 (one garbage line, or an error for the whole file)."""
    blob = junk + b"\n" + '{"prompt": "café", "completion": "b"}\n'.encode()
    data, ctx = collect("jsonl", tmp_path, path=write(tmp_path, "t.jsonl", blob))
    assert [(r["id"], r["prompt"]) for r in data] == [("t.jsonl:2", "café")]
    assert [(q["line"], q["reason"].split(";")[0]) for q in ctx.quarantined] == [
        (1, "not valid utf-8: invalid start byte at byte 0")
    ]
    assert not any("byte-order mark" in name for name in ctx.counters)


def test_data_encoding_utf16_works_for_line_based_files(tmp_path):
    """Was: JSON Lines and text split UTF-16 bytes at b'\\n' and quarantined every line."""
    lines = '{"prompt": "café", "completion": "x"}\n{"prompt": "b", "completion": "c"}\n'
    data, ctx = collect("jsonl", tmp_path, path=write(tmp_path, "t.jsonl", lines.encode("utf-16")), encoding="utf-16")
    assert [(r["id"], r["prompt"]) for r in data] == [("t.jsonl:1", "café"), ("t.jsonl:2", "b")] and not ctx.quarantined
    data, _ = collect(
        "text",
        tmp_path,
        path=write(tmp_path, "t.txt", "one\ntwo\n".encode("utf-16-le")),
        encoding="utf-16-le",
        unit="line",
    )
    assert [(r["id"], r["text"]) for r in data] == [("t.txt:1", "one"), ("t.txt:2", "two")]


def test_utf16_without_a_byte_order_mark_gets_the_hint(tmp_path):
    lines = '{"prompt": "a", "completion": "x"}\n'.encode("utf-16-le")
    data, ctx = collect(
        "jsonl",
        tmp_path,
        path=write(tmp_path, "a.jsonl", lines + b'{"prompt": "ok", "completion": "y"}\n'),
        format="none",
    )
    assert all("set data.encoding=utf-16" in reason for _, reason in reasons(ctx)) and ctx.quarantined, reasons(ctx)
    with pytest.raises(
        ValueError,
        match=(
            r"t\.csv is not valid utf-8 .*set data\.encoding; it holds NUL bytes: UTF-16 text without a byte-order "
            r"mark\? set data\.encoding=utf-16"
        ),
    ):
        collect("csv", tmp_path, path=write(tmp_path, "t.csv", "prompt,completion\nÉté,b\n".encode("utf-16-le")))


# --- item 7 (part): empty and header-only files are named -------------------------------------


@pytest.mark.parametrize(
    "name,file,blob,why",
    [
        ("csv", "t.csv", b"", "t.csv: empty (0 bytes)"),
        ("csv", "t.csv", b"prompt,completion\r\n", "t.csv: only a header row (prompt, completion), no records"),
        ("tsv", "t.tsv", b"prompt\tcompletion\n\n", "t.tsv: only a header row (prompt, completion), no records"),
        ("jsonl", "t.jsonl", b"\n  \n", "t.jsonl: no records"),
        ("json", "t.json", b"[]", "t.json: no records"),
        ("text", "t.txt", b"\n\n", "t.txt: no text (only blank lines)"),
    ],
)
def test_a_source_without_records_names_the_file(name, file, blob, why, tmp_path):
    """Was: no error from the collector, then 'found no usable rows (0 quarantined ...)' naming no file."""
    path = write(tmp_path, file, blob)
    with pytest.raises(ValueError) as caught:
        collect(name, tmp_path, path=path)
    assert str(caught.value) == f"data.path '{path}' holds no records: {why}"


def test_files_without_records_in_a_folder_are_listed(tmp_path, caplog):
    write(tmp_path, "in/a.csv", ROWS)
    write(tmp_path, "in/b.csv", b"prompt,completion\n")
    write(tmp_path, "in/c.csv", b"")
    with caplog.at_level(logging.WARNING):
        data, ctx = collect("csv", tmp_path, path=str(tmp_path / "in"))
    assert ids(data) == ["a.csv:2"]
    listed = ["b.csv: only a header row (prompt, completion), no records", "c.csv: empty (0 bytes)"]
    assert ctx.metadata["files without records"] == listed and ctx.counters["files without records"] == 2
    assert f"data.path '{tmp_path / 'in'}': 2 files without records: {'; '.join(listed)}" in caplog.messages


def test_prepare_of_an_empty_file_names_it(tmp_path):
    empty = write(tmp_path, "empty.csv", b"prompt,completion\n")
    with pytest.raises(
        DataError,
        match=re.escape(
            f"data.path '{empty}' holds no records: empty.csv: only a header row (prompt, completion), no records"
        ),
    ):
        prepare(validate(["data=csv", f"data.path={empty}", "pipeline=minimal"]), get_plugins())


# --- item 9: files of other formats in a folder -----------------------------------------------


def test_files_of_other_formats_in_a_folder_are_counted_and_named(tmp_path, caplog):
    folder = tmp_path / "exports"
    write(folder, "a.jsonl", LINES)
    write(folder, "tickets.csv", ROWS)
    write(folder, "notes/readme.txt", b"not data")
    write(folder, "scan.pdf", b"%PDF-1.7")
    write(folder, ".cache/x.csv", ROWS)  # hidden: never data, never listed
    with caplog.at_level(logging.WARNING):
        data, ctx = collect("jsonl", tmp_path, path=str(folder))
    assert ids(data) == ["a.jsonl:1"]
    assert ctx.counters["files skipped (other formats)"] == 3
    assert ctx.metadata["files skipped (other formats)"] == ["notes/readme.txt", "scan.pdf", "tickets.csv"]
    assert (
        f"data.path '{folder}': skipped 3 files of other formats (notes/readme.txt, scan.pdf, tickets.csv); "
        "read them with data=text, data=pdf, data=csv (one collector per run)"
    ) in caplog.messages


def test_a_folder_without_files_of_the_format_names_the_others(tmp_path):
    folder = tmp_path / "exports"
    write(folder, "tickets.csv", ROWS)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"data.path '{folder}' matches no .jsonl/.jsonl.gz/.ndjson/.ndjson.gz/.json/.json.gz files; "
            "it holds 1 file of other formats (tickets.csv); read them with data=csv (one collector per run)"
        ),
    ):
        collect("jsonl", tmp_path, path=str(folder))


def test_skipped_files_are_in_the_data_report(tmp_path):
    folder = tmp_path / "exports"
    write(
        folder,
        "a.jsonl",
        b"".join(
            json.dumps({"prompt": f"question {i}", "completion": f"answer {i}"}).encode() + b"\n" for i in range(12)
        ),
    )
    write(folder, "more.csv", ROWS)
    write(folder, "empty.jsonl", b"")
    prepared = prepare(validate(["data=jsonl", f"data.path={folder}", "pipeline=minimal"]), get_plugins())
    report = (prepared.directory / "data_report.md").read_text(encoding="utf-8")
    assert "| jsonl | files skipped (other formats) | 1 |" in report
    assert "- jsonl: files skipped (other formats): more.csv" in report
    assert "- jsonl: files without records: empty.jsonl: empty (0 bytes)" in report


# --- the same defects under hf_dataset's json builder -----------------------------------------


@pytest.mark.parametrize(
    "blob,message",
    [
        # was: 'Trailing data at position 5' from pyarrow
        (
            b'[1, 2]\n{"prompt": "a"}\n',
            (
                r"t\.jsonl line 1: a JSON Lines record must be an object, found a JSON array on one line with more "
                r"lines after it\. .*data=jsonl"
            ),
        ),
        # was: 'a JSON Lines record must be an object, found dict' (json.loads read the UTF-16 bytes itself)
        (
            codecs.BOM_UTF16_LE + '{"prompt": "a"}\n'.encode("utf-16-le"),
            (
                r"t\.jsonl is UTF-16 text \(it starts with a byte-order mark\); the datasets json builder reads UTF-8 "
                r"only\. Read it with data=jsonl"
            ),
        ),
        (_zip("t.jsonl", LINES), r"t\.jsonl is a ZIP archive, not JSON text: unzip it"),
    ],
)
def test_hf_json_builder_says_what_the_file_is(blob, message, tmp_path):
    path = write(tmp_path, "t.jsonl", blob)
    with pytest.raises(ValueError, match=message):
        collect("hf_dataset", tmp_path, path="json", data_files=[path])
    data, _ = collect(
        "hf_dataset", tmp_path, path="json", data_files=[write(tmp_path, "one.jsonl", b'[{"prompt": "a"}]\n')]
    )
    assert list(data["prompt"]) == ["a"]  # one array on its one line is still a document
