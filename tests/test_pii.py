"""The ``pii`` cleaner: detection precision and recall, every strategy, the drop
action's ledger, and the bundled sample prepared with PII removed."""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import SAMPLE, validate
from tunelab.api import StageContext
from tunelab.config import ConfigError
from tunelab.data.cache import prepare
from tunelab.data.ledger import read_ledger
from tunelab.plugins import get_plugins
from tunelab_builtin.cleaners.pii import Pii, PiiConfig, detect, iban_valid, luhn_valid

# (sentence, the PII in it, its entity)
POSITIVES = [
    ("Can't log in, my account email is Liu.Wei+shop@mail.example.co.uk.", "Liu.Wei+shop@mail.example.co.uk", "email"),
    ("Reach me at j.moreau@example.com or on the phone.", "j.moreau@example.com", "email"),
    ("Phone on file is (555) 555-0187, please call after 5pm.", "(555) 555-0187", "phone"),
    ("Please call me back at +44 20 7946 0321.", "+44 20 7946 0321", "phone"),
    ("Contact: +33 1 70 36 01 99 (mobile)", "+33 1 70 36 01 99", "phone"),
    ("our office line is 020 7946 0000 during the week", "020 7946 0000", "phone"),
    ("text me on 07700 900123 if the parcel is late", "07700 900123", "phone"),
    ("Call 1-800-555-0199 to reach billing.", "1-800-555-0199", "phone"),
    ("My number is +1 (415) 555-0132.", "+1 (415) 555-0132", "phone"),
    ("whatsapp +4915112345678 anytime", "+4915112345678", "phone"),
    ("My card 5500 0000 0000 0004 got charged $9.99 twice.", "5500 0000 0000 0004", "credit_card"),
    ("Refund to 4111-1111-1111-1111 exp 12/27 please", "4111-1111-1111-1111", "credit_card"),
    ("hi my amex 3782 822463 10005 keeps getting declined", "3782 822463 10005", "credit_card"),
    ("card number 4242424242424242, cvc on request", "4242424242424242", "credit_card"),
    ("Wire it to IBAN DE89 3704 0044 0532 0130 00, name Julia Becker.", "DE89 3704 0044 0532 0130 00", "iban"),
    ("I paid to GB82 WEST 1234 5698 7654 32 as the invoice said.", "GB82 WEST 1234 5698 7654 32", "iban"),
    ("account FR1420041010050500013M02606 at my bank", "FR1420041010050500013M02606", "iban"),
    ("I get error 403 when I log in from 198.51.100.23. Is my IP blocked?", "198.51.100.23", "ipv4"),
    ("someone from IP 203.0.113.45 logged into my account", "203.0.113.45", "ipv4"),
    ("my router shows 2001:db8::8a2e:370:7334 as the address", "2001:db8::8a2e:370:7334", "ipv6"),
    ("the login came from fe80::1ff:fe23:4567:890a, not me", "fe80::1ff:fe23:4567:890a", "ipv6"),
    ("For the tax form: SSN 078-05-1120.", "078-05-1120", "us_ssn"),
    ("My National Insurance number is QQ 12 34 56 C", "QQ 12 34 56 C", "uk_nino"),
    ("NI number AB123456C for the payroll", "AB123456C", "uk_nino"),
    (
        "More info: https://www.northwind-outfitters.example/help/returns).",
        "https://www.northwind-outfitters.example/help/returns",
        "url",
    ),
    ("see www.example.com/orders?id=7, then log in", "www.example.com/orders?id=7", "url"),
]

# text that looks like PII to a careless pattern, and is not
NEGATIVES = [
    "Charged twice on order NW-611204, and again on NW-483920.",
    "Plus is still $9.99 per month or $99 per year; the tent is $1,299.00.",
    "Delivered on 2024-03-15 at 10:30:00, estimated 3-5 business days.",
    "Update to version 1.2.3.4, or v10.0.19045.2965 on Windows.",
    "My loyalty number is 1234 5678 9012 3456.",  # 16 digits, fails the Luhn check
    "Reference 4111 1111 1111 1112 on the slip.",  # one digit off a test card: not Luhn-valid
    "Invoice VAT DE123456789, Hauptstrasse 5, 10115 Berlin.",
    "IBAN GB82 WEST 1234 5698 7654 33 was rejected by my bank.",  # bad mod-97 check digits
    "Error 403 from 256.1.1.1 again.",
    "Use std::vector or a::b in the sample code.",
    "Support hours Mon-Fri 8am-6pm CET, ratio 16:9.",
    "ISBN 978-3-16-148410-0, tracking 1Z999AA10123456784.",
    "The Kestrel 45 measures 55 x 35 x 25 cm and is rated to +5°C or -10°C.",
    "Fake SSNs 000-12-3456, 666-12-3456 and 912-34-5678 are never issued.",
    "In 2023 we sold 15,000 tents; call extension 4567.",
    "Postcode NW1 6XE, ID 12345678901.",
]


