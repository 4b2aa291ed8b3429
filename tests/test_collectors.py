"""Collectors (files, text, HTML, PDF, SQL, Hugging Face) and format adapters, on real
files, a real SQLite database and a real HTTP server on the loopback interface."""

from __future__ import annotations

import gzip
import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import validate
from tunelab.api import StageContext
from tunelab.config import ConfigError, Origin, typed_config
from tunelab.data.cache import prepare
from tunelab.data.pipeline import DataError
from tunelab.plugins import get_plugins


def collect(name: str, tmp_path: Path, **params):
    """Validate ``params`` like the config does, build the collector and run it."""
    component = get_plugins().registry.get("collector", name)
    config = typed_config(
        component.config_schema, params, kind="collector", name=name, origin=Origin(), group="data", key_prefix="data."
    )
    ctx = StageContext(seed=0, num_proc=1, work_dir=tmp_path)
    data = component.cls(config).collect(ctx)
    return data, ctx


def rows_by_id(data) -> dict:
    return {row["id"]: row for row in data}


def quarantine_by_line(ctx) -> dict:
    return {q["line"]: q for q in ctx.quarantined}


def write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def _prepare(overrides):
    return prepare(validate(overrides), get_plugins())


# --- file collectors ------------------------------------------------------------------


def test_folder_of_json_jsonl_and_gzip_files_is_read_recursively_with_relative_ids(tmp_path):
    root = tmp_path / "exports"
    write_jsonl(root / "2024" / "march.jsonl", [{"question": "Where is order NW-1?", "answer": "It shipped Monday."}])
    (root / "2024" / "april.json").write_text(
        json.dumps(
            [
                {"question": "Can I return worn boots?", "answer": "Within 30 days."},
                {"question": "Gift cards?", "answer": "Yes, from $10."},
            ]
        )
    )
    (root / "old").mkdir()
    with gzip.open(root / "old" / "2023.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"question": "Do you ship to Canada?", "answer": "Yes."}) + "\n")
    (root / ".ipynb_checkpoints").mkdir()
    write_jsonl(root / ".ipynb_checkpoints" / "march-checkpoint.jsonl", [{"question": "stale", "answer": "copy"}])
    (root / "README.md").write_text("not data")

    data, ctx = collect("jsonl", tmp_path, path=str(root), columns={"question": "prompt", "answer": "completion"})
    rows = rows_by_id(data)
    assert set(rows) == {"2024/march.jsonl:1", "2024/april.json:1", "2024/april.json:2", "old/2023.jsonl.gz:1"}
    assert (
        rows["2024/april.json:2"]["prompt"] == "Gift cards?"
        and rows["2024/april.json:2"]["source"] == "2024/april.json"
    )
    assert ctx.metadata["format"] == "prompt_completion" and not ctx.quarantined


def test_json_collector_reads_arrays_single_objects_records_key_and_misnamed_jsonl(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "array.json").write_text(
        '[{"text": "Tent poles snapped", "label": "product"},\n {"text": "Refund please", "label": "billing"}, 7]'
    )
    (folder / "single.json").write_text(json.dumps({"text": "Where is my parcel?", "label": "shipping"}))
    (folder / "lines.json").write_text(
        '{"text": "Login fails", "label": "account"}\n{"text": "Password reset", "label": "account"}\n'
    )
    (folder / "broken.json").write_text('[{"text": "ok", "label": "x"},\n {"text": "unterminated}\n]')
    data, ctx = collect("json", tmp_path, path=str(folder))
    rows = rows_by_id(data)
    assert set(rows) == {"array.json:1", "array.json:2", "single.json:1", "lines.json:1", "lines.json:2"}
    assert rows["lines.json:2"]["text"] == "Password reset"
    reasons = {(q["source"], q["line"]): q["reason"] for q in ctx.quarantined}
    assert "record 3 is int, expected a JSON object" in reasons[("array.json", 3)]
    assert "invalid JSON" in reasons[("broken.json", 2)] and "the file was not read" in reasons[("broken.json", 2)]

    wrapped = tmp_path / "squad_like.json"
    wrapped.write_text(json.dumps({"version": "1.1", "data": [{"prompt": "Capital of Peru?", "completion": "Lima"}]}))
    data, _ = collect("json", tmp_path, path=str(wrapped), records_key="data")
    assert data["completion"] == ["Lima"] and data["id"] == ["squad_like.json:1"]
    with pytest.raises(ValueError, match="records_key 'rows' holds nothing.*top-level keys: version, data"):
        collect("json", tmp_path, path=str(wrapped), records_key="rows")


def test_glob_ids_are_relative_to_the_fixed_part_of_the_pattern(tmp_path):
    for shop in ("north", "south"):
        write_jsonl(
            tmp_path / "shops" / shop / "train.jsonl",
            [{"prompt": f"Opening hours in {shop}?", "completion": "9 to 5."}],
        )
    data, _ = collect("jsonl", tmp_path, path=str(tmp_path / "shops" / "*" / "train.jsonl"))
    assert sorted(data["id"]) == ["north/train.jsonl:1", "south/train.jsonl:1"]


def test_csv_with_byte_order_mark_semicolons_and_the_tsv_collector(tmp_path):
    excel = tmp_path / "excel.csv"
    excel.write_bytes("\ufeffquestion;answer;category\nWie lange dauert der Versand?;3 Tage;shipping\n".encode("utf-8"))
    data, _ = collect(
        "csv",
        tmp_path,
        path=str(excel),
        delimiter=";",
        columns={"question": "prompt", "answer": "completion", "category": "label"},
    )
    assert data[0]["prompt"] == "Wie lange dauert der Versand?" and data[0]["label"] == "shipping"

    reviews = tmp_path / "reviews.tab"
    reviews.write_text("review\tstars\nGreat stove, boils fast\t5\nZip broke in a week\t1\nbad\trow\textra\n")
    data, ctx = collect(
        "tsv", tmp_path, path=str(reviews), format="text_label", columns={"review": "text", "stars": "label"}
    )
    assert data["text"] == ["Great stove, boils fast", "Zip broke in a week"] and data["label"] == ["5", "1"]
    assert data["id"] == ["reviews.tab:2", "reviews.tab:3"]
    assert quarantine_by_line(ctx)[4]["reason"] == "expected 2 fields, found 3"
    # a field far beyond the csv module's 128 KiB default is kept whole
    manual = "Step. " * 50_000
    long_csv = tmp_path / "long.csv"
    long_csv.write_text(f'prompt,completion\nPaste the whole manual,"{manual}"\n')
    data, _ = collect("csv", tmp_path, path=str(long_csv))
    assert data["completion"] == [manual]
    with pytest.raises(ConfigError, match="data.delimiter must be 'auto', 'tab' or one character"):
        validate(["data=csv", f"data.path={excel}", "data.delimiter='||'"])


def test_text_collector_units_and_undecodable_text(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "care.txt").write_text(
        "Dry the tent before storing it.\nNever pack it wet.\n\n\nWash the fly with cold water.\r\nNo detergent.\n"
    )
    (notes / "empty.md").write_text("\n\n")
    (notes / "latin1.txt").write_bytes("Caf\xe9 stove manual\n\nSecond paragraph ok\n".encode("latin-1"))

    data, ctx = collect("text", tmp_path, path=str(notes), unit="paragraph")
    rows = rows_by_id(data)
    assert rows["care.txt:1"]["text"] == "Dry the tent before storing it.\nNever pack it wet."
    assert rows["care.txt:5"]["text"] == "Wash the fly with cold water.\nNo detergent."
    assert rows["latin1.txt:3"]["text"] == "Second paragraph ok"
    bad = quarantine_by_line(ctx)[1]
    assert bad["source"] == "latin1.txt" and "not valid utf-8" in bad["reason"] and "data.encoding" in bad["reason"]
    assert ctx.counters["files without records"] == 1 and ctx.metadata["files without records"] == [
        "empty.md: no text (only blank lines)"
    ]

    data, _ = collect("text", tmp_path, path=str(notes / "care.txt"), unit="line")
    assert data["id"] == ["care.txt:1", "care.txt:2", "care.txt:5", "care.txt:6"]
    data, _ = collect("text", tmp_path, path=str(notes / "latin1.txt"), unit="file", encoding="latin-1")
    assert data["text"] == ["Café stove manual\n\nSecond paragraph ok"]
    with pytest.raises(ConfigError, match="data.unit must be one of file, paragraph, line"):
        validate(["data=text", f"data.path={notes}", "data.unit=sentence"])
    with pytest.raises(ConfigError, match="data.encoding 'utf-9' is not a known text encoding"):
        validate(["data=text", f"data.path={notes}", "data.encoding=utf-9"])


# --- format adapters -----------------------------------------------------------------------


def test_alpaca_records_become_prompt_and_completion(tmp_path):
    path = write_jsonl(
        tmp_path / "alpaca.jsonl",
        [
            {
                "instruction": "Give three tips for staying healthy.",
                "input": "",
                "output": "1. Eat well. 2. Exercise. 3. Sleep.",
            },
            {"instruction": "Translate to French.", "input": "Where is the campsite?", "output": "Où est le camping ?"},
            {"instruction": "Summarise the review.", "output": "Good value."},
            {"instruction": "Classify the sentiment.", "input": "Love it", "response": "positive"},
        ],
    )
    data, ctx = collect("jsonl", tmp_path, path=str(path), format="alpaca")
    rows = rows_by_id(data)
    assert rows["alpaca.jsonl:1"]["prompt"] == "Give three tips for staying healthy."
    assert rows["alpaca.jsonl:2"]["prompt"] == "Translate to French.\n\nWhere is the campsite?"
    assert rows["alpaca.jsonl:2"]["completion"] == "Où est le camping ?"
    assert rows["alpaca.jsonl:3"]["prompt"] == "Summarise the review."
    assert "instruction" not in data.column_names and "output" not in data.column_names
    reason = quarantine_by_line(ctx)[4]["reason"]
    assert "format 'alpaca' needs a column 'output'" in reason and "input, instruction, response" in reason


def test_sharegpt_conversation_becomes_messages_and_last_exchange(tmp_path):
    conversation = {
        "id": "conv-17",
        "system": "You are a helpful outdoor-gear assistant.",
        "conversations": [
            {"from": "human", "value": "What sleeping bag for -5°C?"},
            {"from": "gpt", "value": "A bag with a comfort rating of -5°C or lower."},
            {"from": "human", "value": "Down or synthetic?"},
            {"from": "gpt", "value": "Down is lighter; synthetic stays warm when wet."},
        ],
    }
    path = write_jsonl(
        tmp_path / "chats.jsonl",
        [
            conversation,
            {"conversations": [{"from": "human", "value": "hi"}, {"from": "tool", "value": "{}"}]},
            {"conversations": [{"from": "human", "value": "Anyone there?"}]},
        ],
    )
    data, ctx = collect("jsonl", tmp_path, path=str(path))  # format auto
    assert ctx.metadata["format"] == "sharegpt"
    row = data[0]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert row["messages"][1] == {"role": "user", "content": "What sleeping bag for -5°C?"}
    assert row["prompt"] == "Down or synthetic?" and row["completion"].startswith("Down is lighter")
    assert row["source_id"] == "conv-17" and row["id"] == "chats.jsonl:1"
    assert data.features["messages"].feature["role"].dtype == "string"
    q = quarantine_by_line(ctx)
    assert "conversations turn 2 has role 'tool'" in q[2]["reason"]
    assert "no user turn followed by an assistant turn" in q[3]["reason"]


def test_openai_messages_with_text_parts_and_conversational_prompt_completion(tmp_path):
    path = write_jsonl(
        tmp_path / "openai.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "Is the Ridgeline tent"},
                            {"type": "text", "text": "freestanding?"},
                        ],
                    },
                    {"role": "assistant", "content": "Yes.", "name": "bot"},
                ]
            },
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]},
                    {"role": "assistant", "content": "A tent."},
                ]
            },
        ],
    )
    data, ctx = collect("jsonl", tmp_path, path=str(path), format="messages")
    assert data[0]["prompt"] == "Is the Ridgeline tent\nfreestanding?" and data[0]["completion"] == "Yes."
    assert data[0]["messages"][2] == {"role": "assistant", "content": "Yes."}  # extra keys are not kept
    assert "content part of type 'image_url' is not text" in quarantine_by_line(ctx)[2]["reason"]

    path = write_jsonl(
        tmp_path / "trl_pc.jsonl",
        [
            {
                "prompt": [{"role": "user", "content": "Colour of the sky?"}],
                "completion": [{"role": "assistant", "content": "Blue."}],
            }
        ],
    )
    data, _ = collect("jsonl", tmp_path, path=str(path))
    assert (
        data[0]["prompt"] == "Colour of the sky?" and data[0]["completion"] == "Blue." and len(data[0]["messages"]) == 2
    )


