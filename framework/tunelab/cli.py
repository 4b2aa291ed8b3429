"""The ``tunelab`` command. Thin: parse, compose config, call an engine.

tunelab [OVERRIDES...]            run: prepare data, train, evaluate
tunelab -m [OVERRIDES...]         multirun (sweep); ends with a comparison
tunelab prepare [OVERRIDES...]    prepare the data only
tunelab plugins [--kind KIND]     list registered components
tunelab docs reference [--check]  write (or check) the reference pages in docs/reference
tunelab compare DIR               comparison table of the runs under DIR
tunelab explain ROW_ID [--run D]  what happened to one row, and why
tunelab predict RUN_DIR [FILE]    classify or generate with a trained run (stdin or FILE)
tunelab new-plugin NAME [--dir D] create a plugin package (entry point, a cleaner, config, tests)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "plugins":
        return cmd_plugins(argv[1:])
    if argv and argv[0] == "docs":
        return cmd_docs(argv[1:])
    if argv and argv[0] == "compare":
        return cmd_compare(argv[1:])
    if argv and argv[0] == "explain":
        return cmd_explain(argv[1:])
    if argv and argv[0] == "predict":
        return cmd_predict(argv[1:])
    if argv and argv[0] == "new-plugin":
        return cmd_new_plugin(argv[1:])
    stage = "train"
    if argv and argv[0] == "prepare":
        stage, argv = "prepare", argv[1:]
    if any(arg.split("=", 1)[0] == "--experimental-rerun" for arg in argv):
        # Hydra's rerun unpickles the file it is given: a file someone else wrote could run code
        print(
            "tunelab: --experimental-rerun is not supported (it unpickles a file); rerun with the "
            "overrides in <run_dir>/.hydra/overrides.yaml instead",
            file=sys.stderr,
        )
        return 2
    return run_hydra(stage, argv)


def run_hydra(stage: str, argv: list[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import DictConfig

    from tunelab.app import conf_dir, register_hydra_plugins
    from tunelab.config import register_resolvers

    register_hydra_plugins()
    register_resolvers()
    from tunelab.config import ConfigError
    from tunelab.errors import TunelabError
    from tunelab.preflight import preflight

    try:  # a bad command line fails here: before Hydra makes a run directory, with one paragraph
        validated = preflight(stage, argv)
    except ConfigError as exc:
        print(f"tunelab: config error: {exc}", file=sys.stderr)
        sys.exit(2)  # as a config error found inside the job exits
    except TunelabError as exc:  # e.g. a selected plugin component that is broken (PluginError)
        print(f"tunelab: error: {exc}", file=sys.stderr)
        sys.exit(1)  # as the same error found inside the job exits
    # a single run's job uses that validated config (each component built once) unless Hydra gives the
    # job another working directory or environment (hydra.job.chdir, hydra.job.env_set): a component may read them
    surroundings = _surroundings() if validated is not None else None

    @hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
    def job(cfg: DictConfig) -> dict:
        from tunelab.config import ConfigError
        from tunelab.errors import TunelabError
        from tunelab.run import run

        try:
            same = surroundings == _surroundings() and HydraConfig.get().mode == RunMode.RUN
            metrics = run(cfg, stage=stage, validated=validated if same else None)
        except Exception as exc:
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                # the sweep goes on: run() recorded the failure in the job's metrics.json and
                # error.txt; the comparison lists it and the sweep's exit code reports it
                print(f"tunelab: job failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            if not isinstance(exc, TunelabError):
                raise
            kind = "config error" if isinstance(exc, ConfigError) else "error"
            print(f"tunelab: {kind}: {exc}", file=sys.stderr)
            sys.exit(2 if isinstance(exc, ConfigError) else 1)
        run_dir = HydraConfig.get().runtime.output_dir
        print(f"tunelab: {stage} finished; run directory: {run_dir}", file=sys.stderr)
        print(f"tunelab: data report: {Path(run_dir) / 'data_report.md'}", file=sys.stderr)
        if stage == "train":
            print(f"tunelab: metrics: {Path(run_dir) / 'metrics.json'}", file=sys.stderr)
        return metrics

    from tunelab import app

    saved = sys.argv
    sys.argv = ["tunelab", *argv]
    app.SweepEnd.failed_runs = 0
    try:
        job()
    finally:
        sys.argv = saved
    if app.SweepEnd.failed_runs:
        print(
            f"tunelab: {app.SweepEnd.failed_runs} run(s) of the sweep failed; see the comparison's Failed runs",
            file=sys.stderr,
        )
        return 1
    return 0


def _surroundings() -> tuple[str, int]:
    """The working directory and (a hash of) the environment."""
    import os

    return os.getcwd(), hash(frozenset(os.environ.items()))


def cmd_plugins(argv: list[str]) -> int:
    from tunelab.api import KINDS, field_default, schema_fields
    from tunelab.plugins import broken_components, get_plugins

    parser = argparse.ArgumentParser(prog="tunelab plugins", description="List registered components.")
    parser.add_argument("--kind", choices=KINDS, help="only this kind of component")
    parser.add_argument("--fields", action="store_true", help="show every config field with type and default")
    args = parser.parse_args(argv)
    plugins = get_plugins()
    broken = broken_components(plugins.registry)
    for component in plugins.registry:
        if args.kind and component.kind != args.kind:
            continue
        fields = schema_fields(component.config_schema)
        print(
            f"{component.kind:10} {component.name:18} {component.supplier.distribution} {component.supplier.version}  "
            f"{component.description}"
        )
        if (component.kind, component.name) in broken:
            print(f"{'':29}BROKEN: {broken[(component.kind, component.name)]}")
        if args.fields:
            for f in fields:
                type_name = getattr(f.type, "__name__", str(f.type))
                print(f"{'':29}{f.name}: {type_name} = {field_default(f)!r}")
        elif fields:
            print(f"{'':29}fields: {', '.join(f.name for f in fields)}")
    for plugin, reason in sorted(plugins.registry.failed.items()):
        print(f"BROKEN     plugin '{plugin}' ({reason})")
        print(f"skipped plugin '{plugin}': {reason}", file=sys.stderr)
    return 0


def cmd_docs(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tunelab docs", description="Generate documentation from the code.")
    pages = parser.add_subparsers(dest="pages", required=True, metavar="reference")
    reference = pages.add_parser(
        "reference",
        help="one page per component kind, the hooks and an index, from the plugin registry",
        description="Write one Markdown page per component kind, a page of hooks and an index, generated "
        "from the plugin registry and the hook specifications.",
    )
    reference.add_argument(
        "--out", type=Path, default=Path("docs/reference"), help="directory of the pages (default: docs/reference)"
    )
    reference.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 naming every page that is stale or missing"
    )
    reference.add_argument(
        "--all",
        action="store_true",
        dest="all_plugins",
        help="document the components of every installed plugin (default: tunelab's own)",
    )
    args = parser.parse_args(argv)
    from tunelab.docs import main as reference_main

    return reference_main(args.out, check_only=args.check, all_plugins=args.all_plugins)


def cmd_compare(argv: list[str]) -> int:
    from tunelab.compare import render_terminal, write_comparison

    parser = argparse.ArgumentParser(prog="tunelab compare", description="Compare the runs under a directory.")
    parser.add_argument("directory", type=Path, help="a multirun directory (or any directory with run dirs)")
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        print(f"tunelab compare: {args.directory} is not a directory", file=sys.stderr)
        return 2
    comparison = write_comparison(args.directory)
    if not comparison.runs:
        print(
            f"tunelab compare: no runs (metrics.json files or Hydra job dirs) under {args.directory}", file=sys.stderr
        )
        return 1
    print(render_terminal(comparison))
    print(f"\n{comparison.md}")
    others = ", ".join(p.name for key, p in comparison.files.items() if key != "md")
    print(f"also written: {others}", file=sys.stderr)
    return 0


def cmd_explain(argv: list[str]) -> int:
    from tunelab.explain import explain, latest_ledger

    parser = argparse.ArgumentParser(prog="tunelab explain", description="What happened to one row, and why.")
    parser.add_argument("row_id", help="a row id, e.g. support_tickets.jsonl:17")
    parser.add_argument("--run", type=Path, help="a run directory (default: the latest under ./outputs and ./multirun)")
    args = parser.parse_args(argv)
    if args.run is not None:
        ledger = args.run / "ledger.jsonl"
    else:
        ledger = latest_ledger([Path("outputs"), Path("multirun")])
    if ledger is None or not ledger.is_file():
        print("tunelab explain: no ledger.jsonl found; pass --run RUN_DIR", file=sys.stderr)
        return 2
    try:
        print("\n".join(explain(args.row_id, ledger)))
    except KeyError as exc:
        print(f"tunelab explain: {exc.args[0]}", file=sys.stderr)
        return 1
    return 0


def cmd_predict(argv: list[str]) -> int:
    import json

    parser = argparse.ArgumentParser(
        prog="tunelab predict", description="Classify or generate with a trained run; one input text per line."
    )
    parser.add_argument("run_dir", type=Path, help="a run directory with a saved model (run_dir/model)")
    parser.add_argument("input", nargs="?", type=Path, help="a text file, one input per line (default: stdin)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="generation length for causal-LM runs")
    args = parser.parse_args(argv)
    try:
        lines = (args.input.read_text(encoding="utf-8") if args.input else sys.stdin.read()).splitlines()
    except OSError as exc:  # a missing or unreadable input file: say which, not a traceback
        print(f"tunelab predict: cannot read {exc.filename or args.input}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(
            f"tunelab predict: {args.input} is not UTF-8 text ({exc.reason} at byte {exc.start}); give one input "
            "text per line, UTF-8 encoded",
            file=sys.stderr,
        )
        return 2
    texts = [line for line in lines if line.strip()]
    if not texts:
        print("tunelab predict: no input lines", file=sys.stderr)
        return 2
    from tunelab.errors import TunelabError
    from tunelab.predict import predict

    try:
        results = predict(args.run_dir, texts, max_new_tokens=args.max_new_tokens)
    except TunelabError as exc:
        print(f"tunelab predict: {exc}", file=sys.stderr)
        return 1
    for text, result in zip(texts, results):
        print(json.dumps({"input": text, **result}, ensure_ascii=False))
    return 0


def cmd_new_plugin(argv: list[str]) -> int:
    from tunelab.scaffold import ScaffoldError, create_plugin

    parser = argparse.ArgumentParser(
        prog="tunelab new-plugin",
        description="Create a plugin package: pyproject.toml with the tunelab entry point, a cleaner with a typed "
        "config, its config group file (pipeline=NAME), a README and tests that pass out of the box.",
    )
    parser.add_argument(
        "name",
        help="the plugin's name, e.g. acme-filters: creates ./tunelab-acme-filters with the "
        "package tunelab_acme_filters and the cleaner acme_filters",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("."),
        help="where to create the package directory (default: the current directory; created if missing)",
    )
    args = parser.parse_args(argv)
    from tunelab.plugins import get_plugins

    plugins = get_plugins()
    try:
        target, names, files = create_plugin(
            args.name,
            args.dir,
            taken_cleaners=plugins.registry.names("cleaner"),
            taken_plugins=[*plugins.suppliers, *plugins.registry.failed],
        )
    except ScaffoldError as exc:
        print(f"tunelab new-plugin: {exc}", file=sys.stderr)
        return 2
    print(f"created {target}: distribution {names.distribution}, package {names.package}, cleaner {names.short}")
    for name in files:
        print(f"  {name}")
    where = str(target) if target.is_absolute() else f"./{target}"  # pip takes ./name as a directory
    print("next:")
    print(f"  pip install -e '{where}[test]'   # offline: add --no-build-isolation")
    print(f"  pytest {where}")
    print("  tunelab plugins --kind cleaner")
    print(f"  tunelab prepare pipeline={names.short}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