@pytest.mark.parametrize(("sentence", "value", "entity"), POSITIVES)
def test_detects_pii_in_realistic_sentences(sentence, value, entity):
    found = [(sentence[m.start : m.end], m.entity) for m in detect(sentence)]
    assert found == [(value, entity)]


@pytest.mark.parametrize("sentence", NEGATIVES)
def test_leaves_lookalikes_alone(sentence):
    assert [(sentence[m.start : m.end], m.entity) for m in detect(sentence)] == []


def test_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE88 3704 0044 0532 0130 00")
    assert not iban_valid("DE89 3704 0044 0532 0130 0")  # one character short for Germany


def test_overlapping_entities_resolve_to_the_longest():
    text = "mail ops@www.example.com or visit www.example.com; card 4111 1111 1111 1111"
    assert [(text[m.start : m.end], m.entity) for m in detect(text)] == [
        ("ops@www.example.com", "email"),
        ("www.example.com", "url"),
        ("4111 1111 1111 1111", "credit_card"),
    ]


# --- the cleaner ----------------------------------------------------------------------


def _dataset(rows):
    from datasets import Dataset

    return Dataset.from_list(rows)


def _ctx(tmp_path: Path, seed: int = 0) -> StageContext:
    return StageContext(seed=seed, num_proc=1, work_dir=tmp_path)


ROWS = [
    {
        "id": "r1",
        "parent_id": None,
        "prompt": "Can't log in. Email liu.wei@example.com, phone (555) 555-0187.",
        "completion": "I've sent a reset link.",
    },
    {
        "id": "r2",
        "parent_id": None,
        "prompt": "Where is order NW-483920? It was $14.99.",
        "completion": "It ships on 2024-03-15.",
    },
    {
        "id": "r3",
        "parent_id": None,
        "prompt": "Refund to card 4111 1111 1111 1111 please",
        "completion": "Refunds go to the original card; write to privacy@northwind.example.com.",
    },
    {
        "id": "r4",
        "parent_id": None,
        "prompt": "Same person again: LIU.WEI@EXAMPLE.COM, 555.555.0187",
        "completion": None,
    },
]
RAW_VALUES = [
    "liu.wei@example.com",
    "(555) 555-0187",
    "4111 1111 1111 1111",
    "privacy@northwind.example.com",
    "LIU.WEI@EXAMPLE.COM",
    "555.555.0187",
]


def _run(config: PiiConfig, tmp_path: Path, rows=ROWS, seed: int = 0):
    ctx = _ctx(tmp_path, seed)
    out = Pii(config).apply(_dataset(rows), ctx)
    return out, ctx


def _all_text(data) -> str:
    return "\n".join(str(v) for c in ("prompt", "completion") for v in list(data[c]))


def test_placeholder_strategy_counts_and_examples(tmp_path):
    out, ctx = _run(PiiConfig(), tmp_path)
    assert out["id"] == ["r1", "r2", "r3", "r4"]
    assert out["prompt"][0] == "Can't log in. Email <EMAIL>, phone <PHONE>."
    assert out["prompt"][1] == ROWS[1]["prompt"] and out["completion"][1] == ROWS[1]["completion"]
    assert out["completion"][2] == "Refunds go to the original card; write to <EMAIL>."
    assert out["completion"][3] is None
    assert not any(v in _all_text(out) for v in RAW_VALUES)
    assert ctx.metadata["pii_counts"]["email"] == 3 and ctx.metadata["pii_counts"]["phone"] == 2
    assert ctx.metadata["pii_counts"]["credit_card"] == 1 and ctx.metadata["rows_with_pii"] == 3
    assert ctx.counters["pii_email"] == 3 and ctx.counters["rows_redacted"] == 3
    # report examples never carry the raw values
    assert ctx.examples and "<EMAIL>" in ctx.examples[0]["before"]
    shown = json.dumps(ctx.examples)
    assert not any(v in shown for v in RAW_VALUES)


