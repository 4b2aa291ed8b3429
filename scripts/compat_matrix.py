"""Run every model × method × peft combination on the tiny models and record what happens.

    python scripts/compat_matrix.py [--models tiny,tiny_encoder] [--steps 2] [--out docs/compatibility.md]

Each combination is first checked by ``tunelab.train.compat.resolve`` (the check every run
makes before touching data). Refused ones are listed with the reason; the others are
trained for a few steps through the CLI. A combination that passes the check and then fails
while training is a bug in the check: the script prints it and exits 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

PREFERENCE = {"dpo", "kto", "orpo", "reward", "rlhf"}
CLASSIFIERS = {"classify", "semi_supervised", "feature"}


def arguments(model: str, method: str, peft: str, steps: int, run_dir: Path) -> tuple[list[str], str]:
    """CLI overrides for one combination on the bundled data, and the evaluator it uses."""
    if method in PREFERENCE:
        args, evaluator = ["experiment=dpo_smoke", "train.max_length=128"], "preference"
    elif method in CLASSIFIERS or model == "tiny_encoder":
        args, evaluator = ["experiment=classify_smoke"], "classification"
        if method not in CLASSIFIERS:  # cpt on an encoder
            evaluator = "masked_lm" if method == "cpt" else "lm"
            args.append(f"eval={evaluator}")
    else:
        args, evaluator = ["experiment=smoke", "eval.max_generate=0"], "lm"
    if method == "rlhf":
        args += ["method.num_generations=2", "method.max_completion_length=8", "train.batch_size=2"]
    args += [
        f"model={model}",
        f"method={method}",
        f"peft={peft}",
        f"train.max_steps={steps}",
        "train.logging_steps=1",
        "train.save_model=false",
        "tracker=[]",
        f"hydra.run.dir={run_dir}",
    ]
    return args, evaluator


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,tiny_encoder")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the table as markdown here")
    opts = parser.parse_args()

    os.environ.setdefault("WANDB_MODE", "offline")
    logging.disable(logging.WARNING)
    from tunelab.cli import main as cli
    from tunelab.config import ConfigError
    from tunelab.plugins import get_plugins
    from tunelab.train.compat import resolve

    registry = get_plugins().registry
    rows, surprises = [], 0
    work = Path(tempfile.mkdtemp(prefix="tunelab-compat-"))
    os.environ.setdefault("TUNELAB_CACHE_DIR", str(work / "cache"))
    for model in opts.models.split(","):
        for method in registry.names("method"):
            for peft in registry.names("peft"):
                run_dir = work / f"{model}-{method}-{peft}"
                args, evaluator = arguments(model, method, peft, opts.steps, run_dir)
                if peft == "custom":
                    args += ["peft.peft_type=LoraConfig", "++peft.args={r: 4}"]
                try:
                    task = resolve(registry, model, method, peft, evaluator).task
                except ConfigError as exc:
                    rows.append((model, method, peft, "refused", str(exc)))
                    continue
                started = time.perf_counter()
                try:
                    cli(args)
                    error = None
                except BaseException as exc:  # noqa: BLE001 - every failure is recorded
                    error = f"{type(exc).__name__}: {exc}"
                metrics_file = run_dir / "metrics.json"
                metrics = json.loads(metrics_file.read_text())["metrics"] if metrics_file.exists() else {}
                if metrics.get("status") == "ok":
                    loss = (
                        f"loss {metrics.get('train_loss_first', float('nan')):.3g}"
                        f"→{metrics.get('train_loss_last', float('nan')):.3g}"
                    )
                    verdict = (
                        f"trained ({task}, {metrics.get('trainable_params', 0):,} trainable, {loss}, "
                        f"{time.perf_counter() - started:.1f}s)"
                    )
                    rows.append((model, method, peft, "ok", verdict))
                else:
                    surprises += 1
                    rows.append((model, method, peft, "FAILED", metrics.get("error") or error or "no metrics"))
                print(f"{model:13} {method:16} {peft:14} {rows[-1][3]:8} {rows[-1][4][:150]}", flush=True)
    if opts.out:
        lines = [
            "# Compatibility of models, methods and PEFT options",
            "",
            "Measured by `python scripts/compat_matrix.py --out docs/compatibility.md` "
            f"({opts.steps} training steps per combination on the tiny models, CPU). Every run checks its "
            "combination before touching data (`tunelab.train.compat`); *refused* rows show that check's "
            "message, *ok* rows trained and were evaluated. qlora needs a CUDA GPU and is refused on CPU.",
            "",
            "| model | method | peft | result | detail |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {m} | {me} | {p} | {r} | {d.replace('|', '/')} |" for m, me, p, r, d in rows]
        opts.out.write_text("\n".join(lines) + "\n")
    print(
        f"{len(rows)} combinations: {sum(r[3] == 'ok' for r in rows)} trained, "
        f"{sum(r[3] == 'refused' for r in rows)} refused up front, {surprises} failed after passing the check"
    )
    return 1 if surprises else 0


if __name__ == "__main__":
    sys.exit(main())