HH_CHOSEN = (
    "\n\nHuman: My stove won't light. What should I check?"
    "\n\nAssistant: Is there fuel in the canister?"
    "\n\nHuman: Yes, it's half full."
    "\n\nAssistant: Then clean the jet with the pricker tool and check the O-ring."
)
HH_REJECTED = (
    "\n\nHuman: My stove won't light. What should I check?"
    "\n\nAssistant: Is there fuel in the canister?"
    "\n\nHuman: Yes, it's half full."
    "\n\nAssistant: Then buy a new stove."
)


def test_hh_rlhf_transcripts_split_at_the_last_shared_assistant_turn(tmp_path):
    path = write_jsonl(
        tmp_path / "hh.jsonl",
        [
            {"chosen": HH_CHOSEN, "rejected": HH_REJECTED},
            # answers that start alike must not pull the shared words into the prompt
            {
                "chosen": "\n\nHuman: Rain tomorrow?\n\nAssistant: I think it will rain.",
                "rejected": "\n\nHuman: Rain tomorrow?\n\nAssistant: I think it will be sunny.",
            },
            {"chosen": "Good answer", "rejected": "Bad answer"},
        ],
    )
    data, ctx = collect("jsonl", tmp_path, path=str(path), format="hh_rlhf")
    first = data[0]
    assert first["prompt"] == HH_CHOSEN[: HH_CHOSEN.rindex("\n\nAssistant:") + len("\n\nAssistant:")]
    assert first["prompt"].endswith("Yes, it's half full.\n\nAssistant:")
    assert first["chosen"] == "Then clean the jet with the pricker tool and check the O-ring."
    assert first["rejected"] == "Then buy a new stove."
    assert [m["role"] for m in first["messages"]] == ["user", "assistant", "user"]
    assert data[1]["chosen"] == "I think it will rain." and data[1]["rejected"] == "I think it will be sunny."
    assert "share no transcript ending in" in quarantine_by_line(ctx)[3]["reason"]
    # auto detection recognises the transcript style
    _, ctx = collect("jsonl", tmp_path, path=str(path))
    assert ctx.metadata["format"] == "hh_rlhf"


