"""The fast reader: the subset of YAML inventories are written in, read a line at a time.

PyYAML's ``compose`` (see ``yaml_reader``) builds a Python object per node, which dominates
large inventories: 10,000 hosts listed one a line are 30,000 nodes. This reader takes block
mappings and sequences, one-line flow collections, plain and simple quoted scalars and
comments, and gives the node graph ``compose`` would give, at the same positions (the tests
compare the two graphs, and the definitions read from them, marks included). It keeps each
mapping's entries as compact tuples, so a long list of bare host names is taken in bulk
(``bare_hosts``).

Lines are read one at a time against a stack of open block collections. A mapping entry is
``KEY:`` (its value, a nested block or null, comes later) or ``KEY: VALUE`` on one line; a
sequence item is ``- VALUE``. KEY is a plain scalar without spaces; VALUE is a plain scalar,
a quoted one without escapes, or a flow collection closed on the same line. Whatever else
appears (anchors, tags, block scalars, multi-line scalars, tabs, ...) raises _Bail, and
``compose`` returns None: the caller reads the file with PyYAML instead, so giving up is
always correct.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from . import plain
from .plain import EAGER, NULL, STR
from .schema import are_names

__all__ = ["EAGER", "NULL", "STR", "bare_hosts", "compose", "construct"]

_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
#: Tags the fast reader gives plain scalars; ``<<`` (merge) and ``=`` (value) make it give up.
_PLAIN_TAGS = frozenset(
    [STR, NULL] + [f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "timestamp")]
)
#: Characters outside what the fast reader takes: tabs, CR and other line breaks, a BOM,
#: control characters, and what libyaml would refuse. Compiled for the first text that is
#: not ASCII (``compose``): its wide ranges cost ~60 M instructions, at every start.
_UNSUPPORTED = (
    "[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
_UNSUPPORTED_ASCII = re.compile("[\x00-\x09\x0b-\x1f\x7f]")  # the same, for ASCII text
_MARKERS = ("---", "...", "%")  # documents and directives, at the start of a line
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_KEY = re.compile(r"[^\s\-?:,\[\]{}#&*!|>'\"%@`]\S{0,999}\Z")  # libyaml: keys < 1024
_NOT_FIRST = _INDICATORS | {" "}  # _KEY's first character, for ASCII text
_FLOW_PLAIN = re.compile(r"[^,\[\]{}#:]*")


class _Bail(Exception):
    """The text leaves the subset of YAML the fast reader handles."""


class _Node:
    """A node of the fast reader, shaped like PyYAML's; it is its own (0-based) mark."""

    __slots__ = ("column", "line")
    id = ""
    tag = ""

    @property
    def start_mark(self) -> _Node:
        return self

    end_mark = start_mark  # fast-read scalars end on the line they start on


class _Scalar(_Node):
    __slots__ = ("style", "tag", "value")
    id = "scalar"

    def __init__(self, tag: str, value: str, line: int, column: int, style: str = "") -> None:
        self.tag, self.value, self.line, self.column, self.style = tag, value, line, column, style


class _Seq(_Node):
    __slots__ = ("value",)
    id = "sequence"
    tag = _SEQ

    def __init__(self, line: int, column: int) -> None:
        self.value: list[_Node] = []
        self.line, self.column = line, column


#: A mapping entry: key text, key tag, key line and column, value node (None: a block null).
Entry = tuple[str, str, int, int, Optional[_Node]]


class _Map(_Node):
    """A mapping whose entries stay compact tuples until ``value`` asks for key nodes."""

    __slots__ = ("_pairs", "entries")
    id = "mapping"
    tag = _MAP

    def __init__(self, line: int, column: int) -> None:
        self.entries: list[Entry] = []
        self._pairs: Optional[list[tuple[_Node, _Node]]] = None
        self.line, self.column = line, column

    @property
    def value(self) -> list[tuple[_Node, _Node]]:
        """(key node, value node) pairs; a block null sits just after its key's colon."""
        if self._pairs is None:
            self._pairs = [
                (
                    _Scalar(tag, key, line, col),
                    _Scalar(NULL, "", line, col + len(key) + 1) if value is None else value,
                )
                for key, tag, line, col, value in self.entries
            ]
        return self._pairs


def construct(node: Any) -> Any:
    """The Python value of a fast-read node, as PyYAML's safe constructor makes it."""
    if node.id == "scalar":
        return plain.value(node.tag, node.value)
    if node.id == "sequence":
        return [construct(item) for item in node.value]
    return {construct(k): construct(v) for k, v in node.value}


def _plain_tag(text: str) -> str:
    """The tag of a plain scalar, resolved as ``yaml_reader.Loader`` does (``plain``)."""
    if text[0] not in EAGER:
        return STR
    tag = plain.tag(text)
    if tag not in _PLAIN_TAGS:
        raise _Bail
    return tag


