"""Reference pages generated from the plugin registry and the hook specifications.

    tunelab docs reference [--out docs/reference] [--check] [--all]

One Markdown page per component kind (every registered component: who supplies it, what
it does, how a config selects it, every config field with type, default and doc comment,
and what it declares for the compatibility check), a page of hooks, and an index.

Field doc comments are the ``#:`` comments directly above a dataclass field (or after it
on the same line), read from the source with :mod:`tokenize` and :mod:`ast`; a string
literal right after a field counts too. Descriptions are class docstrings.

The output is deterministic: sorted, no timestamps, and by default only the components of
tunelab's own distribution (so an external plugin installed in the environment does not
make ``--check`` fail); ``--all`` documents every installed plugin.

The modules: :mod:`~tunelab.docs.fields` (doc comments, docstrings, reStructuredText to
Markdown), :mod:`~tunelab.docs.components` (the page of each component kind),
:mod:`~tunelab.docs.hooks` (the hooks page) and :mod:`~tunelab.docs.pages` (names shared by
the pages); this module renders the index, writes and checks the pages (:func:`main`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import ModuleType

from tunelab.api import KIND_TABLE, KINDS
from tunelab.docs.components import config_options, render_kind
from tunelab.docs.hooks import hookspecs_of, render_hooks
from tunelab.docs.pages import GENERATED_NOTE, HOOKS_PAGE, INDEX_PAGE, REGENERATE, ReferencePagesError, page_of
from tunelab.plugins import BUILTIN_DISTRIBUTION, Plugins, RegisteredComponent


def render_index(by_kind: dict[str, list[RegisteredComponent]], hook_names: list[str], distributions: list[str]) -> str:
    lines = [
        GENERATED_NOTE,
        "",
        "# Reference",
        "",
        "Every registered component and every hook, generated from the plugin registry "
        f"(components of {', '.join(distributions) or 'no distribution'}). Each page lists, per "
        "component, the distribution that supplies it, what it does, how a config selects it, every "
        "config field with its type, default and meaning, and what it declares for the check that "
        "refuses an approach that cannot work before any data or model is touched.",
        "",
        "| page | components |",
        "|---|---|",
    ]
    for kind in KINDS:
        info, page = KIND_TABLE[kind], page_of(kind)
        names = ", ".join(f"[`{c.name}`]({page}#{c.name})" for c in by_kind[kind]) or "none"
        lines.append(f"| [{info.title}]({page}) | {names} |")
    lines.append(f"| [Hooks]({HOOKS_PAGE}) | {len(hook_names)} hooks |")
    lines += [
        "",
        "The pages are regenerated from the code, and CI checks that they are current:",
        "",
        "```bash",
        "tunelab docs reference           # rewrite docs/reference/",
        "tunelab docs reference --check   # exit 1 naming every stale or missing page",
        "```",
        "",
        "`tunelab plugins --fields` lists the same components (and those of every installed plugin) in the terminal.",
        "",
    ]
    return "\n".join(lines)


def render(
    plugins: Plugins | None = None, all_plugins: bool = False, hooks_module: ModuleType | None = None
) -> dict[str, str]:
    """File name -> Markdown text of every reference page."""
    from tunelab import hookspecs
    from tunelab.plugins import get_plugins

    plugins = plugins or get_plugins()
    hooks_module = hooks_module or hookspecs
    options = config_options(plugins, all_plugins)
    by_kind: dict[str, list[RegisteredComponent]] = {kind: [] for kind in KINDS}
    distributions: set[str] = set()
    for component in plugins.registry:  # kinds in pipeline order, names sorted
        if not all_plugins and component.supplier.distribution != BUILTIN_DISTRIBUTION:
            continue
        by_kind[component.kind].append(component)
        distributions.add(f"`{component.supplier.distribution}` {component.supplier.version}")
    pages = {page_of(kind): render_kind(kind, by_kind[kind], options) for kind in KINDS}
    pages[HOOKS_PAGE] = render_hooks(hooks_module)
    pages[INDEX_PAGE] = render_index(by_kind, [name for name, _ in hookspecs_of(hooks_module)], sorted(distributions))
    return {name: text.rstrip("\n") + "\n" for name, text in sorted(pages.items())}


# --- writing and checking ----------------------------------------------------------


def write(out: Path, pages: dict[str, str]) -> list[Path]:
    """Write the pages; return the ones whose content changed."""
    out.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in pages.items():
        path = out / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


_HEADING = re.compile(r"^## `?([^`\n]+)`?\s*$", re.M)


def _headings(text: str) -> list[str]:
    return _HEADING.findall(text)


def check(out: Path, pages: dict[str, str]) -> list[str]:
    """One line per page that is missing, stale or not generated; empty when all match."""
    if not out.is_dir():
        return [f"{out}: no such directory (run in the repository root, or pass --out); {REGENERATE}"]
    problems = []
    for name, expected in pages.items():
        path = out / name
        if not path.is_file():
            problems.append(f"{path}: missing; {REGENERATE}")
            continue
        found = path.read_text(encoding="utf-8")
        if found == expected:
            continue
        want, have = _headings(expected), _headings(found)
        missing = [h for h in want if h not in have]
        extra = [h for h in have if h not in want]
        details = []
        if missing:
            details.append(f"not documented: {', '.join(missing)}")
        if extra:
            details.append(f"documented but not registered: {', '.join(extra)}")
        if not details:
            expected_lines, found_lines = expected.splitlines(), found.splitlines()
            line = next(
                (i for i, (a, b) in enumerate(zip(expected_lines, found_lines)) if a != b),
                min(len(expected_lines), len(found_lines)),
            )
            section = next((h for h in reversed(_headings("\n".join(expected_lines[: line + 1])))), None)
            where = f" (in section {section})" if section else ""
            want_line = expected_lines[line] if line < len(expected_lines) else "<end of file>"
            have_line = found_lines[line] if line < len(found_lines) else "<end of file>"
            details.append(
                f"differs from line {line + 1}{where}: expected {want_line[:120]!r}, found {have_line[:120]!r}"
            )
        problems.append(f"{path}: stale ({'; '.join(details)}); {REGENERATE}")
    for path in sorted(out.glob("*.md")):
        if path.name not in pages:
            problems.append(f"{path}: not a generated page (no such component kind); remove it or move it out of {out}")
    return problems


def main(out: Path, *, check_only: bool = False, all_plugins: bool = False) -> int:
    """The ``tunelab docs reference`` command; returns its exit code."""
    from tunelab.plugins import get_plugins

    plugins = get_plugins()
    for plugin, reason in sorted(plugins.registry.failed.items()):
        print(f"skipped plugin '{plugin}': {reason}", file=sys.stderr)
    try:
        pages = render(plugins, all_plugins=all_plugins)
    except ReferencePagesError as exc:
        print(f"tunelab docs reference: {exc}", file=sys.stderr)
        return 2
    if check_only:
        problems = check(out, pages)
        for problem in problems:
            print(f"tunelab docs reference: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"tunelab docs reference: {len(pages)} pages in {out} are current")
        return 0
    changed = write(out, pages)
    stray = [p.name for p in sorted(out.glob("*.md")) if p.name not in pages]
    print(f"tunelab docs reference: wrote {len(pages)} pages to {out} ({len(changed)} changed)")
    if stray:
        print(
            f"tunelab docs reference: {out} also holds pages it does not generate: {', '.join(stray)}", file=sys.stderr
        )
    return 0
