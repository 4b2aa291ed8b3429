"""The docs stay true.

(a) docs/reference/ is what ``tunelab docs reference`` generates from the registry and the
    hook specifications: a component or hook missing from it fails, naming the page and
    the component.
(b) Every ``tunelab`` command in the ```bash blocks of README.md and docs/**/*.md works:
    run and sweep commands compose and validate (every job of a sweep, with the approach
    check a training run does before any work) without running; the other commands
    (``tunelab plugins``, ``tunelab --help``, ``tunelab --cfg ...``, ``tunelab docs ...``)
    run for real. A command that cannot run here must be listed in SKIPPED with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from conftest import compose, run_cli
from doc_fixtures import write_fixtures
from tunelab import hookspecs
from tunelab.api import Cleaner, Component, hookimpl

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"


# --- (a) the generated reference ---------------------------------------------------


@dataclass
class ProbeConfig:
    #: how loudly the probe probes
    volume: int = 3
    mode: str = "soft"  #: soft or hard


class Probe(Cleaner):
    """A cleaner the reference pages do not know yet.

    It exists only in this test."""


class ProbePlugin:
    @hookimpl
    def tunelab_register_cleaners(self):
        return [Component("docs_probe", Probe, ProbeConfig)]


def tunelab_docs_probe_hook(run_dir: Path, count: int = 0) -> None:
    """A hook the hook page does not list yet."""


tunelab_docs_probe_hook = hookspecs.hookspec(tunelab_docs_probe_hook)


def _reference_check(*extra: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run_cli(["docs", "reference", "--check", "--out", str(REFERENCE), *extra])
    return code, err.getvalue()


def test_reference_pages_match_the_registry():
    code, err = _reference_check()
    assert code == 0, f"docs/reference is stale (run `tunelab docs reference` in the repository root):\n{err}"


def test_a_new_builtin_component_makes_the_check_fail_naming_it():
    from tunelab.plugins import BUILTIN_DISTRIBUTION, add_plugin, get_plugins, remove_plugin

    version = get_plugins().registry.get("cleaner", "normalize").supplier.version
    add_plugin(ProbePlugin(), "docs-probe", distribution=BUILTIN_DISTRIBUTION, version=version)
    try:
        code, err = _reference_check()
    finally:
        remove_plugin("docs-probe")
    assert code == 1
    stale = [line for line in err.splitlines() if "cleaners.md" in line]
    assert stale and "not documented: docs_probe" in stale[0], err
    assert any("index.md" in line for line in err.splitlines()), err
    assert "tunelab docs reference" in err  # says how to fix it


def test_an_external_plugin_does_not_make_the_check_fail_unless_documented_with_all(tmp_path):
    from tunelab.plugins import add_plugin, remove_plugin

    add_plugin(ProbePlugin(), "docs-probe", distribution="tunelab-docs-probe", version="9.9")
    try:
        assert _reference_check()[0] == 0
        code, err = _reference_check("--all")
        assert code == 1 and "docs_probe" in err
        out = tmp_path / "all"
        with contextlib.redirect_stdout(io.StringIO()):
            assert run_cli(["docs", "reference", "--all", "--out", str(out)]) == 0
    finally:
        remove_plugin("docs-probe")
    page = (out / "cleaners.md").read_text()
    section = page[page.index("## `docs_probe`") :]
    assert "`tunelab-docs-probe` 9.9 (plugin `docs-probe`)" in section
    assert "A cleaner the reference pages do not know yet." in section
    assert "`pipeline.clean=[docs_probe]`" in section
    # doc comments above a field and after it on the same line
    assert "| `volume` | `int` | `3` | how loudly the probe probes |" in section
    assert "| `mode` | `str` | `'soft'` | soft or hard |" in section


def test_a_hook_missing_from_hooks_md_fails(monkeypatch):
    monkeypatch.setattr(hookspecs, "tunelab_docs_probe_hook", tunelab_docs_probe_hook, raising=False)
    code, err = _reference_check()
    assert code == 1
    assert any("hooks.md" in line and "not documented: tunelab_docs_probe_hook" in line for line in err.splitlines()), (
        err
    )


def test_a_stale_page_says_where_it_differs(tmp_path):
    out = tmp_path / "reference"
    shutil.copytree(REFERENCE, out)
    page = out / "peft.md"
    page.write_text(page.read_text().replace("rank of the low-rank update", "rank"))
    (out / "old_kind.md").write_text("# gone\n")
    (out / "models.md").unlink()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert run_cli(["docs", "reference", "--check", "--out", str(out)]) == 1
    lines = err.getvalue().splitlines()
    assert any("peft.md: stale" in line and "in section dora" in line for line in lines), lines
    assert any("models.md: missing" in line for line in lines), lines
    assert any("old_kind.md: not a generated page" in line for line in lines), lines
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_cli(["docs", "reference", "--out", str(out)]) == 0
    assert (out / "peft.md").read_text() == (REFERENCE / "peft.md").read_text()


# --- (b) every command shown in the docs ---------------------------------------------

#: Commands that cannot run here at all, with the reason. A new command that cannot run
#: fails the tests until it is listed here (or fixed).
SKIPPED: dict[str, str] = {
    "tunelab augment=synonym pipeline.params.synonym.wordnet_dir=$HOME/nltk_data/corpora/wordnet.zip": (
        "needs the NLTK WordNet corpus downloaded into ~/nltk_data (the line above checks the system WordNet)"
    ),
    (
        "tunelab augment=back_translation pipeline.params.back_translation.forward_model=/models/opus-mt-en-de "
        "pipeline.params.back_translation.backward_model=/models/opus-mt-de-en "
        "pipeline.params.back_translation.num_beams=4"
    ): "needs MarianMT models downloaded to /models",
    "tunelab prepare pipeline=my_filters 'pipeline.params.my_filters.phrases=[refund, lorem ipsum]'": (
        "needs the package the lines above scaffold and pip-install (tests/test_scaffold.py does that in a fresh venv "
        "and runs this pipeline)"
    ),
}

#: Commands that read what the commands above them on the same page write. The compose
#: check skips them; the execution runs them in page order, a ``<date>/<time>``
#: placeholder replaced by the newest run (or sweep) directory the page has written.
READS_EARLIER_OUTPUT: dict[str, str] = {
    'echo "I was charged twice" | tunelab predict outputs/<date>/<time>': (
        "placeholder: the run directory of a finished training run"
    ),
    "tunelab compare multirun/<date>/<time>": "placeholder: the directory of a finished sweep",
    "tunelab explain support_tickets.jsonl:17": (
        "reads the ledger of the latest run under ./outputs, which the commands above it produce"
    ),
    "tunelab compare multirun/compare-demo": "reads the sweep directory the command above it writes",
    "tunelab compare multirun/failing": "reads the sweep directory the command above it writes",
    "tunelab compare multirun/first": "reads the sweep directory the command above it writes",
    "tunelab compare multirun/approaches": "reads the sweep directory the command above it writes",
    "tunelab explain tickets.csv:17": "reads the ledger of the run the commands above it write",
}

#: Commands that compose and validate here but are not executed, with the reason.
VALIDATED_ONLY: dict[str, str] = {
    "tunelab -m experiment=smoke peft=none,lora hydra/launcher=tunelab_slurm hydra.launcher.partition=gpu": (
        "submits to a Slurm cluster (the submitit_local command on the same page runs the same launcher locally)"
    ),
    "tunelab -m experiment=minilm_compare hydra/launcher=tunelab_slurm hydra.launcher.partition=gpu "
    "hydra.launcher.timeout_min=60": "submits to a Slurm cluster",
    "tunelab -m experiment=minilm_compare hydra/launcher=tunelab_ray hydra.launcher.ray.init.address=auto": (
        "connects to a running Ray cluster"
    ),
    (
        "tunelab prepare data=html "
        "'data.urls=[https://example.com/guides/waxing.html,https://example.com/guides/tents.html]' "
        "pipeline=minimal pipeline.params.drop_missing.fields=[text] pipeline.params.exact_dedup.fields=[text]"
    ): "fetches example.com; this machine has no network (tests/test_collectors.py fetches from a local server)",
    (
        "tunelab prepare 'pipeline.annotate=[consensus]' "
        "'+pipeline.params.consensus.annotator_columns=[ann_a,ann_b,ann_c]' "
        "+pipeline.params.consensus.tie_policy=drop +pipeline.params.consensus.min_agreement=0.6"
    ): "needs data with annotator columns ann_a, ann_b, ann_c; the bundled tickets have none",
    "tunelab prepare pipeline.split=group +pipeline.params.group.group_column=customer_id": (
        "needs data with a customer_id column; the bundled tickets have none"
    ),
}

#: Commands that demonstrate a failure: each must fail (in at least one job) with this text.
EXPECTED_FAILURES: dict[str, str] = {
    "tunelab prepare -m experiment=smoke seed=0,oops hydra/launcher=gpu_pool hydra.sweep.dir=multirun/failing": (
        "seed must be an integer"
    ),
}

#: Commands using an optional Hydra launcher are checked when its package is installed.
OPTIONAL_LAUNCHERS = {
    "tunelab_ray": ("hydra_plugins.hydra_ray_launcher", 'the ray extra (pip install -e ".[ray]")'),
    "tunelab_slurm": ("hydra_plugins.hydra_submitit_launcher", 'the slurm extra (pip install -e ".[slurm]")'),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", 'the slurm extra (pip install -e ".[slurm]")'),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", 'the slurm extra (pip install -e ".[slurm]")'),
}

PLACEHOLDER = re.compile(r"<[A-Za-z][\w -]*>|\b(?:RUN_DIR|DIR|ROW_ID|FILE|OVERRIDES)\b")
SHELL_LANGUAGES = {"bash", "sh", "shell"}
#: Hydra's own flags: the command runs for real (they print and exit without a job)
HYDRA_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--resolve", "-p", "--package"}
#: the first word of a run that is not an override: the stage
RUN_STAGES = {"prepare"}
#: a word that names a subcommand (``plugins``, ``docs``, ``compare``, ...), not an override
SUBCOMMAND = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass
class DocCommand:
    where: str
    #: the whole logical line (continuations joined, comment removed), as the key of SKIPPED
    line: str
    env: dict[str, str] = field(default_factory=dict)
    #: the words after ``tunelab``
    args: list[str] = field(default_factory=list)


def _scan(text: str):
    """(index, char, quoted) for each char of a shell line."""
    quote = None
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
            yield index, char, True
            continue
        if char in "'\"":
            quote = char
            yield index, char, True
            continue
        yield index, char, False


def strip_comment(text: str) -> str:
    for index, char, quoted in _scan(text):
        if char == "#" and not quoted and (index == 0 or text[index - 1].isspace()):
            return text[:index].rstrip()
    return text.rstrip()


def split_segments(text: str) -> list[str]:
    """The simple commands of a line: split at unquoted |, ||, &&, ;."""
    segments, start = [], 0
    for index, char, quoted in _scan(text):
        if not quoted and char in "|;&":
            segments.append(text[start:index])
            start = index + 1
    segments.append(text[start:])
    return [s.strip() for s in segments if s.strip()]


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def doc_commands() -> list[DocCommand]:
    commands = []
    for path in doc_files():
        language: str | None = None
        pending: list[str] = []
        start = 0
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            fence = re.match(r"^\s*```\s*([\w+-]*)", raw)
            if fence:
                language = None if language is not None else fence.group(1).lower()
                pending = []
                continue
            if language not in SHELL_LANGUAGES:
                continue
            if not pending:
                start = number
            stripped = raw.rstrip()
            if stripped.endswith("\\"):
                pending.append(stripped[:-1].strip())
                continue
            pending.append(stripped.strip())
            line = " ".join(strip_comment(" ".join(pending)).split())
            pending = []
            for segment in split_segments(line):
                try:
                    words = shlex.split(segment)
                except ValueError as exc:
                    raise AssertionError(f"{path.relative_to(ROOT)}:{start}: cannot parse {segment!r}: {exc}") from None
                env = {}
                while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
                    key, _, value = words.pop(0).partition("=")
                    env[key] = value
                if words and os.path.basename(words[0]) == "tunelab":
                    where = f"{path.relative_to(ROOT)}:{start}"
                    commands.append(DocCommand(where, line, env, [os.path.expandvars(w) for w in words[1:]]))
    return commands


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The override lists of a multirun's jobs, expanded as Hydra's basic sweeper does:
    ``hydra.sweeper.params`` of the composed config (experiment presets set them), then
    the command line's overrides, as a cartesian product."""
    from hydra import initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    from tunelab.app import conf_dir, register_hydra_plugins
    from tunelab.config import register_resolvers

    register_hydra_plugins()
    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = GlobalHydra.instance().hydra.compose_config(
            "config", overrides=overrides, run_mode=RunMode.MULTIRUN, with_log_configuration=False
        )
        params = cfg.hydra.sweeper.params or {}
        arguments = [f"{key}={value}" for key, value in params.items()] + list(overrides)
        parsed = OverridesParser.create().parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def check_job(stage: str, overrides: list[str]) -> None:
    """What a job does before any work: compose, validate, and (training) the approach check."""
    from tunelab.config import Origin, validate
    from tunelab.plugins import get_plugins
    from tunelab.run import _take_resume_flag
    from tunelab.train.compat import check_approach

    cfg = compose(overrides)
    cfg, _ = _take_resume_flag(cfg)
    registry = get_plugins().registry
    rc = validate(cfg, registry, Origin.from_hydra())
    if stage == "train":
        check_approach(rc, registry)


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__
    return f"{text} (caused by {type(cause).__name__}: {cause})" if cause and str(cause) not in text else text


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _run_for_real(args: list[str], tmp_path: Path) -> tuple[int, str]:
    if args[:2] == ["docs", "reference"] and "--check" not in args and "--out" not in args:
        args = [*args, "--out", str(tmp_path / "reference")]  # never rewrite the repository's pages
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = run_cli(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue()


def test_doc_commands_are_found():
    commands = doc_commands()
    where = {c.where.split(":")[0] for c in commands}
    assert len(commands) > 80, f"only {len(commands)} tunelab commands found in the docs: is the parser broken?"
    assert {"README.md", "docs/sweeps.md", "docs/components/collectors.md"} <= where
    multiline = [c for c in commands if c.line.startswith("tunelab -m pipeline.split=stratified_kfold")]
    assert multiline and len(multiline[0].args) > 3, "continuation lines are not joined"


def test_every_command_in_the_docs_works(tmp_path, monkeypatch):
    commands = doc_commands()
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "docs").symlink_to(ROOT / "docs")  # `tunelab docs reference --check` reads ./docs/reference
    write_fixtures("", [c.line for c in commands], work)
    monkeypatch.chdir(work)

    failures: list[str] = []
    skipped: list[tuple[DocCommand, str]] = []
    checked_jobs: dict[tuple, str | None] = {}
    ran_for_real: set[str] = set()
    counts = {"run for real": 0, "composed and validated": 0, "jobs": 0}

    for command in commands:
        key = command.line
        if key in SKIPPED or key in READS_EARLIER_OUTPUT:
            skipped.append((command, SKIPPED.get(key) or READS_EARLIER_OUTPUT[key]))
            continue
        if PLACEHOLDER.search(" ".join(command.args)):
            failures.append(
                f"{command.where}: `{key}` has a placeholder and cannot run: add it to SKIPPED with the reason"
            )
            continue
        launcher = next((a.split("=", 1)[1] for a in command.args if a.startswith("hydra/launcher=")), None)
        if launcher in OPTIONAL_LAUNCHERS and not _installed(OPTIONAL_LAUNCHERS[launcher][0]):
            skipped.append((command, f"needs {OPTIONAL_LAUNCHERS[launcher][1]}"))
            continue

        with monkeypatch.context() as env:
            for name, value in command.env.items():
                env.setenv(name, value)
            args = list(command.args)
            stage = "train"
            if args and args[0] in RUN_STAGES:
                stage, args = args[0], args[1:]
            subcommand = stage == "train" and bool(args) and bool(SUBCOMMAND.match(args[0]))
            if subcommand or any(a in HYDRA_INFO_FLAGS for a in args):
                if key in ran_for_real:  # a second `tunelab new-plugin my-filters` would find the first
                    continue
                ran_for_real.add(key)
                counts["run for real"] += 1
                code, output = _run_for_real(list(command.args), tmp_path)
                if code != 0:
                    failures.append(
                        f"{command.where}: `{key}` exited {code} (if it needs what an earlier command writes, "
                        f"list it in SKIPPED with the reason):\n{output[-2000:]}"
                    )
                continue
            multirun = any(a in ("-m", "--multirun") for a in args)
            overrides = [a for a in args if a not in ("-m", "--multirun")]
            flags = [a for a in overrides if a.startswith("-")]
            if flags:
                failures.append(f"{command.where}: `{key}`: option(s) {flags} are not tunelab or Hydra options")
                continue
            counts["composed and validated"] += 1
            expected = EXPECTED_FAILURES.get(key)
            try:
                jobs = sweep_jobs(overrides) if multirun else [overrides]
            except Exception as exc:
                failures.append(f"{command.where}: `{key}`: the sweep does not compose: {_error_text(exc)}")
                continue
            errors = []
            for job in jobs:
                job_key = (stage, tuple(job), tuple(sorted(command.env.items())))
                if job_key not in checked_jobs:
                    counts["jobs"] += 1
                    try:
                        check_job(stage, job)
                        checked_jobs[job_key] = None
                    except Exception as exc:
                        checked_jobs[job_key] = _error_text(exc)
                if checked_jobs[job_key] is not None:
                    errors.append(f"job {' '.join(job)}: {checked_jobs[job_key]}")
            if expected is not None:
                if not any(expected in e for e in errors) or len(errors) == len(jobs):
                    failures.append(
                        f"{command.where}: `{key}` should fail in some (not all) jobs with {expected!r}; got: "
                        f"{errors or 'no error'}"
                    )
            elif errors:
                failures.append(f"{command.where}: `{key}` does not validate:\n  " + "\n  ".join(errors))

    shown = {c.line for c in commands}
    for name, table in (
        ("SKIPPED", SKIPPED),
        ("READS_EARLIER_OUTPUT", READS_EARLIER_OUTPUT),
        ("VALIDATED_ONLY", VALIDATED_ONLY),
        ("EXPECTED_FAILURES", EXPECTED_FAILURES),
    ):
        stale = sorted(set(table) - shown)
        if stale:
            failures.append(f"{name} lists commands no doc shows any more (remove them): {stale}")
    print(  # shown with -s, or when the test fails
        f"doc commands: {len(commands)} found, {counts['run for real']} run for real, "
        f"{counts['composed and validated']} composed and validated ({counts['jobs']} distinct jobs), "
        f"{len(skipped)} skipped:"
    )
    for command, reason in skipped:
        print(f"  skipped {command.where}: {command.line}  -- {reason}")
    assert not failures, "\n".join(failures)