def compose(text: str) -> Optional[_Map]:
    """The node graph PyYAML's ``compose`` would build for ``text``, or None outside the subset."""
    if (_UNSUPPORTED_ASCII if text.isascii() else re.compile(_UNSUPPORTED)).search(text):
        return None
    if text.startswith(_MARKERS) or any("\n" + m in text for m in _MARKERS):
        return None
    try:
        return _block(text.split("\n"), text.isascii())
    except _Bail:
        return None


def _block(lines: list[str], ascii_text: bool) -> Optional[_Map]:
    root: Optional[_Map] = None
    # Open collections, innermost last: [indent, node, is a mapping, is an indentless
    # sequence (``key:`` then ``- item`` at the key's own indent), last key awaits its value].
    stack: list[list[Any]] = []
    top: list[Any] = [-1, None, False, False, False]  # stack[-1], or a frame matching nothing
    entries: list[Entry] = []  # top's entries when it is a mapping
    key_match = _KEY.match
    for lineno, line in enumerate(lines):
        s = line.lstrip(" ")
        if not s or s[0] == "#":
            continue
        n = len(line) - len(s)
        # The common line, ``KEY:`` in the mapping at this indent (it ends any value the last
        # key waited for: that one is null), is taken here; the loop below does the rest. In
        # ASCII text (without tabs or control characters: see compose) the only space
        # is " ", and string tests do what _KEY does, faster.
        if (
            n == top[0]
            and top[2]
            and s[-1] == ":"
            and (
                (s[0] not in _NOT_FIRST and " " not in s and len(s) <= 1001)
                if ascii_text
                else key_match(s, 0, len(s) - 1)
            )
        ):
            key = s[:-1]
            tag = STR if key[0] not in EAGER else _plain_tag(key)
            entries.append((key, tag, lineno, n, None))
            top[4] = True
            continue
        item = s[0] == "-" and (len(s) == 1 or s[1] == " ")
        while True:
            if not stack:
                if root is not None or item:
                    raise _Bail  # a second top level, or a top-level sequence
                root = _Map(lineno, n)
                stack.append([n, root, True, False, False])
            frame = stack[-1]
            indent = frame[0]
            if frame[2]:
                if frame[4]:
                    frame[4] = False
                    if n > indent or (n == indent and item):  # the value is a block
                        child: _Node = _Seq(lineno, n) if item else _Map(lineno, n)
                        key, tag, kline, kcol, _ = frame[1].entries[-1]
                        frame[1].entries[-1] = (key, tag, kline, kcol, child)
                        stack.append([n, child, not item, n == indent, False])
                        continue
                if n == indent and not item:
                    frame[4] = _entry(s, lineno, n, frame[1].entries)
                    break
            elif n == indent and item:
                frame[1].value.append(_item(s, lineno, n))
                break
            elif frame[3] and n == indent:
                stack.pop()
                continue
            if n < indent:
                stack.pop()
                continue
            raise _Bail  # deeper than allowed: a multi-line scalar, or bad indentation
        top = stack[-1]
        if top[2]:
            entries = top[1].entries
    return root


def _entry(s: str, lineno: int, n: int, entries: list[Entry]) -> bool:
    """Add ``KEY:`` or ``KEY: VALUE``; True when the value is still to come."""
    colon = s.find(": ")
    if colon == -1:
        if s[-1] != ":":
            raise _Bail
        key, rest = s[:-1], ""
    else:
        key, rest = s[:colon], s[colon + 2 :].lstrip(" ")
    if not _KEY.match(key):
        raise _Bail
    tag = _plain_tag(key)
    if not rest or rest[0] == "#":
        entries.append((key, tag, lineno, n, None))
        return True
    entries.append((key, tag, lineno, n, _inline(rest, lineno, n + len(s) - len(rest))))
    return False


def _item(s: str, lineno: int, n: int) -> _Node:
    rest = s[2:].lstrip(" ")
    if not rest or rest[0] == "#":
        raise _Bail  # a null item, or a block nested in an item
    return _inline(rest, lineno, n + len(s) - len(rest))


def _inline(v: str, lineno: int, col: int) -> _Node:
    """A value that starts on this line and ends on it, at column ``col``."""
    c = v[0]
    node: _Node
    if c == "'" or c == '"':
        node, end = _quoted(v, 0, lineno, col)
    elif c == "[" or c == "{":
        node, end = _flow(v, 0, lineno, col)
    else:
        if c in _INDICATORS and not (c == "-" and len(v) > 1 and v[1] != " "):
            raise _Bail
        cut = v.find(" #")
        text = (v if cut == -1 else v[:cut]).rstrip(" ")
        if ": " in text or text[-1] == ":":
            raise _Bail
        return _Scalar(_plain_tag(text), text, lineno, col)
    tail = v[end:]
    if tail and (tail[0] != " " or tail.strip(" ")[:1] not in ("", "#")):
        raise _Bail
    return node