def test_preference_pairs_as_text_and_as_message_lists(tmp_path):
    path = write_jsonl(
        tmp_path / "prefs.jsonl",
        [
            {
                "prompt": "Best knot for a tarp ridgeline?",
                "chosen": "A trucker's hitch.",
                "rejected": "A granny knot.",
                "label": "knots",
            },
            {
                "chosen": [
                    {"role": "user", "content": "Is iodine safe for water?"},
                    {"role": "assistant", "content": "Yes, for short trips."},
                ],
                "rejected": [
                    {"role": "user", "content": "Is iodine safe for water?"},
                    {"role": "assistant", "content": "Never."},
                ],
            },
            {
                "prompt": [{"role": "user", "content": "Pack weight for a weekend?"}],
                "chosen": [{"role": "assistant", "content": "Under 10 kg."}],
                "rejected": [{"role": "assistant", "content": "Bring everything."}],
            },
            {"chosen": "Only text", "rejected": "and no prompt"},
            {
                "prompt": "p",
                "chosen": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}],
                "rejected": [{"role": "assistant", "content": "c"}],
            },
        ],
    )
    data, ctx = collect("jsonl", tmp_path, path=str(path), format="preference")
    rows = rows_by_id(data)
    assert rows["prefs.jsonl:1"]["chosen"] == "A trucker's hitch." and rows["prefs.jsonl:1"]["label"] == "knots"
    implicit = rows["prefs.jsonl:2"]
    assert (
        implicit["prompt"] == "Is iodine safe for water?"
        and implicit["chosen"] == "Yes, for short trips."
        and implicit["rejected"] == "Never."
    )
    assert implicit["messages"] == [{"role": "user", "content": "Is iodine safe for water?"}]
    assert rows["prefs.jsonl:3"]["chosen"] == "Under 10 kg."
    q = quarantine_by_line(ctx)
    assert "needs a column 'prompt'" in q[4]["reason"]
    assert "exactly one assistant turn, found assistant, user" in q[5]["reason"]


