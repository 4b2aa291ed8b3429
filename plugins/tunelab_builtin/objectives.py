"""More objectives: continued pretraining on raw text (``cpt``), self-training of a
classifier on partly labelled data (``semi_supervised``), and SFT on a weighted mixture of
the run's data with further prompt/completion files (``multitask``)."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

from tunelab.api import COMPLETION, PROMPT, TEXT, Component, Evaluator, LoadedModel, Method, TrainJob, TrainOutcome
from tunelab.api import evaluation_split, write_example_scores
from tunelab_builtin.classification import Classify, ClassifyConfig, class_logits, text_column
from tunelab.train.arguments import common_training_arguments, loss_metrics, run_trainer, save_trained
from tunelab_builtin.training import Sft, SftConfig, token_scores

log = logging.getLogger(__name__)


# --- cpt: continued pretraining ------------------------------------------------------------


@dataclass
class CptConfig:
    #: columns joined (with ``separator``) into the training text when the data has no ``text`` column
    text_fields: List[str] = field(default_factory=lambda: [PROMPT, COMPLETION])
    #: what goes between the joined fields
    separator: str = "\n"
    #: append the tokenizer's end-of-sequence token to every document
    add_eos: bool = True


def documents(split: Any, text_fields: list[str], separator: str, where: str) -> list[str]:
    """The raw text of each row: ``text``, else ``text_fields`` joined by ``separator``."""
    if TEXT in split.column_names:
        return [t or "" for t in split[TEXT]]
    missing = [c for c in text_fields if c not in split.column_names]
    if missing:
        raise ValueError(f"{where}: the data has no 'text' column and lacks text_fields {missing} (it has {split.column_names})")
    columns = [split[c] for c in text_fields]
    return [separator.join(v or "" for v in values) for values in zip(*columns)]


class Cpt(Method):
    """Continued pretraining on raw text: next-token loss on every token of a causal LM, or
    masked-token loss (15% of tokens) on an encoder."""

    task = "causal_lm"
    alternative_tasks = ("masked_lm",)

    def __init__(self, config: CptConfig):
        super().__init__(config)
        if not config.text_fields or not all(isinstance(c, str) and c for c in config.text_fields):
            raise ValueError(f"cpt.text_fields must be a non-empty list of column names, got {config.text_fields!r}")

    def documents(self, split: Any) -> list[str]:
        return documents(split, self.config.text_fields, self.config.separator, "cpt")

    def train(self, job: TrainJob) -> TrainOutcome:
        from datasets import Dataset
        from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

        s = job.settings
        tokenizer = job.model.tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        eos = tokenizer.eos_token if self.config.add_eos and tokenizer.eos_token else ""
        texts = [d + eos for d in self.documents(job.splits["train"]) if d.strip()]
        if not texts:
            raise ValueError("cpt: every training document is empty")
        enc = tokenizer(texts, truncation=True, max_length=s.max_length)
        dataset = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
        model = job.model.model
        if job.peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, job.peft_config)
        args = TrainingArguments(**common_training_arguments(job))
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=job.model.task == "masked_lm", mlm_probability=0.15),
            callbacks=job.callbacks,
        )
        result = run_trainer(trainer, job)
        metrics = loss_metrics(trainer, result)
        metrics["train_rows"] = len(dataset)
        saved_to = save_trained(trainer, tokenizer, job)
        return TrainOutcome(model=trainer.model, tokenizer=tokenizer, metrics=metrics, saved_to=saved_to)


# --- semi_supervised: self-training ---------------------------------------------------------


@dataclass
class SemiSupervisedConfig(ClassifyConfig):
    #: self-training rounds after the first (labelled-only) training; 0 is plain classify
    rounds: int = 1
    #: accept a pseudo-label when the predicted class has at least this probability
    threshold: float = 0.9


def is_unlabelled(value: Any) -> bool:
    """A missing label: None, or an empty / whitespace-only string."""
    return value is None or (isinstance(value, str) and not value.strip())


class SemiSupervised(Classify):
    """Self-training: fit on labelled rows, pseudo-label confident unlabelled rows, refit (``rounds`` times)."""

    def __init__(self, config: SemiSupervisedConfig):
        super().__init__(config)
        if not isinstance(config.rounds, int) or config.rounds < 0:
            raise ValueError(f"semi_supervised.rounds must be an integer >= 0, got {config.rounds!r}")
        if not 0.0 < config.threshold <= 1.0:
            raise ValueError(f"semi_supervised.threshold must be in (0, 1], got {config.threshold!r}")

    def train(self, job: TrainJob) -> TrainOutcome:
        import torch
        from datasets import concatenate_datasets

        if job.settings.save_steps or job.resume_from is not None:
            # several trainings in one output directory: a checkpoint would not say which round it is of
            log.warning("semi_supervised: train.save_steps is ignored (its rounds are not checkpointed); a killed job starts over")
            job = dataclasses.replace(job, resume_from=None, settings=dataclasses.replace(job.settings, save_steps=0))
        train = job.splits["train"]
        labels = [label for label in job.request.labels if not is_unlabelled(label)]
        values = train[job.label_column]
        labelled_idx = [i for i, v in enumerate(values) if not is_unlabelled(v)]
        unlabelled_idx = [i for i, v in enumerate(values) if is_unlabelled(v)]
        labelled, unlabelled = train.select(labelled_idx), train.select(unlabelled_idx)
        column = text_column(train, self.config.text_columns)
        metrics: dict[str, float] = {"semi_labelled": len(labelled), "semi_unlabelled": len(unlabelled)}
        final = job.settings
        settings = dataclasses.replace(final, save_model=False) if self.config.rounds else final
        outcome = Classify.train(self, dataclasses.replace(job, splits={**job.splits, "train": labelled}, settings=settings))
        steps = outcome.metrics.get("train_steps", 0)
        for k in range(1, self.config.rounds + 1):
            accepted = labelled.select([])
            if len(unlabelled):
                logits = class_logits(outcome.model, job.model.tokenizer, unlabelled[column], final.max_length)
                probs = torch.softmax(logits, dim=-1)
                confidence, predicted = probs.max(dim=-1)
                # the model's outputs are in request.labels order (the head the loader built)
                names = list(job.request.labels)
                keep = [i for i in range(len(unlabelled)) if float(confidence[i]) >= self.config.threshold]
                pseudo = [names[int(predicted[i])] for i in keep]
                accepted = unlabelled.select(keep).remove_columns(job.label_column).add_column(job.label_column, pseudo)
                accepted = accepted.cast(labelled.features)
            metrics[f"semi_round_{k}_accepted"] = len(accepted)
            round_settings = final if k == self.config.rounds else settings
            # keep training the same (possibly PEFT-wrapped) model: no new adapter
            model = LoadedModel(outcome.model, job.model.tokenizer, job.model.name, job.model.source, job.model.task)
            round_job = dataclasses.replace(
                job,
                model=model,
                peft_config=None,
                splits={**job.splits, "train": concatenate_datasets([labelled, accepted])},
                settings=round_settings,
            )
            outcome = Classify.train(self, round_job)
            steps += outcome.metrics.get("train_steps", 0)
        outcome.metrics.update(metrics)
        outcome.metrics["semi_total_steps"] = steps
        outcome.metrics["train_classes"] = len(labels)
        return outcome


# --- multitask: a weighted mixture ----------------------------------------------------------


@dataclass
class MultitaskConfig(SftConfig):
    #: further tasks: ``{path: rows.jsonl, weight: 0.5, task_prefix: "[billing] "}``; each file has prompt/completion rows
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
            raise ValueError(f"multitask.stopping_strategy must be first_exhausted or all_exhausted, got {config.stopping_strategy!r}")
        if config.main_weight < 0:
            raise ValueError(f"multitask.main_weight must be >= 0, got {config.main_weight!r}")
        for i, spec in enumerate(config.datasets):
            if not isinstance(spec, dict) or not spec.get("path"):
                raise ValueError(f"multitask.datasets[{i}] needs a path, got {spec!r}")
            unknown = set(spec) - {"path", "weight", "task_prefix"}
            if unknown:
                raise ValueError(f"multitask.datasets[{i}]: unknown keys {sorted(unknown)} (valid: path, weight, task_prefix)")
            if float(spec.get("weight", 1.0)) < 0:
                raise ValueError(f"multitask.datasets[{i}].weight must be >= 0, got {spec['weight']!r}")

    def mixture(self, train: Any, seed: int) -> tuple[Any, dict[str, float]]:
        """The mixed train rows (prompt, completion) and how many came from each source."""
        from datasets import Dataset, interleave_datasets, load_dataset

        def prefixed(data: Any, prefix: str, source: str) -> Any:
            data = data.select_columns([PROMPT, COMPLETION])
            return data.map(
                lambda b: {PROMPT: [prefix + (p or "") for p in b[PROMPT]], COMPLETION: [c or "" for c in b[COMPLETION]],
                           "_source": [source] * len(b[PROMPT])},
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
                raise ValueError(f"multitask.datasets[{i}] ({path.name}) lacks columns {missing} (it has {data.column_names})")
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
                [d for d, _ in kept], probabilities=[w / total for _, w in kept], seed=seed,
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


# --- masked-LM evaluation (cpt on encoders) -------------------------------------------------


@dataclass
class MaskedLmEvalConfig:
    #: columns joined (with ``separator``) into the text when the data has no ``text`` column
    text_fields: List[str] = field(default_factory=lambda: [PROMPT, COMPLETION])
    #: put between the joined text_fields
    separator: str = "\n"
    #: fraction of tokens masked (the same positions for every model: seeded by ``mask_seed``)
    mask_probability: float = 0.15
    #: seed of the masked positions (keep it fixed to compare models on the same positions)
    mask_seed: int = 0
    #: rows scored per forward pass
    batch_size: int = 16
    #: which split to score
    split: str = "test"


class MaskedLmEvaluator(Evaluator):
    """Masked-token loss, its exponent (perplexity over masked tokens) and masked-token
    accuracy on the test split, with the same masked positions for every model compared."""

    scores = ("masked_lm",)

    def __init__(self, config: MaskedLmEvalConfig):
        super().__init__(config)
        if not 0.0 < config.mask_probability < 1.0:
            raise ValueError(f"eval.mask_probability must be in (0, 1), got {config.mask_probability}")
        if config.batch_size < 1:
            raise ValueError(f"eval.batch_size must be positive, got {config.batch_size}")

    def evaluate(self, job: TrainJob, outcome: TrainOutcome) -> dict[str, float]:
        import torch

        c = self.config
        split = evaluation_split(job, c.split)
        tokenizer, model = outcome.tokenizer, outcome.model
        if tokenizer.mask_token_id is None:
            raise ValueError("eval=masked_lm: the tokenizer has no mask token")
        texts = documents(split, c.text_fields, c.separator, "eval=masked_lm")
        enc = tokenizer(texts, truncation=True, max_length=job.settings.max_length)
        special = set(tokenizer.all_special_ids)
        generator = torch.Generator().manual_seed(c.mask_seed)
        device = next(model.parameters()).device
        model.eval()
        total_loss, total, correct = 0.0, 0, 0
        #: per-example scores (mean NLL and accuracy over the row's masked tokens)
        per_row: list[dict[str, Any]] = []
        with torch.no_grad():
            for start in range(0, len(texts), c.batch_size):
                rows = enc["input_ids"][start : start + c.batch_size]
                width = max(len(r) for r in rows)
                ids = torch.full((len(rows), width), tokenizer.pad_token_id or 0, dtype=torch.long)
                attention = torch.zeros_like(ids)
                for i, r in enumerate(rows):
                    ids[i, : len(r)] = torch.tensor(r)
                    attention[i, : len(r)] = 1
                maskable = attention.bool() & ~torch.isin(ids, torch.tensor(sorted(special)))
                chosen = (torch.rand(ids.shape, generator=generator) < c.mask_probability) & maskable
                labels = torch.where(chosen, ids, torch.full_like(ids, -100))
                inputs = torch.where(chosen, torch.full_like(ids, tokenizer.mask_token_id), ids)
                logits = model(input_ids=inputs.to(device), attention_mask=attention.to(device)).logits.float().cpu()
                loss_sum, tokens, hits, scored = token_scores(logits, labels, "masked_accuracy", "masked_tokens")
                total_loss += loss_sum
                total += tokens
                correct += hits
                per_row += scored
        write_example_scores(job, per_row, split)
        loss = total_loss / total if total else float("nan")
        return {
            "test_loss": loss,
            "test_perplexity": math.exp(min(loss, 50.0)) if total else float("nan"),
            "test_masked_accuracy": correct / total if total else float("nan"),
            "test_masked_tokens": total,
            "test_rows": len(texts),
        }


COMPONENTS = [
    ("evaluator", Component("masked_lm", MaskedLmEvaluator, MaskedLmEvalConfig)),
    ("method", Component("cpt", Cpt, CptConfig)),
    ("method", Component("semi_supervised", SemiSupervised, SemiSupervisedConfig)),
    ("method", Component("multitask", Multitask, MultitaskConfig)),
]
