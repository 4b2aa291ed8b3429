"""Throughput and memory of tunelab's data cleaning, against straightforward baselines.

    .venv/bin/python benchmarks/data_pipeline.py [--rows 100000 | --quick] [--seed 0]

Generates mixed support-ticket text (seeded): prompts and completions of varied
length, ~10% exact duplicates (half verbatim, half with case/spacing changes), ~10%
near duplicates (1-3 word edits and punctuation changes), ~2% missing values, and some
HTML markup, invisible characters, no-break spaces, full-width letters and mojibake.
Then it measures, each in a fresh process:

(a)  the core cleaning chain normalize, drop_missing, exact_dedup with the parameters
     of conf/pipeline/default.yaml, run through the real tunelab operators called
     directly with a StageContext (no cache, no ledger file), num_proc 1 and 2;
(a') a per-row pure-Python version of the same cleaning: NFKC + invisible characters
     + whitespace, drop missing, exact dedup through a dict of normalized keys;
(b)  the ``near_dedup`` cleaner on the raw rows (prompt + completion), and the
     library function ``near_duplicate_clusters`` on the same texts;
(c)  the full ``clean`` list of conf/pipeline/default.yaml (markup, normalization,
     missing values, quality rules, PII, exact and near dedup), no baseline;
(b') datasketch MinHash + MinHashLSH with the same shingles, num_perm and threshold,
     candidates verified by estimated Jaccard like tunelab does.

Memory is the peak resident-set growth of the measuring process: VmHWM after
resetting it through /proc/self/clear_refs, minus VmRSS before the step (so it
includes Arrow and numpy buffers, not only Python objects). Worker processes of
num_proc=2 are not in that figure; their largest peak RSS is shown separately.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# --- data ---------------------------------------------------------------------------

PRODUCTS = [
    "Kestrel 45",
    "Kestrel 65",
    "Ridgeline 2",
    "Ridgeline 3",
    "Trailhead boot",
    "Scree shoe",
    "Ember stove",
    "Polar -15 bag",
    "Meadow bag",
    "Solstice bag",
    "Summit jacket",
    "Drift fleece",
    "Canyon poles",
]
QUESTIONS = [
    "Where is my order {order}? It was supposed to arrive on {day}.",
    "I was charged {price} twice for order {order}, can you refund one of them?",
    "Can I return the {product}? It is too {size} for me.",
    "Does the {product} come with a warranty, and how long is it?",
    "The {product} I received has a broken {part}. What can I do?",
    "How do I change the delivery address for order {order}?",
    "Is the {product} suitable for {activity} in {season}?",
    "My discount code {code} does not work at checkout.",
    "Can I pay for order {order} in instalments?",
    "What is the difference between the {product} and the {product2}?",
]
ANSWERS = [
    (
        "Sorry about that! I have checked order {order} and the parcel is with the carrier; "
        "it should arrive within {n} business days."
    ),
    (
        "Only one payment of {price} was captured for {order}. "
        "The second is an authorization that your bank will release within {n} days."
    ),
    (
        "Yes, you can return the {product} within 60 days. "
        "Start the return from your order history and print the prepaid label."
    ),
    (
        "The {product} has a two-year warranty covering manufacturing faults. "
        "Send us a photo of the {part} and we will arrange a repair."
    ),
    "We can update the address as long as {order} has not been handed to the warehouse. Reply with the new address.",
    "The {product} works well for {activity} in {season}; pair it with a good layer if the nights get cold.",
    "The code {code} expired on {day}. I have applied a 10 percent discount to your account instead.",
]
FIELDS = {
    "day": ["Monday", "Tuesday", "Friday", "the 3rd", "the 14th", "2024-05-02"],
    "size": ["small", "big", "narrow", "heavy"],
    "part": ["zipper", "buckle", "pole", "strap", "seam", "valve"],
    "activity": ["hiking", "climbing", "camping", "trail running", "ski touring"],
    "season": ["winter", "spring", "autumn", "the monsoon", "summer"],
}
MARKUP = ["<b>{}</b>", "<p>{}</p>", "{}<br>", '<a href="https://shop.example/help">{}</a>', "{} &amp; thanks"]
NOISE = ["\u200b", "\u00a0", "\ufeff", "\u2060"]


def _vocabulary() -> list[str]:
    """Lemmas from the installed WordNet (realistic, large); synthetic words otherwise."""
    words: list[str] = []
    for part in ("noun", "verb", "adj", "adv"):
        path = Path("/usr/share/wordnet") / f"index.{part}"
        if path.exists():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if line and not line.startswith(" "):
                    lemma = line.split(" ", 1)[0]
                    if lemma.isalpha():
                        words.append(lemma)
    if len(words) < 5000:
        rng = random.Random(0)
        syllables = ["ka", "lo", "mi", "ter", "san", "dor", "vel", "pri", "ost", "un", "ge", "ra"]
        words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(30_000)]
    return sorted(set(words))


COMMON = (
    "the a to and of i my it is for in on you we your this that with be have not can was please "
    "order thanks would like just still there but when if so at from"
).split()


def _sentence(rng: random.Random, vocabulary: list[str], words: int) -> str:
    out = []
    for _ in range(words):
        # about half function words, the rest Zipf-like over a large vocabulary
        if rng.random() < 0.45:
            out.append(rng.choice(COMMON))
        else:
            out.append(
                vocabulary[min(int(rng.paretovariate(0.7)) - 1, len(vocabulary) - 1)]
                if rng.random() < 0.3
                else rng.choice(vocabulary)
            )
    text = " ".join(out)
    return text[:1].upper() + text[1:] + rng.choice([".", ".", ".", "?", "!"])


def _fill(template: str, rng: random.Random) -> str:
    values = {key: rng.choice(options) for key, options in FIELDS.items()}
    values.update(
        order=f"NW-{rng.randrange(100000, 999999)}",
        price=f"${rng.randrange(5, 400)}.{rng.randrange(100):02d}",
        product=rng.choice(PRODUCTS),
        product2=rng.choice(PRODUCTS),
        code=f"TRAIL{rng.randrange(100)}",
        n=rng.randint(2, 9),
    )
    return template.format(**values)


def _text(rng: random.Random, vocabulary: list[str], templates: list[str], sentences: tuple[int, int]) -> str:
    parts = [_fill(rng.choice(templates), rng)]
    for _ in range(rng.randint(*sentences)):
        parts.append(_sentence(rng, vocabulary, rng.randint(5, 18)))
    rng.shuffle(parts)
    return " ".join(parts)


def _noisy(text: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.05:
        return rng.choice(MARKUP).format(text)
    if roll < 0.10:
        words = text.split(" ")
        i = rng.randrange(len(words))
        words[i] = words[i] + rng.choice(NOISE)
        return " ".join(words)
    if roll < 0.12:
        return text.replace("'", "\u00e2\u20ac\u2122").replace(" ", "  ", 2)  # mojibake + double spaces
    if roll < 0.13:
        return "".join(chr(ord(c) + 0xFEE0) if "a" <= c <= "z" and rng.random() < 0.1 else c for c in text)
    return text


def _edit(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(words))
        op = rng.random()
        if op < 0.4:
            words[i] = rng.choice(COMMON)
        elif op < 0.7 and len(words) > 3:
            del words[i]
        else:
            words.insert(i, rng.choice(COMMON))
    out = " ".join(words)
    return out.replace(".", "!", 1) if rng.random() < 0.5 else out.rstrip(".?!")


def generate(rows: int, seed: int) -> dict[str, list]:
    rng = random.Random(seed)
    vocabulary = _vocabulary()
    data: dict[str, list] = {"id": [], "parent_id": [], "prompt": [], "completion": [], "label": [], "kind": []}
    labels = ["shipping", "billing", "returns", "product", "account"]
    for i in range(rows):
        roll = rng.random()
        kind = "original"
        if i > 100 and roll < 0.10:
            source = rng.randrange(i)
            prompt, completion = data["prompt"][source], data["completion"][source]
            kind = f"exact:{source}"
            if rng.random() < 0.5 and isinstance(prompt, str):
                prompt = "  " + prompt.upper() if rng.random() < 0.5 else prompt.replace(" ", "   ")
        elif i > 100 and roll < 0.20:
            source = rng.randrange(i)
            prompt, completion = data["prompt"][source], data["completion"][source]
            kind = f"near:{source}"
            if isinstance(prompt, str) and isinstance(completion, str):
                if rng.random() < 0.5:
                    prompt = _edit(prompt, rng)
                else:
                    completion = _edit(completion, rng)
        else:
            prompt = _noisy(_text(rng, vocabulary, QUESTIONS, (0, 2)), rng)
            completion = _noisy(_text(rng, vocabulary, ANSWERS, (0, 4)), rng)
            if roll > 0.98:
                if rng.random() < 0.5:
                    completion = None
                else:
                    prompt = "   "
        data["id"].append(f"bench:{i}")
        data["parent_id"].append(None)
        data["prompt"].append(prompt)
        data["completion"].append(completion)
        data["label"].append(rng.choice(labels))
        data["kind"].append(kind)
    return data


# --- measured steps -----------------------------------------------------------------


#: the steps whose work the per-row baseline repeats, so their ratio compares like with like
CORE_CHAIN = "[normalize,drop_missing,exact_dedup]"


def _clean_chain(steps: str | None = None):
    """The ``clean`` steps of conf/pipeline/default.yaml (or the given list, with the
    default file's parameters), validated like the CLI does."""
    from hydra import compose, initialize_config_dir

    from tunelab.app import conf_dir, register_hydra_plugins
    from tunelab.config import Origin, register_resolvers, validate
    from tunelab.plugins import get_plugins

    register_hydra_plugins()
    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["pipeline=default", *([f"pipeline.clean={steps}"] if steps else [])])
    plugins = get_plugins()
    rc = validate(cfg, plugins.registry, Origin())
    return [(s.step, s.instantiate(plugins.registry)) for s in rc.steps["clean"]]


