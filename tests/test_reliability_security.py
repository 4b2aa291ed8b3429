"""Security (issue 7): a config cannot run code, secrets and PII never reach an output, and
URL fetching stays within its limits.

1. Config from a file someone else wrote: only registered components are instantiable;
   ``_target_`` is refused in tunelab's sections and in Hydra's (callbacks, logging
   factories, launcher); ``trust_remote_code`` only from the command line; no unsafe
   deserialisation or eval in the source (an AST scan with an explicit allow-list).
2./3. One tiny sweep with every tracker (csv, offline W&B with the dataset artifact,
   TensorBoard, MLflow) reads an SQLite database through a URL with a password, with a
   secret PII salt, secrets in the environment and PII planted in the rows; then every
   byte under the sweep, the cache and W&B's directories, and the console output, is
   searched for each secret and each PII value.
4. HTML/URL fetching against a local server: trickled headers and bodies, slow redirect
   chains, redirects to non-http schemes, huge bodies, local files, gzip bombs.
"""

from __future__ import annotations

import ast
import contextlib
import gzip
import io
import json
import pickle
import re
import sqlite3
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from conftest import SAMPLE, run_cli, validate
from tunelab.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]


# --- 1. a config cannot run code ------------------------------------------------------


def _presets(tmp_path: Path, **presets: str) -> str:
    """Write experiment presets (``# @package _global_`` files, as someone else might ship
    them) into a config directory; returns the ``hydra.searchpath`` override that adds it."""
    folder = tmp_path / "their_configs" / "experiment"
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in presets.items():
        (folder / f"{name}.yaml").write_text("# @package _global_\n" + body)
    return f"hydra.searchpath=[file://{folder.parent}]"


def _config_dir(searchpath: str) -> list[str]:
    """The same directory as ``tunelab --config-dir DIR`` (how a user adds one on the command line)."""
    return ["--config-dir", searchpath.split("file://", 1)[1].rstrip("]")]


def test_component_sections_cannot_name_a_callable(tmp_path):
    sentinel = tmp_path / "pwned"
    for override in (
        "+model._target_=os.system",
        "+data._target_=builtins.exec",
        "+train._target_=os.system",
        "+peft._target_=builtins.eval",
        "+tracker.csv._target_=os.system",
    ):
        with pytest.raises(ConfigError, match=r"unknown key '\w+\._target_'|unknown key 'tracker\.csv\._target_'"):
            validate([override])
    with pytest.raises(ConfigError, match="unknown top-level key '_target_'"):
        validate(["+_target_=os.system"])
    searchpath = _presets(
        tmp_path,
        evil=f"""
model:
  _target_: builtins.exec
  _args_: ["open('{sentinel}', 'w').write('x')"]
""",
    )
    with pytest.raises(ConfigError, match=r"unknown key 'model\._(target|args)_' for model 'smollm2_135m'"):
        validate([searchpath, "experiment=evil"])
    # a value that only looks like code stays data: nothing ever evaluates it
    rc = validate(["pipeline=minimal", "pipeline.params.exact_dedup.fields=[\"__import__('os').system('x')\"]"])
    assert rc.steps["clean"][1].config.fields == ["__import__('os').system('x')"]
    assert not sentinel.exists()


HYDRA_ATTACKS = {
    "callback": """
hydra:
  callbacks:
    evil:
      _target_: builtins.exec
      _args_: ["open('{sentinel}', 'w').write('x')"]
""",
    "nested_in_allowed_callback": """
hydra:
  callbacks:
    sweep_end:
      _target_: tunelab.app.SweepEnd
      hook:
        _target_: builtins.exec
        _args_: ["open('{sentinel}', 'w').write('x')"]
""",
    "logging_factory": """
hydra:
  job_logging:
    version: 1
    formatters:
      evil:
        (): builtins.exec
        source: "open('{sentinel}', 'w').write('x')"
""",
    "logging_class": """
hydra:
  hydra_logging:
    version: 1
    handlers:
      evil:
        class: os.system
        command: "touch {sentinel}"
""",
    "launcher_nested": """
defaults:
  - override /hydra/launcher: evil
""",
    "env_set": """
hydra:
  job:
    env_set:
      LD_PRELOAD: /tmp/evil.so
""",
}


