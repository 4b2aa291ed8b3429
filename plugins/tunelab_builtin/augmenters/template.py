"""The ``template`` augmenter: synthetic rows from templates with {slot} placeholders, for
a given label; each generated row's parent is a row of that label."""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass, field
from typing import Any, Optional

from tunelab.api import CANONICAL_TEXT_COLUMNS, PARENT_ID, PROMPT, ROW_ID, Augmenter, StageContext
from tunelab_builtin._lib.rows import append_rows, row_rng, take_rows
from tunelab_builtin.augmenters._base import with_lineage

log = logging.getLogger(__name__)


def _placeholders(template: str, where: str) -> set[str]:
    names = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc} in {template!r} (write a literal brace as {{{{ or }}}})") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"{where}: placeholder {{{name}}} must be a plain {{slot_name}} in {template!r}")
        names.add(name)
    return names


@dataclass
class TemplateConfig:
    #: templates with {slot} placeholders: a string (fills ``column``) or a mapping column -> string
    #: (e.g. a prompt/completion pair)
    templates: list[Any] = field(default_factory=list)
    #: values of each slot (text or numbers), e.g. {item: [tent, stove], days: [14, 30]}
    slots: dict[str, list[Any]] = field(default_factory=dict)
    #: label of the generated rows; a row with this label is each one's parent.
    #: None only for data without a label column
    label: Optional[str] = None
    #: rows to generate (fewer when the templates and slots cannot make that many distinct texts)
    count: int = 10
    #: the column a plain-string template fills
    column: str = PROMPT


class Template(Augmenter):
    """Synthetic rows from templates with {slot} placeholders, for a given label."""

    op = "template"

    def __init__(self, config: TemplateConfig):
        super().__init__(config)
        if not config.templates:
            raise ValueError(
                "template.templates must list at least one template, e.g. templates=['Where is my {item}?']"
            )
        self.templates: list[dict[str, str]] = []
        needed: set[str] = set()
        for n, entry in enumerate(config.templates):
            where = f"template.templates[{n}]"
            mapping = {config.column: entry} if isinstance(entry, str) else entry
            if (
                not isinstance(mapping, dict)
                or not mapping
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items())
            ):
                raise ValueError(f"{where} must be a string or a mapping of column -> string, got {entry!r}")
            for text in mapping.values():
                needed |= _placeholders(text, where)
            self.templates.append(dict(mapping))
        columns = {tuple(sorted(t)) for t in self.templates}
        if len(columns) > 1:
            raise ValueError(f"template.templates must all fill the same columns, got {sorted(columns)}")
        missing = sorted(needed - set(config.slots))
        if missing:
            raise ValueError(
                f"template.slots has no values for placeholder(s) {missing}; add template.slots.{missing[0]}=[...]"
            )
        empty = sorted(name for name in needed if not config.slots[name])
        if empty:
            raise ValueError(f"template.slots.{empty[0]} is empty; give it at least one value")
        for name in needed:
            nested = [v for v in config.slots[name] if not isinstance(v, (str, int, float))]
            if nested:
                raise ValueError(f"template.slots.{name} must list text or numbers, got {nested[0]!r}")
        if config.count < 1:
            raise ValueError(f"template.count must be at least 1, got {config.count}")
        self.slot_names = sorted(needed)

    def apply(self, data: Any, ctx: StageContext) -> Any:
        data = with_lineage(data, self.op)
        c = self.config
        filled_columns = sorted(self.templates[0])
        absent = [col for col in filled_columns if col not in data.column_names]
        if absent:
            raise ValueError(
                f"template: the templates fill column(s) {absent}, which the data lacks (columns: {data.column_names})"
            )
        unfilled = [col for col in CANONICAL_TEXT_COLUMNS if col in data.column_names and col not in filled_columns]
        if unfilled:
            raise ValueError(
                f"template: the templates fill {filled_columns} but the data also has text column(s) {unfilled}; a "
                "generated row would keep its parent's text there, which does not match. "
                "Give each template as a mapping "
                "of every text column, e.g. templates=[{prompt: '...', completion: '...'}]"
            )
        ids = list(data[ROW_ID])
        parents = list(data[PARENT_ID])
        if ctx.label_column in data.column_names:
            if c.label is None:
                raise ValueError(
                    f"template.label is required: the data has the label column '{ctx.label_column}' "
                    "and generated rows need one"
                )
            labels = [None if v is None else str(v) for v in data[ctx.label_column]]
            matching = [i for i, label in enumerate(labels) if label == c.label]
            if not matching:
                present = sorted({label for label in labels if label is not None})
                raise ValueError(
                    f"template: no row has label {c.label!r} in column '{ctx.label_column}', "
                    "so no generated row can have "
                    f"a parent of that label (labels present: {present}); set template.label to one of them"
                )
        elif c.label is not None:
            raise ValueError(
                f"template.label is {c.label!r} but the data has no label column '{ctx.label_column}'; "
                "set pipeline.label_column to the label column, or leave template.label empty"
            )
        else:
            matching = list(range(len(ids)))
        if not matching:
            raise ValueError("template: the data has no rows, so generated rows would have no parent")
        # parents are preferably originals, and chosen by id so the row order does not matter
        pool = sorted((i for i in matching if parents[i] is None), key=ids.__getitem__) or sorted(
            matching, key=ids.__getitem__
        )
        existing = set(zip(*(list(data[col]) for col in filled_columns)))
        taken = set(ids)
        picks: list[tuple[int, dict[str, str]]] = []
        duplicates = 0
        attempt = 0
        while len(picks) < c.count and attempt < 20 * c.count:
            rng = row_rng(ctx.seed, self.op, c.label, attempt)
            attempt += 1
            template = rng.choice(self.templates)
            values = {name: str(rng.choice(c.slots[name])) for name in self.slot_names}
            filled = {col: template[col].format_map(values) for col in filled_columns}
            signature = tuple(filled[col] for col in filled_columns)
            if signature in existing:
                duplicates += 1
                continue
            existing.add(signature)
            picks.append((pool[rng.randrange(len(pool))], filled))
        rows = take_rows(data, [index for index, _ in picks]).to_list() if picks else []
        children = []
        for (index, filled), row in zip(picks, rows):
            number = 1
            while f"{ids[index]}~{self.op}{number}" in taken:
                number += 1
            child_id = f"{ids[index]}~{self.op}{number}"
            taken.add(child_id)
            children.append({**row, **filled, ROW_ID: child_id, PARENT_ID: ids[index]})
            ctx.example(child_id, "(template)", filled[filled_columns[0]])
        ctx.count("rows_generated", len(children))
        if duplicates:
            ctx.count("skipped_duplicate", duplicates)
        if len(children) < c.count:
            log.warning(
                "template: made %d of %d rows; the templates and slots allow no more distinct texts",
                len(children),
                c.count,
            )
        ctx.metadata["generated"] = {"label": c.label, "rows": len(children), "requested": c.count}
        return append_rows(data, children)
