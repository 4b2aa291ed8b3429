"""The augmenter catalogue: eda, synonym, char_noise, back_translation, paraphrase, template.

Inputs are real rows of the bundled support-ticket sample; models are tiny random
models built in-process (their outputs are gibberish, which is enough to test ids,
parents, batching, determinism and the filters).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from conftest import SAMPLE, tiny_translator, validate
from tunelab.api import StageContext
from tunelab.config import ConfigError, Origin, typed_config
from tunelab.data.cache import prepare
from tunelab.data.ledger import read_ledger
from tunelab.plugins import get_plugins

HAS_WORDNET = Path("/usr/share/wordnet/index.noun").is_file()
needs_wordnet = pytest.mark.skipif(not HAS_WORDNET, reason="needs Debian wordnet-base (/usr/share/wordnet)")


# --- helpers -------------------------------------------------------------------------


def _tickets(n: int = 40, start: int = 0):
    """The first ``n`` sample tickets as rows the way the pipeline sees them."""
    from datasets import Dataset, Value

    rows = []
    for line_no, line in enumerate(SAMPLE.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            record = json.loads(line)
            rows.append(
                {
                    "id": f"support_tickets.jsonl:{line_no}",
                    "parent_id": None,
                    "prompt": record["question"],
                    "completion": record["answer"],
                    "label": record["category"],
                }
            )
    data = Dataset.from_list(rows[start : start + n])
    return data.cast_column("parent_id", Value("string"))


def _rows(texts: list, label: str = "billing"):
    from datasets import Dataset, Value

    data = Dataset.from_list(
        [
            {"id": f"r{i}", "parent_id": None, "prompt": t, "completion": "ok", "label": label}
            for i, t in enumerate(texts)
        ]
    )
    return data.cast_column("parent_id", Value("string"))


def _factory(kind: str, name: str, params: dict):
    component = get_plugins().registry.get(kind, name)
    config = typed_config(
        component.config_schema, params, kind=kind, name=name, origin=Origin(), group=kind, key_prefix=""
    )
    return component.cls(config)


def _make(name: str, **params):
    return _factory("augmenter", name, params)


def _ctx(tmp_path: Path, seed: int = 0) -> StageContext:
    return StageContext(seed=seed, num_proc=1, work_dir=tmp_path, factory=_factory)


def _run(augmenter, data, tmp_path: Path, seed: int = 0):
    ctx = _ctx(tmp_path, seed)
    return augmenter.apply(data, ctx), ctx


def _added(out, n_in: int) -> list[dict]:
    return out.select(range(n_in, len(out))).to_list()


# --- the shared skeleton ---------------------------------------------------------------


def test_copies_get_new_ids_parents_counts_and_examples(tmp_path):
    data = _tickets(30)
    out, ctx = _run(_make("char_noise", fraction=0.5, per_row=2), data, tmp_path)
    added = _added(out, len(data))
    assert out.select(range(len(data))).to_list() == data.to_list()  # the originals are untouched
    assert 10 <= len({r["parent_id"] for r in added}) <= 25
    originals = {r["id"]: r for r in data.to_list()}
    for row in added:
        parent = originals[row["parent_id"]]
        assert re.fullmatch(re.escape(parent["id"]) + r"~char_noise[12]", row["id"])
        assert row["prompt"] != parent["prompt"]
        assert row["completion"] == parent["completion"] and row["label"] == parent["label"]
    assert len(set(out["id"])) == len(out)
    assert ctx.counters["rows_augmented"] == len(added)
    assert (
        ctx.counters["rows_selected"] == len({r["parent_id"] for r in added}) + ctx.counters["skipped_identical"] // 2
    )
    assert ctx.examples and all("~char_noise" in e["id"] and e["before"] != e["after"] for e in ctx.examples)
    assert sum(ctx.metadata["augmented_by_label"].values()) == len(added)


def test_selection_does_not_depend_on_row_order(tmp_path):
    data = _tickets(40)
    augmenter = _make("char_noise", fraction=0.3)
    forward, _ = _run(augmenter, data, tmp_path)
    backward, _ = _run(augmenter, data.select(range(len(data) - 1, -1, -1)), tmp_path)
    as_map = lambda out: {r["id"]: r["prompt"] for r in _added(out, len(data))}  # noqa: E731
    assert as_map(forward) == as_map(backward) and as_map(forward)


def test_class_fractions_override_fraction_per_label(tmp_path):
    data = _tickets(80)
    out, ctx = _run(
        _make("synonym" if HAS_WORDNET else "char_noise", fraction=0.0, class_fractions={"billing": 1.0}),
        data,
        tmp_path,
    )
    added = _added(out, len(data))
    billing = [r["id"] for r in data.to_list() if r["label"] == "billing"]
    assert billing and {r["label"] for r in added} == {"billing"}
    assert ctx.counters["rows_selected"] == len(billing)
    assert len(added) + ctx.counters["skipped_identical"] + ctx.counters["skipped_blank"] == len(billing)
    assert ctx.metadata["augmented_by_label"] == {"billing": len(added)}


def test_class_fractions_need_the_label_column(tmp_path):
    data = _tickets(5).remove_columns(["label"])
    with pytest.raises(ValueError, match=r"char_noise.class_fractions needs the label column 'label'"):
        _run(_make("char_noise", class_fractions={"billing": 1.0}), data, tmp_path)


def test_only_originals_and_repeated_steps_keep_ids_unique(tmp_path):
    data = _tickets(20)
    augmenter = _make("char_noise", fraction=1.0)
    once, _ = _run(augmenter, data, tmp_path)
    twice, ctx = _run(augmenter, once, tmp_path)
    new = _added(twice, len(once))
    # a second step of the same component (an alias) derives from originals again, with free numbers
    assert new and all(r["parent_id"] in set(data["id"]) for r in new)
    assert all(r["id"].endswith("~char_noise2") for r in new)
    assert len(set(twice["id"])) == len(twice)
    chained, _ = _run(_make("char_noise", fraction=1.0, only_originals=False), once, tmp_path)
    nested = [r for r in _added(chained, len(once)) if r["parent_id"] not in set(data["id"])]
    assert nested and all(r["id"] == f"{r['parent_id']}~char_noise1" for r in nested)


def test_blank_and_identical_copies_are_skipped_and_counted(tmp_path):
    data = _rows([None, "", "   ", "12345 ??? 2024-01-01", "My parcel arrived broken"])
    out, ctx = _run(_make("char_noise", fraction=1.0), data, tmp_path)
    added = _added(out, len(data))
    assert [r["parent_id"] for r in added] == ["r4"]
    assert ctx.counters["skipped_blank"] == 3
    assert ctx.counters["skipped_identical"] == 1  # only digits and punctuation: nothing may change


def test_bad_columns_are_named(tmp_path):
    with pytest.raises(
        ValueError, match=r"char_noise: column\(s\) \['question'\] not in the data.*pipeline.params.char_noise.fields"
    ):
        _run(_make("char_noise", fields=["question"]), _tickets(3), tmp_path)
    numbers = _tickets(3).add_column("score", [1, 2, 3])
    with pytest.raises(ValueError, match=r"column 'score' holds .*int64.*not text"):
        _run(_make("char_noise", fields=["score"]), numbers, tmp_path)


def test_very_long_rows_are_handled(tmp_path):
    long_text = "My order number 123 has not arrived and nobody answers my emails. " * 2000
    out, ctx = _run(_make("char_noise", fraction=1.0, rate=0.01), _rows([long_text]), tmp_path)
    (child,) = _added(out, 1)
    assert child["prompt"] != long_text and abs(len(child["prompt"]) - len(long_text)) < 0.02 * len(long_text)


@pytest.mark.parametrize(
    "override, message",
    [
        ("fraction=1.5", r"char_noise.fraction must be a number between 0 and 1, got 1.5"),
        ("per_row=0", r"char_noise.per_row must be at least 1"),
        ("operations=[keyboard,teleport]", r"char_noise.operations must be a non-empty subset of \[keyboard, insert"),
        ("rate=0", r"char_noise.rate must be in \(0, 1\]"),
        ("class_fractions={billing:2}", r"char_noise.class_fractions.billing must be a number between 0 and 1"),
    ],
)
def test_bad_parameters_fail_at_validation(override, message):
    with pytest.raises(ConfigError, match=r"pipeline.augment: augmenter 'char_noise': " + message):
        key, value = override.split("=", 1)
        plus = (
            "" if key in ("fraction", "per_row", "operations", "rate") else "+"
        )  # keys not in conf/augment/char_noise.yaml
        validate(["augment=char_noise", f"{plus}pipeline.params.char_noise.{key}={value}"])


# --- char_noise -----------------------------------------------------------------------


def test_char_noise_keeps_links_emails_and_numbers_intact(tmp_path):
    text = (
        "Order #A1234 for $14.99 never came, see https://shop.example.com/orders/A1234 or mail liu.wei@example.com "
        "today"
    )
    out, _ = _run(_make("char_noise", fraction=1.0, per_row=5, n=12), _rows([text]), tmp_path)
    added = _added(out, 1)
    assert len(added) == 5
    for row in added:
        noisy = row["prompt"]
        assert noisy != text
        for entity in ("#A1234", "$14.99", "https://shop.example.com/orders/A1234", "liu.wei@example.com"):
            assert entity in noisy
        assert Counter(c for c in noisy if c.isdigit()) == Counter(c for c in text if c.isdigit())


def test_char_noise_n_edits_are_small_keyboard_typos(tmp_path):
    from tunelab_builtin.augmenters.char_noise import KEYBOARD_NEIGHBOURS

    text = "the tent poles do not match"
    out, _ = _run(_make("char_noise", fraction=1.0, n=1, operations=["keyboard"], per_row=4), _rows([text]), tmp_path)
    for row in _added(out, 1):
        noisy = row["prompt"]
        assert len(noisy) == len(text)
        (i,) = [k for k, (a, b) in enumerate(zip(text, noisy)) if a != b]
        assert noisy[i] in KEYBOARD_NEIGHBOURS[text[i]]


def test_char_noise_is_seeded(tmp_path):
    data = _tickets(20)
    augmenter = _make("char_noise", fraction=1.0)
    first, second, other = (_run(augmenter, data, tmp_path, seed)[0]["prompt"] for seed in (0, 0, 1))
    assert first == second and first != other


# --- synonym (WordNet) ----------------------------------------------------------------


@needs_wordnet
def test_synonym_candidates_are_real_wordnet_synonyms():
    synonym = _make("synonym")
    assert "purchase" in synonym.candidates("buy") and "buy" in synonym.candidates("purchase")
    assert "repay" in synonym.candidates("refund")
    assert all(" " not in w and "_" not in w for w in synonym.candidates("order"))
    # inflected forms are left alone: a base-form synonym would not fit ("I nonrecreational")
    assert synonym.candidates("paid") == [] and synonym.candidates("days") == [] and synonym.candidates("orders") == []
    # "a good buy" is a bargain; "to buy" is to purchase
    assert "bargain" in _make("synonym", pos=["noun"]).candidates("buy")
    assert "purchase" not in _make("synonym", pos=["noun"]).candidates("buy")
    assert "purchase" in _make("synonym", pos=["verb"]).candidates("buy")


@needs_wordnet
def test_synonym_replaces_n_words_and_keeps_case_and_format(tmp_path):
    text = "Buy the Tent here: https://example.com/buy, don't WAIT for order 42"
    synonym = _make("synonym", fraction=1.0, n=1, per_row=6)
    out, _ = _run(synonym, _rows([text]), tmp_path)
    added = _added(out, 1)
    assert added
    pattern = re.compile(r"(\w+) the (\w+) here: https://example\.com/buy, don't (\w+) for (\w+) 42")
    for row in added:
        match = pattern.fullmatch(row["prompt"])
        assert match, row["prompt"]
        changed = [(a, b) for a, b in zip(("Buy", "Tent", "WAIT", "order"), match.groups()) if a != b]
        assert len(changed) == 1
        before, after = changed[0]
        assert after.lower() in synonym.candidates(before)
        assert after[0].isupper() == before[0].isupper() and after.isupper() == before.isupper()


@needs_wordnet
def test_synonym_alpha_and_determinism(tmp_path):
    data = _tickets(25)
    augmenter = _make("synonym", fraction=1.0, alpha=0.3)
    first, second, other = (_run(augmenter, data, tmp_path, seed)[0] for seed in (0, 0, 1))
    assert first["prompt"] == second["prompt"] and first["prompt"] != other["prompt"]
    changed_words = [
        sum(a != b for a, b in zip(r["prompt"].split(), data[int(r["parent_id"].split(":")[1]) - 1]["prompt"].split()))
        for r in _added(first, len(data))
    ]
    assert max(changed_words) >= 2  # alpha scales with the text, n=1 would change one word


def test_missing_wordnet_gives_install_instructions(tmp_path, monkeypatch):
    empty = tmp_path / "no-wordnet"
    empty.mkdir()
    with pytest.raises(
        ValueError, match=r"synonym.wordnet_dir=.*no-wordnet.* holds no WordNet.*apt-get install wordnet-base.*nltk"
    ):
        _make("synonym", wordnet_dir=str(empty))
    with pytest.raises(ConfigError, match=r"augmenter 'synonym': synonym.wordnet_dir=.*apt-get install wordnet-base"):
        validate(["augment=synonym", f"pipeline.params.synonym.wordnet_dir={empty}"])
    # nothing to auto-detect either
    import tunelab_builtin._lib.wordnet as wordnet

    monkeypatch.setattr(wordnet, "DEBIAN_DIR", empty)
    monkeypatch.setenv("NLTK_DATA", str(empty))
    monkeypatch.setenv("HOME", str(empty))
    with pytest.raises(
        ValueError,
        match=r"no WordNet database found \(looked in .*no-wordnet.*\). Install it with `apt-get install wordnet-base`",
    ):
        _make("synonym")
    with pytest.raises(ValueError, match=r"eda.wordnet_dir"):
        _make("eda", operations=["swap", "synonym"])
    assert _make("eda").synonyms is None  # the default operations need no WordNet


def _write_wordnet(directory: Path, synsets: list[list[str]]) -> None:
    """A miniature WordNet noun database in the real file format."""
    directory.mkdir(parents=True, exist_ok=True)
    header = "  1 This software and database is being provided to you, the LICENSEE\n"
    data, offsets = header, []
    for words in synsets:
        offsets.append(len(data.encode()))
        lemmas = " ".join(f"{w} 0" for w in words)
        data += f"{offsets[-1]:08d} 06 n {len(words):02x} {lemmas} 000 | a test synset\n"
    (directory / "data.noun").write_text(data)
    index: dict[str, list[int]] = {}
    for offset, words in zip(offsets, synsets):
        for w in words:
            index.setdefault(w.lower(), []).append(offset)
    lines = [f"{w} n {len(o)} 0 {len(o)} 0 " + " ".join(f"{x:08d}" for x in o) + "  " for w, o in sorted(index.items())]
    (directory / "index.noun").write_text(header + "\n".join(lines) + "\n")
    for pos in ("verb", "adj", "adv"):
        (directory / f"index.{pos}").write_text(header)
        (directory / f"data.{pos}").write_text(header)


def test_wordnet_reader_on_a_directory_and_an_nltk_zip(tmp_path, monkeypatch):
    from tunelab_builtin._lib.wordnet import WordNet

    synsets = [["parcel", "package", "packet"], ["parcel", "lot", "plot"], ["tent", "Bivouac", "camping_tent"]]
    folder = tmp_path / "wn"
    _write_wordnet(folder, synsets)
    reader = WordNet(folder)
    assert reader.synonyms("parcel") == ["package", "packet", "lot", "plot"]
    assert reader.synonyms("parcel", max_senses=1) == ["package", "packet"]
    assert reader.synonyms("tent") == []  # proper nouns and multi-word lemmas never replace a word
    assert reader.synonyms("parcel", pos=["verb"]) == []
    # NLTK keeps the corpus as corpora/wordnet.zip; found through $NLTK_DATA
    import tunelab_builtin._lib.wordnet as wordnet

    corpora = tmp_path / "nltk" / "corpora"
    corpora.mkdir(parents=True)
    with zipfile.ZipFile(corpora / "wordnet.zip", "w") as archive:
        for path in folder.iterdir():
            archive.write(path, f"wordnet/{path.name}")
    monkeypatch.setattr(wordnet, "DEBIAN_DIR", tmp_path / "absent")
    monkeypatch.setenv("NLTK_DATA", str(tmp_path / "nltk"))
    synonym = _make("synonym", fraction=1.0)
    assert synonym.synonyms.location == corpora / "wordnet.zip"
    out, _ = _run(synonym, _rows(["My Parcel is late"]), tmp_path)
    assert _added(out, 1)[0]["prompt"] in {f"My {w} is late" for w in ("Package", "Packet", "Lot", "Plot")}


# --- eda -------------------------------------------------------------------------------


def test_eda_default_operations_only_rearrange_words(tmp_path):
    data = _tickets(40)
    out, ctx = _run(_make("eda", fraction=1.0, alpha=0.2), data, tmp_path)
    added = _added(out, len(data))
    assert len(added) > 30 and all(r["id"].endswith("~eda1") for r in added)
    vocabulary = {r["id"]: set(r["prompt"].split()) for r in data.to_list()}
    assert all(set(r["prompt"].split()) <= vocabulary[r["parent_id"]] for r in added)


@needs_wordnet
def test_eda_synonym_operation_uses_wordnet(tmp_path):
    data = _tickets(30)
    eda = _make("eda", fraction=1.0, operations=["synonym"])
    out, _ = _run(eda, data, tmp_path)
    added = _added(out, len(data))
    assert len(added) > 15
    originals = {r["id"]: r["prompt"] for r in data.to_list()}
    for row in added:
        before, after = re.findall(r"[A-Za-z]+", originals[row["parent_id"]]), re.findall(r"[A-Za-z]+", row["prompt"])
        assert len(before) == len(after)
        changed = [(old, new) for old, new in zip(before, after) if old != new]
        assert changed and all(new.lower() in eda.synonyms(old.lower()) for old, new in changed)


# --- back_translation ------------------------------------------------------------------


@pytest.fixture(scope="module")
def translators(tmp_path_factory):
    root = tmp_path_factory.mktemp("translators")
    return {
        "forward": tiny_translator(root / "en-xx", seed=1),
        "backward": tiny_translator(root / "xx-en", seed=2),
        # tied embeddings make a random decoder end at once: every output is empty
        "mute": tiny_translator(root / "mute", seed=3, tie_embeddings=True),
    }


def test_back_translation_mechanics_batching_and_determinism(tmp_path, translators):
    data = _tickets(7)
    params = {
        "forward_model": translators["forward"],
        "backward_model": translators["backward"],
        "fraction": 1.0,
        "max_new_tokens": 12,
    }
    greedy_4, ctx = _run(_make("back_translation", batch_size=4, **params), data, tmp_path)
    greedy_2, _ = _run(_make("back_translation", batch_size=2, **params), data, tmp_path)
    added = _added(greedy_4, len(data))
    assert len(added) == 7 and ctx.counters["rows_augmented"] == 7
    assert [r["id"] for r in added] == [f"{i}~back_translation1" for i in data["id"]]
    assert [r["parent_id"] for r in added] == list(data["id"])
    assert all(r["prompt"] and r["completion"] == p["completion"] for r, p in zip(added, data.to_list()))
    assert greedy_4["prompt"] == greedy_2["prompt"]  # greedy decoding does not depend on the batching
    sampled = {"do_sample": True, "batch_size": 3, **params}
    first, second, other = (
        _run(_make("back_translation", **sampled), data, tmp_path, seed)[0]["prompt"] for seed in (0, 0, 5)
    )
    assert first == second and first != other


def test_back_translation_skips_empty_and_too_long_outputs(tmp_path, translators):
    # the tiny models hold 256 positions: the 300-byte row must be skipped, not crash the model
    data = _rows(["Where is my parcel?", "x" * 150, "y" * 300])
    mute = {
        "forward_model": translators["mute"],
        "backward_model": translators["backward"],
        "fraction": 1.0,
        "max_new_tokens": 8,
    }
    out, ctx = _run(_make("back_translation", **mute), data, tmp_path)
    assert len(out) == len(data)
    assert ctx.counters["rejected_empty_pivot"] == 2 and ctx.counters["skipped_too_long"] == 1
    limited = {**mute, "forward_model": translators["forward"], "max_input_tokens": 100}
    out, ctx = _run(_make("back_translation", **limited), data, tmp_path)
    assert ctx.counters["skipped_too_long"] == 2 and [r["parent_id"] for r in _added(out, 3)] == ["r0"]


def test_back_translation_names_bad_model_paths(tmp_path):
    with pytest.raises(ValueError, match=r"back_translation.forward_model: no model directory at /nonexistent/model"):
        _make("back_translation", forward_model="/nonexistent/model", backward_model="x/y")
    not_a_model = tmp_path / "empty-model"
    not_a_model.mkdir()
    augmenter = _make("back_translation", forward_model=str(not_a_model), backward_model=str(not_a_model), fraction=1.0)
    with pytest.raises(
        ValueError, match=r"back_translation cannot load translation model .*empty-model.*save_pretrained"
    ):
        _run(augmenter, _rows(["Where is my parcel?"]), tmp_path)
    import torch

    if not torch.cuda.is_available():
        on_gpu = _make("back_translation", forward_model="x/y", backward_model="x/y", fraction=1.0, device="cuda")
        with pytest.raises(ValueError, match=r"device 'cuda' was asked for, but torch sees no CUDA GPU"):
            _run(on_gpu, _rows(["Where is my parcel?"]), tmp_path)
    with pytest.raises(ValueError, match=r"back_translation.device must be auto, cpu, cuda, cuda:N or mps"):
        _make("back_translation", forward_model="x/y", backward_model="x/y", device="gpu")
    with pytest.raises(ConfigError, match=r"pipeline.params.back_translation.forward_model"):
        validate(["augment=back_translation"])


# --- paraphrase ------------------------------------------------------------------------


def test_paraphrase_filter_rejects_bad_outputs():
    paraphrase = _make("paraphrase", model="tiny")
    source = "My tent arrived with a broken pole, can I get a replacement?"
    assert (
        paraphrase.reject_reason(source, "The tent I received has a broken pole; could you send me a new one?") is None
    )
    assert paraphrase.reject_reason(source, "   ") == "empty"
    assert (
        paraphrase.reject_reason(source, "my tent arrived with a broken pole,  can I get a REPLACEMENT?") == "identical"
    )
    assert paraphrase.reject_reason(source, "Tent broken.") == "length"
    assert paraphrase.reject_reason(source, source * 3 + " Also, please") == "length"
    assert (
        paraphrase.reject_reason(source, "The tent I received has 2 broken poles; could you send me new ones?")
        == "numbers_changed"
    )
    assert (
        paraphrase.reject_reason("I was charged $9.99 twice for order 1234.", "Order 1234 was billed $9.99 two times.")
        is None
    )
    refund = "If I cancel Plus halfway through the month, do I get a partial refund?"
    assert (
        paraphrase.reject_reason(refund, "You can get a partial refund if you cancel Plus halfway through the month.")
        == "not_a_question"
    )
    assert (
        paraphrase.reject_reason(refund, "Is part of my Plus fee refunded when I cancel halfway through the month?")
        is None
    )
    assert (
        paraphrase.reject_reason(
            "Will you ship to a hotel? I'm on a trip in Austria.", "Tu parlamenti per l'Italia Austriai?"
        )
        == "unrelated"
    )
    echo = (
        "Keep its meaning, its language and every detail such as names, numbers and links. Tent pole broken, replace?"
    )
    assert paraphrase.reject_reason(source, echo) == "prompt_echo"
    assert paraphrase.clean(
        'Here is a paraphrase: "Could you replace my tent\'s broken pole?"\n\nNote: kept it short.', source
    ) == ("Could you replace my tent's broken pole?")
    assert paraphrase.clean("The customer message:\n\nCould you replace my broken tent pole?", source) == (
        "Could you replace my broken tent pole?"
    )


TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}


def test_paraphrase_with_a_tiny_model_is_seeded_and_filtered(tmp_path):
    data = _rows(
        [
            "My tent arrived with a broken pole, can I get a replacement?",
            "Do you ship to Canada, and how long does it take?",
            "I was charged twice for order #A1234, please refund one payment.",
            "How do I reset the password of my account?",
        ]
    )
    loose = {
        "model": "tiny",
        "model_params": TINY,
        "fraction": 1.0,
        "batch_size": 3,
        "max_new_tokens": 16,
        "min_length_ratio": 0.0,
        "max_length_ratio": 50.0,
        "keep_numbers": False,
        "keep_questions": False,
        "min_word_overlap": 0.0,
    }
    first, ctx = _run(_make("paraphrase", **loose), data, tmp_path)
    added = _added(first, len(data))
    assert len(added) + sum(v for k, v in ctx.counters.items() if k.startswith("rejected_")) == len(data)
    assert added and all(r["id"] == f"{r['parent_id']}~paraphrase1" for r in added)
    again, _ = _run(_make("paraphrase", **loose), data, tmp_path)
    other, _ = _run(_make("paraphrase", **loose), data, tmp_path, seed=3)
    assert first["prompt"] == again["prompt"] and first["prompt"] != other["prompt"]
    # default ratio bounds: three bytes of output are far too short for these tickets
    strict, ctx = _run(
        _make("paraphrase", model="tiny", model_params=TINY, fraction=1.0, max_new_tokens=3), data, tmp_path
    )
    assert len(strict) == len(data)
    assert ctx.counters["rejected_length"] + ctx.counters["rejected_empty"] == len(data)


def test_paraphrase_validates_its_template():
    with pytest.raises(ValueError, match=r"paraphrase.template must contain the placeholder \{text\} exactly once"):
        _make("paraphrase", template="Paraphrase this message.")
    with pytest.raises(ValueError, match=r"paraphrase.min_length_ratio must be in \[0, 1\)"):
        _make("paraphrase", min_length_ratio=1.5)


# --- template -------------------------------------------------------------------------

PAIRS = [
    {
        "prompt": "Can I return my {item} after {days} days?",
        "completion": "Yes, a {item} can be returned within {days} days.",
    },
    {"prompt": "How do I send back a {item}?", "completion": "Start the return of your {item} from the order page."},
]


def test_template_generates_labelled_rows_with_parents_of_that_label(tmp_path):
    data = _tickets(60)
    template = _make(
        "template",
        templates=PAIRS,
        slots={"item": ["tent", "stove", "sleeping bag"], "days": ["14", "30"]},
        label="returns",
        count=6,
    )
    out, ctx = _run(template, data, tmp_path)
    added = _added(out, len(data))
    labels = dict(zip(data["id"], data["label"]))
    assert len(added) == 6 and ctx.counters["rows_generated"] == 6
    for row in added:
        assert labels[row["parent_id"]] == "returns" and row["label"] == "returns"
        assert re.fullmatch(re.escape(row["parent_id"]) + r"~template\d+", row["id"])
        item = re.search(r"(tent|stove|sleeping bag)", row["prompt"]).group(1)
        assert item in row["completion"]  # a slot has one value across the pair
    assert len({(r["prompt"], r["completion"]) for r in added}) == 6
    again, _ = _run(template, data.select(range(len(data) - 1, -1, -1)), tmp_path)
    assert sorted(_added(again, len(data)), key=lambda r: r["id"]) == sorted(added, key=lambda r: r["id"])


def test_template_makes_no_more_rows_than_distinct_texts(tmp_path):
    template = _make(
        "template", templates=PAIRS[:1], slots={"item": ["tent"], "days": ["14", "30"]}, label="returns", count=5
    )
    out, ctx = _run(template, _tickets(60), tmp_path)
    assert len(out) - 60 == 2 and ctx.counters["skipped_duplicate"] > 0
    assert ctx.metadata["generated"] == {"label": "returns", "rows": 2, "requested": 5}


def test_template_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"template.slots has no values for placeholder\(s\) \['days'\]"):
        _make("template", templates=PAIRS, slots={"item": ["tent"]}, label="returns")
    with pytest.raises(ValueError, match=r"template.templates must list at least one template"):
        _make("template", label="returns")
    slots = {"item": ["tent"], "days": ["14"]}
    with pytest.raises(
        ValueError, match=r"no row has label 'warranty' in column 'label'.*labels present: \['account', 'billing'"
    ):
        _run(_make("template", templates=PAIRS, slots=slots, label="warranty"), _tickets(60), tmp_path)
    with pytest.raises(ValueError, match=r"fill \['prompt'\] but the data also has text column\(s\) \['completion'\]"):
        _run(
            _make("template", templates=["Where is my {item}?"], slots=slots, label="shipping"), _tickets(60), tmp_path
        )
    with pytest.raises(ValueError, match=r"template.label is required"):
        _run(_make("template", templates=PAIRS, slots=slots), _tickets(60), tmp_path)
    unlabelled = _tickets(10).remove_columns(["label"])
    with pytest.raises(ValueError, match=r"template.label is 'returns' but the data has no label column 'label'"):
        _run(_make("template", templates=PAIRS, slots=slots, label="returns"), unlabelled, tmp_path)
    out, _ = _run(_make("template", templates=PAIRS, slots=slots, count=1), unlabelled, tmp_path)
    assert len(out) == 11 and out[10]["parent_id"] in set(unlabelled["id"])


# --- the augment config group and the pipeline ----------------------------------------


@pytest.mark.parametrize(
    "option, steps", [("none", []), ("eda", ["eda"]), ("char_noise", ["char_noise"]), ("paraphrase", ["paraphrase"])]
)
def test_augment_group_selects_the_augmenter(option, steps):
    rc = validate([f"augment={option}"])
    assert [s.name for s in rc.steps["augment"]] == steps
    if option == "paraphrase":
        assert rc.steps["augment"][0].config.model == "smollm2_135m" and rc.steps["augment"][0].config.fraction == 0.1


@needs_wordnet
def test_augment_group_synonym():
    (step,) = validate(["augment=synonym"]).steps["augment"]
    assert step.name == "synonym" and step.config.n == 2


def test_pipeline_with_char_noise_keeps_the_ledger_balanced():
    prepared = prepare(
        validate(["pipeline.augment=[char_noise]", "++pipeline.params.char_noise.fraction=0.3"]), get_plugins()
    )
    summary = prepared.summary
    assert summary["rows_read"] + summary["rows_added"] == summary["rows_final"] + summary["rows_dropped"]
    step = next(s for s in summary["steps"] if s["stage"] == "augment")
    assert step["step"] == "char_noise" and step["added"] > 20
    ledger = read_ledger(prepared.directory / "ledger.jsonl")
    added = {r["id"]: r["parent_id"] for r in ledger if r["action"] == "added" and r["step"] == "char_noise"}
    assert len(added) == step["added"]
    kept = {i: name for name, split in prepared.splits.items() for i in split["id"]}
    for row_id, parent in added.items():
        assert row_id == f"{parent}~char_noise1"
        assert kept.get(row_id) in ("train", None)  # derived rows never leak into evaluation splits


def test_pipeline_with_template_rows_passes_the_ledger():
    overrides = [
        "pipeline.augment=[template]",
        "++pipeline.params.template.templates=[{prompt:'Can I return my {item} after {days} days?',"
        "completion:'Yes, a {item} can be returned within {days} days of delivery.'}]",
        "++pipeline.params.template.slots={item:[tent,stove,headlamp],days:[14,30]}",
        "++pipeline.params.template.label=returns",
        "++pipeline.params.template.count=5",
    ]
    prepared = prepare(validate(overrides), get_plugins())
    ledger = read_ledger(prepared.directory / "ledger.jsonl")
    added = [r for r in ledger if r["action"] == "added" and r["step"] == "template"]
    assert len(added) == 5
    rows = {r["id"]: r for split in prepared.splits.values() for r in split}
    for record in added:
        assert rows[record["parent_id"]]["label"] == "returns"
        assert record["id"].startswith(record["parent_id"] + "~template")
        if record["id"] in rows:  # a later balancer may not drop it, but it can only be in train
            assert rows[record["id"]]["label"] == "returns" and "days" in rows[record["id"]]["prompt"]
    summary = prepared.summary
    assert summary["rows_read"] + summary["rows_added"] == summary["rows_final"] + summary["rows_dropped"]
