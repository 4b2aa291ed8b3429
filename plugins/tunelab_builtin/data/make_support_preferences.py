"""Build support_preferences.jsonl (prompt/chosen/rejected/category) from support_tickets.jsonl.

chosen is the agent's real answer; rejected is a plausible but worse reply, one of:
an answer from a different category ("off_topic"), a curt unhelpful reply ("curt"), or the
real answer with one policy fact changed ("wrong_fact"; only for answers stating a fact).
Seeded, so re-running it rewrites the same file:

    python plugins/tunelab_builtin/data/make_support_preferences.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "support_tickets.jsonl"
TARGET = HERE / "support_preferences.jsonl"
SEED = 13
LIMIT = 200

CURT = [
    "Please check our website.",
    "We can't help with that.",
    "See the FAQ.",
    "Contact support.",
    "That's our policy.",
    "Try again later.",
]
#: (correct fact, wrong fact) pairs; the first one an answer contains is swapped
WRONG_FACTS = [
    ("30 days", "7 days"),
    ("$5.95", "$25"),
    ("3-5 business days", "3-5 weeks"),
    ("3 to 5 business days", "3 to 5 weeks"),
    ("5-7 business days", "60 days"),
    ("$6.95", "$19.95"),
    ("$14.95", "$49.95"),
    ("over $50", "over $500"),
    ("$9.99", "$29.99"),
    ("$99", "$199"),
    ("14-day", "2-day"),
    ("2-year", "30-day"),
    ("10%", "1%"),
    ("2pm", "9am"),
    ("free", "not free"),
]


def wrong_fact(answer: str) -> str | None:
    for right, wrong in WRONG_FACTS:
        if right in answer:
            return answer.replace(right, wrong, 1)
    return None


def main() -> None:
    rng = random.Random(SEED)
    rows, seen = [], set()
    for line in SOURCE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        question, answer = (record.get("question") or "").strip(), (record.get("answer") or "").strip()
        if not question or not answer or (question, answer) in seen:
            continue
        seen.add((question, answer))
        rows.append({"prompt": question, "chosen": answer, "category": record["category"]})
    by_category: dict[str, list[str]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row["chosen"])
    rng.shuffle(rows)
    out = []
    for row in rows[:LIMIT]:
        kind = rng.choice(["off_topic", "curt", "wrong_fact"])
        rejected = wrong_fact(row["chosen"]) if kind == "wrong_fact" else None
        if rejected is None and kind != "curt":
            other = rng.choice(sorted(c for c in by_category if c != row["category"]))
            rejected = rng.choice(by_category[other])
        if rejected is None:
            rejected = rng.choice(CURT)
        out.append(
            {"prompt": row["prompt"], "chosen": row["chosen"], "rejected": rejected, "category": row["category"]}
        )
    TARGET.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out), encoding="utf-8")
    print(f"wrote {len(out)} pairs to {TARGET}")


if __name__ == "__main__":
    main()
