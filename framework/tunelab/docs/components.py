"""The component pages of the reference: one page per kind with, for every component, who
supplies it, what it does, how a config selects it (from the option files of the config
groups), what it declares for the compatibility check, and every config field with its type,
default and doc comment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.api import KIND_TABLE, field_default, schema_fields
from tunelab.docs.fields import field_docs, own_docstring, qualified_name, rst_to_markdown, table_cell, type_name
from tunelab.docs.pages import GENERATED_NOTE, HOOKS_PAGE, ReferencePagesError
from tunelab.plugins import Plugins, RegisteredComponent

#: config groups read to find the options that select each component
SCANNED_GROUPS = ("data", "pipeline", "augment", "model", "method", "peft", "eval", "tracker")


# --- the config groups -------------------------------------------------------------


@dataclass(frozen=True)
class ConfOption:
    """One option file of a config group, e.g. ``conf/peft/lora.yaml``."""

    group: str
    option: str
    #: how the page shows where it is, e.g. ``conf/peft/lora.yaml``
    shown: str
    values: Any


def _load_yaml(path: Path) -> Any:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as exc:  # a broken file must say which file
        raise ReferencePagesError(f"cannot read config file {path}: {exc}") from None


def scan_config_dir(root: Path, label: str) -> list[ConfOption]:
    """Option files of the scanned groups under a config directory."""
    options: list[ConfOption] = []
    for group in SCANNED_GROUPS:
        directory = root / group
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.yaml")):
            options.append(ConfOption(group, path.stem, f"{label}/{group}/{path.name}", _load_yaml(path)))
    return options


def config_options(plugins: Plugins, all_plugins: bool) -> list[ConfOption]:
    """tunelab's own config groups, plus (with ``all_plugins``) the plugins' search paths."""
    from tunelab.app import conf_dir

    options = scan_config_dir(conf_dir(), "conf")
    if not all_plugins:
        return options
    for search_path in plugins.config_search_paths():
        root: Path | None = None
        if search_path.startswith("file://"):
            root = Path(search_path[len("file://") :])
        elif search_path.startswith("pkg://"):
            import importlib.resources

            try:
                root = Path(str(importlib.resources.files(search_path[len("pkg://") :].replace("/", "."))))
            except ModuleNotFoundError:
                root = None
        if root is not None and root.is_dir():
            options.extend(scan_config_dir(root, search_path))
    return options


def _steps(values: Any, key: str) -> list[str]:
    listed = values.get(key) if isinstance(values, dict) else None
    return [str(step).split("@", 1)[0] for step in listed] if isinstance(listed, list) else []


@dataclass
class Selection:
    """How a config selects a component and where its parameters go."""

    #: Markdown lines
    lines: list[str] = field(default_factory=list)
    #: the option file whose values are shown next to the schema defaults
    preset: ConfOption | None = None


def _code_list(items: Iterable[str]) -> str:
    return ", ".join(f"`{item}`" for item in items)


def selection(component: RegisteredComponent, options: list[ConfOption]) -> Selection:
    out = Selection()
    _selection_lines(component, options, out)
    if not schema_fields(component.config_schema):  # nothing to set
        out.lines = [line for line in out.lines if not line.startswith("- **Parameters:**")]
    return out


def _selection_lines(component: RegisteredComponent, options: list[ConfOption], out: Selection) -> None:
    kind, name = component.kind, component.name
    group, stage = KIND_TABLE[kind].group, KIND_TABLE[kind].stage
    if group:
        matching = [
            o for o in options if o.group == group and isinstance(o.values, dict) and o.values.get("name") == name
        ]
        matching.sort(key=lambda o: (o.option != name, o.option))
        if matching:
            out.preset = matching[0]
            out.lines.append(
                f"- **Select:** {_code_list(f'{group}={o.option}' for o in matching)} "
                f"({_code_list(o.shown for o in matching)})"
            )
        else:
            out.lines.append(
                f"- **Select:** no option of the `{group}` group selects it; a config file `{group}/<option>.yaml` "
                f"with `name: {name}` in a config search path does (see [plugins](../plugins.md))"
            )
        out.lines.append(f"- **Parameters:** `{group}.<field>=<value>`")
    elif KIND_TABLE[kind].steps:
        out.lines.append(f"- **Select:** add it to `pipeline.{stage}`, e.g. `pipeline.{stage}=[{name}]`")
        if kind == "augmenter":
            presets = [o for o in options if o.group == "augment" and name in _steps(o.values, "augment")]
            if presets:
                out.preset = next((o for o in presets if o.option == name), None)
                out.lines.append(f"- **Augment presets:** {_code_list(f'augment={o.option}' for o in presets)}")
        pipelines = [o for o in options if o.group == "pipeline" and name in _steps(o.values, stage)]
        if pipelines:
            out.lines.append(f"- **In pipelines:** {_code_list(f'pipeline={o.option}' for o in pipelines)}")
        out.lines.append(
            f"- **Parameters:** `pipeline.params.{name}.<field>=<value>` (a leading `+` for a key "
            "the selected pipeline file does not list)"
        )
    elif kind == "splitter":
        out.lines.append(f"- **Select:** `pipeline.split={name}`")
        pipelines = [
            o for o in options if o.group == "pipeline" and isinstance(o.values, dict) and o.values.get("split") == name
        ]
        if pipelines:
            out.lines.append(f"- **In pipelines:** {_code_list(f'pipeline={o.option}' for o in pipelines)}")
        out.lines.append(
            f"- **Parameters:** `pipeline.params.{name}.<field>=<value>` (a leading `+` for a key "
            "the selected pipeline file does not list)"
        )
    elif kind == "tracker":
        files = [o for o in options if o.group == "tracker" and isinstance(o.values, dict) and name in o.values]
        files.sort(key=lambda o: (o.option != name, o.option))
        if files:
            out.preset = files[0]
            option = files[0].option
            together = f", or with others, e.g. `tracker=[csv,{option}]`" if option != "csv" else ""
            out.lines.append(f"- **Select:** `tracker=[{option}]`{together} ({_code_list(o.shown for o in files)})")
        else:
            out.lines.append(
                f"- **Select:** no option of the `tracker` group selects it; a config file `tracker/{name}.yaml` "
                f"holding `{name}: {{}}` in a config search path does (see [plugins](../plugins.md))"
            )
        out.lines.append(f"- **Parameters:** `tracker.{name}.<field>=<value>`")


def _preset_values(component: RegisteredComponent, preset: ConfOption | None) -> dict[str, Any]:
    if preset is None or not isinstance(preset.values, dict):
        return {}
    values = preset.values
    if component.kind == "tracker":
        values = values.get(component.name) or {}
    elif component.kind == "augmenter":
        values = ((values.get("params") or {}).get(component.name)) or {}
    return values if isinstance(values, dict) else {}


# --- compatibility declarations ----------------------------------------------------


def _tuple_text(values: Iterable[str], empty: str) -> str:
    values = list(values)
    return _code_list(values) if values else empty


def compatibility(component: RegisteredComponent) -> list[str]:
    """What a component declares for the approach check (tunelab/train/compat.py)."""
    cls, kind = component.cls, component.kind
    lines: list[str] = []
    if kind == "model":
        lines.append(f"- **Loads as (tasks):** {_tuple_text(getattr(cls, 'tasks', ()), 'nothing')}")
        lines.append(
            f"- **Quantizable (4-bit base for QLoRA):** {'yes' if getattr(cls, 'quantizable', False) else 'no'}"
        )
    elif kind == "method":
        lines.append(f"- **Trains (task):** `{cls.task}`")
        alternatives = tuple(getattr(cls, "alternative_tasks", ()))
        if alternatives:
            lines.append(
                f"- **Alternative tasks (when the model cannot serve `{cls.task}`):** {_code_list(alternatives)}"
            )
        produced = getattr(cls, "produces", None)
        lines.append(f"- **Produces:** {f'`{produced}`' if produced else 'a model of the task it trained'}")
        lines.append(f"- **Required columns:** {_tuple_text(getattr(cls, 'required_columns', ()), 'none')}")
        unsupported = dict(getattr(cls, "unsupported_peft", {}) or {})
        if unsupported:
            lines.append("- **Refuses peft:**")
            for option in sorted(unsupported):
                shown = "every option except `none`" if option == "*" else f"`peft={option}`"
                lines.append(f"  - {shown}: {unsupported[option]}")
        else:
            lines.append("- **Refuses peft:** none")
    elif kind == "peft":
        lines.append(f"- **Adapts models loaded as (tasks):** {_tuple_text(getattr(cls, 'tasks', ()), 'nothing')}")
        if getattr(cls, "load_in_4bit", False):
            lines.append("- **Trains on a 4-bit base:** yes (needs a quantizable model loader and a CUDA GPU)")
    elif kind == "evaluator":
        lines.append(f"- **Scores:** {_tuple_text(getattr(cls, 'scores', ()), 'any model')}")
        lines.append(f"- **Required columns:** {_tuple_text(getattr(cls, 'required_columns', ()), 'none')}")
    return lines


# --- rendering ---------------------------------------------------------------------


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, tuple):
        a = list(a)
    try:
        return bool(a != b)
    except Exception:  # e.g. an array default: compare what the page shows
        return repr(a) != repr(b)


def _value(value: Any) -> str:
    if isinstance(value, str) and value == "???":
        return "*required*"
    text = repr(value)
    return f"`{table_cell(text)}`"


def _fields_table(component: RegisteredComponent, preset: ConfOption | None) -> list[str]:
    fields = schema_fields(component.config_schema)
    if not fields:
        return ["Takes no parameters."]
    docs = field_docs(component.config_schema)
    preset_values = _preset_values(component, preset)
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for f in fields:
        default = field_default(f)
        shown = _value(default)
        if preset is not None and f.name in preset_values:
            in_file = preset_values[f.name]
            if _differs(default, in_file):
                shown += f" (`{preset.shown}`: {_value(in_file)})"
        rows.append(
            f"| `{f.name}` | `{table_cell(type_name(f.type))}` | {shown} | "
            f"{table_cell(rst_to_markdown(docs.get(f.name, '')))} |"
        )
    return rows


def summary(component: RegisteredComponent) -> str:
    """One paragraph: the registered description, else the docstring's first paragraph."""
    explicit = component.component.description.strip()
    first = own_docstring(component.cls).split("\n\n")[0]
    return rst_to_markdown(explicit or " ".join(first.split()))


