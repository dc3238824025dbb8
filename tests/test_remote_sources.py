"""The _remote package is shipped as source: stdlib only, and Python 3.8 syntax."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import execnet_cli._remote as remote_pkg
from execnet_cli import bootstrap

REMOTE_DIR = Path(remote_pkg.__file__).parent
SOURCES = sorted(p for p in REMOTE_DIR.glob("*.py"))
STDLIB = set(sys.stdlib_module_names)


def imported_modules(tree: ast.AST) -> list:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_imports_only_stdlib_and_siblings(path):
    tree = ast.parse(path.read_text())
    siblings = {p.stem for p in SOURCES}
    for module, level in imported_modules(tree):
        if level:
            assert module.split(".")[0] in siblings | {""}, f"{path.name}: .{module}"
        else:
            top = module.split(".")[0]
            assert top in STDLIB or top == "__future__", f"{path.name} imports {module}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_parses_as_python_38(path):
    ast.parse(path.read_text(), feature_version=(3, 8))


def sibling_imports(path: Path) -> set:
    """The sibling modules ``path`` imports anywhere: at the top, in functions, or under
    ``TYPE_CHECKING`` (a cycle there is still a cycle in the design)."""
    siblings = {p.stem for p in SOURCES}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found & siblings


def test_no_import_cycles():
    graph = {path.stem: sibling_imports(path) for path in SOURCES}

    def cycle_from(start: str, node: str, trail: list) -> list:
        for target in sorted(graph[node]):
            if target == start:
                return [*trail, target]
            if target not in trail:
                found = cycle_from(start, target, [*trail, target])
                if found:
                    return found
        return []

    cycles = [" -> ".join(c) for c in (cycle_from(name, name, [name]) for name in graph) if c]
    assert not cycles, f"import cycles in _remote: {cycles}"


def foreign_private_accesses(path: Path) -> list:
    """``x._name`` where ``x`` is neither ``self``/``cls`` nor an imported module: one
    object reaching into another's private attributes."""
    tree = ast.parse(path.read_text())
    modules = {"self", "cls"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 1 and not node.module:
            modules.update(alias.asname or alias.name for alias in node.names)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") and node.attr.endswith("__"):
            continue
        if not (isinstance(node.value, ast.Name) and node.value.id in modules):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_object_reaches_into_another(path):
    assert foreign_private_accesses(path) == []


def test_every_shipped_module_exists():
    names = {p.stem for p in SOURCES}
    assert set(bootstrap.REMOTE_MODULES) <= names


def test_stage1_needs_no_quoting():
    assert not set(bootstrap.STAGE1) & set("'\"\\$`!")