@pytest.mark.parametrize("attack", sorted(HYDRA_ATTACKS))
def test_hydra_section_of_a_preset_cannot_run_code(attack, tmp_path, capsys):
    """Hydra instantiates ``hydra.callbacks`` and hands ``hydra.*_logging`` to dictConfig
    before tunelab sees the config: the guard refuses both, from a file or an override."""
    sentinel = tmp_path / "pwned"
    searchpath = _presets(tmp_path, evil=HYDRA_ATTACKS[attack].replace("{sentinel}", str(sentinel)))
    launcher = tmp_path / "their_configs" / "hydra" / "launcher"
    launcher.mkdir(parents=True)
    (launcher / "evil.yaml").write_text(
        "_target_: hydra._internal.core_plugins.basic_launcher.BasicLauncher\n"
        f"extra:\n  _target_: builtins.exec\n  _args_: [\"open('{sentinel}', 'w').write('x')\"]\n"
    )
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["prepare", *_config_dir(searchpath), "experiment=evil", f"hydra.run.dir={tmp_path / 'run'}"])
    assert exit_info.value.code == 2  # --config-dir is checked before Hydra starts, like any command line
    err = capsys.readouterr().err
    refused = (
        "refusing to run: Hydra's logging config names code to import"
        if attack.startswith("logging")
        else "refusing to run: a config file names code for Hydra to run"
    )
    assert refused in err and "Traceback" not in err
    assert not sentinel.exists() and not (tmp_path / "run").exists()


def test_a_callback_of_your_own_comes_from_the_command_line_only(tmp_path, capsys):
    """Like ``trust_remote_code``: the user's own command line may add a Hydra callback (the
    tests of the gpu_pool launcher do); a file may neither give it code to run nor pass off
    its own entries as command-line overrides."""
    from conftest import compose

    own = "+hydra.callbacks.mine._target_=hydra.experimental.callbacks.PickleJobInfoCallback"
    assert compose([own]).hydra.callbacks.mine._target_.endswith("PickleJobInfoCallback")
    sentinel = tmp_path / "pwned"
    searchpath = _presets(
        tmp_path,
        args=f"hydra:\n  callbacks:\n    mine:\n      _args_: [\"open('{sentinel}', 'w').write('x')\"]\n",
        spoof="hydra:\n  overrides:\n    hydra: ['+hydra.callbacks.evil._target_=builtins.exec']\n",
    )
    for overrides, message in (
        (
            ["experiment=args", "+hydra.callbacks.mine._target_=builtins.exec"],
            "hydra.callbacks.mine names 'builtins.exec'",
        ),
        (["experiment=spoof"], "a config file sets hydra.overrides"),
    ):
        with pytest.raises(SystemExit):
            run_cli(["prepare", *_config_dir(searchpath), *overrides, f"hydra.run.dir={tmp_path / 'run'}"])
        assert message in capsys.readouterr().err
    assert not sentinel.exists() and not (tmp_path / "run").exists()
    # what tunelab's own config selects passes
    assert validate(["pipeline=minimal"]).collector.name == "jsonl"


