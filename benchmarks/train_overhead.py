"""Overhead of tunelab's SFT path over a plain TRL script.

The same SFT + LoRA run (the in-process tiny Llama, fixed prompt/completion rows, N steps)
through ``tunelab_builtin.methods.sft.Sft.train`` with a ``TrainJob`` and through SFTTrainer +
LoraConfig directly, alternating, reporting the median steps/s of each and their ratio
(target: tunelab/plain >= 0.97).

    .venv/bin/python benchmarks/train_overhead.py --steps 60 --repeats 6
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def rows(n: int):
    from datasets import Dataset

    prompts = [f"How do I reset order {i}? Please explain the steps." for i in range(n)]
    completions = [f"Open settings, choose order {i}, press reset and confirm by email." for i in range(n)]
    return Dataset.from_dict({"prompt": prompts, "completion": completions})


def load(hidden: int):
    from tunelab_builtin.models.tiny import TinyModel, TinyModelConfig

    return TinyModel(TinyModelConfig(hidden_size=hidden, intermediate_size=2 * hidden)).load(
        {}, Path(tempfile.gettempdir())
    )


def lora():
    from peft import LoraConfig

    return LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        task_type="CAUSAL_LM",
    )


def run_tunelab(data, steps: int, batch: int, hidden: int, out: Path) -> float:
    from tunelab.api import TrainJob, TrainSettings
    from tunelab_builtin.methods.sft import Sft, SftConfig

    loaded = load(hidden)
    settings = TrainSettings(
        max_steps=steps, batch_size=batch, max_length=128, learning_rate=2e-4, logging_steps=10, save_model=False
    )
    job = TrainJob(loaded, {"train": data}, lora(), settings, out, seed=0)
    start = time.perf_counter()
    outcome = Sft(SftConfig()).train(job)
    elapsed = time.perf_counter() - start
    assert outcome.metrics["train_steps"] == steps
    return steps / elapsed


def run_plain(data, steps: int, batch: int, hidden: int, out: Path) -> float:
    import torch
    from trl import SFTConfig, SFTTrainer

    from tunelab.train.formatting import render_pair

    loaded = load(hidden)
    tokenizer = loaded.tokenizer
    start = time.perf_counter()

    def render(b):
        pairs = [render_pair(tokenizer, p, c) for p, c in zip(b["prompt"], b["completion"])]
        return {"prompt": [p for p, _ in pairs], "completion": [c for _, c in pairs]}

    rendered = data.map(render, batched=True)
    args = SFTConfig(
        output_dir=str(out / "plain"),
        max_steps=steps,
        per_device_train_batch_size=batch,
        max_length=128,
        learning_rate=2e-4,
        logging_steps=10,
        completion_only_loss=True,
        save_strategy="no",
        report_to="none",
        seed=0,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        data_seed=0,
        # what tunelab's sft sets too on a CPU: TRL's defaults turn on activation checkpointing
        # and bf16 autocast, each several times slower on a CPU without bf16 units
        activation_checkpointing=False,
        include_num_input_tokens_seen=True,
        bf16=False,
        fp16=False,
    )
    trainer = SFTTrainer(
        model=loaded.model, args=args, train_dataset=rendered, processing_class=tokenizer, peft_config=lora()
    )
    trainer.train()
    elapsed = time.perf_counter() - start
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rows", type=int, default=256)
    a = parser.parse_args()
    from datasets import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.set_verbosity_error()
    data = rows(a.rows)
    results: dict[str, list[float]] = {"tunelab": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        # one discarded run of each first: imports, kernel selection and caches warm up
        run_tunelab(data, 5, a.batch, a.hidden, Path(tmp) / "warm-tunelab")
        run_plain(data, 5, a.batch, a.hidden, Path(tmp) / "warm-plain")
        for i in range(a.repeats):  # alternate, so drift hits both alike
            for name, fn in (
                (("tunelab", run_tunelab), ("plain", run_plain))
                if i % 2 == 0
                else (("plain", run_plain), ("tunelab", run_tunelab))
            ):
                results[name].append(fn(data, a.steps, a.batch, a.hidden, Path(tmp) / f"{name}{i}"))
                print(f"run {i} {name}: {results[name][-1]:.2f} steps/s", flush=True)
    t, p = statistics.median(results["tunelab"]), statistics.median(results["plain"])
    print(f"median steps/s  tunelab {t:.2f}  plain {p:.2f}")
    print(f"ratio tunelab/plain = {t / p:.3f} (target >= 0.97)")


if __name__ == "__main__":
    main()
