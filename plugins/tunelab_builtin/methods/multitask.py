"""The ``multitask`` method: SFT on a weighted mixture of the run's data with further
prompt/completion files."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List  # noqa: UP035 (field types are printed as written: Dict/List stay)

from tunelab.api import COMPLETION, PROMPT, TrainJob, TrainOutcome
from tunelab_builtin.methods.sft import Sft, SftConfig


@dataclass
class MultitaskConfig(SftConfig):
    #: further tasks: ``{path: rows.jsonl, weight: 0.5, task_prefix: "[billing] "}``;
    #: each file has prompt/completion rows
    datasets: List[Dict[str, Any]] = field(default_factory=list)
    #: sampling weight of the run's own prepared train split
    main_weight: float = 1.0
    #: prefix put before the prompts of the run's own data
    main_prefix: str = ""
    #: stop when the first source runs out (first_exhausted) or when all have (all_exhausted, oversamples)
    stopping_strategy: str = "all_exhausted"


class Multitask(Sft):
    """SFT on a seeded, weighted mixture of the prepared train split and further prompt/completion JSONL files."""

    def __init__(self, config: MultitaskConfig):
        super().__init__(config)
        if config.stopping_strategy not in ("first_exhausted", "all_exhausted"):
            raise ValueError(
                "multitask.stopping_strategy must be first_exhausted or all_exhausted, "
                f"got {config.stopping_strategy!r}"
            )
        if config.main_weight < 0:
            raise ValueError(f"multitask.main_weight must be >= 0, got {config.main_weight!r}")
        for i, spec in enumerate(config.datasets):
            if not isinstance(spec, dict) or not spec.get("path"):
                raise ValueError(f"multitask.datasets[{i}] needs a path, got {spec!r}")
            unknown = set(spec) - {"path", "weight", "task_prefix"}
            if unknown:
                raise ValueError(
                    f"multitask.datasets[{i}]: unknown keys {sorted(unknown)} (valid: path, weight, task_prefix)"
                )
            if float(spec.get("weight", 1.0)) < 0:
                raise ValueError(f"multitask.datasets[{i}].weight must be >= 0, got {spec['weight']!r}")

    def mixture(self, train: Any, seed: int) -> tuple[Any, dict[str, float]]:
        """The mixed train rows (prompt, completion) and how many came from each source."""
        from datasets import Dataset, interleave_datasets, load_dataset

        def prefixed(data: Any, prefix: str, source: str) -> Any:
            data = data.select_columns([PROMPT, COMPLETION])
            return data.map(
                lambda b: {
                    PROMPT: [prefix + (p or "") for p in b[PROMPT]],
                    COMPLETION: [c or "" for c in b[COMPLETION]],
                    "_source": [source] * len(b[PROMPT]),
                },
                batched=True,
                desc=f"multitask {source}",
            )

        sources = [prefixed(train, self.config.main_prefix, "main")]
        weights = [float(self.config.main_weight)]
        for i, spec in enumerate(self.config.datasets):
            path = Path(spec["path"]).expanduser()
            if not path.is_file():
                raise ValueError(f"multitask.datasets[{i}].path: no such file {str(path)!r}")
            data = load_dataset("json", data_files=str(path), split="train")
            missing = [c for c in (PROMPT, COMPLETION) if c not in data.column_names]
            if missing:
                raise ValueError(
                    f"multitask.datasets[{i}] ({path.name}) lacks columns {missing} (it has {data.column_names})"
                )
            sources.append(prefixed(data, str(spec.get("task_prefix", "")), f"task{i + 1}"))
            weights.append(float(spec.get("weight", 1.0)))
        kept = [(d, w) for d, w in zip(sources, weights) if w > 0 and len(d)]
        if not kept:
            raise ValueError("multitask: every source is empty or has weight 0")
        total = sum(w for _, w in kept)
        if len(kept) == 1:
            mixed = kept[0][0]
        else:
            mixed = interleave_datasets(
                [d for d, _ in kept],
                probabilities=[w / total for _, w in kept],
                seed=seed,
                stopping_strategy=self.config.stopping_strategy,
            )
        counts: dict[str, float] = {}
        for source in mixed["_source"]:
            counts[f"multitask_rows_{source}"] = counts.get(f"multitask_rows_{source}", 0) + 1
        return Dataset.from_dict({PROMPT: mixed[PROMPT], COMPLETION: mixed[COMPLETION]}), counts

    def train(self, job: TrainJob) -> TrainOutcome:
        mixed, counts = self.mixture(job.splits["train"], job.seed)
        outcome = super().train(dataclasses.replace(job, splits={**job.splits, "train": mixed}))
        outcome.metrics.update(counts)
        return outcome
