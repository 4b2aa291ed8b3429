"""Runs the data pipeline over ``datasets.Dataset``: the stages, the ledger checks after
each step, and the files a preparation writes (splits, ledger, quarantine, data report).

Stages run in a fixed order — collect, clean, annotate, augment, balance, split — and
the steps inside a stage in the order the config lists them. Each step is one call
into its component (never one call per row); the engine times it and checks the
ledger after it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunelab.api import LABEL, PARENT_ID, PIPELINE_STAGES, ROW_ID, StageContext
from tunelab.config import RunConfig
from tunelab.data.labels import LabelError, normalize_labels
from tunelab.data.ledger import Ledger, LedgerError, StepStats
from tunelab.data.names import (
    Names,
    rename_in_exception,
    row_ids,
    scrub_context,
    scrub_ids,
    scrub_names,
    scrubbed_logs,
    scrubber,
)
from tunelab.errors import TunelabError
from tunelab.plugins import Plugins

log = logging.getLogger(__name__)

SPLITS_DIR = "splits"


class DataError(TunelabError):
    """The data cannot be prepared; the message names the source or step and the fix."""


@contextmanager
def step_errors(stage: str, step: str) -> Iterator[None]:
    """Turn an operator's exception into a DataError that names the step."""
    try:
        yield
    except TunelabError:
        raise
    except (ValueError, TypeError, KeyError, OSError) as exc:
        raise DataError(f"{stage} step '{step}' failed: {exc}") from exc


def _label_counts(data: Any, label_column: str) -> dict[str, int]:
    if label_column not in data.column_names:
        return {}
    return {str(k): v for k, v in sorted(Counter(map(str, data[label_column])).items())}


def run_pipeline(rc: RunConfig, plugins: Plugins, out_dir: Path) -> dict[str, Any]:
    """Run every stage, write splits, ledger, quarantine and report into ``out_dir``.

    When a step fails, the ledger of the steps before it (and the quarantine, once the
    collector has run) are still written, so that the error can point at them.

    With a step that removes personal data (pii), names of files, folders and columns can
    hold it too: they are renamed in the data, the ledger and the reports right after
    collection, and no log line or error of the preparation shows one raw."""
    preparation = _Preparation(rc, plugins.registry, out_dir)
    with preparation.names_hidden(), preparation.ledger_kept_on_failure():
        preparation.collect()
        for stage in PIPELINE_STAGES:  # clean, annotate, augment, balance
            preparation.run_stage(stage)
        preparation.split()
        return preparation.write_outputs()


