"""docs/promises.md stays true: every test it names exists, and every promise names one."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "docs" / "promises.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::([\w:]+)`")


@cache
def collected_in(path: str) -> frozenset[str]:
    """``test_x`` and ``TestY::test_z`` names that pytest would collect from ``path``."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    names = set(functions(tree.body))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names.update(f"{node.name}::{name}" for name in functions(node.body))
    return frozenset(names)


def functions(body: list[ast.stmt]) -> list[str]:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return [node.name for node in body if isinstance(node, kinds) and node.name.startswith("test")]


def rows(text: str) -> list[str]:
    """The promise rows of every table (not headers or their rules)."""
    found = []
    for line in text.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        if line.startswith("| promise | test |"):
            continue
        found.append(line)
    return found


def missing(text: str) -> list[str]:
    """References to tests that do not exist (file gone, or no such test in it)."""
    gone = []
    for path, name in REFERENCE.findall(text):
        if not (ROOT / path).is_file() or name not in collected_in(path):
            gone.append(f"{path}::{name}")
    return gone


def test_every_test_the_table_names_exists() -> None:
    assert missing(TABLE.read_text(encoding="utf-8")) == []


def test_every_promise_names_a_test() -> None:
    table = rows(TABLE.read_text(encoding="utf-8"))
    assert len(table) > 100
    assert [row for row in table if not REFERENCE.search(row)] == []


def test_a_renamed_or_removed_test_is_caught(tmp_path: Path) -> None:
    """The check itself: a reference to a test that is not there is reported."""
    text = (
        "| a promise | `tests/test_promises_table.py::test_every_promise_names_a_test` |\n"
        "| renamed | `tests/test_promises_table.py::test_no_such_test` |\n"
        "| file gone | `tests/test_no_such_file.py::test_x` |\n"
    )
    assert missing(text) == [
        "tests/test_promises_table.py::test_no_such_test",
        "tests/test_no_such_file.py::test_x",
    ]
    assert len(rows(text + "| no test named | nothing here |\n")) == 4