def _dataset(data: dict[str, list]):
    from datasets import Dataset

    return Dataset.from_dict({k: v for k, v in data.items() if k != "kind"})


def _ctx(num_proc: int):
    from tunelab.api import StageContext

    return StageContext(seed=0, num_proc=num_proc, work_dir=Path(tempfile.mkdtemp(prefix="tunelab-bench-")))


def prepare_tunelab_clean(data: dict[str, list], num_proc: int, steps: str | None = CORE_CHAIN):
    chain = _clean_chain(steps)
    dataset = _dataset(data)

    def run():
        out = dataset
        for _, operator in chain:
            out = operator.apply(out, _ctx(num_proc))
        return {"rows_out": len(out), "steps": [name for name, _ in chain]}

    return run


_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def prepare_baseline_clean(data: dict[str, list]):
    ids, prompts, completions = data["id"], data["prompt"], data["completion"]

    def normalize(value):
        if not isinstance(value, str):
            return value
        value = _INVISIBLE.sub("", unicodedata.normalize("NFKC", value))
        return "\n".join(" ".join(line.split()) for line in value.split("\n")).strip()

    def run():
        seen: dict[str, str] = {}
        kept = []
        for row_id, prompt, completion in zip(ids, prompts, completions):
            prompt, completion = normalize(prompt), normalize(completion)
            if not prompt or not completion:
                continue
            key = " ".join(prompt.casefold().split()) + "\x1f" + " ".join(completion.casefold().split())
            if seen.setdefault(key, row_id) == row_id:
                kept.append((row_id, prompt, completion))
        return {"rows_out": len(kept)}

    return run