class _Preparation:
    """One preparation of :func:`run_pipeline`, as named steps: :meth:`collect`, :meth:`run_stage`
    for each stage, :meth:`split`, :meth:`write_outputs`. It holds what the steps share: the
    data so far, the ledger, the steps' statistics, metadata and warnings, and the PII state.

    PII: with a step that removes personal data (a ``scrub`` method, e.g. pii), nothing from
    before it is written raw: the quarantine and the report examples, drop details and
    metadata of the earlier steps go through its detector (its own and later ones see clean
    data); :attr:`scrubbing` is true until that step has run."""

    def __init__(self, rc: RunConfig, registry: Any, out_dir: Path) -> None:
        self.rc = rc
        self.registry = registry
        self.out_dir = out_dir
        self.ledger = Ledger()
        self.steps: list[StepStats] = []
        self.metadata: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.scrub_step, self.scrub, self.scrub_name = scrubber(rc, registry)
        self.scrubbing = self.scrub is not None
        #: the names (paths, sources, columns) that held personal data, with a pii step; else None
        self.names = self._input_names() if self.scrub_name is not None else None
        self.data: Any = None  # the rows so far
        self.labels: Any = None  # the label normalisation (tunelab.data.labels)
        self.collected = self.quarantined = 0  # rows the collector returned, and set aside
        self.splits: dict[str, Any] = {}
        self.total_added = self.total_dropped = self.final = 0  # rows of every step, and in the splits
        self.labels_before: dict[str, int] = {}
        self.labels_after: dict[str, int] = {}
        self.lengths_before: dict[str, dict[str, Any]] = {}
        self.lengths_after: dict[str, dict[str, Any]] = {}

    def _input_names(self) -> Names:
        """The parts of the collector's input paths, renamed where they hold personal data."""
        names = Names(self.scrub_name)
        try:
            for path in self.rc.collector.instantiate(self.registry).input_files():
                names.add(*Path(path).parts)
        except Exception:  # noqa: BLE001 - a source that cannot list its files fails in collect, with its reason
            pass
        return names

    @contextmanager
    def names_hidden(self) -> Iterator[None]:
        """With a pii step: no log line or error of the preparation shows a name that held personal data."""
        if self.names is None:
            yield
            return
        with scrubbed_logs(self.names):
            try:
                yield
            except Exception as exc:
                rename_in_exception(exc, self.names)
                raise

    @contextmanager
    def ledger_kept_on_failure(self) -> Iterator[None]:
        """When a step fails after the collector ran, the ledger so far is written."""
        try:
            yield
        except BaseException:
            if (self.out_dir / "quarantine.jsonl").is_file():  # the collector ran: its quarantine is there
                self.ledger.write(self.out_dir / "ledger.jsonl")
            raise

    def _factory(self, kind: str, name: str, params: dict[str, Any]) -> Any:
        from tunelab.config import ConfigError, Origin, typed_config

        try:
            component = self.registry.get(kind, name)
        except KeyError as exc:
            raise ConfigError(str(exc)) from None
        config = typed_config(
            component.config_schema, params, kind=kind, name=name, origin=Origin(), group=kind, key_prefix=""
        )
        return component.create(config)

    def _context(self, step: str = "") -> StageContext:
        rc = self.rc
        return StageContext(
            seed=rc.data_seed,
            num_proc=rc.num_proc,
            work_dir=self.out_dir,
            label_column=rc.label_column,
            factory=self._factory,
            step=step,
            label_case=rc.label_case,
        )

    def collect(self) -> None:
        """Run the collector; give every row a parent id; check the ids are unique; with a pii
        step, rename the names and ids that hold personal data; normalise the labels; write the
        quarantine; record the step."""
        from datasets import Value

        from tunelab.data.report import length_profile

        rc, scrub, scrub_name, ledger = self.rc, self.scrub, self.scrub_name, self.ledger
        collector = rc.collector.instantiate(self.registry)
        ctx = self._context(rc.collector.name)
        started = time.perf_counter()
        with step_errors("collect", rc.collector.name):
            data = collector.collect(ctx)
        if self.scrubbing:
            scrub_context(ctx, scrub_name)  # the collector's records name files and columns
        if ROW_ID not in data.column_names:
            raise DataError(f"collector '{rc.collector.name}' returned rows without an '{ROW_ID}' column")
        if PARENT_ID not in data.column_names:
            data = data.add_column(PARENT_ID, [None] * len(data))
        data = data.cast_column(PARENT_ID, Value("string"))
        ids, _ = row_ids(data)
        if len(ids) != len(set(ids)):
            dupes = [i for i, n in Counter(ids).items() if n > 1][:5]
            raise DataError((scrub or str)(f"collector '{rc.collector.name}' produced duplicate row ids, e.g. {dupes}"))
        if self.scrubbing:
            data = scrub_names(data, ctx, scrub_name, self.names)
            data, renamed = scrub_ids(data, scrub_name)
            if renamed:
                log.warning(
                    "%d row ids held personal data; they are renamed with placeholders (e.g. %s)",
                    len(renamed),
                    renamed[0],
                )
                ctx.count("row ids renamed (personal data)", len(renamed))
        # labels: one spelling per class, checked once here for every collector (tunelab.data.labels)
        try:
            data, self.labels = normalize_labels(data, rc.label_column, rc.label_case, scrub or str)
        except LabelError as exc:
            raise DataError(f"collect step '{rc.collector.name}': {exc}") from None
        self.warnings += [f"labels: {w}" for w in self.labels.warnings]
        for merge in self.labels.merges:
            ctx.count(f"labels: {merge['why']}", merge["rows"])
        ledger.quarantined("collect", rc.collector.name, ctx.quarantined)
        if ctx.explosions:  # rows exploded from one record's list: the ledger names the record (ids as renamed)
            final_ids = dict(zip(ids, row_ids(data)[0]))
            ledger.exploded(
                "collect",
                rc.collector.name,
                [(final_ids.get(c, c), (scrub or str)(p), (scrub or str)(what)) for c, p, what in ctx.explosions],
            )
        ledger.modified("collect", "labels", self.labels.modifications)
        self.warnings += [f"{rc.collector.name}: {w}" for w in ctx.warnings]
        if ctx.metadata:
            self.metadata[rc.collector.name] = ctx.metadata
        _write_jsonl(self.out_dir / "quarantine.jsonl", ctx.quarantined)
        self.collected = len(data)
        self.quarantined = len(ctx.quarantined)
        self.steps.append(
            StepStats(
                "collect",
                rc.collector.name,
                f"collector/{rc.collector.name}",
                rows_in=self.collected + self.quarantined,
                rows_out=self.collected,
                dropped={"quarantined (unparseable)": self.quarantined} if self.quarantined else {},
                seconds=time.perf_counter() - started,
                counters=dict(ctx.counters),
            )
        )
        if self.collected == 0:
            raise DataError(
                f"collector '{rc.collector.name}' found no usable rows ({self.quarantined} quarantined, see "
                f"{self.out_dir / 'quarantine.jsonl'}). Check data.path and the file format."
            )
        for warning in self.warnings:
            log.warning("%s", warning)
        self.labels_before = _label_counts(data, rc.label_column)
        self.lengths_before = length_profile(data)
        self.data = data

    def run_stage(self, stage: str) -> None:
        """Run the steps of one stage (clean, annotate, augment, balance) in the order the config
        lists them; after annotators, normalise the labels again."""
        rc = self.rc
        for selected in rc.steps[stage]:
            operator = selected.instantiate(self.registry)
            component = f"{selected.kind}/{selected.name}"
            self.data = self._checked_step(stage, selected.step, component, self.data, operator.apply)
        if stage == "annotate" and rc.steps[stage]:  # annotators wrote labels: one spelling per class again
            self.data, relabelled = normalize_labels(self.data, rc.label_column, rc.label_case, self.scrub or str)
            self.ledger.modified("annotate", "labels", relabelled.modifications)
            self.labels.merges += relabelled.merges
            for warning in relabelled.warnings:
                if f"labels: {warning}" not in self.warnings:
                    self.warnings.append(f"labels (after annotation): {warning}")
                    log.warning("labels (after annotation): %s", warning)

    def split(self) -> None:
        """Run the splitter; check the splits it returns, that every input record is in a split,
        dropped or quarantined, and that there are training rows; assign the rows in the ledger."""
        from tunelab.data.report import length_profile

        rc = self.rc
        self.labels_after = _label_counts(self.data, rc.label_column)
        self.lengths_after = length_profile(self.data)
        splitter = rc.splitter.instantiate(self.registry)
        component = f"splitter/{rc.splitter.name}"
        self.splits = splits = self._checked_step("split", rc.splitter.name, component, self.data, splitter.split)
        declared = tuple(getattr(splitter, "splits", ()))
        undeclared = sorted(set(splits) - set(declared)) if declared else []
        if undeclared:
            raise DataError(
                f"the splitter '{rc.splitter.name}' returned splits {undeclared} it does not declare (it declares "
                f"{list(declared)}); the splitter's `splits` class attribute must list every split it makes"
            )

        # the whole-run invariant: every input record is in a split, dropped or quarantined
        self.total_added = sum(s.added for s in self.steps)
        self.total_dropped = sum(s.dropped_total for s in self.steps)
        self.final = sum(len(p) for p in splits.values())
        read = self.collected + self.quarantined
        if read + self.total_added != self.final + self.total_dropped:
            raise LedgerError(
                f"row accounting does not balance: {read} read + {self.total_added} added != "
                f"{self.final} kept + {self.total_dropped} dropped"
            )

        # an empty validation/test split is said now, not when training wants to evaluate on it;
        # a splitter that knows why says so itself (metadata "empty_splits"), a fraction of 0 is meant
        step = rc.splitter.step
        explained = (self.metadata.get(step) or {}).get("empty_splits") or {}
        for name, part in splits.items():
            fraction = getattr(rc.splitter.config, name, None)
            if (
                name == "train"
                or len(part)
                or name in explained
                or (isinstance(fraction, (int, float)) and fraction == 0)
            ):
                continue
            warning = (
                f"{step}: the '{name}' split is empty; a run that evaluates it (eval.split={name}) fails "
                f"before training. Give it rows through the splitter's parameters (pipeline.params.{step})"
            )
            self.warnings.append(warning)
            log.warning("%s", warning)
        self.ledger.assigned({name: list(part[ROW_ID]) for name, part in splits.items()})
        if not len(splits.get("train", [])):
            raise DataError(
                f"the splitter '{rc.splitter.name}' left no training rows (splits: "
                f"{ {name: len(part) for name, part in splits.items()} }); use more data or smaller eval fractions"
            )

    def write_outputs(self) -> dict[str, Any]:
        """Write the splits, the ledger and the data report; return the summary."""
        from datasets import DatasetDict

        from tunelab.data.report import write_data_report

        rc, splits = self.rc, self.splits
        # datasets cannot reload an empty split from disk: save the others, rebuild empties on load
        kept = {name: part for name, part in splits.items() if len(part)}
        DatasetDict(kept).save_to_disk(str(self.out_dir / SPLITS_DIR))
        self.ledger.write(self.out_dir / "ledger.jsonl")
        summary = {
            "rows_read": self.collected + self.quarantined,
            "rows_quarantined": self.quarantined,
            "rows_added": self.total_added,
            "rows_dropped": self.total_dropped,
            "rows_final": self.final,
            "splits": {name: len(part) for name, part in splits.items()},
            "labels_before": self.labels_before,
            "labels_after": self.labels_after,
            "split_labels": {name: _label_counts(part, rc.label_column) for name, part in splits.items()},
            "lengths_before": self.lengths_before,
            "lengths_after": self.lengths_after,
            "metadata": self.metadata,
            "steps": [s.to_dict() for s in self.steps],
            "label_column": rc.label_column or LABEL,
            "label_normalisation": self.labels.to_dict(),
            "warnings": self.warnings,
        }
        write_data_report(summary, self.out_dir)
        return summary

    def _checked_step(self, stage: str, step: str, component: str, data: Any, run: Any) -> Any:
        """Run ``run(data, ctx)`` as one step, time it, and check its ids against the ledger."""
        out_dir, ledger = self.out_dir, self.ledger
        ctx = self._context(step)
        ids_in, _ = row_ids(data)
        started = time.perf_counter()
        with step_errors(stage, step):
            result = run(data, ctx)
        if self.scrubbing:
            if (stage, step) == self.scrub_step:  # the PII step itself reports only redacted text
                self.scrubbing = False
            else:
                scrub_context(ctx, self.scrub)
        seconds = time.perf_counter() - started
        parts = list(result.values()) if isinstance(result, dict) else [result]
        ids_out: list[str] = []
        parents_out: list[str | None] = []
        for part in parts:
            if ROW_ID not in part.column_names or PARENT_ID not in part.column_names:
                raise LedgerError(f"step '{step}' ({stage}) removed the '{ROW_ID}' or '{PARENT_ID}' column")
            part_ids, part_parents = row_ids(part)
            ids_out += part_ids
            parents_out += part_parents
        added, dropped = ledger.check_step(stage, step, ids_in, ids_out, parents_out, ctx)
        ledger.modified(stage, step, ctx.modifications)
        if ctx.quarantined:
            # rows a step set aside for review: dropped (so in the ledger) and listed with the
            # unparseable records, where a user reviews what did not make it into the data
            set_aside = {item.get("id") for item in ctx.quarantined}
            not_dropped = sorted(str(i) for i in set_aside - {i for d in ctx.drops for i in d.ids})
            if not_dropped:
                raise LedgerError(
                    f"step '{step}' ({stage}) quarantined rows it did not drop, e.g. {not_dropped[:5]}; "
                    "a step that sets a row aside must also call ctx.drop(ids, reason) for it"
                )
            _write_jsonl(out_dir / "quarantine.jsonl", ctx.quarantined, append=True)
        self.steps.append(
            StepStats(
                stage,
                step,
                component,
                rows_in=len(ids_in),
                rows_out=len(ids_out),
                added=added,
                dropped=dropped,
                seconds=seconds,
                counters=dict(ctx.counters),
                examples=ctx.examples,
            )
        )
        if ctx.metadata:
            self.metadata[step] = ctx.metadata
        for warning in ctx.warnings:
            self.warnings.append(f"{step}: {warning}")
            log.warning("%s: %s", step, warning)
        log.info("%s/%s: %d -> %d rows (%.2fs)", stage, step, len(ids_in), len(ids_out), seconds)
        if not ids_out:
            raise DataError(
                f"no rows left after step '{step}' ({stage}); see the drop reasons in "
                f"{out_dir / 'ledger.jsonl'}. Loosen that step's parameters or remove it from pipeline.{stage}."
            )
        return result


def _write_jsonl(path: Path, rows: list[dict[str, Any]], append: bool = False) -> None:
    with path.open("a" if append else "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
