"""The examples in README.md and docs/ that run on ``inventories/demo.yaml`` print what
they show (times and the order hosts finish in aside)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: A fenced block whose first line runs xnet on the demo inventory, and what it shows.
BLOCK = re.compile(r"^```\n\$ (xnet [^\n]*inventories/demo\.yaml[^\n]*)\n(.*?)^```$", re.M | re.S)
TIMES = [
    (re.compile(r" in \d+(\.\d+)? s$", re.M), " in T s"),
    (re.compile(r'"duration": [0-9.]+'), '"duration": T'),
    (re.compile(r'"group": [0-9]+'), '"group": G'),  # numbered in the order hosts finish
]


def examples() -> list[tuple[str, str, str]]:
    found = []
    for doc in DOCS:
        for match in BLOCK.finditer(doc.read_text()):
            found.append((doc.name, match.group(1), match.group(2)))
    return found


def normal(text: str) -> str:
    for pattern, replacement in TIMES:
        text = pattern.sub(replacement, text)
    return text


def test_the_docs_have_such_examples() -> None:
    assert {doc for doc, _, _ in examples()} >= {"README.md", "cli.md"}


@pytest.mark.parametrize(("doc", "command", "shown"), examples(), ids=lambda v: v[:40])
def test_an_example_prints_what_it_shows(doc: str, command: str, shown: str) -> None:
    argv = [sys.executable, "-m", "execnet_cli", *shlex.split(command)[1:]]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("XNET_")}
    environ.update(PYTHONPATH=str(REPO), COLUMNS="80")
    done = subprocess.run(argv, cwd=REPO, env=environ, capture_output=True, text=True, timeout=120)
    printed = normal(done.stdout + done.stderr).splitlines()
    expected = normal(shown).splitlines()
    if "--json" in argv or "--no-gather" in argv:  # in the order hosts finish
        printed, expected = sorted(printed), sorted(expected)
    assert printed == expected, f"{doc}: {command}"
