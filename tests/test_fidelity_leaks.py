"""Leaks (issue 15, items 5 and 6): credentials in a URL's query string, and personal data in
file, folder and column names, never reach an output, a log, an id or a tracker.

5. A database URL with the password in its query string (``?user=etl&password=...``,
   ``sqlite:///x.db?password=...``), through the CLI: a run that fails to connect, a
   sweep over SQLite that succeeds; every file of the run, Hydra's ``.hydra/`` files and
   the console are searched for the password, and ``user=etl`` stays readable.
6. Files, a folder and columns named with e-mail addresses, phone numbers, SSNs, IPs and
   card numbers, prepared with ``pii`` in the pipeline: every output file, the cache, the
   offline W&B run and the console are searched for each planted value; a Hypothesis
   generator of PII-bearing names drives the collector + pii step.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sqlite3
from pathlib import Path

import pytest
import yaml

from conftest import SAMPLE, run_cli
from tunelab.data.ledger import read_ledger

PASSWORD = "Hunter2Pw0rd"
SSL_PASSWORD = "SslKeyPass-31f9"


def _files(*roots: Path) -> list[Path]:
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


def _found(files: list[Path], console: str, needles: list[str]) -> dict[str, list[str]]:
    """needle -> the files (and ``<console>``) it appears in."""
    found: dict[str, list[str]] = {}
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            if needle.encode() in data:
                found.setdefault(needle, []).append(str(path))
    for needle in needles:
        if needle in console:
            found.setdefault(needle, []).append("<console>")
    return found


def _cli(args: list[str]) -> tuple[int, str]:
    """Exit status and console output (stdout and stderr) of one CLI call."""
    console = io.StringIO()
    with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
        try:
            code = run_cli(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, console.getvalue()


def _tickets_db(path: Path, rows: int = 60) -> None:
    records = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:rows]]
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE tickets (question, answer, category)")
        db.executemany(
            "INSERT INTO tickets VALUES (?, ?, ?)",
            [(r.get("question"), r.get("answer"), r.get("category")) for r in records],
        )
        db.commit()


# --- 5. credentials in a URL's query string --------------------------------------------------


def test_redact_text_masks_secret_query_parameters_and_keeps_the_others():
    from tunelab.redaction import is_secret_key, is_secret_param, redact_text, url_secrets

    cases = {
        "postgresql://127.0.0.1:1/t?user=etl&password=Hunter2Pw0rd": "postgresql://127.0.0.1:1/t?user=etl&password=***",
        "sqlite:///x.db?password=Hunter2Pw0rd": "sqlite:///x.db?password=***",
        "data.url='postgresql://h/db?sslmode=require&sslpassword=pw-1234&sslkey=/etc/client.key'": "data.url='postgresql://h/db?sslmode=require&sslpassword=***&sslkey=/etc/client.key'",
        "mysql://app:pa55word@h/shop?charset=utf8mb4&pwd=other-1": "mysql://app:***@h/shop?charset=utf8mb4&pwd=***",
        # a presigned S3 URL: the credential and the signature go, the algorithm and expiry stay
        "https://b.s3.amazonaws.com/o.jsonl?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAX%2F20240101"
        "&X-Amz-Expires=600&X-Amz-Signature=9f86d081884c7d65": "https://b.s3.amazonaws.com/o.jsonl?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***"
        "&X-Amz-Expires=600&X-Amz-Signature=***",
        "https://acct.blob.core.windows.net/c/f.csv?sv=2022-11-02&sp=r&sig=AbC%2Bdef%3D": "https://acct.blob.core.windows.net/c/f.csv?sv=2022-11-02&sp=r&sig=***",
        "https://api.example.com/v1/items?api_key=k-123456&page=2&access_token=tok-abcdef#top": "https://api.example.com/v1/items?api_key=***&page=2&access_token=***#top",
        "<a href='https://x.example/?a=1&amp;token=tok123'>": "<a href='https://x.example/?a=1&amp;token=***'>",
        # Hydra's escaped form (a sweep's override_dirname): a comma of the value is \,
        r"data.url=postgresql\://h/t?user\=etl&password\=Hun\,ter2,data=sql": r"data.url=postgresql\://h/t?user\=etl&password\=***,data=sql",
        "url: sqlite:///x.db?password=${oc.env:DB_PASSWORD}": "url: sqlite:///x.db?password=${oc.env:DB_PASSWORD}",
        "https://example.com/search?q=password&sort=key": "https://example.com/search?q=password&sort=key",
        # metric names are numbers, not secrets
        '{"test_token_accuracy": 0.53, "token_loss": 1.2, "max_new_tokens": 64}': (
            '{"test_token_accuracy": 0.53, "token_loss": 1.2, "max_new_tokens": 64}'
        ),
    }
    for text, expected in cases.items():
        assert redact_text(text) == expected, text
    assert url_secrets("postgresql://u:p%40ss@h/t?user=etl&password=Hunter2Pw0rd&sslkey=/k") == [
        "p%40ss",
        "Hunter2Pw0rd",
    ]
    for name in (
        "password",
        "PWD",
        "sslpassword",
        "token",
        "key",
        "sig",
        "X-Amz-Signature",
        "db_password",
        "client_secret",
    ):
        assert is_secret_param(name), name
    for name in ("user", "sslmode", "sslkey", "sslcert", "page", "q", "charset", "X-Amz-Expires"):
        assert not is_secret_param(name), name
    for metric in ("test_token_accuracy", "eval_token_accuracy", "token_loss", "train_token_rate"):
        assert not is_secret_key(metric), metric
    assert is_secret_key("hf_token") and is_secret_key("access_token")


def test_a_password_in_the_query_string_of_a_url_that_fails_reaches_no_output(tmp_path):
    url = f"postgresql://127.0.0.1:1/t?user=etl&password={PASSWORD}"
    run = tmp_path / "run"
    code, console = _cli(["prepare", "data=sql", f"data.url='{url}'", 'data.query="SELECT 1"', f"hydra.run.dir={run}"])
    assert code != 0
    assert "data.url postgresql://127.0.0.1:1/t?user=etl&password=***" in console
    files = _files(run, tmp_path / "cache")
    assert {"error.txt", "metrics.json", "config.yaml", "overrides.yaml", "hydra.yaml"} <= {p.name for p in files}
    assert not _found(files, console, [PASSWORD])
    # what is not a secret stays readable
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["url"] == "postgresql://127.0.0.1:1/t?user=etl&password=***"
    assert (
        "data.url='postgresql://127.0.0.1:1/t?user=etl&password=***'" in (run / ".hydra" / "overrides.yaml").read_text()
    )
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    assert metrics["status"] == "failed" and "password=***" in metrics["error"]


def test_a_password_in_the_query_string_of_a_sqlite_url_reaches_no_output(tmp_path):
    db = tmp_path / "tickets.db"
    _tickets_db(db)
    url = f"sqlite:///{db}?password={PASSWORD}&sslpassword={SSL_PASSWORD}&mode=ro"
    sweep = tmp_path / "sweep"
    code, console = _cli(
        [
            "prepare",
            "-m",
            "data=sql",
            f"data.url='{url}'",
            'data.query="SELECT question, answer, category FROM tickets"',
            "data.columns={question:prompt,answer:completion,category:label}",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert code == 0, console[-3000:]
    files = _files(sweep, tmp_path / "cache")
    assert {"multirun.yaml", "overrides.yaml", "hydra.yaml", "config.yaml", "metrics.json", "ledger.jsonl"} <= {
        p.name for p in files
    }
    assert any(p.suffix == ".arrow" for p in files)
    assert not _found(files, console, [PASSWORD, SSL_PASSWORD])
    job = sweep / "0"
    shown = f"sqlite:///{db}?password=***&sslpassword=***&mode=ro"
    assert yaml.safe_load((job / "config.yaml").read_text())["data"]["url"] == shown
    # the rows' source names the database without its credentials
    from datasets import load_from_disk

    key = json.loads((job / "metrics.json").read_text())["metrics"]["data_key"]
    train = load_from_disk(str(tmp_path / "cache" / "prepared" / key / "splits" / "train"))
    assert set(train["source"]) == {shown}


def test_a_driver_message_quoting_the_query_string_password_is_masked(tmp_path):
    from tunelab.api import StageContext
    from tunelab_builtin.collectors._records import SourceError
    from tunelab_builtin.collectors.sql import SqlCollector, SqlSourceConfig

    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("this is not an SQLite file\n" * 50)
    url = f"sqlite:///{not_a_db}?password={PASSWORD}"
    collector = SqlCollector(SqlSourceConfig(url=url, query="SELECT * FROM t"))
    with pytest.raises(SourceError) as failure:
        collector.collect(StageContext(seed=0, num_proc=1, work_dir=tmp_path))
    message = str(failure.value)
    assert message == "data.query failed: file is not a database. Query: SELECT * FROM t"
    assert (
        collector._scrub(f"FATAL: password {PASSWORD} rejected for {url}")
        == f"FATAL: password *** rejected for sqlite:///{not_a_db}?password=***"
    )


# --- 6. personal data in file, folder and column names ------------------------------------

NAMES_PII = {
    "folder phone": "555-867-5309",
    "email": "john.doe@example.com",
    "ip": "203.0.113.9",
    "card": "4111111111111111",
    "phone": "212-555-0199",
    "ssn": "123-45-6789",
    "column email": "jane_roe@example.org",
}


def _name_needles() -> list[str]:
    """Each planted value as written and as bare digits (a tokenizer or a slug may drop separators)."""
    needles = set(NAMES_PII.values())
    needles |= {re.sub(r"\D", "", v) for v in NAMES_PII.values() if "@" not in v}
    return sorted(needles)


def _planted_tree(root: Path) -> Path:
    """A folder named with a phone number holding files named with an e-mail address and a
    phone, an IP and a card number, and one whose only line does not parse; rows carry
    columns named with an SSN and an e-mail address."""
    folder = root / "data" / f"ops-{NAMES_PII['folder phone']}"
    folder.mkdir(parents=True)
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:90]]
    for i, row in enumerate(rows):
        if i % 3 == 0:
            row[f"ssn {NAMES_PII['ssn']}"] = f"v{i}"
        if i % 5 == 0:
            row[f"contact_{NAMES_PII['column email']}"] = i
    first = folder / f"export_{NAMES_PII['email']}_{NAMES_PII['folder phone']}.jsonl"
    second = folder / f"ip_{NAMES_PII['ip']}_card-{NAMES_PII['card']}.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in rows[:45]) + "{not json\n", encoding="utf-8")
    second.write_text("".join(json.dumps(r) + "\n" for r in rows[45:]), encoding="utf-8")
    (folder / f"bad_{NAMES_PII['phone']}.jsonl").write_text("[1, 2\n", encoding="utf-8")
    return root / "data"


def test_personal_data_in_file_folder_and_column_names_reaches_no_output(tmp_path, monkeypatch):
    data = _planted_tree(tmp_path / "input")
    out = tmp_path / "out"
    for name in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(name, str(out / name.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = out / "run"
    code, console = _cli(
        [
            "prepare",
            "data=jsonl",
            f"data.path={data}",
            "data.columns={question: prompt, answer: completion, category: label}",
            "tracker=[wandb]",
            "tracker.wandb.log_dataset=true",
            "tracker.wandb.project=tunelab-leaks",
            f"hydra.run.dir={run}",
        ]
    )
    assert code == 0, console[-3000:]
    files = _files(out, tmp_path / "cache")
    names = {p.name for p in files}
    assert {
        "ledger.jsonl",
        "quarantine.jsonl",
        "data_report.md",
        "data_report.html",
        "COMPLETE.json",
        "config.yaml",
        "hydra.yaml",
        "metrics.json",
    } <= names
    assert any(p.suffix == ".arrow" for p in files) and any(p.suffix == ".wandb" for p in files)
    leaks = _found(files, console, _name_needles())
    assert not leaks, leaks
    # no file or folder is named with one either
    assert not [p for p in files if any(n in str(p.relative_to(tmp_path)) for n in _name_needles())]

    # each file keeps one stable name, with placeholders; its rows keep their line numbers
    first = "ops-<PHONE>/export_<EMAIL>_<PHONE>.jsonl"
    second = "ops-<PHONE>/ip_<IPV4>_card-<CREDIT_CARD>.jsonl"
    from datasets import load_from_disk

    key = json.loads((run / "metrics.json").read_text())["metrics"]["data_key"]
    splits = load_from_disk(str(tmp_path / "cache" / "prepared" / key / "splits"))
    rows = [r for part in splits.values() for r in part]
    assert {r["source"] for r in rows} == {first, second}
    assert all(re.fullmatch(rf"({re.escape(first)}|{re.escape(second)}):\d+(~\w+)?", r["id"]) for r in rows)
    # contact_jane_roe@example.org is an address as a whole (an underscore fits its first part)
    assert {"ssn <US_SSN>", "<EMAIL>"} <= set(splits["train"].column_names)
    quarantined = [json.loads(line) for line in (run / "quarantine.jsonl").read_text().splitlines()]
    assert {(q["source"], q["line"]) for q in quarantined} == {(first, 46), ("ops-<PHONE>/bad_<PHONE>.jsonl", 1)}
    ledger = read_ledger(run / "ledger.jsonl")
    assert {r["id"] for r in ledger if r["action"] == "quarantined"} == {
        f"{first}:46",
        "ops-<PHONE>/bad_<PHONE>.jsonl:1",
    }
    report = (run / "data_report.md").read_text()
    assert "| jsonl | source names renamed (personal data) | 3 |" in report
    assert "| jsonl | column names renamed (personal data) | 2 |" in report
    # the console says so, with the placeholder
    assert "3 source names held personal data; they are renamed with placeholders" in console
    assert "2 column names held personal data; they are renamed with placeholders (e.g. ssn <US_SSN>)" in console


def test_an_error_naming_a_file_shows_its_renamed_name_when_pii_is_on(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / f"export_{NAMES_PII['email']}.json").write_text('{"version": 2, "rows": []}', encoding="utf-8")
    run = tmp_path / "run"
    code, console = _cli(
        ["prepare", "data=json", f"data.path={folder}", "data.records_key=data", f"hydra.run.dir={run}"]
    )
    assert code != 0
    # the address takes the name's first word with it (an underscore fits an address), not the suffix
    assert (
        "<EMAIL>.json: data.records_key 'data' holds nothing, expected a list of records "
        "(top-level keys: version, rows)" in console
    )
    assert not _found(_files(run, tmp_path / "cache"), console, [NAMES_PII["email"]])
    assert "failed: <EMAIL>.json: data.records_key" in (run / "error.txt").read_text()
    # without pii the name is shown as it is: it is the user's own file
    code, console = _cli(
        [
            "prepare",
            "data=json",
            f"data.path={folder}",
            "data.records_key=data",
            "pipeline.clean=[normalize]",
            f"hydra.run.dir={tmp_path / 'plain'}",
        ]
    )
    assert code != 0 and f"export_{NAMES_PII['email']}.json: data.records_key 'data' holds nothing" in console


# --- 6. property: generated PII-bearing file and column names ------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import SOAK  # noqa: E402

#: words of real export names; no "v"/"version"/"build" (before an IPv4 address they make it
#: read as a version number, which the detector leaves alone on purpose)
WORDS = [
    "export",
    "customers",
    "backup",
    "final",
    "report",
    "crm",
    "tickets",
    "notes",
    "copy",
    "dev",
    "team",
    "q3",
    "2024",
    "part",
    "eu",
    "de",
    "raw",
    "clean",
    "x",
]


@st.composite
def _email(draw) -> str:
    local = draw(st.sampled_from([".", "_", "-", ""])).join(
        draw(st.lists(st.sampled_from(["john", "doe", "ana", "li", "k"]), min_size=1, max_size=3))
    )
    local += draw(st.sampled_from(["", "7", "1984"]))
    domain = draw(st.sampled_from(["example", "mail", "corp-it", "uni"]))
    return f"{local}@{domain}.{draw(st.sampled_from(['com', 'org', 'net', 'io', 'co.uk', 'de']))}"


@st.composite
def _phone(draw) -> str:
    area, exchange = draw(st.integers(200, 999)), draw(st.integers(200, 999))
    line = f"{draw(st.integers(0, 9999)):04d}"
    form = draw(
        st.sampled_from(
            ["{a}-{e}-{l}", "{a}.{e}.{l}", "({a}) {e}-{l}", "+1-{a}-{e}-{l}", "+1 {a} {e} {l}", "+44 20 {e} {l}"]
        )
    )
    return form.format(a=area, e=exchange, l=line)


@st.composite
def _ssn(draw) -> str:
    area = draw(st.integers(1, 899).filter(lambda n: n != 666))
    return f"{area:03d}-{draw(st.integers(1, 99)):02d}-{draw(st.integers(1, 9999)):04d}"


@st.composite
def _ipv4(draw) -> str:
    return ".".join(str(draw(st.integers(0, 255))) for _ in range(4))


@st.composite
def _card(draw) -> str:
    from tunelab_builtin.cleaners.pii import luhn_valid

    prefix = draw(st.sampled_from(["4", "51", "55"]))
    body = prefix + "".join(str(draw(st.integers(0, 9))) for _ in range(15 - len(prefix)))
    digits = next(body + c for c in "0123456789" if luhn_valid(body + c))  # 16 digits, Luhn-valid
    sep = draw(st.sampled_from(["", "-", " "]))
    return sep.join(digits[i : i + 4] for i in range(0, 16, 4))


ENTITY = st.one_of(_email(), _phone(), _ssn(), _ipv4(), _card())


def _joined(draw, parts: list[str], separators: list[str], planted: list[str]) -> str:
    """``parts`` joined by drawn separators. Two digits are never glued together (that makes
    one longer number, not the planted one), and two planted values are joined by ``_`` or a
    space (``a@b.com.c@d.com`` is one address as much as two)."""
    out = parts[0]
    for previous, part in zip(parts, parts[1:]):
        sep = draw(st.sampled_from(separators))
        if previous in planted and part in planted:
            sep = draw(st.sampled_from(["_", " "]))
        if sep == "" and out[-1:].isdigit() and part[:1].isdigit():
            sep = "_"
        out += sep + part
    return out


@st.composite
def pii_names(draw, separators: tuple[str, ...] = ("_", "-", ".", " ", "")) -> tuple[str, list[str]]:
    """(a realistic name with personal data mixed in, the planted values)."""
    planted = draw(st.lists(ENTITY, min_size=1, max_size=2))
    parts = draw(st.lists(st.sampled_from(WORDS), max_size=3)) + planted
    parts = draw(st.permutations(parts))
    return _joined(draw, list(parts), list(separators), planted), planted


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


@settings(max_examples=3000 if SOAK else 400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pii_names(), st.sampled_from(["", ".jsonl", ".csv", ".json.gz", ".parquet"]))
def test_no_planted_value_survives_in_a_generated_name(named, suffix):
    from tunelab_builtin.cleaners.pii import Pii, PiiConfig

    name, planted = named
    clean = Pii(PiiConfig()).scrub_name(name + suffix)
    for value in planted:
        assert value not in clean, (name + suffix, clean)
        if "@" not in value:  # the number may not survive with other separators either
            assert _digits(value) not in _digits(clean), (name + suffix, clean)
    assert clean.endswith(suffix)  # the file's type stays readable


@st.composite
def pii_files(draw) -> tuple[str, str, list[str]]:
    """(file path below the data folder, a column name, planted values): a folder and a file
    named with personal data, and a column too."""
    folder, in_folder = draw(pii_names(separators=("_", "-", " ")))
    file, in_file = draw(pii_names())
    column, in_column = draw(pii_names(separators=("_", " ", "-")))
    return f"{folder}/{file}.jsonl", column, in_folder + in_file + in_column


@settings(
    max_examples=200 if SOAK else 20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(pii_files())
def test_a_generated_pii_named_file_and_column_leave_no_trace_in_the_prepared_data(tmp_path_factory, case):
    from conftest import validate
    from tunelab.data.cache import prepare
    from tunelab.plugins import get_plugins

    relative, column, planted = case
    root = tmp_path_factory.mktemp("names")
    path = root / "data" / relative
    path.parent.mkdir(parents=True)
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:24]]
    path.write_text(
        "".join(json.dumps({**r, column: i}) + "\n" for i, r in enumerate(rows)) + "{broken\n", encoding="utf-8"
    )
    rc = validate(
        [
            "data=jsonl",
            f"data.path={root / 'data'}",
            f"cache_dir={root / 'cache'}",
            "data.columns={question: prompt, answer: completion, category: label}",
            "pipeline.clean=[pii]",
            "pipeline.augment=[]",
            "pipeline.balance=[]",
        ]
    )
    prepared = prepare(rc, get_plugins())
    files = _files(prepared.directory)
    assert any(p.suffix == ".arrow" for p in files) and any(p.name == "quarantine.jsonl" for p in files)
    # a number's digits alone too, when they are enough to be that number: an IP such as 0.0.0.0
    # is "0000" without its dots, which any hash or timestamp may hold
    needles = planted + [_digits(v) for v in planted if "@" not in v and len(_digits(v)) >= 8]
    assert not _found(files, "", needles), (relative, column)
    assert not [n for n in needles for p in files if n in str(p.relative_to(prepared.directory))]
    splits = prepared.splits
    assert sum(len(part) for part in splits.values()) == 24
    assert len({s for part in splits.values() for s in part["source"]}) == 1


def test_a_run_named_after_a_pii_named_data_file_gets_the_placeholder(tmp_path, monkeypatch):
    """Tracker run names (W&B, MLflow) and TensorBoard's folders are made from the command-line
    overrides; data.path there may name a file holding personal data."""
    folder = tmp_path / "in"
    folder.mkdir()
    data = folder / f"export_{NAMES_PII['email']}.jsonl"
    data.write_text(SAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    logdir = tmp_path / "tb"
    code, console = _cli(
        [
            "prepare",
            "data=jsonl",
            f"data.path={data}",
            "tracker=[tensorboard]",
            "data.columns={question: prompt, answer: completion, category: label}",
            f"tracker.tensorboard.logdir={logdir}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    assert code == 0, console[-2000:]
    folders = [p.relative_to(logdir).as_posix() for p in logdir.rglob("*") if p.is_dir()]
    assert folders and not [f for f in folders if NAMES_PII["email"][:7] in f]  # a slug may cut the name short
    assert any("EMAIL" in f for f in folders), folders
