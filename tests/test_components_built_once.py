"""A run composes and validates its config once and builds each selected component once:
validation constructs every component (its constructor checks the values), and the data
pipeline, the trackers and training use those instances instead of building them again."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import run_cli
from tunelab.api import Component, hookimpl
from tunelab.plugins import add_plugin, get_plugins

#: (kind, name) of a built-in -> how many times its counting copy ``counted_<name>`` was constructed
BUILT: Counter = Counter()
COUNTED = [
    ("collector", "jsonl"),
    ("cleaner", "pii"),
    ("cleaner", "exact_dedup"),
    ("splitter", "stratified"),
    ("model", "tiny"),
    ("method", "sft"),
    ("peft", "none"),
    ("evaluator", "lm"),
    ("tracker", "csv"),
]


def _counting(kind: str, name: str) -> Component:
    """``counted_<name>``: the built-in ``name`` of ``kind``, counting its constructor calls."""
    builtin = get_plugins().registry.get(kind, name)

    class Counted(builtin.cls):  # type: ignore[misc, valid-type]
        __doc__ = builtin.cls.__doc__

        def __init__(self, config):
            BUILT[(kind, name)] += 1
            super().__init__(config)

    return Component(f"counted_{name}", Counted, builtin.config_schema)


class CountingPlugin:
    """Registers ``counted_<name>`` for every (kind, name) of :data:`COUNTED`."""

    def __init__(self) -> None:
        self.components = [(kind, _counting(kind, name)) for kind, name in COUNTED]

    def _of(self, kind: str) -> list[Component]:
        return [component for k, component in self.components if k == kind]

    @hookimpl
    def tunelab_register_collectors(self):
        return self._of("collector")

    @hookimpl
    def tunelab_register_cleaners(self):
        return self._of("cleaner")

    @hookimpl
    def tunelab_register_splitters(self):
        return self._of("splitter")

    @hookimpl
    def tunelab_register_models(self):
        return self._of("model")

    @hookimpl
    def tunelab_register_methods(self):
        return self._of("method")

    @hookimpl
    def tunelab_register_pefts(self):
        return self._of("peft")

    @hookimpl
    def tunelab_register_evaluators(self):
        return self._of("evaluator")

    @hookimpl
    def tunelab_register_trackers(self):
        return self._of("tracker")


@pytest.fixture
def counting_plugin():
    """:class:`CountingPlugin`, in process; yields :data:`BUILT`, counting from zero."""
    from tunelab.plugins import remove_plugin

    add_plugin(CountingPlugin(), "counting-test")
    BUILT.clear()
    yield BUILT
    remove_plugin("counting-test")


#: the smoke experiment with the counting collector, cleaners (pii among them), splitter and tracker
DATA = [
    "experiment=smoke",
    "data.name=counted_jsonl",
    "pipeline=minimal",
    "pipeline.clean=[counted_pii,counted_exact_dedup]",
    "+pipeline.params.counted_pii.fields=[prompt,completion]",
    "+pipeline.params.counted_exact_dedup.fields=[prompt,completion]",
    "pipeline.split=counted_stratified",
    "+tracker.counted_csv.filename=counted.csv",
]
DATA_SIDE = [
    ("collector", "jsonl"),
    ("cleaner", "pii"),
    ("cleaner", "exact_dedup"),
    ("splitter", "stratified"),
    ("tracker", "csv"),
]


def test_prepare_builds_each_data_component_once(counting_plugin, tmp_path):
    """Preflight validates the command line (building every component); the job reuses that
    config, and the cache key, the PII scrubber, the pipeline and the trackers its instances."""
    assert run_cli(["prepare", *DATA, f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    assert counting_plugin == {component: 1 for component in DATA_SIDE}


def test_a_train_run_builds_each_component_once(counting_plugin, tmp_path):
    train = [
        "model.name=counted_tiny",
        "method.name=counted_sft",
        "peft=none",
        "peft.name=counted_none",
        "eval.name=counted_lm",
        "train.max_steps=2",
    ]
    assert run_cli([*DATA, *train, f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    assert counting_plugin == {component: 1 for component in COUNTED}


def test_a_job_run_in_another_directory_validates_its_config_again(counting_plugin, tmp_path):
    """With hydra.job.chdir=true the job runs in its run directory, where a component may see
    other files than preflight saw: the job validates (and builds) again."""
    assert run_cli(["prepare", *DATA, "hydra.job.chdir=true", f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    assert counting_plugin == {component: 2 for component in DATA_SIDE}


def test_a_sweep_job_builds_each_component_once(counting_plugin, tmp_path):
    """A sweep's command line is composed, not validated, before the jobs: each job validates
    its config (building every component) and reuses the instances. The sweep's end builds its
    own trackers, to tell them about the comparison."""
    assert run_cli(["prepare", "-m", *DATA, f"hydra.sweep.dir={tmp_path / 'sweep'}"]) == 0
    assert counting_plugin == {**{component: 1 for component in DATA_SIDE}, ("tracker", "csv"): 2}
