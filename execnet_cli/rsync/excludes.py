"""``--exclude`` patterns, ``.gitignore``-style, translated to the rules both halves apply.

    *.pyc          a name anywhere (no "/" inside: matches at any depth)
    /build         only at the top ("/" in front, or anywhere but at the end: anchored)
    docs/*.md      anchored: ``*`` and ``?`` never match "/"
    logs/          directories only (a trailing "/")
    **/cache, a/**/b, tmp/**   any number of directories
    !keep.pyc      re-include what an earlier pattern excluded (the last match decides)
    \\#name, \\!x   a literal "#" or "!" first; "\\" escapes any character

An excluded directory is not entered (what is below it cannot be re-included), as in git.
The receiver applies the same rules to protect what it holds from ``--delete``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["Rule", "read_exclude_file", "translate"]

#: (regex matching a whole relative path, directories only, re-include)
Rule = tuple[str, bool, bool]


def translate(patterns: Iterable[str]) -> list[Rule]:
    """The rules for ``patterns`` (blank ones are ignored); ValueError for a bad one."""
    rules = []
    for pattern in patterns:
        rule = _rule(pattern)
        if rule is not None:
            rules.append(rule)
    return rules


def read_exclude_file(path: str) -> list[str]:
    """The patterns of an exclude file: one a line, blank lines and ``#`` comments skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def _rule(pattern: str) -> Rule | None:
    text = pattern.rstrip("\n")
    if text.endswith(" ") and not text.endswith("\\ "):
        text = text.rstrip(" ")
    if not text:
        return None
    negated = text.startswith("!")
    if negated:
        text = text[1:]
    dir_only = text.endswith("/") and not text.endswith("\\/")
    text = text.rstrip("/") if dir_only else text
    if not text:
        raise ValueError(f"exclude pattern {pattern!r} matches nothing")
    anchored = "/" in text
    text = text.lstrip("/")
    body = _glob(text)
    regex = body if anchored else f"(?:.*/)?{body}"
    re.compile(regex)
    return rf"\A{regex}\Z", dir_only, negated


def _glob(text: str) -> str:
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("**", i) and (i == 0 or text[i - 1] == "/"):
            after = i + 2
            if after == n:
                out.append(".*")
                i = after
                continue
            if text[after] == "/":
                out.append("(?:.*/)?")
                i = after + 1
                continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(text[i]))
        elif c == "[":
            end = _class_end(text, i)
            if end < 0:
                out.append(re.escape(c))
            else:
                inner = text[i + 1 : end]
                negate = inner[:1] in ("!", "^")
                inner = inner[1:] if negate else inner
                inner = inner.replace("\\", "\\\\").replace("[", "\\[")
                out.append(f"[{'^/' if negate else ''}{inner}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _class_end(text: str, start: int) -> int:
    """The index of the "]" closing the class opened at ``start``, or -1."""
    i = start + 1
    if i < len(text) and text[i] in "!^":
        i += 1
    if i < len(text) and text[i] == "]":
        i += 1
    while i < len(text):
        if text[i] == "]":
            return i
        i += 1
    return -1