def test_text_label_with_renamed_fields_and_wrong_types(tmp_path):
    path = write_jsonl(
        tmp_path / "reviews.jsonl",
        [
            {"review": "The headlamp died after an hour.", "stars": 1},
            {"review": "Warm and light.", "stars": 5},
            {"review": ["not", "text"], "stars": 3},
            {"review": "No rating here"},
            {"review": "Tags instead of a label", "stars": {"a": 1}},
        ],
    )
    data, ctx = collect(
        "jsonl", tmp_path, path=str(path), format="text_label", columns={"review": "text", "stars": "label"}
    )
    assert data["text"] == ["The headlamp died after an hour.", "Warm and light."] and data["label"] == [1, 5]
    q = quarantine_by_line(ctx)
    assert q[3]["reason"] == "column 'text' holds list, expected text"
    # a record without the mapped key is quarantined naming it (before: "format text_label needs a column 'label'")
    assert q[4]["reason"] == (
        "the record has no 'stars' (data.columns maps 'stars' onto 'label'; other records have it); "
        "its columns: review. Add it to the record (null is kept)"
    )
    assert "column 'label' holds dict" in q[5]["reason"]
    assert all(item["source"] == "reviews.jsonl" and item["raw"] for item in ctx.quarantined)


def test_format_and_column_mapping_values_are_checked_at_validation(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "a", "completion": "b"}])
    with pytest.raises(ConfigError, match="format must be one of auto, none, alpaca"):
        validate(["data=jsonl", f"data.path={path}", "data.format=oasst"])
    with pytest.raises(ConfigError, match="maps both 'q' and 'question' onto 'prompt'"):
        validate(["data=jsonl", f"data.path={path}", "data.columns={q: prompt, question: prompt}"])


def test_none_format_keeps_columns_and_mixed_types_become_text(tmp_path):
    path = write_jsonl(
        tmp_path / "raw.jsonl",
        [
            {"instruction": "Keep me", "output": "as is", "meta": {"shop": "north"}, "score": 3},
            {"instruction": "Two", "output": "rows", "meta": None, "score": "high"},
        ],
    )
    data, ctx = collect("jsonl", tmp_path, path=str(path), format="none")
    assert {"instruction", "output", "meta", "score"} <= set(data.column_names) and "prompt" not in data.column_names
    assert data["score"] == ["3", "high"] and json.loads(data["meta"][0]) == {"shop": "north"}
    assert ctx.counters["column 'score' stored as text (mixed types)"] == 1


# --- HTML -------------------------------------------------------------------------------

ARTICLE = """<!doctype html><html><head><meta charset="utf-8">\
<title>Waxing cross-country skis | Northwind Outdoor</title></head>
<body><main><article><h1>Waxing cross-country skis</h1>
<p>Glide wax goes on the tips and tails of the ski, never under the foot. \
Warm the iron to the temperature printed on the wax and drip a thin line along each side of the groove.</p>
<p>Let the wax cool for at least twenty minutes before scraping. \
Scrape from tip to tail with a sharp plastic scraper until no more wax comes off, then brush.</p>
<p>Kick wax is different: it sits under the foot and grips the snow when you push off. \
Choose it by snow temperature, not air temperature.</p>
</article></main></body></html>"""

BOILERPLATE = """<!doctype html><html><head><title>Choosing a tent footprint</title>
<style>body {font-family: sans-serif}</style><script>var tracking = "SCRIPTMARKER";</script></head><body>
<header><div class="logo">Northwind Outdoor</div><nav><ul><li><a href="/">Home</a></li>\
<li><a href="/shop">Shop all gear NAVMARKER</a></li>
<li><a href="/blog">Blog</a></li><li><a href="/login">Sign in to your account</a></li></ul></nav></header>
<div class="content"><article><h1>Choosing a tent footprint</h1>
<p>A footprint protects the tent floor from abrasion and keeps ground moisture out. \
It should be slightly smaller than the floor so rain does not collect on it and run underneath.</p>
<p>Cut-to-size groundsheets are cheaper than branded footprints, \
but branded ones clip into the pole ends and make pitching the fly alone possible.</p>
<p>In dry sand or snow a footprint is rarely needed; on rocky ground it doubles the life of a lightweight floor.</p>
</article></div>
<aside>Related: our winter sale ends Sunday! ASIDEMARKER</aside>
<footer><p>Copyright 2024 Northwind Outdoor. Privacy policy. Terms of service. FOOTERMARKER</p>\
<p>Subscribe to our newsletter.</p></footer>
</body></html>"""


