"""Reliability against a bad command line (issue 7): property-based tests of the overrides.

Hypothesis writes bad overrides — unknown and misspelt keys (with and without ``+``), wrong
types, NaN/infinity/negative numbers and empty strings for every typed field of every
registered component and of the shared settings, unknown config group options and component
names, incompatible model × method × peft × eval combinations, malformed override syntax,
interpolations to missing keys, a data path that is not there. The strategies are built from
the plugin registry and the config groups Hydra sees, so a new component or config option is
covered without editing this file.

The invariants, for every generated case:

- it fails before any work: a :class:`~tunelab.config.ConfigError` from composing and
  validating (``tunelab.preflight.check_overrides``, what the CLI runs before Hydra starts a
  job) or from ``check_approach``; no prepared data, no run directory;
- the message names the key (or the override) and what would be valid: the valid keys, the
  options, the expected type, the combinations that work; a misspelling gets "Did you mean";
- it is one paragraph from tunelab, never a traceback or a library's internals;
- end to end through the CLI (a smaller sample): exit code 2, ``tunelab: config error: ...``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import re
import types
import typing
import uuid
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")

import yaml  # noqa: E402
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import SAMPLE, SOAK, run_cli  # noqa: E402
from tunelab.api import TrainSettings  # noqa: E402
from tunelab.config import PIPELINE_KEYS, TOP_LEVEL_KEYS, ConfigError  # noqa: E402
from tunelab.plugins import get_plugins  # noqa: E402

#: the loaded profile's example count, except where a test lowers it (scaled up by ``make soak``);
#: per-test fixtures (tmp_path, capsys) are fine: every example cleans up after itself
relaxed = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def examples(ci: int) -> int:
    """Examples for a test whose cases compose a config (~0.3 s each): fewer in CI."""
    return ci * 25 if SOAK else ci


GROUP_OF = {"collector": "data", "model": "model", "method": "method", "peft": "peft", "evaluator": "eval"}
STAGE_OF = {"cleaner": "clean", "annotator": "annotate", "augmenter": "augment", "balancer": "balance"}
#: what a component needs on top of its config file to validate at all (values without defaults,
#: or a choice between settings); a new component that needs something says so in the failure
EXTRAS = {
    ("collector", "html"): ["data.path=pages"],
    ("collector", "sql"): ["data.url=sqlite:///tickets.db", "data.query='SELECT 1'"],
    ("model", "hf"): ["model.path=org/model"],
    ("peft", "custom"): ["peft.peft_type=LORA"],
    ("annotator", "auto_label"): ["+pipeline.params.auto_label.labels={billing:charges,shipping:parcels}"],
    ("annotator", "consensus"): ["+pipeline.params.consensus.annotator_columns=[a,b]"],
    ("augmenter", "back_translation"): [
        "+pipeline.params.back_translation.forward_model=org/en-de",
        "+pipeline.params.back_translation.backward_model=org/de-en",
    ],
    ("augmenter", "template"): [
        "+pipeline.params.template.templates=['Where is my {item}?']",
        "+pipeline.params.template.slots={item:[tent]}",
        "+pipeline.params.template.label=shipping",
    ],
    ("balancer", "target_distribution"): ["+pipeline.params.target_distribution.distribution={a:0.5,b:0.5}"],
    ("splitter", "group"): ["+pipeline.params.group.group_column=customer"],
}
#: top-level settings and their types (the shared ``train`` settings come from TrainSettings)
TOP_LEVEL_TYPES = {"seed": int, "data_seed": int, "num_proc": int, "resume": bool, "cache_dir": str}
#: a message from deep inside a library, or a traceback, never reaches the user
LIBRARY_NOISE = re.compile(
    r"Traceback|File \"|full_key:|object_type=|reference_type=|omegaconf\.|hydra\.errors|"
    r"Set the environment variable HYDRA_FULL_ERROR"
)
#: the two-step pipeline: validating it is quicker, and the keys under test live elsewhere
FAST = ("pipeline=minimal",)
IDENT = st.from_regex(r"[a-z][a-z_]{2,11}", fullmatch=True).filter(lambda s: not s.endswith("_"))


@dataclasses.dataclass(frozen=True)
class Section:
    """A place keys live in: a component selected by ``base`` overrides, or the settings."""

    kind: str
    name: str
    base: tuple[str, ...]
    #: dotted prefix of its keys on the command line (``peft.``, ``pipeline.params.eda.``, ``train.``)
    prefix: str
    schema: Any

    def fields(self) -> dict[str, Any]:
        """field name -> type (resolved annotations)."""
        if self.schema is None:
            return {}
        return typing.get_type_hints(self.schema)

    def default(self, field: str) -> Any:
        f = next(f for f in dataclasses.fields(self.schema) if f.name == field)
        return f.default


@dataclasses.dataclass
class _NoFields:
    pass


def registry():
    return get_plugins().registry


def conf_dir() -> Path:
    from tunelab.app import conf_dir

    return conf_dir()


@functools.lru_cache(None)
def group_options() -> dict[str, tuple[str, ...]]:
    """Every config group Hydra sees (conf/ and the plugins' search paths) -> its options."""
    from tunelab.preflight import hydra_loader

    with hydra_loader() as loader:
        groups = [g for g in loader.list_groups("") if g != "hydra"] + ["hydra/launcher"]
        return {g: tuple(loader.get_group_options(g)) for g in groups}


def _option_named(group: str, name: str) -> str | None:
    """The option of ``group`` whose file selects the component ``name``."""
    for path in sorted((conf_dir() / group).glob("*.yaml")):
        content = yaml.safe_load(path.read_text()) or {}
        if isinstance(content, dict) and content.get("name") == name:
            return path.stem
    return None


@functools.lru_cache(None)
def sections() -> tuple[Section, ...]:
    """Every registered component a command line can select, and the shared settings."""
    found = [Section("settings", "train", FAST, "train.", TrainSettings)]
    for component in registry():
        kind, name = component.kind, component.name
        if kind in GROUP_OF:
            option = _option_named(GROUP_OF[kind], name)
            if option is None:  # no config file selects it: nothing on the command line reaches it
                continue
            base, prefix = [*FAST, f"{GROUP_OF[kind]}={option}"], f"{GROUP_OF[kind]}."
            schema_fields = {f.name: f.default for f in dataclasses.fields(component.config_schema or _NoFields)}
            if kind == "collector" and schema_fields.get("path") == "???":
                base.append(f"data.path={SAMPLE}")  # values are checked, not the files (sources=False)
        elif kind in STAGE_OF:
            base, prefix = ["pipeline=minimal", f"pipeline.{STAGE_OF[kind]}=[{name}]"], f"pipeline.params.{name}."
        elif kind == "splitter":
            base, prefix = ["pipeline=minimal", f"pipeline.split={name}"], f"pipeline.params.{name}."
        elif kind == "tracker":
            base, prefix = [*FAST, f"tracker=[{name}]"], f"tracker.{name}."
        else:
            continue
        found.append(Section(kind, name, tuple(base + EXTRAS.get((kind, name), [])), prefix, component.config_schema))
    return tuple(found)


def typed_fields() -> list[tuple[Section, str, Any]]:
    """(section, field, type) of every typed field, the top-level settings included."""
    top = Section("top-level", "settings", FAST, "", None)
    rows = [(top, key, tp) for key, tp in TOP_LEVEL_TYPES.items()]
    for section in sections():
        rows += [(section, field, tp) for field, tp in section.fields().items()]
    return rows


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """(the type inside Optional, whether None is allowed)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else Any), type(None) in typing.get_args(tp)
    return tp, False


def kind_of(tp: Any) -> str | None:
    inner, _ = _unwrap(tp)
    origin = typing.get_origin(inner) or inner
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}.get(origin)


#: words Hydra's override grammar reads as something else than a string
NOT_STRINGS = {"null", "true", "false", "nan", "inf"}
#: values no field of the kind accepts (Hydra's override grammar; OmegaConf's conversions)
WORDS = IDENT.filter(lambda s: s not in NOT_STRINGS | {"yes", "no", "on", "off"})
WRONG = {
    "int": st.one_of(WORDS, st.sampled_from(["1.5", "[1,2]", "{a:1}", "true"])),
    "float": st.one_of(WORDS, st.sampled_from(["[1]", "{a:1}", "[]"])),
    "bool": st.one_of(WORDS, st.sampled_from(["[1]", "{a:1}", "2", "-3", "0.5"])),
    "str": st.sampled_from(["[a,b]", "{a:1}", "[]", "{}"]),
    "list": st.sampled_from(["{a:1}", "{}"]),
    "dict": st.sampled_from(["[1,2]", "[a]"]),
}


def outcome(overrides: list[str], *, sources: bool = False) -> str | None:
    """None when ``overrides`` compose and validate, else the ConfigError message, checked to be
    one paragraph without library internals (anything but a ConfigError fails the test)."""
    from tunelab.preflight import check_overrides

    try:
        check_overrides(overrides, sources=sources)
    except ConfigError as exc:
        message = str(exc)
    else:
        return None
    assert message.strip() and "\n\n" not in message, f"not one paragraph: {message!r}"
    assert not LIBRARY_NOISE.search(message), f"library internals in the message: {message!r}"
    return message


def refused(overrides: list[str], *, sources: bool = False) -> str:
    """The ConfigError message for ``overrides``; fails the test when they are accepted."""
    message = outcome(overrides, sources=sources)
    if message is None:
        pytest.fail(f"accepted: {overrides}")
    return message


def why_base_fails(section: Section) -> str:
    """For a failure message: whether the section's base alone validates."""
    from tunelab.preflight import check_overrides

    try:
        check_overrides(list(section.base), sources=False)
    except ConfigError as exc:
        return f" (its base {list(section.base)} does not validate either: {exc}; add what it needs to EXTRAS)"
    return ""


def assert_names(message: str, overrides: list[str], section: Section, *words: str) -> None:
    for word in words:
        assert word in message, f"{overrides}: the message does not name {word!r}: {message}{why_base_fails(section)}"


# --- unknown and misspelt keys ---------------------------------------------------------------


def _misspell(word: str, draw: Any) -> str:
    i = draw(st.integers(0, len(word) - 1))
    how = draw(st.sampled_from(["delete", "swap", "insert", "replace"]))
    if how == "delete" and len(word) > 3:
        return word[:i] + word[i + 1 :]
    if how == "swap" and i < len(word) - 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    letter = draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz"))
    return word[:i] + letter + word[i + (how == "replace") :]


@st.composite
def unknown_keys(draw):
    """(overrides, dotted key, section, valid keys, misspelt): a key the section does not have."""
    top = Section("top-level", "settings", FAST, "", None)
    pipeline = Section("pipeline", "pipeline", FAST, "pipeline.", None)
    section = draw(st.sampled_from([top, pipeline, *sections()]))
    if section is top:
        valid = sorted(TOP_LEVEL_KEYS - {"hydra"})
        taken = set(group_options()) | TOP_LEVEL_KEYS
    elif section is pipeline:
        valid = sorted(PIPELINE_KEYS)
        taken = set(valid)
    else:
        valid = sorted(section.fields())
        taken = set(valid)
    misspelt = bool(valid) and draw(st.booleans())
    key = _misspell(draw(st.sampled_from([k for k in valid if len(k) >= 3])), draw) if misspelt else draw(IDENT)
    assume(key not in taken and "__" not in key)
    plus = draw(st.sampled_from(["", "+", "++"]))
    dotted = f"{section.prefix}{key}"
    return [*section.base, f"{plus}{dotted}=1"], dotted, section, valid, misspelt


@settings(relaxed, max_examples=examples(20))
@given(case=unknown_keys())
def test_unknown_and_misspelt_keys_name_the_key_and_the_valid_ones(case):
    overrides, dotted, section, valid, misspelt = case
    message = refused(overrides)
    assert_names(message, overrides, section, f"'{dotted}'")
    if section.kind == "top-level" or valid:
        assert "Valid keys: " in message, message
        listed = message.split("Valid keys: ", 1)[1]
        assert all(k in listed for k in valid), f"not every valid key listed: {message}"
    key = dotted.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if misspelt or close:
        assert close and f"Did you mean '{close[0]}'?" in message, message
    assert "Could not override" not in message  # without + Hydra itself refuses; the message is still ours


# --- wrong types ---------------------------------------------------------------------------------


@st.composite
def wrong_types(draw):
    rows = [(s, f, tp) for s, f, tp in typed_fields() if kind_of(tp)]
    section, field, tp = draw(st.sampled_from(rows))
    value = draw(WRONG[kind_of(tp)])
    return [*section.base, f"++{section.prefix}{field}={value}"], f"{section.prefix}{field}", section, kind_of(tp)


@settings(relaxed, max_examples=examples(25))
@given(case=wrong_types())
def test_a_value_of_the_wrong_type_names_the_key_and_the_expected_type(case):
    overrides, dotted, section, kind = case
    message = refused(overrides)
    assert_names(message, overrides, section, dotted)
    if section.kind != "top-level":  # the top-level settings say what they take in words
        assert "Expected type: " in message or "expected type: " in message, message
        assert kind in message.rsplit("xpected type: ", 1)[1].lower(), message


# --- out of range: NaN, infinity, negative numbers, empty strings -----------------------------


def _may_be_negative(section: Section, field: str, value: float) -> bool:
    """Fields where a negative number means something: an RNG seed of a component (Python's
    and MinHash's RNGs take any integer), train.max_steps=-1 (train for num_epochs)."""
    if section.kind != "top-level" and field.endswith("seed"):
        return True
    return (section.name, field, value) == ("train", "max_steps", -1)


@st.composite
def bad_numbers(draw):
    rows = [(s, f, tp) for s, f, tp in typed_fields() if kind_of(tp) in ("int", "float")]
    section, field, tp = draw(st.sampled_from(rows))
    if kind_of(tp) == "float":
        value = draw(
            st.one_of(
                st.sampled_from([math.nan, math.inf, -math.inf, -1.0]),
                st.floats(max_value=-1e-3, allow_nan=False, allow_infinity=False),
            )
        )
    else:
        value = draw(st.one_of(st.just(-1), st.integers(max_value=-1)))
    return section, field, value


@settings(relaxed, max_examples=examples(25))
@given(case=bad_numbers())
def test_nan_infinity_and_negative_numbers_are_refused_naming_the_key(case):
    section, field, value = case
    text = {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan" if value != value else repr(value))
    overrides = [*section.base, f"++{section.prefix}{field}={text}"]
    if value == value and not math.isinf(value) and _may_be_negative(section, field, value):
        message = outcome(overrides)
    else:
        message = refused(overrides)
    if message is not None:
        assert re.search(rf"\b{re.escape(field)}\b", message), f"{overrides}: {message}{why_base_fails(section)}"


@st.composite
def empty_strings(draw):
    rows = [(s, f) for s, f, tp in typed_fields() if kind_of(tp) == "str"]
    return draw(st.sampled_from(rows))


@settings(relaxed, max_examples=examples(20))
@given(case=empty_strings())
def test_an_empty_string_is_refused_where_a_value_is_required(case):
    """An empty string never crashes validation; where the field has no default (a path, a
    model, a column the user must name) it is refused, naming the key."""
    section, field = case
    overrides = [*section.base, f"++{section.prefix}{field}=''"]
    required = section.schema is not None and section.default(field) == "???"
    message = refused(overrides) if required else outcome(overrides)
    if message is not None:
        assert field in message, f"{overrides}: {message}{why_base_fails(section)}"


# --- unknown config group options and component names ------------------------------------------


@st.composite
def unknown_options(draw):
    groups = group_options()
    group = draw(st.sampled_from(sorted(g for g, options in groups.items() if options)))
    options = groups[group]
    misspelt = draw(st.booleans())
    option = (
        _misspell(draw(st.sampled_from([o for o in options if len(o) >= 3] or list(options))), draw)
        if misspelt
        else draw(IDENT)
    )
    assume(option not in options and option not in NOT_STRINGS)
    value = f"[{options[0]},{option}]" if group == "tracker" and draw(st.booleans()) else option
    return [f"{group}={value}"], group, option, options, misspelt


@settings(relaxed)
@given(case=unknown_options())
def test_an_unknown_config_group_option_lists_the_options(case):
    overrides, group, option, options, misspelt = case
    message = refused(overrides)
    assert f"unknown {group} option '{option}'" in message and overrides[0] in message, message
    assert all(o in message for o in options), f"not every option listed: {message}"
    close = difflib.get_close_matches(option, options, n=1, cutoff=0.6)
    if misspelt or close:
        assert close and f"Did you mean '{close[0]}'?" in message, message


def test_null_for_a_config_group_says_how_to_select_none():
    message = refused(["approach=null"])
    assert "'approach' takes one of its options, not null" in message and "~approach" in message


@st.composite
def unknown_components(draw):
    where = draw(
        st.sampled_from(
            [*GROUP_OF.items(), *((k, f"pipeline.{s}") for k, s in STAGE_OF.items()), ("splitter", "pipeline.split")]
        )
    )
    kind, key = where
    names = registry().names(kind)
    misspelt = draw(st.booleans()) and bool(names)
    name = _misspell(draw(st.sampled_from(names)), draw) if misspelt else draw(IDENT)
    assume(name not in names)
    if key in GROUP_OF.values():
        override = f"{key}.name={name}"
    elif key == "pipeline.split":
        override = f"pipeline.split={name}"
    else:
        override = f"{key}=[{name}]"
    return ["pipeline=minimal", override], kind, name, names, misspelt


@settings(relaxed, max_examples=examples(20))
@given(case=unknown_components())
def test_an_unknown_component_name_lists_the_registered_ones(case):
    overrides, kind, name, names, misspelt = case
    message = refused(overrides)
    assert f"unknown {kind} '{name}'" in message and f"Registered {kind}s: {', '.join(names)}" in message, message
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if misspelt or close:  # a two-letter name swapped ("ml" for "lm") is too far to guess
        assert bool(close) == ("Did you mean '" in message), message


# --- incompatible model × method × peft × eval ---------------------------------------------------


def verdict(model: str, method: str, peft: str, evaluator: str) -> tuple[str, bool] | None:
    """What the components' declarations say (docs/training.md): None when the combination can
    run, else the words the refusal must contain and whether it names alternatives."""
    from tunelab.train.compat import method_tasks, peft_refusal, produces

    reg = registry()
    loader, objective = reg.get("model", model).cls, reg.get("method", method).cls
    adapter, scorer = reg.get("peft", peft).cls, reg.get("evaluator", evaluator).cls
    task = next((t for t in method_tasks(objective) if t in getattr(loader, "tasks", ("causal_lm",))), None)
    if task is None:
        return "needs a model loaded as", True
    refusal = peft_refusal(objective, peft)
    if refusal:
        return refusal, True
    if task not in getattr(adapter, "tasks", ()):
        return f"peft={peft} adapts models loaded as", True
    if getattr(adapter, "load_in_4bit", False):
        if not getattr(loader, "quantizable", False):
            return "4-bit base", True
        reason = adapter.unavailable_reason() if hasattr(adapter, "unavailable_reason") else None
        if reason:  # this machine cannot (no GPU): the reason says what it needs
            return reason, False
    scores = getattr(scorer, "scores", ())
    if scores and produces(objective, task) not in scores:
        return f"eval={evaluator} scores", True
    return None


#: how a refusal says what would work, and the kind of component each names
ALTERNATIVES = {
    "Models that can: ": "model",
    "pick a method for ": "method",
    "peft options": "peft",
    "Evaluators for it: ": "evaluator",
    "or use peft=": "peft",
}


@st.composite
def approaches(draw):
    reg = registry()
    return tuple(draw(st.sampled_from(reg.names(kind))) for kind in ("model", "method", "peft", "evaluator"))


@settings(relaxed)
@given(approach=approaches())
def test_check_approach_refuses_what_the_declarations_refuse_and_says_what_works(approach):
    from tunelab.train.compat import resolve

    expected = verdict(*approach)
    if expected is None:
        resolve(registry(), *approach)
        return
    with pytest.raises(ConfigError) as info:
        resolve(registry(), *approach)
    message = str(info.value)
    words, names_alternatives = expected
    assert words in message, f"{approach}: {message}"
    assert "\n\n" not in message and not LIBRARY_NOISE.search(message)
    if names_alternatives:
        hints = [h for h in ALTERNATIVES if h in message]
        assert hints, f"{approach}: the refusal does not say what would work: {message}"
        for hint in hints:  # every name it offers is a registered component of the right kind
            offered = re.split(r"[;.]", message.split(hint, 1)[1])[0].split(":")[-1]
            names = [n.strip() for n in offered.split(",") if n.strip() and n.strip() != "none"]
            names = [n.split()[0] for n in names if n.split()[0] != "none"]
            assert set(names) <= set(registry().names(ALTERNATIVES[hint])), f"{hint}{offered} in {message}"


@st.composite
def composed_approaches(draw):
    """model × method × peft × eval selected by their config files, as a user would."""
    picks = []
    for kind in ("model", "method", "peft", "evaluator"):
        section = draw(st.sampled_from([s for s in sections() if s.kind == kind]))
        picks.append(section)
    return picks


@settings(relaxed, max_examples=examples(10))
@given(picks=composed_approaches())
def test_the_composed_config_gets_the_same_verdict(picks):
    from tunelab.preflight import check_overrides
    from tunelab.train.compat import check_approach

    overrides = ["pipeline=minimal", *(o for s in picks for o in s.base)]
    rc = check_overrides(overrides, sources=False)
    expected = verdict(*(s.name for s in picks))
    if expected is None:
        check_approach(rc, registry())
    else:
        with pytest.raises(ConfigError, match=re.escape(expected[0])):
            check_approach(rc, registry())


@pytest.mark.parametrize(
    "split, overrides",
    [
        ("test", ["pipeline.params.stratified.test=0"]),
        ("validation", ["pipeline.params.stratified.validation=0", "eval.split=validation"]),
        ("test", ["pipeline.split=random", "+pipeline.params.random.test=0"]),
    ],
)
def test_evaluating_a_split_the_splitter_leaves_empty_is_refused_before_any_work(split, overrides):
    from tunelab.preflight import check_overrides
    from tunelab.train.compat import check_approach

    rc = check_overrides(["experiment=smoke", *overrides], sources=False)
    with pytest.raises(
        ConfigError, match=rf"eval.split is '{split}' but pipeline.params.(stratified|random).{split} is 0"
    ):
        check_approach(rc, registry())
    other = "validation" if split == "test" else "test"  # the split that has rows: fine
    check_approach(check_overrides(["experiment=smoke", *overrides, f"eval.split={other}"], sources=False), registry())


# --- malformed syntax and interpolations ---------------------------------------------------------


SYNTAX_KEYS = st.sampled_from(["seed", "train.max_steps", "peft.r", "data.path", "pipeline.clean", "model.name"])


@st.composite
def malformed(draw):
    key = draw(SYNTAX_KEYS)
    inner = draw(st.from_regex(r"[a-z0-9_]{0,6}", fullmatch=True))
    shape = draw(
        st.sampled_from(
            [
                "[{0},b",
                "{{{0}:1",
                "'{0}",
                '"{0}',
                "{0}'",
                "fn({0}",
                "${{{0}",
                "[{0}]]",
                "{0}}}",
                "missing_equals",
                "no_key",
            ]
        )
    )
    if shape == "missing_equals":
        return key, key
    if shape == "no_key":
        return f"={inner or 'x'}", None
    return f"{key}={shape.format(inner)}", key


@settings(relaxed)
@given(case=malformed())
def test_malformed_override_syntax_names_the_override(case):
    override, key = case
    message = refused([override])
    assert f"'{override}'" in message, message
    assert "KEY=VALUE" in message, message  # says how an override is written


@st.composite
def missing_interpolations(draw):
    section, field, tp = draw(st.sampled_from(typed_fields()))
    target = draw(
        st.one_of(IDENT.filter(lambda s: s not in TOP_LEVEL_KEYS), st.just("oc.env:TUNELAB_TEST_UNSET_VARIABLE"))
    )
    value = f"${{{target}}}"
    return [*section.base, f"++{section.prefix}{field}={value}"], f"{section.prefix}{field}", section


@settings(relaxed, max_examples=examples(15))
@given(case=missing_interpolations())
def test_an_interpolation_to_a_missing_key_names_the_key(case):
    overrides, dotted, section = case
    os.environ.pop("TUNELAB_TEST_UNSET_VARIABLE", None)
    message = refused(overrides)
    assert_names(message, overrides, section, f"cannot resolve '{dotted}'")


def test_an_interpolation_in_the_run_directory_is_refused_before_hydra_uses_it():
    message = refused(["hydra.run.dir=outputs/${nope}"])
    assert "cannot resolve 'hydra.run.dir'" in message and "hydra.run.dir=DIR" in message


def test_a_sweep_without_multirun_says_to_add_it():
    message = refused(["peft=none,lora"])
    assert "add -m" in message and "peft=[a,b]" in message


def test_a_sweep_over_an_unknown_option_fails_before_any_job():
    from tunelab.preflight import check_overrides

    with pytest.raises(ConfigError, match=r"unknown peft option 'lorax'.*Did you mean 'lora'"):
        check_overrides(["peft=none,lorax"], multirun=True)
    with pytest.raises(ConfigError, match=r"unknown key 'peft.rank' for peft 'lora'.*'peft.rank=1,2'"):
        check_overrides(["peft.rank=1,2"], multirun=True)
    assert check_overrides(["peft=none,lora", "seed=0,1"], multirun=True) is None


# --- the environment: data.path -------------------------------------------------------------------


def file_collectors() -> list[Section]:
    return [s for s in sections() if s.kind == "collector" and "path" in s.fields() and s.default("path") == "???"]


def _source_cases(tmp: Path) -> dict[str, str]:
    (tmp / "empty_dir").mkdir()
    return {
        "missing file": str(tmp / "missing.jsonl"),
        "missing directory": str(tmp / "no" / "such" / "dir"),
        "directory without data files": str(tmp / "empty_dir"),
        "glob matching nothing": str(tmp / "nothing*.jsonl"),
        "empty string": "''",
    }


@pytest.mark.parametrize(
    "case",
    ["missing file", "missing directory", "directory without data files", "glob matching nothing", "empty string"],
)
def test_a_data_path_that_is_not_there_fails_before_any_work(case, tmp_path, isolated_cache):
    """Every case with the default collector; every file collector with a missing file."""
    path = _source_cases(tmp_path)[case]
    collectors = file_collectors() if case == "missing file" else [s for s in file_collectors() if s.name == "jsonl"]
    for section in collectors:
        message = refused([*section.base, f"data.path={path}"], sources=True)
        assert "data.path" in message, f"{section.name}: {message}"
    assert not (isolated_cache / "prepared").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_data_file_fails_before_any_work(tmp_path):
    data = tmp_path / "locked.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n')
    data.chmod(0)
    try:
        message = refused([f"data.path={data}"], sources=True)
    finally:
        data.chmod(0o600)
    assert "data.path" in message and "locked.jsonl" in message


def test_a_readable_data_path_passes_the_source_check():
    from tunelab.preflight import check_overrides

    assert check_overrides([f"data.path={SAMPLE}"]).collector.config.path == str(SAMPLE)


# --- end to end through the CLI -------------------------------------------------------------------


@st.composite
def bad_command_lines(draw):
    """A sample of every kind of bad override above, for the CLI."""
    pick = draw(st.sampled_from(["key", "type", "number", "option", "component", "syntax", "interpolation"]))
    if pick == "key":
        overrides = draw(unknown_keys())[0]
    elif pick == "type":
        overrides = draw(wrong_types())[0]
    elif pick == "number":
        section, field, value = draw(bad_numbers())
        assume(not _may_be_negative(section, field, value))
        text = {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan" if value != value else repr(value))
        overrides = [*section.base, f"++{section.prefix}{field}={text}"]
    elif pick == "option":
        overrides = draw(unknown_options())[0]
    elif pick == "component":
        overrides = draw(unknown_components())[0]
    elif pick == "syntax":
        overrides = [draw(malformed())[0]]
    else:
        overrides = draw(missing_interpolations())[0]
    return draw(st.sampled_from(["train", "prepare"])), overrides


def assert_cli_refuses(capsys: Any, args: list[str], run_dir: Path, cache: Path) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(args)
    assert exit_info.value.code == 2, args
    err = capsys.readouterr().err
    assert err.count("tunelab: config error: ") == 1, err
    message = err.split("tunelab: config error: ", 1)[1].strip()
    assert message and "\n\n" not in message and not LIBRARY_NOISE.search(err), err
    assert not run_dir.exists(), f"{args} made the run directory"
    assert not (cache / "prepared").exists(), f"{args} prepared data"
    return message


@settings(relaxed, max_examples=examples(12))
@given(case=bad_command_lines())
def test_the_cli_exits_2_with_one_paragraph_before_any_work(case, capsys, tmp_path, isolated_cache):
    stage, overrides = case
    run_dir = tmp_path / f"run-{uuid.uuid4().hex[:8]}"
    args = ([] if stage == "train" else ["prepare"]) + [*overrides, f"hydra.run.dir={run_dir}"]
    assert_cli_refuses(capsys, args, run_dir, isolated_cache)


def test_the_cli_refuses_a_missing_data_file_and_an_unknown_option_without_a_run_directory(
    capsys, tmp_path, isolated_cache
):
    run_dir = tmp_path / "run"
    message = assert_cli_refuses(
        capsys, [f"data.path={tmp_path / 'nope.jsonl'}", f"hydra.run.dir={run_dir}"], run_dir, isolated_cache
    )
    assert "data.path" in message and "nope.jsonl' does not exist" in message
    message = assert_cli_refuses(
        capsys, ["-m", "peft=none,lorax", f"hydra.sweep.dir={run_dir}"], run_dir, isolated_cache
    )
    assert "unknown peft option 'lorax'" in message


def test_the_cli_refuses_an_incompatible_approach_before_data_or_model(capsys, tmp_path, isolated_cache):
    """Refused after validation, recorded as a failed run (a sweep's comparison lists it;
    docs/training.md), but no data is prepared and no model loaded."""
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["experiment=smoke", "method=classify", "eval=lm", f"hydra.run.dir={run_dir}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "eval=lm scores causal_lm models" in err and "Evaluators for it: classification" in err
    assert "Traceback" not in err
    assert not (isolated_cache / "prepared").exists() and not (run_dir / "model").exists()
    assert not (run_dir / "data_report.md").exists()


def test_precision_that_needs_a_gpu_is_refused_before_any_work():
    import torch

    from tunelab.preflight import check_overrides
    from tunelab.train.compat import check_approach

    rc = check_overrides(["experiment=smoke", "train.precision=fp16"], sources=False)
    if torch.cuda.is_available():
        check_approach(rc, registry())
    else:
        with pytest.raises(ConfigError, match=r"train.precision=fp16 needs a CUDA GPU.*train.precision=auto"):
            check_approach(rc, registry())
