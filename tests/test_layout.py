"""The shape of the code: the core never imports a built-in component, and every built-in
lives in its kind's package, in a file named after it (or in a family file that
docs/architecture.md lists)."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

from tunelab.api import KIND_TABLE
from tunelab.plugins import BUILTIN_DISTRIBUTION, get_plugins

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "framework" / "tunelab"
BUILTIN = ROOT / "plugins" / "tunelab_builtin"


def _imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` statement in the file names, at any depth (lazy imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_core_module_imports_a_builtin():
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in _imported_modules(path) if m.split(".")[0] == "tunelab_builtin")
        for path in sorted(CORE.rglob("*.py"))
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}
    # and nothing names the package as a string to import it dynamically
    assert [p.name for p in CORE.rglob("*.py") if "tunelab_builtin" in p.read_text()] == []


def test_importing_every_core_module_loads_no_builtin():
    modules = sorted(
        ".".join(("tunelab", *path.relative_to(CORE).with_suffix("").parts)).removesuffix(".__init__")
        for path in CORE.rglob("*.py")
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tunelab_builtin'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _family_files() -> dict[str, set[str]]:
    """`<plural>/<file>.py` -> the component names docs/architecture.md says it holds."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    return {
        match.group(1): set(re.findall(r"`(\w+)`", match.group(2)))
        for match in re.finditer(r"^- `(\w+/\w+\.py)` holds (.+)$", text, flags=re.M)
    }


def test_every_builtin_lives_in_its_kinds_package_in_a_file_named_after_it():
    families = _family_files()
    misplaced = []
    for component in get_plugins().registry:
        if component.supplier.distribution != BUILTIN_DISTRIBUTION:
            continue
        kind = KIND_TABLE[component.kind]
        module = component.component.cls.__module__
        package, _, stem = module.rpartition(".")
        file = f"{kind.plural}/{stem}.py"
        if package != f"tunelab_builtin.{kind.plural}" or not (BUILTIN / file).is_file():
            misplaced.append(f"{component.kind} {component.name}: {module}")
        elif stem != component.name and component.name not in families.get(file, set()):
            misplaced.append(f"{component.kind} {component.name}: in {file}, which docs/architecture.md does not list")
    assert misplaced == []


def test_each_kind_package_lists_exactly_the_builtins_of_its_kind():
    registry = get_plugins().registry
    for kind in KIND_TABLE.values():
        package = importlib.import_module(f"tunelab_builtin.{kind.plural}")
        listed = [c.name for c in package.COMPONENTS]
        assert len(listed) == len(set(listed)), kind.name
        builtins = {c.name for c in registry if c.kind == kind.name and c.supplier.distribution == BUILTIN_DISTRIBUTION}
        assert set(listed) == builtins, kind.name