def _joined(data: dict[str, list]) -> list[str]:
    return [
        "\n".join(v for v in (p, c) if isinstance(v, str) and v) for p, c in zip(data["prompt"], data["completion"])
    ]


def _planted_recall(data: dict[str, list], survivor_of: list[int]) -> float:
    """Share of planted near-duplicate rows put in one cluster with their source."""
    hits = total = 0
    for i, kind in enumerate(data["kind"]):
        if kind.startswith("near:"):
            source = int(kind.split(":")[1])
            total += 1
            hits += survivor_of[i] == survivor_of[source]
    return hits / total if total else 1.0


def prepare_near_dedup(data: dict[str, list]):
    from tunelab_builtin.cleaners.near_dedup import NearDedup, NearDedupConfig

    dataset = _dataset(data)
    operator = NearDedup(NearDedupConfig())

    def run():
        ctx = _ctx(1)
        out = operator.apply(dataset, ctx)
        survivor = {row_id: row_id for row_id in data["id"]}
        for drop in ctx.drops:
            for row_id, detail in zip(drop.ids, drop.detail or []):
                survivor[row_id] = detail["kept"]
        index = {row_id: i for i, row_id in enumerate(data["id"])}
        recall = _planted_recall(data, [index[survivor[row_id]] for row_id in data["id"]])
        return {"rows_out": len(out), "planted_near_recall": round(recall, 4)}

    return run


