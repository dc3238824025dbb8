"""``--exclude`` patterns: .gitignore semantics, as both halves apply them."""

from __future__ import annotations

from pathlib import Path

import pytest

from execnet_cli._remote.rsync_tree import Excludes
from execnet_cli.rsync.excludes import read_exclude_file, translate


def excluded(patterns: list, path: str, is_dir: bool = False) -> bool:
    return Excludes(translate(patterns)).excluded(path, is_dir)


@pytest.mark.parametrize(
    "pattern, path, is_dir, expected",
    [
        ("*.pyc", "a.pyc", False, True),
        ("*.pyc", "pkg/sub/a.pyc", False, True),
        ("*.pyc", "a.py", False, False),
        ("/build", "build", True, True),
        ("/build", "src/build", True, False),
        ("docs/*.md", "docs/a.md", False, True),
        ("docs/*.md", "docs/sub/a.md", False, False),
        ("docs/*.md", "x/docs/a.md", False, False),
        ("logs/", "logs", True, True),
        ("logs/", "logs", False, False),
        ("logs/", "var/logs", True, True),
        ("**/cache", "a/b/cache", True, True),
        ("**/cache", "cache", False, True),
        ("a/**/b", "a/b", False, True),
        ("a/**/b", "a/x/y/b", False, True),
        ("tmp/**", "tmp/x/y", False, True),
        ("tmp/**", "tmp", True, False),
        ("?.txt", "a.txt", False, True),
        ("?.txt", "ab.txt", False, False),
        ("[ab].c", "b.c", False, True),
        ("[!ab].c", "c.c", False, True),
        ("[!ab].c", "a.c", False, False),
        ("\\#x", "#x", False, True),
        ("\\!x", "!x", False, True),
        ("*", "dir/file", False, True),
        ("a*b", "a/b", False, False),
    ],
)
def test_gitignore_semantics(pattern: str, path: str, is_dir: bool, expected: bool) -> None:
    assert excluded([pattern], path, is_dir) is expected


def test_the_last_match_decides() -> None:
    patterns = ["*.log", "!important.log", "deep/important.log"]
    assert excluded(patterns, "x.log")
    assert not excluded(patterns, "important.log")
    assert excluded(patterns, "deep/important.log")


def test_blank_patterns_are_ignored_and_empty_ones_refused() -> None:
    assert translate(["", "   "]) == []
    with pytest.raises(ValueError):
        translate(["/"])


def test_exclude_file(tmp_path: Path) -> None:
    path = tmp_path / "excludes"
    path.write_text("# comment\n*.o\n\n/dist\n")
    assert read_exclude_file(str(path)) == ["*.o", "/dist"]