def test_skip_lists_give_reasons():
    for table in (SKIPPED, READS_EARLIER_OUTPUT, VALIDATED_ONLY, EXPECTED_FAILURES):
        for command, reason in table.items():
            assert "tunelab " in command and reason.strip(), (command, reason)


def test_the_docs_build_as_a_site_without_broken_links(tmp_path):
    """mkdocs.yml's nav lists every page, and a link to a missing page or anchor fails."""
    import subprocess

    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    nav = set(re.findall(r":\s*(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M))
    assert pages == nav, (
        f"pages not in mkdocs.yml's nav: {sorted(pages - nav)}; nav entries without a page: {sorted(nav - pages)}"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-q",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "howto" / "dpo" / "index.html").is_file()


# --- (c) every command shown in the docs, executed --------------------------------------

#: ``make docs-check`` sets TUNELAB_DOCS_FULL=1: every command runs as written. Otherwise
#: (the test suite, CI) every command runs except training on the real models (SmolLM2,
#: MiniLM: tens of seconds to minutes each on a CPU, a few hundred jobs' worth in the docs),
#: and a training run without its own ``train.max_steps`` gets ``train.max_steps=2``
#: appended: the same data, pipeline, evaluation and reports, two optimizer steps. The
#: test is whether the command works, not the numbers it measures.
FULL = os.environ.get("TUNELAB_DOCS_FULL") == "1"
#: TUNELAB_DOCS_PAGES=README.md,docs/sweeps.md runs the commands of those pages only
ONLY_PAGES = [p for p in os.environ.get("TUNELAB_DOCS_PAGES", "").split(",") if p]
#: the models the suite trains in docs commands (built in-process, seconds per run)
CHEAP_MODELS = {"tiny", "tiny_encoder"}
STEP_CAP = "train.max_steps=2"


def _is_training_run(args: list[str]) -> bool:
    if args and args[0] in RUN_STAGES:
        return False
    if args and SUBCOMMAND.match(args[0]):
        return False
    return not any(a in HYDRA_INFO_FLAGS for a in args)


def _newest(work: Path, pattern: str, marker: str) -> str | None:
    found = [p.parent for p in work.glob(f"{pattern}/{marker}")]
    return str(max(found, key=lambda p: p.stat().st_mtime).relative_to(work)) if found else None


def _shell_line(command: DocCommand, work: Path) -> str | None:
    """The line to run: placeholders resolved, the step cap appended to a training run."""
    line = command.line
    if "outputs/<date>/<time>" in line:
        run = _newest(work, "outputs/*/*", "model")
        if run is None:
            return None
        line = line.replace("outputs/<date>/<time>", run)
    if "multirun/<date>/<time>" in line:
        sweep = _newest(work, "multirun/*/*", "comparison.md")
        if sweep is None:
            return None
        line = line.replace("multirun/<date>/<time>", sweep)
    if (
        not FULL
        and len(split_segments(line)) == 1
        and _is_training_run(command.args)
        and "train.max_steps=" not in line
    ):
        line = f"{line} {STEP_CAP}"
    return line


@dataclass
class Execution:
    command: DocCommand
    seconds: float = 0.0
    #: None: ran as expected; else what went wrong
    failure: str | None = None
    #: why it did not run (validated only, or a duplicate of a line another page ran)
    not_run: str | None = None


def _expensive_models(command: DocCommand) -> set[str]:
    """The models a training command's jobs would train, other than CHEAP_MODELS."""
    args = list(command.args)
    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    jobs = sweep_jobs(overrides) if multirun else [overrides]
    return {str(compose(job).model.name) for job in jobs} - CHEAP_MODELS


def _execute_page(
    page: str,
    commands: list[DocCommand],
    work: Path,
    env: dict[str, str],
    first_run: dict[str, str],
    deferred: dict[str, str],
) -> list[Execution]:
    import subprocess
    import time

    work.mkdir(parents=True)
    write_fixtures(page, [c.line for c in commands], work)
    shutil.copytree(ROOT / "docs" / "reference", work / "docs" / "reference")  # for `tunelab docs reference`
    results = []
    for command in commands:
        result = Execution(command)
        results.append(result)
        key = command.line
        reason = SKIPPED.get(key) or VALIDATED_ONLY.get(key) or deferred.get(key)
        if reason:
            result.not_run = reason
            continue
        if key not in READS_EARLIER_OUTPUT and first_run[key].split(":")[0] != page:
            result.not_run = f"the same command ran on {first_run[key]}"
            continue
        line = _shell_line(command, work)
        if line is None:
            result.failure = "no earlier command on the page wrote the directory its placeholder stands for"
            continue
        started = time.perf_counter()
        proc = subprocess.run(
            ["bash", "-c", line], cwd=work, env={**env, **command.env}, capture_output=True, text=True, timeout=1800
        )
        result.seconds = time.perf_counter() - started
        output = proc.stdout + proc.stderr
        expected = EXPECTED_FAILURES.get(key)
        if expected is not None:
            if proc.returncode == 0 or expected not in output:
                result.failure = f"should fail with {expected!r}; exited {proc.returncode}:\n{output[-3000:]}"
        elif proc.returncode != 0:
            result.failure = f"`{line}` exited {proc.returncode}:\n{output[-3000:]}"
    return results


def test_every_command_in_the_docs_runs(tmp_path):
    """Each page's commands run in order, in a fresh directory holding the files they name,
    through bash with the installed ``tunelab`` (pipes, environment variables and all);
    pages run two at a time; the prepared-data cache is shared."""
    from concurrent.futures import ThreadPoolExecutor

    pages: dict[str, list[DocCommand]] = {}
    seen: set[tuple[str, str]] = set()
    for command in doc_commands():
        if (command.where, command.line) not in seen:  # one line may hold two tunelab commands
            seen.add((command.where, command.line))
            pages.setdefault(command.where.split(":")[0], []).append(command)
    if ONLY_PAGES:
        assert set(ONLY_PAGES) <= set(pages), (
            f"TUNELAB_DOCS_PAGES names pages with no commands: {set(ONLY_PAGES) - set(pages)}"
        )
        pages = {page: commands for page, commands in pages.items() if page in ONLY_PAGES}
    bindir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "TUNELAB_CACHE_DIR": str(tmp_path / "cache"),
        "WANDB_MODE": "offline",
        "HF_HUB_OFFLINE": "1",
    }
    first_run: dict[str, str] = {}
    deferred: dict[str, str] = {}  # composed here: Hydra's global state is not for threads
    not_written: dict[tuple[str, str], str] = {}  # (page, sweep dir) -> the command not run here that writes it
    for command in (c for commands in pages.values() for c in commands):
        first_run.setdefault(command.line, command.where)
        key, page = command.line, command.where.split(":")[0]
        if key not in SKIPPED and key not in VALIDATED_ONLY and key not in deferred:
            launcher = next((a.split("=", 1)[1] for a in command.args if a.startswith("hydra/launcher=")), None)
            if launcher in OPTIONAL_LAUNCHERS and not _installed(OPTIONAL_LAUNCHERS[launcher][0]):
                deferred[key] = f"needs {OPTIONAL_LAUNCHERS[launcher][1]}"
            elif not FULL and _is_training_run(command.args) and key not in EXPECTED_FAILURES:
                models = _expensive_models(command)
                if models:
                    deferred[key] = f"trains {', '.join(sorted(models))}: run by `make docs-check`"
            elif command.args[:1] == ["compare"] and (page, command.args[-1]) in not_written:
                deferred[key] = f"reads the sweep of {not_written[(page, command.args[-1])]}, which does not run here"
        if key in SKIPPED or key in VALIDATED_ONLY or key in deferred:
            sweep_dir = next((a.split("=", 1)[1] for a in command.args if a.startswith("hydra.sweep.dir=")), None)
            if sweep_dir:
                not_written[(page, sweep_dir)] = command.where
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(_execute_page, page, commands, tmp_path / re.sub(r"\W+", "_", page), env, first_run, deferred)
            for page, commands in pages.items()
        ]
        results = [r for future in futures for r in future.result()]

    ran = [r for r in results if r.not_run is None]
    print(
        f"doc commands executed: {len(ran)} of {len(results)} "
        f"({'as written' if FULL else STEP_CAP + ' on tiny-model training runs'}), "
        f"{sum(r.seconds for r in ran):.0f} s in all; slowest:"
    )
    for r in sorted(ran, key=lambda r: -r.seconds)[:10]:
        print(f"  {r.seconds:6.1f} s  {r.command.where}: {r.command.line[:110]}")
    for r in results:
        if r.not_run:
            print(f"  not run {r.command.where}: {r.command.line[:110]}  -- {r.not_run}")
    failures = [f"{r.command.where}: {r.failure}" for r in ran if r.failure]
    assert not failures, "\n\n".join(failures)


def test_a_docstring_literal_block_becomes_a_fenced_python_block():
    from tunelab.docs.fields import rst_to_markdown

    text = (
        "Return ``x`` <of> :class:`~tunelab.api.Component`.\n\n"
        "Example::\n\n    @hookimpl\n    def f():\n\n        return a<b\n\n"
        "After *it*."
    )
    assert rst_to_markdown(text) == (
        "Return `x` &lt;of&gt; `Component`.\n\nExample:\n\n```python\n@hookimpl\ndef f():\n\n    return a<b\n```"
        "\n\nAfter \\*it\\*."
    )
