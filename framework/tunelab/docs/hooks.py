"""The hooks page of the reference: every hook specification with its signature as written,
its docstring, the kind of component it registers and how it is called.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tunelab.api import KIND_TABLE
from tunelab.docs.fields import rst_to_markdown, table_cell
from tunelab.docs.pages import GENERATED_NOTE, page_of


def hookspecs_of(module: ModuleType, project: str = "tunelab") -> list[tuple[str, Callable[..., Any]]]:
    """(name, function) of every hook specification in ``module``, in definition order."""
    marker = f"{project}_spec"
    return [(name, fn) for name, fn in vars(module).items() if callable(fn) and hasattr(fn, marker)]


def hook_signature(fn: Callable[..., Any]) -> str:
    """``name(arg: Type, ...) -> Return`` as written in the source."""
    try:
        node = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        node = None
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
        return f"{fn.__name__}({ast.unparse(node.args)}){returns}"
    return f"{fn.__name__}{inspect.signature(fn)}"


def render_hooks(module: ModuleType) -> str:
    kind_of_hook = {kind.hook: kind.name for kind in KIND_TABLE.values()}
    lines = [
        GENERATED_NOTE,
        "",
        "# Hooks",
        "",
        f"Specified in `{module.__name__}`. A plugin implements a hook by defining a function of the "
        "same name marked with `tunelab.api.hookimpl` ([writing a plugin](../plugins.md)).",
        "",
    ]
    intro = rst_to_markdown(inspect.cleandoc(module.__doc__ or ""))
    if intro:
        lines += [intro, ""]
    specs = hookspecs_of(module)
    lines += ["| hook | summary |", "|---|---|"]
    for name, fn in specs:
        summary = rst_to_markdown(inspect.cleandoc(fn.__doc__ or "").split("\n\n")[0])
        lines.append(f"| [`{name}`](#{name}) | {table_cell(summary)} |")
    lines.append("")
    for name, fn in specs:
        lines += [f"## `{name}`", "", "```python", hook_signature(fn), "```", ""]
        doc = rst_to_markdown(inspect.cleandoc(fn.__doc__ or ""))
        lines += [doc or "*(no docstring)*", ""]
        kind = kind_of_hook.get(name)
        if kind is not None:
            lines += [f"Registers: [{KIND_TABLE[kind].title.lower()}]({page_of(kind)}).", ""]
        opts = getattr(fn, "tunelab_spec", {}) or {}
        flags = [
            label
            for key, label in (
                ("firstresult", "the first non-None result wins"),
                ("historic", "historic: late registrations get past calls"),
            )
            if opts.get(key)
        ]
        if flags:
            lines += [f"Call: {'; '.join(flags)}.", ""]
    return "\n".join(lines)
