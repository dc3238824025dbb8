"""``HostSet``: an immutable set of host names with set algebra, natural order and folding.

This is the NodeSet half of ClusterShell's split (``ranges.py`` is the RangeSet half): names
sort naturally (``web2`` before ``web10``), and a set of names folds back to the shortest
bracket notation we can find (``web[01-03,07]``, ``rack[1-4]-node[01-32]``), so many hosts
display as one line.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from typing import Optional, Tuple

from .ranges import expand_list, fold_numbers

__all__ = ["HostSet", "fold", "natural_key", "natural_sorted"]

# ASCII digits only: ``\d`` would take other scripts' digits, which do not survive formatting.
_DIGITS = re.compile(r"([0-9]+)")
_DIGIT_CHARS = "0123456789"
_LAST_NUMBER = re.compile(r"([0-9]+)([^0-9]*)\Z")


# --------------------------------------------------------------------------- natural order


def natural_key(name: str) -> list:
    """Sort key that puts ``web2`` before ``web10`` (and ``web1`` before ``web01``)."""
    parts: list = _DIGITS.split(name)
    parts[1::2] = [(int(p), len(p)) for p in parts[1::2]]
    return parts


def _string_key(name: str) -> str:
    """``natural_key`` as one string, which sorts several times faster than lists do.

    Each run of digits becomes NUL, the length of its value, the value's digits (without
    leading zeros: so longer means larger) and the run's own length (``1`` before ``01``).
    NUL sorts before any other character, as the end of a text part does in ``natural_key``;
    names that contain NUL themselves are sorted with ``natural_key`` (see ``natural_sorted``).
    """
    parts = _DIGITS.split(name)
    if len(parts) == 1:
        return name
    for i in range(1, len(parts), 2):
        run = parts[i]
        value = run.lstrip("0") or "0"
        parts[i] = f"\0{chr(len(value))}{value}{chr(len(run))}"
    return "".join(parts)


def natural_sorted(names: Iterable[str]) -> list[str]:
    """``sorted(names, key=natural_key)``, faster."""
    names = list(names)
    if "\0" in "".join(names):
        return sorted(names, key=natural_key)
    return sorted(names, key=_string_key)


# --------------------------------------------------------------------------- folding

Block = Tuple[frozenset, ...]


def _merge_blocks(blocks: list[Block]) -> list[Block]:
    """Cover a set of number tuples with fewer disjoint rectangles, one axis at a time.

    Each pass groups blocks that agree on every axis but one and unites that axis; passes
    repeat until a whole round merges nothing. The result depends only on the set covered.
    """
    dims = len(blocks[0])
    changed = dims > 1
    while changed:
        changed = False
        for d in range(dims - 1, -1, -1):
            groups: dict[Block, set[str]] = {}
            for b in blocks:
                groups.setdefault(b[:d] + b[d + 1 :], set()).update(b[d])
            if len(groups) < len(blocks):
                changed = True
                blocks = [(*k[:d], frozenset(v), *k[d:]) for k, v in groups.items()]
    return blocks


def _block_min(skel: tuple[str, ...], block: Block) -> str:
    mins = [min(axis, key=lambda s: (int(s), len(s))) for axis in block]
    return "".join(itertools.chain.from_iterable(zip(skel, mins))) + skel[-1]


def fold(names: Iterable[str]) -> str:
    """The shortest range notation we find for a set of names, in natural order.

    ``expand_list(fold(s))`` gives back exactly ``s`` (as a set), and folding is canonical:
    equal sets fold to the same text whatever order they came in.
    """
    # Names sharing everything but their last number (usually most of them) become one block
    # before any tuple of numbers is built. A name ending in digits, the common case, is split
    # without a regex.
    tails: dict[str, list[str]] = {}  # text before a final number -> the numbers
    by_rest: dict[tuple[str, str], list[str]] = {}
    out: list[tuple[list, str]] = []
    for name in names if isinstance(names, (set, frozenset)) else set(names):
        head = name.rstrip(_DIGIT_CHARS)
        if len(head) != len(name):
            found = tails.get(head)
            if found is None:
                tails[head] = [name[len(head) :]]
            else:
                found.append(name[len(head) :])
            continue
        m = _LAST_NUMBER.search(name)
        if m is None:
            out.append((natural_key(name), name))
        else:
            by_rest.setdefault((name[: m.start()], m.group(2)), []).append(m.group(1))
    for head, numbers in tails.items():
        by_rest[(head, "")] = numbers
    by_skel: dict[tuple[str, ...], list[Block]] = {}
    for (prefix, suffix), lasts in by_rest.items():
        parts = _DIGITS.split(prefix)
        block = (*(frozenset((n,)) for n in parts[1::2]), frozenset(lasts))
        by_skel.setdefault((*parts[0::2], suffix), []).append(block)
    for skel, blocks in by_skel.items():
        for block in _merge_blocks(blocks):
            text = (
                "".join(itertools.chain.from_iterable(zip(skel, map(fold_numbers, block))))
                + skel[-1]
            )
            out.append((natural_key(_block_min(skel, block)), text))
    out.sort()
    return ",".join(text for _, text in out)


# --------------------------------------------------------------------------- HostSet


class HostSet:
    """An immutable set of host names with set algebra, natural order and folded display.

    ``HostSet("web[01-03],db1")`` parses range notation; any other iterable is taken as names.
    Operators take any iterable of names: ``|`` union, ``&`` intersection, ``-`` difference,
    ``^`` symmetric difference. ``str()`` folds back to ranges.
    """

    __slots__ = ("_names", "_sorted")

    def __init__(self, names: Iterable[str] | str = ()) -> None:
        if isinstance(names, str):
            names = expand_list(names)
        self._names: frozenset[str] = names if isinstance(names, frozenset) else frozenset(names)
        self._sorted: Optional[tuple[str, ...]] = None

    @classmethod
    def _of(cls, names: frozenset[str]) -> HostSet:
        return cls(names)

    @staticmethod
    def _names_of(other: Iterable[str]) -> frozenset[str]:
        if isinstance(other, HostSet):
            return other._names
        if isinstance(other, str):
            return frozenset(expand_list(other))
        return frozenset(other)

    def __or__(self, other: Iterable[str]) -> HostSet:
        return self._of(self._names | self._names_of(other))

    def __and__(self, other: Iterable[str]) -> HostSet:
        return self._of(self._names & self._names_of(other))

    def __sub__(self, other: Iterable[str]) -> HostSet:
        return self._of(self._names - self._names_of(other))

    def __xor__(self, other: Iterable[str]) -> HostSet:
        return self._of(self._names ^ self._names_of(other))

    union = __or__
    intersection = __and__
    difference = __sub__
    symmetric_difference = __xor__

    def __le__(self, other: HostSet) -> bool:
        return self._names <= self._names_of(other)

    def __ge__(self, other: HostSet) -> bool:
        return self._names >= self._names_of(other)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HostSet):
            return self._names == other._names
        if isinstance(other, (set, frozenset)):
            return self._names == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __bool__(self) -> bool:
        return bool(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        """Names in natural order (``web2`` before ``web10``)."""
        if self._sorted is None:
            self._sorted = tuple(natural_sorted(self._names))
        return iter(self._sorted)

    @property
    def names(self) -> frozenset[str]:
        return self._names

    def fold(self) -> str:
        return fold(self._names)

    def __str__(self) -> str:
        return self.fold()

    def __repr__(self) -> str:
        return f"HostSet({self.fold()!r})"