def test_trust_remote_code_only_from_the_command_line(tmp_path):
    searchpath = _presets(
        tmp_path,
        remote="defaults:\n  - override /model: hf\nmodel:\n  path: /models/someone-elses\n  trust_remote_code: true\n",
        plain="defaults:\n  - override /model: hf\nmodel:\n  path: /models/someone-elses\n",
    )
    with pytest.raises(ConfigError) as info:
        validate([searchpath, "experiment=remote"])
    message = str(info.value)
    remote = tmp_path / "their_configs" / "experiment" / "remote.yaml"
    assert f"model.trust_remote_code=true is set in a config file ({remote} (selected by experiment=remote))" in message
    assert "pass it on the command line yourself: model.trust_remote_code=true" in message
    # the user's own command line turns it on (for a preset's model, or any hf model)
    assert (
        validate([searchpath, "experiment=remote", "model.trust_remote_code=true"]).model.config.trust_remote_code
        is True
    )
    assert validate(
        ["model=hf", "model.path=/models/mine", "model.trust_remote_code=true"]
    ).model.config.trust_remote_code
    assert validate([searchpath, "experiment=plain"]).model.config.trust_remote_code is False
    # a saved run config (a run directory someone else shared) cannot turn it on for predict
    from tunelab.api import ModelRequest
    from tunelab.predict import PredictError, rebuild_base_model

    config = {"model": {"name": "hf", "path": "/models/someone-elses", "trust_remote_code": True}, "seed": 0}
    with pytest.raises(PredictError, match="does not run code shipped with a model"):
        rebuild_base_model(config, ModelRequest(task="causal_lm"))


def test_hydra_rerun_of_a_pickle_is_refused(tmp_path, capsys):
    sentinel = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    config_pickle = tmp_path / "config.pickle"
    config_pickle.write_bytes(pickle.dumps(Payload()))
    assert run_cli(["--experimental-rerun", str(config_pickle)]) == 2
    assert "--experimental-rerun is not supported" in capsys.readouterr().err
    assert not sentinel.exists()


