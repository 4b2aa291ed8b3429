"""The user's files that the commands in the docs name (``data.path=tickets.csv``,
``manuals/``, ``sqlite:///support.db``, ...), written small but well-formed from the
bundled support tickets, so that ``test_docs`` can execute those commands for real.

Each doc page gets its own working directory; a file is written there only when the
page names it. Where two pages name the same file with different layouts (README's
``tickets.csv`` has ``q``/``a`` columns, collectors.md's is ``;``-separated with
``question``/``answer``), the page decides.
"""

from __future__ import annotations

import csv
import gzip
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICKETS = ROOT / "plugins" / "tunelab_builtin" / "data" / "support_tickets.jsonl"
STARS = {"billing": "1", "shipping": "2", "returns": "3", "account": "4", "product": "5", "privacy": "5"}


def _tickets(limit: int = 120) -> list[dict]:
    """The first ``limit`` bundled tickets that have text in every field (the bundled file
    is deliberately messy: nulls, duplicates, markup)."""
    rows = [json.loads(line) for line in TICKETS.read_text(encoding="utf-8").splitlines() if line.strip()]
    fields = ("ticket_id", "question", "answer", "category")
    return [r for r in rows if all(isinstance(r.get(f), str) and r[f].strip() for f in fields)][:limit]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)


def tickets_csv(path: Path, page: str) -> None:
    rows = _tickets()
    if page == "docs/components/collectors.md":
        _csv(path, ["question", "answer"], [[r["question"], r["answer"]] for r in rows], delimiter=";")
    elif page == "README.md":
        _csv(path, ["q", "a"], [[r["question"], r["answer"]] for r in rows])
    else:
        _csv(path, ["question", "answer", "category"], [[r["question"], r["answer"], r["category"]] for r in rows])


def reviews_jsonl(path: Path, page: str) -> None:
    _jsonl(path, [{"review": r["question"], "stars": STARS.get(r["category"], "3")} for r in _tickets(300)])


def reviews_tsv(path: Path, page: str) -> None:
    _csv(path, ["review", "stars"], [[r["question"], STARS.get(r["category"], "3")] for r in _tickets()], "\t")


def reviews_csv(path: Path, page: str) -> None:
    _csv(path, ["review", "rating"], [[r["question"], STARS.get(r["category"], "3")] for r in _tickets()])


def crawl_jsonl(path: Path, page: str) -> None:
    rows = _tickets(200)
    documents = []
    for start in range(0, len(rows), 5):
        lines = [r["answer"] for r in rows[start : start + 5]]
        documents.append({"text": "\n".join(lines + ["Home | About | Contact"])})
    _jsonl(path, documents)


def exports_dir(path: Path, page: str) -> None:
    rows = _tickets()
    for part in range(2):
        _jsonl(
            path / f"export_{part}.jsonl",
            [{"question": r["question"], "answer": r["answer"], "category": r["category"]} for r in rows[part::2]],
        )


def alpaca_json(path: Path, page: str) -> None:
    rows = [{"instruction": r["question"], "input": "", "output": r["answer"]} for r in _tickets()]
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


def seed_tasks_jsonl(path: Path, page: str) -> None:
    """Self-Instruct seed tasks ({id, name, instruction, instances: [{input, output}], is_classification}):
    one to three instances per task, and one task whose instance list is empty."""
    rows = _tickets(90)
    tasks, start = [], 0
    for number in range(40):
        count = 1 + number % 3
        part, start = rows[start : start + count], start + count
        if not part:
            break
        category = part[0]["category"]
        tasks.append(
            {
                "id": f"seed_task_{number}",
                "name": f"support_{category}_{number}",
                "instruction": f"Answer this {category} question from a customer of an outdoor-gear shop.",
                "instances": [{"input": r["question"], "output": r["answer"]} for r in part],
                "is_classification": False,
            }
        )
    tasks.append(
        {
            "id": f"seed_task_{len(tasks)}",
            "name": "empty",
            "instruction": "Say hello.",
            "instances": [],
            "is_classification": False,
        }
    )
    _jsonl(path, tasks)


def train_parquet(path: Path, page: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    messages = [
        [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}] for r in _tickets()
    ]
    pq.write_table(pa.table({"messages": messages}), path)