class _Pages(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/html; charset=utf-8",
        length: bool = True,
        headers: dict | None = None,
    ):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        routes = {
            "/article": lambda: self._send(200, ARTICLE.encode()),
            "/boilerplate": lambda: self._send(200, BOILERPLATE.encode()),
            "/empty": lambda: self._send(
                200, b"<html><head><title>Loading</title></head><body><script>app()</script></body></html>"
            ),
            "/missing": lambda: self._send(404, b"<h1>Not found</h1>"),
            "/big": lambda: self._send(200, b"<p>" + b"x" * 200_000 + b"</p>"),
            "/big-stream": self._stream,
            "/hop": lambda: self._send(302, b"", headers={"Location": "/article"}),
            "/to-file": lambda: self._send(302, b"", headers={"Location": "file:///etc/passwd"}),
            "/to-ftp": lambda: self._send(301, b"", headers={"Location": "ftp://127.0.0.1/pub/page.html"}),
            "/slow": self._slow,
            "/manual.pdf": lambda: self._send(200, b"%PDF-1.4 ...", content_type="application/pdf"),
        }
        routes.get(self.path, lambda: self._send(404, b"no route"))()

    def _stream(self):
        # no Content-Length: the client only learns the size by reading
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        try:
            for _ in range(50):
                self.wfile.write(b"<p>" + b"y" * 10_000 + b"</p>")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _slow(self):
        time.sleep(1.5)
        try:
            self._send(200, ARTICLE.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def web():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_html_from_urls_extracts_text_and_quarantines_every_failure(tmp_path, web):
    urls = [
        f"{web}/{p}"
        for p in (
            "article",
            "boilerplate",
            "hop",
            "missing",
            "big",
            "big-stream",
            "to-file",
            "to-ftp",
            "empty",
            "manual.pdf",
        )
    ]
    data, ctx = collect("html", tmp_path, urls=urls, max_bytes=100_000)
    rows = rows_by_id(data)
    assert set(rows) == {f"{web}/article", f"{web}/boilerplate", f"{web}/hop"}
    article = rows[f"{web}/article"]
    assert article["title"] == "Waxing cross-country skis" and "Kick wax is different" in article["text"]
    assert article["url"] == f"{web}/article" and article["source"] == f"{web}/article"
    assert rows[f"{web}/hop"]["url"] == f"{web}/article"  # followed an http redirect
    page = rows[f"{web}/boilerplate"]["text"]
    assert "A footprint protects the tent floor" in page and "doubles the life" in page
    for marker in ("NAVMARKER", "FOOTERMARKER", "ASIDEMARKER", "SCRIPTMARKER", "Sign in to your account"):
        assert marker not in page
    reasons = {q["source"]: q["reason"] for q in ctx.quarantined}
    assert reasons[f"{web}/missing"] == "HTTP 404 Not Found"
    assert "200007 bytes, over data.max_bytes=100000" in reasons[f"{web}/big"]
    assert "exceeds data.max_bytes=100000; stopped reading" in reasons[f"{web}/big-stream"]
    assert "to a file: URL refused" in reasons[f"{web}/to-file"]
    assert "to a ftp: URL refused" in reasons[f"{web}/to-ftp"]
    assert "no extractable text" in reasons[f"{web}/empty"]
    assert "not an HTML page (Content-Type application/pdf)" in reasons[f"{web}/manual.pdf"]
    assert all(q["line"] is None for q in ctx.quarantined)


def test_html_fetch_timeout_is_quarantined_not_raised(tmp_path, web):
    started = time.monotonic()
    data, ctx = collect("html", tmp_path, urls=[f"{web}/slow", f"{web}/article"], timeout=0.4)
    assert time.monotonic() - started < 1.4
    assert data["id"] == [f"{web}/article"]
    assert ctx.quarantined[0]["reason"] == "timed out after 0.4 s (data.timeout)"


def test_local_files_in_the_url_list_need_allow_local_files(tmp_path):
    page = tmp_path / "saved.html"
    page.write_text(BOILERPLATE)
    for url in (page.as_uri(), str(page)):
        with pytest.raises(
            ConfigError, match="is a local file; only http and https URLs are fetched.*allow_local_files=true"
        ):
            validate(["data=html", f"data.urls=[{url}]"])
    with pytest.raises(ConfigError, match="is not an http or https URL"):
        validate(["data=html", "data.urls=[ftp://127.0.0.1/a.html]"])
    with pytest.raises(ConfigError, match=r"set data.path \(local .html files"):
        validate(["data=html"])
    data, _ = collect("html", tmp_path, urls=[page.as_uri()], allow_local_files=True)
    assert "keeps ground moisture out" in data[0]["text"] and "NAVMARKER" not in data[0]["text"]


def test_html_files_from_a_folder_with_the_beautifulsoup_extractor(tmp_path):
    site = tmp_path / "site"
    (site / "guides").mkdir(parents=True)
    (site / "guides" / "footprint.html").write_text(BOILERPLATE)
    (site / "index.htm").write_bytes(
        ARTICLE.replace('charset="utf-8"', 'charset="windows-1252"')
        .replace("Kick wax", "Kick wax \u2013 grip")
        .encode("cp1252")
    )
    (site / "blank.html").write_text("<html><body><nav>Home | Shop</nav></body></html>")
    data, ctx = collect("html", tmp_path, path=str(site), extractor="beautifulsoup")
    rows = rows_by_id(data)
    assert set(rows) == {"guides/footprint.html:1", "index.htm:1"}
    assert (
        "FOOTERMARKER" not in rows["guides/footprint.html:1"]["text"] and rows["guides/footprint.html:1"]["url"] is None
    )
    assert "Kick wax \u2013 grip" in rows["index.htm:1"]["text"]  # the page's own charset was honoured
    assert ctx.quarantined[0]["source"] == "blank.html" and "no extractable text" in ctx.quarantined[0]["reason"]


# --- PDF ------------------------------------------------------------------------------------


def _pdf(path: Path, pages: list[str], user_password: str | None = None) -> Path:
    from fpdf import FPDF
    from fpdf.enums import EncryptionMethod

    pdf = FPDF()
    pdf.set_title("Stove manual")
    for text in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        if text:
            pdf.multi_cell(0, 8, text)
    if user_password is not None:
        pdf.set_encryption(
            owner_password="owner-secret", user_password=user_password, encryption_method=EncryptionMethod.RC4
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def test_pdf_per_file_and_per_page_with_broken_and_encrypted_files(tmp_path):
    docs = tmp_path / "manuals"
    manual = _pdf(
        docs / "stove.pdf",
        ["Lighting the stove: open the valve a quarter turn.", "", "Cleaning: use the pricker tool on the jet."],
    )
    _pdf(docs / "locked.pdf", ["Dealer prices for 2025."], user_password="letmein")
    (docs / "truncated.pdf").write_bytes(manual.read_bytes()[: manual.stat().st_size // 2])
    (docs / "notes.pdf").write_bytes(b"these are not PDF bytes")

    data, ctx = collect("pdf", tmp_path, path=str(docs), unit="page")
    rows = rows_by_id(data)
    assert set(rows) == {"stove.pdf:1", "stove.pdf:3"}
    assert (
        rows["stove.pdf:3"]["text"] == "Cleaning: use the pricker tool on the jet." and rows["stove.pdf:3"]["page"] == 3
    )
    assert rows["stove.pdf:1"]["title"] == "Stove manual"
    reasons = {(q["source"], q["line"]): q["reason"] for q in ctx.quarantined}
    assert "no extractable text on this page" in reasons[("stove.pdf", 2)]
    assert reasons[("locked.pdf", None)] == "encrypted PDF; set data.password"
    assert reasons[("truncated.pdf", None)].startswith("not a readable PDF")
    assert reasons[("notes.pdf", None)].startswith("not a readable PDF")

    data, ctx = collect("pdf", tmp_path, path=str(docs / "locked.pdf"), password="letmein")
    assert data["text"] == ["Dealer prices for 2025."] and data["id"] == ["locked.pdf:1"]
    _, ctx = collect("pdf", tmp_path, path=str(docs / "locked.pdf"), password="guess")
    assert ctx.quarantined[0]["reason"] == "encrypted PDF; data.password does not open it"
    data, _ = collect("pdf", tmp_path, path=str(manual))
    assert (
        data[0]["text"].startswith("Lighting the stove")
        and data[0]["text"].endswith("on the jet.")
        and data[0]["pages"] == 3
    )


# --- SQL --------------------------------------------------------------------------------------


@pytest.fixture
def tickets_db(tmp_path) -> Path:
    path = tmp_path / "support.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE tickets (ticket TEXT, question TEXT, answer TEXT, category TEXT, status TEXT, price NUMERIC)"
        )
        db.executemany(
            "INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("T-100", "Where is my order?", "It ships today.", "shipping", "closed", 12.5),
                ("T-101", "Can I pay by invoice?", "Yes, for business accounts.", "billing", "closed", 0),
                ("T-102", "The zip broke.", None, "product", "open", 89.99),
                ("T-103", b"\x00\x01binary", "odd", "product", "closed", 1),
            ],
        )
    return path


def test_sql_query_with_params_and_id_column(tmp_path, tickets_db):
    url = f"sqlite:///{tickets_db}"
    query = "SELECT ticket, question, answer, category FROM tickets WHERE status = :status ORDER BY ticket"
    data, ctx = collect(
        "sql",
        tmp_path,
        url=url,
        query=query,
        params={"status": "closed"},
        id_column="ticket",
        columns={"question": "prompt", "answer": "completion"},
    )
    assert data["id"] == ["sql:T-100", "sql:T-101"] and data["prompt"][1] == "Can I pay by invoice?"
    assert data["source"] == [url, url]
    assert "binary" in ctx.quarantined[0]["raw"] and "column 'prompt' holds bytes" in ctx.quarantined[0]["reason"]
    data, _ = collect(
        "sql",
        tmp_path,
        url=url,
        query="SELECT question AS text, category AS label, price FROM tickets WHERE ticket < 'T-103'",
    )
    assert data["id"] == ["sql:1", "sql:2", "sql:3"] and data["price"] == [12.5, 0.0, 89.99]


def test_sql_failures_are_clear_and_the_database_is_never_changed(tmp_path, tickets_db):
    url = f"sqlite:///{tickets_db}"
    with pytest.raises(DataError) as err:
        _prepare(["data=sql", f"data.url={url}", "data.query='SELECT question FROM ticket_archive'"])
    message = str(err.value)
    assert "data.query failed: no such table: ticket_archive. Query: SELECT question FROM ticket_archive" in message
    assert "sqlalche.me" not in message and "Traceback" not in message
    with pytest.raises(ValueError, match=r"bind parameter 'status'.*give its value in data.params"):
        collect("sql", tmp_path, url=url, query="SELECT * FROM tickets WHERE status = :status")
    with pytest.raises(ValueError, match="id_column 'category' is not unique"):
        collect("sql", tmp_path, url=url, query="SELECT * FROM tickets", id_column="category")
    with pytest.raises(ValueError, match="SQLite file '.*missing.db' does not exist"):
        collect("sql", tmp_path, url=f"sqlite:///{tmp_path / 'missing.db'}", query="SELECT 1")
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(ConfigError, match="data.query must be a read-only statement"):
        validate(["data=sql", f"data.url={url}", "data.query='DELETE FROM tickets'"])
    # a write hidden behind WITH reaches the database, which is opened read-only
    with pytest.raises(ValueError, match="readonly database"):
        collect("sql", tmp_path, url=url, query="WITH doomed AS (SELECT 1) DELETE FROM tickets")
    with sqlite3.connect(tickets_db) as db:
        assert db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 4


def test_sql_password_never_appears_in_messages(tmp_path):
    url = "postgresql://support_bot:Hunter2%40x@127.0.0.1:1/tickets"
    with pytest.raises(DataError) as err:
        _prepare(["data=sql", f"data.url='{url}'", "data.query='SELECT * FROM tickets'"])
    message = str(err.value)
    assert "support_bot:***@127.0.0.1:1/tickets" in message
    assert "Hunter2" not in message and "Hunter2@x" not in message

    from tunelab_builtin.collectors.sql import redact_db_url

    assert redact_db_url("mysql+pymysql://app:pa:ss@db.internal/shop") == "mysql+pymysql://app:***@db.internal/shop"
    assert redact_db_url("sqlite:///tickets.db") == "sqlite:///tickets.db"


# --- Hugging Face datasets --------------------------------------------------------------------


def test_hf_saved_dataset_dict_split_class_names_and_builder_files(tmp_path):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    train = Dataset.from_dict(
        {"text": ["Warm and dry all night.", "Leaked in light rain.", "Unrated review"], "label": [1, 0, -1]},
        features=features,
    )
    test = Dataset.from_dict({"text": ["Fine."], "label": [1]}, features=features)
    saved = tmp_path / "reviews_hf"
    DatasetDict({"train": train, "test": test}).save_to_disk(str(saved))

    data, ctx = collect("hf_dataset", tmp_path, path=str(saved), split="train")
    assert data["id"] == ["reviews_hf:train:0", "reviews_hf:train:1", "reviews_hf:train:2"]
    assert data["label"] == ["positive", "negative", None] and ctx.metadata["format"] == "text_label"
    data, _ = collect("hf_dataset", tmp_path, path=str(saved), split="test", label_names=False)
    assert data["label"] == [1] and data["id"] == ["reviews_hf:test:0"]
    with pytest.raises(ValueError, match="data.split 'validation' is not in .*its splits: train, test"):
        collect("hf_dataset", tmp_path, path=str(saved), split="validation")

    chats = write_jsonl(
        tmp_path / "chats.jsonl",
        [
            {
                "conversations": [
                    {"from": "human", "value": "Hi, is the store open?"},
                    {"from": "gpt", "value": "Yes, until 6 pm."},
                ]
            }
        ],
    )
    data, _ = collect("hf_dataset", tmp_path, path="json", data_files=[str(chats)], format="sharegpt")
    assert data["id"] == ["json:train:0"] and data[0]["completion"] == "Yes, until 6 pm."
    folder = tmp_path / "csv_shards"
    folder.mkdir()
    (folder / "part-1.csv").write_text("text,label\nGreat fit,positive\n")
    (folder / "part-2.csv").write_text("text,label\nToo small,negative\n")
    data, ctx = collect("hf_dataset", tmp_path, path=str(folder))
    assert sorted(data["text"]) == ["Great fit", "Too small"] and data["id"] == [
        "csv_shards:train:0",
        "csv_shards:train:1",
    ]
    assert ctx.counters["records in format text_label (detected)"] == 2
    # a folder of JSON Lines: a 500 kB line next to a column of mixed types once crashed pyarrow
    folder = tmp_path / "jsonl_shards"
    folder.mkdir()
    rows = [
        {"text": "Great fit", "label": "positive", "stars": 5},
        {"text": "long " * 100_000, "label": "negative", "stars": True},
    ]
    (folder / "part-1.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    data, _ = collect("hf_dataset", tmp_path, path=str(folder))
    assert sorted(map(len, data["text"])) == [9, 500_000]
    with pytest.raises(ConfigError, match=r"data.path=json is a builder: give the files to read in data.data_files"):
        validate(["data=hf_dataset", "data.path=json"])


def test_hf_hub_name_offline_fails_with_a_local_copy_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError) as err:
        collect("hf_dataset", tmp_path, path="tatsu-lab/alpaca")
    message = str(err.value)
    assert message.startswith("data.path 'tatsu-lab/alpaca' names a Hugging Face Hub dataset")
    assert (
        "Hub is unreachable (HF_HUB_OFFLINE is set)" in message
        and "save_to_disk" in message
        and "data.path=DIR" in message
    )
    with pytest.raises(ValueError, match="data.path './not/here' does not exist"):
        collect("hf_dataset", tmp_path, path="./not/here")


# --- config templates and end to end ------------------------------------------------------------


@pytest.mark.parametrize("template", ["jsonl", "json", "csv", "tsv", "parquet", "text", "pdf", "hf_dataset"])
def test_data_templates_require_a_path(template):
    with pytest.raises(ConfigError, match=r"cannot resolve 'data.path'.*data.path=\.\.\."):
        validate([f"data={template}"])


def test_sql_template_validates_once_url_and_query_are_given(tickets_db):
    with pytest.raises(ConfigError, match="data.url"):
        validate(["data=sql", "data.query='SELECT 1'"])
    rc = validate(
        ["data=sql", f"data.url=sqlite:///{tickets_db}", "data.query='SELECT 1'", "data.params={status: closed}"]
    )
    assert rc.collector.name == "sql" and rc.collector.config.params == {"status": "closed"}


def test_end_to_end_json_alpaca_file(tmp_path):
    records = [
        {
            "instruction": f"How long does delivery to {city} take?",
            "input": "",
            "output": f"Two days to {city}.",
            "category": "shipping",
        }
        for city in ("Oslo", "Bergen", "Lyon", "Porto", "Turin", "Graz", "Cork", "Ghent", "Basel", "Split")
    ]
    records += [
        {
            "instruction": "Summarise the complaint.",
            "input": f"Order {n} arrived damaged.",
            "output": "Damaged delivery.",
            "category": "returns",
        }
        for n in range(10)
    ]
    records += [
        records[0],
        {"instruction": "No answer yet", "input": "", "output": None, "category": "shipping"},
        {"instruction": "Broken", "category": "returns"},
    ]
    path = tmp_path / "alpaca_data.json"
    path.write_text(json.dumps(records, indent=1))
    prepared = _prepare(["data=json", f"data.path={path}", "data.columns={category: label}", "pipeline=minimal"])
    summary = prepared.summary
    assert summary["rows_read"] == 23 and summary["rows_quarantined"] == 1 and summary["rows_final"] == 20
    train = prepared.splits["train"]
    prompts = (
        set(train["prompt"]) | set(prepared.splits["test"]["prompt"]) | set(prepared.splits["validation"]["prompt"])
    )
    assert "Summarise the complaint.\n\nOrder 3 arrived damaged." in prompts
    quarantine = [json.loads(line) for line in (prepared.directory / "quarantine.jsonl").read_text().splitlines()]
    assert (
        quarantine[0]["source"] == "alpaca_data.json"
        and quarantine[0]["line"] == 23
        and "'output'" in quarantine[0]["reason"]
    )
    assert set(summary["split_labels"]["test"]) <= {"shipping", "returns"}


def test_end_to_end_csv_text_label_and_sharegpt_messages_survive_the_cache(tmp_path):
    reviews = tmp_path / "reviews.csv"
    lines = (
        ["review,rating"]
        + [f'"Tent {n} kept me dry, great buy",good' for n in range(12)]
        + [f'"Stove {n} broke on day one",bad' for n in range(8)]
    )
    reviews.write_text("\n".join(lines) + "\n")
    overrides = [
        "data=csv",
        f"data.path={reviews}",
        "data.format=text_label",
        "data.columns={review: text, rating: label}",
        "pipeline=minimal",
        "pipeline.params.drop_missing.fields=[text]",
        "pipeline.params.exact_dedup.fields=[text]",
    ]
    prepared = _prepare(overrides)
    assert prepared.summary["rows_final"] == 20 and prepared.summary["split_labels"]["test"] == {"bad": 1, "good": 1}

    chats = write_jsonl(
        tmp_path / "chats.jsonl",
        [
            {
                "conversations": [
                    {"from": "human", "value": f"Do you stock size {n} boots?"},
                    {"from": "gpt", "value": f"Yes, size {n} is in stock."},
                ]
            }
            for n in range(36, 48)
        ],
    )
    prepared = _prepare(["data=jsonl", f"data.path={chats}", "pipeline=minimal"])
    again = _prepare(["data=jsonl", f"data.path={chats}", "pipeline=minimal"])
    assert again.cache_hit
    train = again.splits["train"]
    assert train.features["messages"].feature["content"].dtype == "string"
    row = train[0]
    assert row["messages"][0]["role"] == "user" and row["messages"][1]["content"] == row["completion"]
