"""The package's layers: imports point down only (README, Design, draws the same list).

Each top-level part of ``execnet_cli`` sits on one floor; a module may import its own part and
the floors below it, never a floor above or a part beside it on the same floor. Imports under
``TYPE_CHECKING`` count too: a type that needs an upward import is a design problem as well.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

import execnet_cli

PACKAGE = Path(execnet_cli.__file__).parent

#: Top floor first. Parts on one floor do not import each other.
FLOORS: Tuple[Tuple[str, ...], ...] = (
    ("__main__",),
    ("cli",),
    ("fleet", "compat"),
    ("inventory", "rsync"),
    ("__init__",),  # the execnet API at the package root, loaded lazily
    ("group",),
    ("connect",),
    ("imports",),  # import forwarding: serves workers' imports over a gateway
    ("gateway",),
    ("spec",),
    ("transports",),
    ("bootstrap", "source"),
    ("errors", "suggest", "parsing", "records"),
    ("_remote", "_version"),
)
FLOOR_OF: Dict[str, int] = {part: level for level, parts in enumerate(FLOORS) for part in parts}


def part_of(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def imports(path: Path) -> Iterator[str]:
    """The execnet_cli modules a file imports (relative imports resolved)."""
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(relative.parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
                if node.module:
                    yield target
                else:
                    yield from (f"{target}.{alias.name}" for alias in node.names)
            elif node.module and node.module.startswith("execnet_cli"):
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("execnet_cli"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_part_has_a_floor() -> None:
    parts = {part_of(module_name(path)) for path in PACKAGE.rglob("*.py")}
    assert parts - set(FLOOR_OF) == set(), "give the new part a floor here and in README"


def test_imports_point_down_only() -> None:
    upward: Set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        here = part_of(module_name(path))
        for target in imports(path):
            there = part_of(target)
            if there == here:
                continue
            if FLOOR_OF[there] <= FLOOR_OF[here]:
                upward.add(f"{module_name(path)} imports {target}")
    assert sorted(upward) == []