def test_examples_centre_on_pii_deep_in_a_long_text(tmp_path):
    answer = (
        "We looked into it. " * 60 + "Please write to privacy@northwind.example.com so we can help. " + "Thanks! " * 40
    )
    out, ctx = _run(
        PiiConfig(strategy="fake"),
        tmp_path,
        [{"id": "x", "parent_id": None, "prompt": "Data request", "completion": answer}],
    )
    [example] = ctx.examples
    assert "<EMAIL>" in example["before"] and len(example["before"]) <= 152
    fake = re.search(r"[\w.]+@example\.(?:com|org|net)", example["after"])
    assert fake and fake.group() in out["completion"][0]
    assert "privacy@northwind" not in json.dumps(ctx.examples)


def test_mask_strategy_keeps_length_or_uses_a_fixed_one(tmp_path):
    out, _ = _run(PiiConfig(strategy="mask"), tmp_path)
    assert out["prompt"][0] == "Can't log in. Email " + "*" * len("liu.wei@example.com") + ", phone " + "*" * 14 + "."
    out, _ = _run(PiiConfig(strategy="mask", mask_char="#", mask_length=4), tmp_path)
    assert out["prompt"][2] == "Refund to card #### please"


def test_hash_strategy_is_salted_and_consistent(tmp_path):
    out, _ = _run(PiiConfig(strategy="hash", salt="s3cret"), tmp_path)
    tokens = re.findall(r"<EMAIL:[0-9a-f]{12}>", _all_text(out))
    # the same address in another case hashes the same; another address differently
    assert len(tokens) == 3 and tokens[0] == tokens[1] != tokens[2]
    phones = re.findall(r"<PHONE:[0-9a-f]{12}>", _all_text(out))
    assert len(phones) == 2 and phones[0] == phones[1]
    other, _ = _run(PiiConfig(strategy="hash", salt="another"), tmp_path)
    assert re.findall(r"<EMAIL:[0-9a-f]{12}>", _all_text(other))[0] != tokens[0]
    with pytest.raises(ValueError, match="pii.salt must be set when pii.strategy=hash"):
        Pii(PiiConfig(strategy="hash"))


def test_fake_strategy_is_realistic_consistent_and_seeded(tmp_path):
    rows = ROWS + [
        {
            "id": "r5",
            "parent_id": None,
            "prompt": "IBAN DE89 3704 0044 0532 0130 00 from 198.51.100.23",
            "completion": "NI QQ 12 34 56 C, SSN 078-05-1120, ip fe80::1ff:fe23:4567:890a",
        },
        {
            "id": "r6",
            "parent_id": None,
            "prompt": "call +44 20 7946 0321 or see https://shop.example.net/help",
            "completion": "amex 3782 822463 10005",
        },
    ]
    out, _ = _run(PiiConfig(strategy="fake"), tmp_path, rows)
    text = _all_text(out)
    assert not any(
        v in text for v in RAW_VALUES + ["DE89 3704", "198.51.100.23", "078-05-1120", "3782 822463 10005", "7946 0321"]
    )
    found = {}
    for value in list(out["prompt"]) + list(out["completion"]):
        for m in detect(value or ""):
            found.setdefault(m.entity, []).append(value[m.start : m.end])
    # every fake is still a well-formed value of its kind, from reserved or test ranges;
    # the fake SSN comes from the advertising range 987-65-432x, which is never issued,
    # so it is (rightly) not detected again
    assert set(found) == {"email", "phone", "credit_card", "iban", "ipv4", "ipv6", "uk_nino", "url"}
    assert all(e.split("@")[1] in ("example.com", "example.org", "example.net") for e in found["email"])
    emails = found["email"]
    assert emails[0] == emails[1] != emails[2]  # liu.wei twice (two spellings) -> one fake
    us = [p for p in found["phone"] if not p.startswith("+44")]
    # one number in two spellings: the same fake digits, each in its original's format
    assert re.sub(r"\D", "", us[0]) == re.sub(r"\D", "", us[1]) != "5555550187"
    assert re.fullmatch(r"\(555\) 555-01\d\d", us[0]) and re.fullmatch(r"555-555-01\d\d", us[1])
    assert [p for p in found["phone"] if p.startswith("+44")][0].startswith("+44 20 7946 0")
    assert all(luhn_valid(re.sub(r"\D", "", c)) for c in found["credit_card"])
    assert re.fullmatch(r"4000 00\d\d \d{4} \d{4}", found["credit_card"][0])
    assert len(found["credit_card"][1]) == len("3782 822463 10005")
    assert iban_valid(found["iban"][0]) and found["iban"][0].startswith("DE")
    assert ipaddress.ip_address(found["ipv4"][0]) in ipaddress.ip_network("198.51.100.0/24") or any(
        ipaddress.ip_address(found["ipv4"][0]) in ipaddress.ip_network(n) for n in ("192.0.2.0/24", "203.0.113.0/24")
    )
    assert ipaddress.ip_address(found["ipv6"][0]) in ipaddress.ip_network("2001:db8::/32")
    assert re.search(r"SSN 987-65-432\d,", out["completion"][4])
    assert found["uk_nino"][0].startswith("QQ ")
    # same seed: same fakes, whatever the row order; another seed: other fakes
    again, _ = _run(PiiConfig(strategy="fake"), tmp_path, list(reversed(rows)))
    assert list(again["prompt"])[::-1] == list(out["prompt"])
    reseeded, _ = _run(PiiConfig(strategy="fake"), tmp_path, rows, seed=1)
    assert reseeded["prompt"][0] != out["prompt"][0]