def _quoted(v: str, p: int, lineno: int, col: int) -> tuple[_Scalar, int]:
    """A quoted scalar closed on this line; double quotes without escapes."""
    quote = v[p]
    if quote == "'":
        parts = []
        i = p + 1
        while True:
            j = v.find("'", i)
            if j == -1:
                raise _Bail
            if v.startswith("'", j + 1):  # '' stands for '
                parts.append(v[i : j + 1])
                i = j + 2
                continue
            parts.append(v[i:j])
            break
        text = "".join(parts)
    else:
        j = v.find('"', p + 1)
        text = v[p + 1 : j]
        if j == -1 or "\\" in text:
            raise _Bail
    return _Scalar(STR, text, lineno, col + p, quote), j + 1


def _skip(v: str, p: int) -> int:
    while p < len(v) and v[p] == " ":
        p += 1
    if p == len(v):
        raise _Bail  # a flow collection not closed on its line
    return p


def _flow(v: str, p: int, lineno: int, col: int) -> tuple[_Node, int]:
    """``[...]`` or ``{...}`` at ``v[p]``; returns the node and the index after it."""
    return (_flow_seq if v[p] == "[" else _flow_map)(v, p, lineno, col)


def _flow_seq(v: str, p: int, lineno: int, col: int) -> tuple[_Node, int]:
    node = _Seq(lineno, col + p)
    p = _skip(v, p + 1)
    while v[p] != "]":
        item, p = _flow_value(v, p, lineno, col)
        node.value.append(item)
        p = _skip(v, p)
        if v[p] == ",":
            p = _skip(v, p + 1)
        elif v[p] != "]":
            raise _Bail  # a pair in a sequence (``[a: b]``), or junk
    return node, p + 1


def _flow_map(v: str, p: int, lineno: int, col: int) -> tuple[_Node, int]:
    node = _Map(lineno, col + p)
    p = _skip(v, p + 1)
    while v[p] != "}":
        if v[p] in _INDICATORS:
            raise _Bail  # only plain keys
        key, p = _flow_plain(v, p, lineno, col)
        p = _skip(v, p)
        if v[p] != ":" or not v.startswith(" ", p + 1):
            raise _Bail
        p = _skip(v, p + 1)
        value: _Node
        if v[p] in ",}":  # a null: libyaml puts it where the next token starts
            value = _Scalar(NULL, "", lineno, col + p)
        else:
            value, p = _flow_value(v, p, lineno, col)
            p = _skip(v, p)
        node.entries.append((key.value, key.tag, key.line, key.column, value))
        if v[p] == ",":
            p = _skip(v, p + 1)
        elif v[p] != "}":
            raise _Bail
    return node, p + 1


def _flow_value(v: str, p: int, lineno: int, col: int) -> tuple[_Node, int]:
    c = v[p]
    if c == "'" or c == '"':
        return _quoted(v, p, lineno, col)
    if c == "[" or c == "{":
        return _flow(v, p, lineno, col)
    if c in _INDICATORS and not (c == "-" and v[p + 1 : p + 2].isalnum()):  # -1 is a number
        raise _Bail
    return _flow_plain(v, p, lineno, col)


def _flow_plain(v: str, p: int, lineno: int, col: int) -> tuple[_Scalar, int]:
    """A plain scalar inside a flow collection: up to ``, [ ] { }``; ``:`` and ``#`` inside
    it (which libyaml versions read differently) make the reader give up."""
    end = _FLOW_PLAIN.match(v, p).end()  # type: ignore[union-attr]
    text = v[p:end].rstrip(" ")
    if end < len(v) and v[end] == ":" and not v.startswith(" ", end + 1):
        raise _Bail
    if end < len(v) and v[end] == "#":
        raise _Bail
    return _Scalar(_plain_tag(text), text, lineno, col + p), end


def bare_hosts(node: Any) -> Optional[list[str]]:
    """A fast-read ``hosts:`` mapping of plain host names without variables, checked at once.

    This is the shape of a long inventory (a host a line); None when any entry needs the
    one-by-one path, which also reports every error.
    """
    entries = getattr(node, "entries", None)
    if not entries:
        return None
    names = [key for key, tag, _, _, value in entries if value is None and tag == STR]
    if len(names) != len(entries) or not are_names(names):
        return None
    unique = set(names)
    if len(unique) != len(names) or "all" in unique or "ungrouped" in unique:
        return None
    return names