def render_component(component: RegisteredComponent, options: list[ConfOption]) -> list[str]:
    supplier = component.supplier
    lines = [f"## `{component.name}`", ""]
    explicit = rst_to_markdown(component.component.description.strip())
    docstring = rst_to_markdown(own_docstring(component.cls))
    if explicit and not docstring.startswith(explicit):
        lines += [explicit, ""]
    if docstring:
        lines += [docstring, ""]
    if not explicit and not docstring:
        lines += ["*(no description: the class has no docstring)*", ""]
    select = selection(component, options)
    lines.append(f"- **Supplied by:** `{supplier.distribution}` {supplier.version} (plugin `{supplier.plugin}`)")
    lines.append(f"- **Class:** `{qualified_name(component.cls)}`")
    if component.config_schema is not None:
        lines.append(f"- **Config schema:** `{qualified_name(component.config_schema)}`")
    lines += select.lines
    lines += compatibility(component)
    lines.append("")
    lines += _fields_table(component, select.preset)
    lines.append("")
    return lines


def render_kind(kind: str, components: list[RegisteredComponent], options: list[ConfOption]) -> str:
    info = KIND_TABLE[kind]
    hook = info.hook
    lines = [
        GENERATED_NOTE,
        "",
        f"# {info.title}",
        "",
        info.intro,
        "",
        f"Contract: `tunelab.api.{info.contract.__name__}`; registered through [`{hook}`]({HOOKS_PAGE}#{hook}). "
        "A plugin adds one the same way ([writing a plugin](../plugins.md)).",
        "",
    ]
    if not components:
        lines += ["No component of this kind is registered.", ""]
        return "\n".join(lines)
    lines += ["| name | supplied by | description |", "|---|---|---|"]
    for component in components:
        lines.append(
            f"| [`{component.name}`](#{component.name}) | `{component.supplier.distribution}` "
            f"| {table_cell(summary(component))} |"
        )
    lines.append("")
    for component in components:
        lines += render_component(component, options)
    return "\n".join(lines)