def test_drop_action_records_the_entity_and_no_raw_values(tmp_path):
    out, ctx = _run(PiiConfig(action="drop"), tmp_path)
    assert out["id"] == ["r2"]
    reasons = {d.reason: d for d in ctx.drops}
    # a row with several kinds of PII is dropped for the most sensitive one
    assert set(reasons) == {"pii:phone", "pii:credit_card"}
    assert reasons["pii:phone"].ids == ["r1", "r4"]
    assert reasons["pii:phone"].detail[0] == {"entities": {"email": 1, "phone": 1}}
    assert reasons["pii:credit_card"].ids == ["r3"]
    assert reasons["pii:credit_card"].detail == [{"entities": {"email": 1, "credit_card": 1}}]
    assert not any(v in json.dumps(ctx.examples) for v in RAW_VALUES)


def test_entities_subset_only_touches_those(tmp_path):
    out, ctx = _run(PiiConfig(entities=["credit_card"]), tmp_path)
    assert out["prompt"][2] == "Refund to card <CREDIT_CARD> please"
    assert "liu.wei@example.com" in out["prompt"][0]
    assert ctx.metadata["pii_counts"] == {"credit_card": 1}


def test_chat_messages_are_redacted(tmp_path):
    rows = [
        {
            "id": "c1",
            "parent_id": None,
            "messages": [
                {"role": "user", "content": "my email is anna.k@example.com"},
                {"role": "assistant", "content": "Thanks, Anna!"},
            ],
        }
    ]
    out, ctx = _run(PiiConfig(fields=["messages"]), tmp_path, rows)
    assert out["messages"][0][0] == {"role": "user", "content": "my email is <EMAIL>"}
    assert out["messages"][0][1]["content"] == "Thanks, Anna!"
    assert ctx.metadata["pii_counts"]["email"] == 1


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"column\(s\) \['completion'\] not in the data.*pipeline.params.pii.fields"):
        _run(PiiConfig(), tmp_path, [{"id": "a", "parent_id": None, "prompt": "hi"}])
    with pytest.raises(ValueError, match="column 'label' holds a int in row 'a'.*List only text columns"):
        _run(PiiConfig(fields=["label"]), tmp_path, [{"id": "a", "parent_id": None, "label": 3}])
    for config, message in [
        (
            PiiConfig(entities=["passport"]),
            r"pii.entities must be a non-empty list from \['credit_card'.*got \['passport'\]",
        ),
        (PiiConfig(strategy="scramble"), "pii.strategy must be one of"),
        (PiiConfig(action="flag"), r"pii.action must be one of \['redact', 'drop'\]"),
        (PiiConfig(mask_char="**"), "pii.mask_char must be exactly one character"),
    ]:
        with pytest.raises(ValueError, match=message):
            Pii(config)
    with pytest.raises(ConfigError, match="pii.strategy must be one of"):
        validate(["pipeline.clean=[pii]", "++pipeline.params.pii.strategy=scramble"])


