"""Reading the code for the reference pages: the ``#:`` doc comments of config dataclass
fields (read from the source with :mod:`tokenize` and :mod:`ast`; a string literal right after
a field counts too), class docstrings, type and class names, and the little reStructuredText
our docstrings use turned into Markdown.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
from typing import Any


def _comments_by_line(source: str) -> dict[int, tuple[int, str]]:
    """line number -> (column, text) of each ``#`` comment in ``source``."""
    found: dict[int, tuple[int, str]] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                found[token.start[0]] = (token.start[1], token.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return found


def _class_field_docs(cls: type) -> dict[str, str]:
    """Doc comments of the fields a class body declares (not inherited ones)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):  # built in memory, or no source shipped
        return {}
    classdef = next((node for node in tree.body if isinstance(node, ast.ClassDef)), None)
    if classdef is None:
        return {}
    lines = source.splitlines()
    comments = _comments_by_line(source)
    docs: dict[str, str] = {}
    body = classdef.body
    for index, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        parts: list[str] = []
        line = node.lineno - 1  # 1-based number of the line above the field
        above: list[str] = []
        while line >= 1:
            text = lines[line - 1].strip()
            if not text.startswith("#:"):
                break
            above.insert(0, text[2:].strip())
            line -= 1
        parts.extend(above)
        trailing = comments.get(node.end_lineno or node.lineno)
        if (
            trailing
            and trailing[1].startswith("#:")
            and lines[(node.end_lineno or node.lineno) - 1][: trailing[0]].strip()
        ):
            parts.append(trailing[1][2:].strip())
        following = body[index + 1] if index + 1 < len(body) else None
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            parts.append(inspect.cleandoc(following.value.value))
        text = " ".join(part for part in parts if part)
        if text:
            docs[node.target.id] = text
    return docs


def field_docs(schema: type | None) -> dict[str, str]:
    """Field name -> doc comment for a config dataclass, inherited fields included."""
    if schema is None:
        return {}
    docs: dict[str, str] = {}
    for klass in reversed(schema.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        docs.update(_class_field_docs(klass))
    return docs


_ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj|py:\w+):`(~?)([^`]+)`")


#: a literal block: a paragraph ending in ``::``, a blank line, then indented lines
_LITERAL_BLOCK = re.compile(r"::\n\n((?:(?: {4}.*)?\n)*(?: {4}.*))")


def rst_to_markdown(text: str) -> str:
    """The little reStructuredText our docstrings use, as Markdown (literal blocks after
    ``::`` become fenced Python blocks)."""
    pieces = _LITERAL_BLOCK.split(text)
    # split() alternates prose and the captured blocks
    return "".join(
        _inline_to_markdown(piece) + (":\n\n" if index + 1 < len(pieces) else "")
        if index % 2 == 0
        else "```python\n" + textwrap.dedent(piece).strip("\n") + "\n```"
        for index, piece in enumerate(pieces)
    )


def _inline_to_markdown(text: str) -> str:
    def role(match: re.Match[str]) -> str:
        target = match.group(2)
        if match.group(1):  # ~a.b.C shows C
            target = target.rsplit(".", 1)[-1]
        return f"`{target}`"

    text = _ROLE.sub(role, text)
    text = re.sub(r"``(.+?)``", r"`\1`", text, flags=re.S)
    # outside code spans, <placeholders> would be dropped as HTML, * would start emphasis
    # and [text](url) would become a link
    pieces = re.split(r"(`[^`]*`)", text)
    return "".join(
        piece
        if piece.startswith("`")
        else piece.replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*").replace("[", "\\[")
        for piece in pieces
    )


def own_docstring(cls: type) -> str:
    """The class's own docstring (not one inherited from the contract base class)."""
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def type_name(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def qualified_name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def table_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