#: (file, call) -> why it is safe. Every other unsafe call in the source fails the test below.
ALLOWED_UNSAFE_CALLS = {
    (
        "plugins/hydra_plugins/tunelab_gpu_pool/_core.py",
        "pickle.loads",
    ): "gpu_pool launcher: its child reads the job envelope the launcher wrote into its own tempfile.mkdtemp() "
    "directory (mode 0700, removed after the sweep); nothing else can write there",
    (
        "plugins/hydra_plugins/tunelab_gpu_pool/_core.py",
        "dill.loads",
    ): "gpu_pool launcher: task function, Hydra state and JobReturn between the launcher and its own child, "
    "through the same private directory",
    (
        "benchmarks/data_pipeline.py",
        "pickle.load",
    ): "benchmark: generated data handed to its own worker process through a private TemporaryDirectory",
    (
        "plugins/tunelab_builtin/__init__.py",
        "importlib.import_module",
    ): "imports the package's own modules (pkgutil.iter_modules over its __path__), never a name from config",
    ("framework/tunelab/security.py", "'_target_'"): "the guard that refuses _target_ in Hydra's section",
    (
        "plugins/tunelab_builtin/models/hf.py",
        "trust_remote_code",
    ): "model=hf passes model.trust_remote_code, which only the command line can turn on (config.validate)",
}
_PICKLERS = {"pickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}


def _call_name(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _is_const(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def unsafe_calls(path: Path) -> list[tuple[int, str]]:
    """(line, what) of every call in a Python file that could run code from data."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value == "_target_":
            found.append((node.lineno, "'_target_'"))
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "trust_remote_code" and not _is_const(value, False):
                    found.append((key.lineno, "trust_remote_code"))
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node.func, aliases)
        if name is None:
            continue
        keywords = {k.arg: k.value for k in node.keywords}
        if "trust_remote_code" in keywords and not _is_const(keywords["trust_remote_code"], False):
            found.append((node.lineno, "trust_remote_code"))
        module, _, function = name.rpartition(".")
        bad = (
            name
            in (
                "eval",
                "exec",
                "compile",
                "__import__",
                "builtins.eval",
                "builtins.exec",
                "os.system",
                "os.popen",
                "importlib.import_module",
                "yaml.load",
                "yaml.load_all",
                "yaml.unsafe_load",
                "yaml.full_load",
            )
            or (module.split(".")[0] in _PICKLERS and function in ("load", "loads", "Unpickler", "open"))
            or function == "read_pickle"
            or (name == "torch.load" and not _is_const(keywords.get("weights_only"), True))
            or (name in ("numpy.load", "np.load") and _is_const(keywords.get("allow_pickle"), True))
            or (module == "subprocess" and _is_const(keywords.get("shell"), True))
            or name.startswith(
                (
                    "hydra.utils.instantiate",
                    "hydra.utils.call",
                    "hydra.utils.get_method",
                    "hydra.utils.get_class",
                    "hydra.utils.get_object",
                    "hydra._internal.instantiate",
                )
            )
        )
        if bad:
            found.append((node.lineno, name))
    return sorted(found)


def test_no_unsafe_deserialisation_eval_or_instantiate_in_the_source(tmp_path):
    found = {}
    scanned = 0
    for folder in ("framework", "plugins", "scripts", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            scanned += 1
            rel = path.relative_to(ROOT).as_posix()
            for line, what in unsafe_calls(path):
                if (rel, what) not in ALLOWED_UNSAFE_CALLS:
                    found.setdefault(f"{rel}:{line}", what)
    assert scanned > 50
    assert not found, f"calls that can run code from data (allow-list them with a reason, or fix them): {found}"
    # the scanner itself finds what it must
    probe = tmp_path / "security_probe.py"
    if True:
        probe.write_text(
            "import pickle, yaml, torch\nfrom hydra.utils import instantiate\npickle.loads(b'')\n"
            "yaml.load('')\ntorch.load('x')\ntorch.load('x', weights_only=True)\neval('1')\ninstantiate({})\n"
            "import subprocess\nsubprocess.run('x', shell=True)\nf(trust_remote_code=True)\n"
        )
        assert [what for _, what in unsafe_calls(probe)] == [
            "pickle.loads",
            "yaml.load",
            "torch.load",
            "eval",
            "hydra.utils.instantiate",
            "subprocess.run",
            "trust_remote_code",
        ]
    # the launcher's pickles live in a private directory
    assert (
        'tempfile.mkdtemp(prefix="tunelab-gpu-pool-")'
        in (ROOT / "plugins/hydra_plugins/tunelab_gpu_pool/_core.py").read_text()
    )
    private = Path(tempfile.mkdtemp())
    try:
        assert private.stat().st_mode & 0o777 == 0o700
    finally:
        private.rmdir()
    # the only _target_ in tunelab's config files is the sweep-end callback
    targets = [
        line.strip()
        for path in (ROOT / "conf").rglob("*.yaml")
        for line in path.read_text().splitlines()
        if "_target_" in line
    ]
    assert targets == ["_target_: tunelab.app.SweepEnd"]


# --- redaction ------------------------------------------------------------------------


def test_redaction_masks_urls_secret_keys_env_values_and_remembered_values(monkeypatch):
    from tunelab.redaction import is_secret_key, redact_secrets, redact_text, remember_config

    monkeypatch.setenv("HF_TOKEN", "hf_EnvTokenValue99")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false-but-long")
    assert is_secret_key("db_password") and is_secret_key("HF_TOKEN") and is_secret_key("WANDB_API_KEY")
    assert is_secret_key("salt") and is_secret_key("clientSecret") and is_secret_key("apikey")
    for plain in (
        "max_new_tokens",
        "pad_token_id",
        "eos_token",
        "token_type_ids",
        "tokenizer",
        "TOKENIZERS_PARALLELISM",
    ):
        assert not is_secret_key(plain), plain
    cases = {
        "postgresql://bob:hunter22@db/x": "postgresql://bob:***@db/x",
        r"data.url=sqlite\://tunelab\:DbPw-1@///tmp/t.db": r"data.url=sqlite\://tunelab\:***@///tmp/t.db",
        "+pipeline.params.pii.salt=pepper,seed=0": "+pipeline.params.pii.salt=***,seed=0",
        "data.password='open sesame' peft=lora": "data.password='***' peft=lora",
        "    salt: pepper\n    fields: [prompt]": "    salt: ***\n    fields: [prompt]",
        '{"hf_token": "abc", "r": 8}': '{"hf_token": "***", "r": 8}',
        "salt: ${oc.env:TUNELAB_PII_SALT}": "salt: ${oc.env:TUNELAB_PII_SALT}",  # names the variable only
        "max_new_tokens=64 pad_token_id: 0": "max_new_tokens=64 pad_token_id: 0",
        "data.params={api_token:s3cr3t-value,x:1}": "data.params={api_token:***,x:1}",
        r"data.params={api_token:$\{oc.env\:HF_TOKEN\}}": r"data.params={api_token:$\{oc.env\:HF_TOKEN\}}",
        "credentials=[a, b] r=8": "credentials=*** r=8",
        "token from env: hf_EnvTokenValue99.": "token from env: ***.",
        "no secret here: https://example.com/a?b=c": "no secret here: https://example.com/a?b=c",
    }
    for text, expected in cases.items():
        assert redact_text(text) == expected, text
    remember_config(
        {"data": {"url": "mysql://u:Rem3mbered@h/db"}, "pipeline": {"params": {"pii": {"salt": "S4ltSecret"}}}}
    )
    assert redact_text("error: access denied for Rem3mbered; S4ltSecret") == "error: access denied for ***; ***"
    assert redact_secrets({"pii": {"salt": "x", "fields": ["prompt"]}, "url": "https://u:pw@h", "n": 3}) == {
        "pii": {"salt": "***", "fields": ["prompt"]},
        "url": "https://u:***@h",
        "n": 3,
    }


# --- 2. and 3.: one sweep with every tracker, then every output byte searched -----------

DB_PASSWORD = "DbPw-7f3a9c1e"
SALT = "SaltSecret-4b8d"
ENV_SECRETS = {"WANDB_API_KEY": "wandbkey0f1e2d3c4b5a69788796a5b4c3d2e1f0", "HF_TOKEN": "hf_PlantedToken4d5e6f7a8b9c"}
PII = {
    "email": "zelda.quartz@planted-pii.example",
    "phone": "(212) 555-7734",
    "credit_card": "4539 1488 0343 6467",
    "iban": "GB33BUKB20201555555555",
    "us_ssn": "219-09-9999",
    "ipv4": "203.0.113.77",
}


def _pii_needles() -> dict[str, bytes]:
    """Each planted value as written, plus the forms a tokenizer or JSON might produce."""
    out = {}
    for kind, value in PII.items():
        for form in {
            value,
            value.lower(),
            re.sub(r"\D", "", value) if kind in ("phone", "credit_card") else value,
            json.dumps(value)[1:-1],
        }:
            out[f"{kind} {form!r}"] = form.encode()
    return out


def _secret_needles() -> dict[str, bytes]:
    values = {"db password": DB_PASSWORD, "pii salt": SALT, **ENV_SECRETS}
    return {f"{name} {form!r}": form.encode() for name, value in values.items() for form in {value, quote(value)}}


def _tickets_db(path: Path) -> None:
    """The bundled sample as an SQLite table, after rows that hold the planted PII where the
    steps before pii see it: markup (strip_markup), odd whitespace (normalize), a row the
    collector quarantines, a row drop_missing drops."""
    planted = [
        (
            f"<b>Hi</b> please write to {PII['email']} or call {PII['phone']} about my order",
            f"We emailed {PII['email']} and will call {PII['phone']}.",
            "shipping",
        ),
        (f"<p>Refund to card {PII['credit_card']}</p> please", f"Refunded to {PII['credit_card']}.", "billing"),
        (f"my\tIBAN\u00a0is {PII['iban']} ,  thanks", f"Noted IBAN {PII['iban']}.", "billing"),
        (f"<i>SSN</i> {PII['us_ssn']} from IP {PII['ipv4']}", f"We never store {PII['us_ssn']}.", "account"),
        (f"orphan question from {PII['email']}", None, "account"),
        (12345, f"quarantine me: {PII['email']} {PII['credit_card']}", "billing"),
    ]
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:220]]
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE tickets (question, answer, category)")
        db.executemany("INSERT INTO tickets VALUES (?, ?, ?)", planted)
        db.executemany(
            "INSERT INTO tickets VALUES (?, ?, ?)",
            [(r.get("question"), r.get("answer"), r.get("category")) for r in rows],
        )
        db.commit()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("security")
    (root / "input").mkdir()
    db = root / "input" / "tickets.db"
    _tickets_db(db)
    console = io.StringIO()
    started = time.perf_counter()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNELAB_CACHE_DIR", str(root / "out" / "cache"))
        mp.setenv("WANDB_MODE", "offline")
        for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
            mp.setenv(name, str(root / "out" / name.lower()))
        for name, value in ENV_SECRETS.items():
            mp.setenv(name, value)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        from tunelab.plugins import get_plugins

        get_plugins(reload=True)
        with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
            code = run_cli(
                [
                    "-m",
                    "experiment=smoke",
                    "data=sql",
                    f"data.url=sqlite://tunelab:{DB_PASSWORD}@//{db}",
                    'data.query="SELECT question, answer, category FROM tickets WHERE :api_token IS NOT NULL"',
                    "data.columns={question:prompt,answer:completion,category:label}",
                    "data.params={api_token: ${oc.env:HF_TOKEN}}",  # a secret the config names but does not hold
                    "pipeline.params.pii.strategy=hash",
                    f"+pipeline.params.pii.salt={SALT}",
                    "train.max_steps=1",
                    "eval.max_generate=1",
                    "tracker=[csv,wandb,tensorboard,mlflow]",
                    "tracker.wandb.log_dataset=true",
                    "tracker.wandb.project=tunelab-security",
                    "tracker.mlflow.experiment=tunelab-security",
                    f"hydra.sweep.dir={root / 'out' / 'sweep'}",
                ]
            )
    assert code == 0, console.getvalue()[-3000:]
    files = sorted(p for p in (root / "out").rglob("*") if p.is_file())
    return {
        "root": root / "out",
        "files": files,
        "console": console.getvalue(),
        "seconds": time.perf_counter() - started,
    }


def _leaks(sweep: dict, needles: dict[str, bytes]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sweep["files"]:
        data = path.read_bytes()
        for name, needle in needles.items():
            if needle in data:
                found.setdefault(name, []).append(str(path.relative_to(sweep["root"])))
    console = sweep["console"].encode()
    for name, needle in needles.items():
        if needle in console:
            found.setdefault(name, []).append("<console>")
    return found


def test_the_sweep_wrote_every_kind_of_output(sweep):
    names = {p.name for p in sweep["files"]}
    suffixes = {p.suffix for p in sweep["files"]}
    assert {
        "config.yaml",
        "hydra.yaml",
        "overrides.yaml",
        "multirun.yaml",
        "metrics.json",
        "tunelab.log",
        "metrics.csv",
        "data_report.md",
        "ledger.jsonl",
        "quarantine.jsonl",
        "example_scores.jsonl",
        "comparison.md",
        "comparison.html",
        "mlflow.db",
        "debug.log",
    } <= names
    # W&B's output.log (its copy of the console) is not required: after other runs in the same
    # process (the full suite) W&B may write none. When it exists, the scans below read it too.
    assert {".wandb", ".arrow", ".safetensors"} <= suffixes
    assert any(n.startswith("events.out.tfevents") for n in names)
    assert any("wandb_data_dir" in str(p) and "staging" in str(p) for p in sweep["files"])  # the dataset artifact
    assert len(sweep["files"]) > 80


def test_no_secret_in_any_output_file_or_the_console(sweep):
    leaks = _leaks(sweep, _secret_needles())
    assert not leaks, f"secrets found (of {len(sweep['files'])} files): {leaks}"
    job = sweep["root"] / "sweep" / "0"
    overrides = (job / ".hydra" / "overrides.yaml").read_text()
    assert "+pipeline.params.pii.salt=***" in overrides and re.search(r"sqlite\\?://tunelab\\?:\*\*\*@", overrides)
    # an interpolation names the variable, not the value (Hydra escapes it in a sweep's overrides)
    assert re.search(r"api_token: ?\$\\?\{oc\.env\\?:HF_TOKEN\\?\}", overrides)
    config = yaml.safe_load((job / "config.yaml").read_text())
    assert config["data"]["url"].startswith("sqlite://tunelab:***@") and config["data"]["params"] == {
        "api_token": "***"
    }
    assert config["pipeline"]["params"]["pii"]["salt"] == "***"
    from wandb_offline import read_offline_run

    logged = read_offline_run(job / "wandb")
    assert logged["config"]["data"]["url"].startswith("sqlite://tunelab:***@")


def test_no_planted_pii_in_any_output_file_or_the_console(sweep):
    from tunelab_builtin.cleaners.pii import Pii, PiiConfig

    detector = Pii(PiiConfig(entities=list(PII)))
    for kind, value in PII.items():  # every planted value is one the pii step detects
        assert detector.scrub(f"x {value} y") == f"x <{kind.upper()}> y", kind
    leaks = _leaks(sweep, _pii_needles())
    assert not leaks, f"planted PII found (of {len(sweep['files'])} files): {leaks}"
    job = sweep["root"] / "sweep" / "0"
    report = (job / "data_report.md").read_text()
    # the steps before pii reported examples of the planted rows, with placeholders
    assert re.search(r"\| strip_markup \| sql:1 \| .*<EMAIL>.*<PHONE>", report)
    quarantined = [json.loads(line) for line in (job / "quarantine.jsonl").read_text().splitlines()]
    assert quarantined and "<EMAIL>" in quarantined[0]["raw"] and "<CREDIT_CARD>" in quarantined[0]["raw"]
    metrics = json.loads((job / "metrics.json").read_text())["metrics"]
    assert metrics["status"] == "ok"


# --- 4. URL fetching limits -------------------------------------------------------------

PAGE = (
    b"<html><head><title>Tent care</title></head><body><main><article><p>"
    + b"Dry the tent fully before storing it. " * 20
    + b"</p></article></main></body></html>"
)


class _Hostile(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _head(self, status: int = 200, headers: dict | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "text/html", **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()

    def do_GET(self):
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self):
        path = self.path
        if path == "/page":
            self._head(headers={"Content-Length": str(len(PAGE))})
            self.wfile.write(PAGE)
        elif path == "/trickle-headers":  # one header line every 0.2 s: each read is quick, the whole is not
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for i in range(60):
                self.wfile.write(b"X-Pad-%d: a\r\n" % i)
                time.sleep(0.2)
        elif path == "/trickle-body":
            self._head()
            for _ in range(60):
                self.wfile.write(b"<p>x</p>")
                time.sleep(0.2)
        elif path.startswith("/chain/"):  # each hop answers just inside the socket timeout
            hops = int(path.rsplit("/", 1)[1])
            time.sleep(0.45)
            self._head(302, {"Location": f"/chain/{hops - 1}" if hops else "/page", "Content-Length": "0"})
        elif path == "/loop":
            self._head(302, {"Location": "/loop", "Content-Length": "0"})
        elif path.startswith("/to/"):
            status, target = path[4:].split("/", 1)
            self._head(int(status), {"Location": target.replace("~", "/"), "Content-Length": "0"})
        elif path == "/huge":  # no Content-Length, 64 MB if anyone reads it all
            self._head()
            for _ in range(1024):
                self.wfile.write(b"<p>" + b"z" * 65536 + b"</p>")
        elif path == "/huge-declared":
            self._head(headers={"Content-Length": str(10**10)})
            self.wfile.write(b"<p>" + b"z" * 1000)
        else:
            self._head(404, {"Content-Length": "0"})


@pytest.fixture(scope="module")
def hostile():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _collect(tmp_path: Path, **config):
    from tunelab.api import StageContext
    from tunelab_builtin.collectors.html import HtmlCollector, HtmlSourceConfig

    ctx = StageContext(seed=0, num_proc=1, work_dir=tmp_path)
    data = HtmlCollector(HtmlSourceConfig(extractor="beautifulsoup", **config)).collect(ctx)
    return data, {q["source"]: q["reason"] for q in ctx.quarantined}


def test_fetch_time_is_bounded_for_the_whole_fetch(tmp_path, hostile, monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    data, reasons = _collect(tmp_path, urls=[f"{hostile}/chain/1", f"{hostile}/page"], timeout=3.0)
    assert len(data) == 2 and not reasons  # a short chain within the limit is followed
    urls = {name: f"{hostile}/{name}" for name in ("trickle-headers", "trickle-body", "chain/5")}
    for name, url in urls.items():
        started = time.monotonic()
        data, reasons = _collect(tmp_path, urls=[url], timeout=1.0)
        elapsed = time.monotonic() - started
        assert reasons == {url: "timed out after 1 s (data.timeout)"}, name
        assert elapsed < 2.5, f"{name} took {elapsed:.1f} s with data.timeout=1"


def test_redirects_only_to_http_and_bodies_only_up_to_max_bytes(tmp_path, hostile, monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    targets = {
        "file": "file:~~~etc~passwd",
        "data": "data:text~html,injected",
        "ftp": "ftp:~~127.0.0.1~x.html",
        "local": "file:~~localhost~etc~passwd",
    }
    urls = [f"{hostile}/to/{status}/{target}" for status in (301, 302, 303, 307, 308) for target in targets.values()]
    urls += [f"{hostile}/loop", f"{hostile}/huge", f"{hostile}/huge-declared"]
    started = time.monotonic()
    data, reasons = _collect(tmp_path, urls=urls, timeout=5.0, max_bytes=200_000)
    assert time.monotonic() - started < 10
    assert len(data) == 0 and len(reasons) == len(urls)
    for url in urls[:-3]:
        assert re.fullmatch(
            r"redirect \(HTTP 30\d\) to a (file|data|ftp): URL refused; only http and https are followed", reasons[url]
        ), (url, reasons[url])
    assert "HTTP 30" in reasons[f"{hostile}/loop"]  # urllib's redirect limit, quarantined
    assert reasons[f"{hostile}/huge"] == "response exceeds data.max_bytes=200000; stopped reading"
    assert "over data.max_bytes=200000; not downloaded" in reasons[f"{hostile}/huge-declared"]


def test_local_files_are_never_read_from_the_url_list_unless_allowed(tmp_path):
    from tunelab_builtin.collectors.html import HtmlCollector, HtmlSourceConfig

    with pytest.raises(ConfigError, match="is a local file; only http and https URLs are fetched"):
        validate(["data=html", "data.urls=[file:///etc/passwd]"])
    for url in (
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        " file:///etc/passwd",
        "/etc/passwd",
        "../../etc/passwd",
        "//etc/passwd",
        "file://localhost/etc/passwd",
        "C:\\Windows\\win.ini",
        "~/.ssh/id_rsa",
    ):
        with pytest.raises(ValueError, match="is a local file; only http and https URLs are fetched"):
            HtmlCollector(HtmlSourceConfig(urls=[url]))
    for url in (
        "data:text/html,<p>x</p>",
        "javascript:alert(1)",
        "ftp://127.0.0.1/a.html",
        "gopher://x/",
        "jar:file:///x!/",
    ):
        with pytest.raises(ValueError, match="is not an http or https URL"):
            HtmlCollector(HtmlSourceConfig(urls=[url]))
    # allowed explicitly, a local file is read, within max_bytes
    page = tmp_path / "page.html"
    page.write_bytes(PAGE)
    data, reasons = _collect(tmp_path, urls=[page.as_uri()], allow_local_files=True)
    assert "Dry the tent" in data[0]["text"] and not reasons


def test_a_gzip_bomb_is_not_decompressed_past_max_bytes(tmp_path):
    import resource

    site = tmp_path / "site"
    site.mkdir()
    with gzip.open(site / "bomb.html.gz", "wb", compresslevel=9) as fh:  # 300 MB of zeros in about 300 KB
        block = b"\0" * (1 << 20)
        for _ in range(300):
            fh.write(block)
    assert (site / "bomb.html.gz").stat().st_size < 2_000_000
    (site / "ok.html").write_bytes(PAGE)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    data, reasons = _collect(tmp_path, path=str(site), max_bytes=1_000_000)
    assert time.monotonic() - started < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 150_000  # KiB: nowhere near 300 MB
    assert len(data) == 1 and reasons == {"bomb.html.gz": "decompressed page is over data.max_bytes=1000000"}