def prepare_near_dedup_library(data: dict[str, list]):
    from tunelab_builtin._lib.minhash import near_duplicate_clusters

    texts = _joined(data)

    def run():
        survivors = near_duplicate_clusters(texts)
        kept = sum(1 for i, s in enumerate(survivors) if s == i)
        return {"rows_out": kept, "planted_near_recall": round(_planted_recall(data, survivors), 4)}

    return run


def prepare_datasketch(data: dict[str, list]):
    from datasketch import MinHash, MinHashLSH

    from tunelab_builtin._lib.minhash import normalize_for_shingles
    from tunelab_builtin.cleaners.near_dedup import NearDedupConfig

    config = NearDedupConfig()
    texts = _joined(data)

    def run():
        lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
        signatures = []
        for i, text in enumerate(texts):
            words = normalize_for_shingles(text)
            n = config.ngram
            shingles = (
                {" ".join(words[k : k + n]).encode() for k in range(max(1, len(words) - n + 1))} if words else set()
            )
            minhash = MinHash(num_perm=config.num_perm, seed=config.seed)
            minhash.update_batch(shingles)
            signatures.append(minhash)
            if shingles:
                lsh.insert(i, minhash)
        parent = list(range(len(texts)))

        def root(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for i, minhash in enumerate(signatures):
            if not texts[i]:
                continue
            for j in lsh.query(minhash):
                if j > i and minhash.jaccard(signatures[j]) >= config.threshold:
                    ri, rj = root(i), root(j)
                    if ri != rj:
                        parent[max(ri, rj)] = min(ri, rj)
        survivors = [root(i) for i in range(len(texts))]
        kept = sum(1 for i, s in enumerate(survivors) if s == i)
        return {"rows_out": kept, "planted_near_recall": round(_planted_recall(data, survivors), 4)}

    return run


MEASUREMENTS = {
    "clean (tunelab, num_proc=1)": lambda d: prepare_tunelab_clean(d, 1),
    "clean (tunelab, num_proc=2)": lambda d: prepare_tunelab_clean(d, 2),
    "clean (per-row Python baseline)": prepare_baseline_clean,
    "full default clean chain (tunelab)": lambda d: prepare_tunelab_clean(d, 1, steps=None),
    "near_dedup (tunelab cleaner)": prepare_near_dedup,
    "near_duplicate_clusters (tunelab library)": prepare_near_dedup_library,
    "near dedup (datasketch baseline)": prepare_datasketch,
}


# --- measuring ---------------------------------------------------------------------


def _status(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def worker(name: str, data_path: Path) -> dict:
    with data_path.open("rb") as fh:
        data = pickle.load(fh)
    run = MEASUREMENTS[name](data)
    gc.collect()
    exact_peak = _reset_peak()
    before = _status("VmRSS") if exact_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started, cpu_started = time.perf_counter(), time.process_time()
    result = run()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    after = _status("VmHWM") if exact_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {
        "name": name,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rows_per_s": len(data["id"]) / seconds,
        "peak_mb": max(0, (after or 0) - (before or 0)) / 2**20,
        "worker_peak_mb": children / 2**20 if children else None,
        "exact_peak": exact_peak,
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", action="append", help="run only measurements whose name contains this")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.data))))
        return
    rows = 10_000 if args.quick else args.rows
    started = time.perf_counter()
    data = generate(rows, args.seed)
    kinds = [k.split(":")[0] for k in data["kind"]]
    words = [len(f"{p or ''} {c or ''}".split()) for p, c in zip(data["prompt"], data["completion"])]
    print(
        f"{rows} rows generated in {time.perf_counter() - started:.1f}s (seed {args.seed}): "
        f"{kinds.count('exact')} exact and {kinds.count('near')} near duplicates planted, "
        f"{sum(words) / len(words):.0f} words per row (prompt + completion) on average"
    )
    with tempfile.TemporaryDirectory(prefix="tunelab-bench-") as tmp:
        data_path = Path(tmp) / "data.pkl"
        with data_path.open("wb") as fh:
            pickle.dump(data, fh)
        results = {}
        for name in MEASUREMENTS:
            if args.only and not any(part in name for part in args.only):
                continue
            env = {**os.environ, "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", name, "--data", str(data_path)],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
            )
            if proc.returncode != 0:
                print(f"{name}: FAILED\n{proc.stderr[-3000:]}")
                continue
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            r = results[name]
            print(f"  done: {name} ({r['seconds']:.1f}s)", flush=True)
    if not results:
        return
    print(f"\n{'step':45} {'seconds':>8} {'cpu s':>7} {'rows/s':>9} {'peak MB':>8} {'rows out':>9}  notes")
    for name, r in results.items():
        notes = []
        if r.get("worker_peak_mb") and "num_proc=2" in name:
            notes.append(f"largest worker peak RSS {r['worker_peak_mb']:.0f} MB")
        if "planted_near_recall" in r:
            notes.append(f"planted near dups found {r['planted_near_recall']:.1%}")
        if r.get("steps"):
            notes.append("chain: " + ",".join(r["steps"]))
        print(
            f"{name:45} {r['seconds']:8.2f} {r['cpu_seconds']:7.2f} {r['rows_per_s']:9.0f} {r['peak_mb']:8.1f} "
            f"{r['rows_out']:9}  {'; '.join(notes)}"
        )

    def ratio(ours: str, theirs: str) -> None:
        if ours in results and theirs in results:
            a, b = results[ours], results[theirs]
            memory = f"{a['peak_mb'] / b['peak_mb']:.2f}x" if b["peak_mb"] > 0 else "n/a"
            print(f"  {ours} / {theirs}: speed {a['rows_per_s'] / b['rows_per_s']:.2f}x, peak memory {memory}")

    print("\nratios tunelab / baseline (speed > 1: tunelab faster; memory < 1: tunelab smaller)")
    ratio("clean (tunelab, num_proc=1)", "clean (per-row Python baseline)")
    ratio("clean (tunelab, num_proc=2)", "clean (per-row Python baseline)")
    ratio("near_dedup (tunelab cleaner)", "near dedup (datasketch baseline)")
    ratio("near_duplicate_clusters (tunelab library)", "near dedup (datasketch baseline)")
    exact = next(iter(results.values()))["exact_peak"]
    print(
        "\npeak MB: growth of the measuring process's peak RSS during the step "
        + ("(VmHWM reset via /proc/self/clear_refs)" if exact else "(ru_maxrss delta: a lower bound)")
        + "; num_proc=2 workers not included. Data generation and Dataset creation are not timed.\n"
        "seconds: wall clock (rows/s uses it); cpu s: CPU time of the measuring process only (workers not\n"
        "included), a steadier figure than wall clock on a shared machine."
    )
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