def test_long_and_odd_text(tmp_path):
    long_text = ("lorem ipsum dolor 12.5 NW-1234 " * 40_000) + "card 5500-0000-0000-0004"
    started = time.perf_counter()
    out, ctx = _run(
        PiiConfig(strategy="hash", salt="x"),
        tmp_path,
        [
            {"id": "a", "parent_id": None, "prompt": long_text, "completion": "a@example.com"},
        ],
    )
    assert time.perf_counter() - started < 10
    assert re.search(r"card <CREDIT_CARD:[0-9a-f]{12}>$", out["prompt"][0])
    assert re.fullmatch(r"<EMAIL:[0-9a-f]{12}>", out["completion"][0])
    # text that is not valid UTF-8 (lone surrogates from a lenient decoder) cannot be
    # stored in a dataset, but the redactor itself copes with it
    odd = "bad bytes \udcff\udcfe then a@example.com"
    redacted, matches, preview = Pii(PiiConfig(strategy="hash", salt="x")).redact(odd, seed=0)
    assert [m.entity for m in matches] == ["email"] and "\udcff" in redacted and "a@example.com" not in redacted
    assert preview == "bad bytes \udcff\udcfe then <EMAIL>"


# --- the bundled sample -------------------------------------------------------------


def _raw_pii() -> set[str]:
    """PII-like values in the raw sample, found with simple patterns independent of pii.py."""
    text = SAMPLE.read_text(encoding="utf-8")
    found = set(re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", text))
    found |= set(re.findall(r"\+\d{1,3}(?: \d{1,4}){2,5}|\(\d{3}\) \d{3}-\d{4}", text))
    found |= {
        m
        for m in re.findall(r"\b\d{4}[ -]\d{4,6}[ -]\d{4,5}(?:[ -]\d{4})?\b", text)
        if luhn_valid(re.sub(r"\D", "", m))
    }
    found |= set(re.findall(r"\b[A-Z]{2}\d{2}(?: [A-Z0-9]{4}){4}(?: [A-Z0-9]{1,4})?\b", text))
    return found


def test_bundled_sample_has_no_raw_pii_after_the_pii_step():
    raw = _raw_pii()
    # the sample's known PII is among what the independent scan finds
    assert {
        "liu.wei@example.com",
        "5500 0000 0000 0004",
        "3782 822463 10005",
        "4111 1111 1111 1111",
        "DE89 3704 0044 0532 0130 00",
        "GB82 WEST 1234 5698 7654 32",
        "+44 20 7946 0412",
        "(555) 555-0187",
    } <= raw
    assert len(raw) >= 20
    rc = validate(["pipeline.clean=[pii,normalize,drop_missing,exact_dedup]"])
    prepared = prepare(rc, get_plugins())
    rows = [row for split in prepared.splits.values() for row in split]
    texts = "\n".join(f"{r['prompt']}\n{r['completion']}" for r in rows)
    leaked = sorted(v for v in raw if v in texts)
    assert not leaked, f"raw PII in the prepared splits: {leaked}"
    assert "<EMAIL>" in texts and "<CREDIT_CARD>" in texts and "<IBAN>" in texts and "<PHONE>" in texts
    report = (prepared.directory / "data_report.md").read_text(encoding="utf-8")
    assert not [v for v in raw if v in report]
    counts = prepared.summary["metadata"]["pii"]["pii_counts"]
    assert counts["email"] >= 15 and counts["credit_card"] == 3 and counts["iban"] == 2 and counts["phone"] >= 7


def test_bundled_sample_drop_action_ledger():
    rc = validate(["pipeline=minimal", "pipeline.clean=[pii]", "++pipeline.params.pii.action=drop"])
    prepared = prepare(rc, get_plugins())
    dropped = [
        r
        for r in read_ledger(prepared.directory / "ledger.jsonl")
        if r.get("action") == "dropped" and r.get("step") == "pii"
    ]
    reasons = Counter(r["reason"] for r in dropped)
    assert set(reasons) <= {
        f"pii:{e}" for e in ("email", "phone", "credit_card", "iban", "us_ssn", "uk_nino", "ipv4", "ipv6", "url")
    }
    # every ticket with a card, an IBAN or a phone number goes, for the most sensitive kind it holds
    assert reasons["pii:credit_card"] == 3 and reasons["pii:iban"] == 2 and reasons["pii:phone"] >= 7
    assert reasons["pii:email"] >= 8 and reasons["pii:ipv4"] >= 2 and sum(reasons.values()) >= 25
    kept = {i for split in prepared.splits.values() for i in split["id"]}
    assert "support_tickets.jsonl:332" in {r["id"] for r in dropped} and "support_tickets.jsonl:332" not in kept
    raw = _raw_pii()
    assert not any(v in json.dumps(dropped) for v in raw)


def test_pii_on_more_rows_than_one_batch_where_the_first_batch_has_none(tmp_path):
    from datasets import Dataset

    from tunelab.api import StageContext
    from tunelab_builtin.cleaners.pii import Pii, PiiConfig

    clean = [f"Where is order NW-{100000 + i}?" for i in range(1500)]
    texts = clean + ["Mail me at jane.doe@example.com please"]
    data = Dataset.from_dict(
        {
            "id": [f"r:{i}" for i in range(len(texts))],
            "parent_id": [None] * len(texts),
            "prompt": texts,
            "completion": ["ok"] * len(texts),
        }
    )
    ctx = StageContext(seed=0, num_proc=1, work_dir=tmp_path)
    out = Pii(PiiConfig()).apply(data, ctx)
    assert out["prompt"][-1] == "Mail me at <EMAIL> please"
    assert out["prompt"][:1500] == clean


def test_row_ids_holding_personal_data_are_renamed_before_anything_is_written(tmp_path, capsys):
    import sqlite3

    from conftest import run_cli

    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:120]]
    emails = [f"customer.{i}@example.org" for i in range(len(rows))]
    db = tmp_path / "tickets.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE tickets (email, question, answer, category)")
        connection.executemany(
            "INSERT INTO tickets VALUES (?, ?, ?, ?)",
            [(email, r.get("question"), r.get("answer"), r.get("category")) for email, r in zip(emails, rows)],
        )
    connection.close()
    common = [
        "prepare",
        "data=sql",
        f"data.url=sqlite:///{db}",
        'data.query="SELECT * FROM tickets"',
        "data.id_column=email",
        "data.columns={question: prompt, answer: completion, category: label}",
        "pipeline.clean=[pii,normalize,drop_missing,exact_dedup]",
        "pipeline.params.pii.fields=[prompt,completion,email]",
    ]  # the id column is a column too
    assert run_cli([*common, f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    written += [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert any(p.name == "ledger.jsonl" for p in written) and any(p.suffix == ".arrow" for p in written)
    leaked = {str(p): [e for e in emails if e.encode() in p.read_bytes()] for p in written}
    assert not {p: e for p, e in leaked.items() if e}
    assert not [e for e in emails if e in capsys.readouterr().err]
    ledger = read_ledger(tmp_path / "run" / "ledger.jsonl")
    kept = sorted(r["id"] for r in ledger if r["action"] == "kept")
    assert kept and all(re.fullmatch(r"sql:<EMAIL>#\d+(~\w+)?", i) for i in kept)  # ~: augmented, oversampled
    assert "| sql | row ids renamed (personal data) | 120 |" in (tmp_path / "run" / "data_report.md").read_text()

    # the error for a duplicate id_column value names the rows, not the value
    with sqlite3.connect(db) as connection:
        connection.execute("INSERT INTO tickets VALUES ('customer.0@example.org', 'dup', 'x', 'billing')")
    connection.close()
    with pytest.raises(SystemExit):
        run_cli([*common, f"hydra.run.dir={tmp_path / 'dup'}"])
    err = capsys.readouterr().err
    assert "data.id_column 'email' is not unique: rows 1 and 121 of the query have the same value" in err
    assert "customer.0@" not in err
    assert (tmp_path / "dup" / "error.txt").is_file()
    assert not [p for p in (tmp_path / "dup").rglob("*") if p.is_file() and b"customer.0@" in p.read_bytes()]