def notes_dir(path: Path, page: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    rows = _tickets()
    for part in range(3):
        paragraphs = [r["answer"] for r in rows[part * 20 : (part + 1) * 20]]
        (path / f"note_{part}.txt").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")


def pages_dir(path: Path, page: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    rows = _tickets(12)
    for part in range(3):
        items = "".join(f"<h2>{r['question']}</h2><p>{r['answer']}</p>" for r in rows[part * 4 : (part + 1) * 4])
        (path / f"guide_{part}.html").write_text(
            f"<html><head><title>Guide {part}</title></head><body><nav>Home | Shop | Contact</nav>"
            f"<article>{items}</article><footer>(c) Example outfitters</footer></body></html>",
            encoding="utf-8",
        )


def manuals_dir(path: Path, page: str) -> None:
    from fpdf import FPDF

    path.mkdir(parents=True, exist_ok=True)
    rows = _tickets(24)
    for part in range(2):
        pdf = FPDF()
        pdf.set_font("helvetica", size=11)
        for r in rows[part * 12 : (part + 1) * 12 : 3]:
            pdf.add_page()
            text = f"{r['question']}\n\n{r['answer']}".encode("latin-1", "replace").decode("latin-1")
            pdf.multi_cell(0, 6, text)
        pdf.output(str(path / f"manual_{part}.pdf"))


def support_db(path: Path, page: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE tickets (ticket TEXT, question TEXT, answer TEXT, category TEXT, status TEXT)")
        db.executemany(
            "INSERT INTO tickets VALUES (?, ?, ?, ?, ?)",
            [
                (r["ticket_id"], r["question"], r["answer"], r["category"], "closed" if i % 4 else "open")
                for i, r in enumerate(_tickets())
            ],
        )


def imdb_saved(path: Path, page: str) -> None:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    rows = _tickets()
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    split = lambda part: Dataset.from_dict(  # noqa: E731
        {"text": [r["answer"] for r in part], "label": [i % 2 for i in range(len(part))]}, features=features
    )
    DatasetDict({"train": split(rows[:60]), "test": split(rows[60:])}).save_to_disk(str(path))


def chats_dir(path: Path, page: str) -> None:
    _jsonl(
        path / "chats_0.jsonl",
        [
            {"conversations": [{"from": "human", "value": r["question"]}, {"from": "gpt", "value": r["answer"]}]}
            for r in _tickets()
        ],
    )


def hh_train(path: Path, page: str) -> None:
    rows = _tickets()
    records = []
    for r, other in zip(rows, rows[1:] + rows[:1]):
        prompt = f"\n\nHuman: {r['question']}\n\nAssistant:"
        records.append({"chosen": f"{prompt} {r['answer']}", "rejected": f"{prompt} {other['answer']}"})
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records)


def labels_csv(path: Path, page: str) -> None:
    rows = []
    for i, r in enumerate(_tickets(60), 1):
        for annotator in ("ann_a", "ann_b"):
            rows.append([f"support_tickets.jsonl:{i}", annotator, r["category"]])
    _csv(path, ["ticket_id", "annotator", "label"], rows)


def blocklist(path: Path, page: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("darn\nheck\n", encoding="utf-8")


#: the name a command uses -> (the path written under the working directory, the writer)
FIXTURES: dict[str, tuple[str, Callable[[Path, str], None]]] = {
    "tickets.csv": ("tickets.csv", tickets_csv),
    "reviews.jsonl": ("reviews.jsonl", reviews_jsonl),
    "reviews.tsv": ("reviews.tsv", reviews_tsv),
    "reviews.csv": ("reviews.csv", reviews_csv),
    "crawl.jsonl": ("crawl.jsonl", crawl_jsonl),
    "exports/": ("exports", exports_dir),
    "alpaca_data.json": ("alpaca_data.json", alpaca_json),
    "seed_tasks.jsonl": ("seed_tasks.jsonl", seed_tasks_jsonl),
    "data/train-*.parquet": ("data/train-00000-of-00001.parquet", train_parquet),
    "notes/": ("notes", notes_dir),
    "pages/": ("pages", pages_dir),
    "manuals/": ("manuals", manuals_dir),
    "support.db": ("support.db", support_db),
    "imdb_saved": ("imdb_saved", imdb_saved),
    "chats/*.jsonl": ("chats", chats_dir),
    "hh_train.jsonl.gz": ("hh_train.jsonl.gz", hh_train),
    "labels.csv": ("labels.csv", labels_csv),
    "conf/blocklist.txt": ("conf/blocklist.txt", blocklist),
}


def write_fixtures(page: str, commands: list[str], work: Path) -> list[str]:
    """Write, under ``work``, every file one of ``commands`` names. Returns the names."""
    text = "\n".join(commands)
    written = []
    for name, (target, write) in FIXTURES.items():
        if name in text:
            path = work / target
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path, page)
            written.append(name)
    return written
