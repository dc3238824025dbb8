"""Host ranges, the ``HostSet`` value type and host patterns: pure functions, no I/O.

Ranges (``web[01-12]``, ``rack[1-4]-node[01-32]``, ``10.0.0.[1-9]``, ``[1-3,7]``, Ansible's
``[01:12]`` and ``[a:f]``) expand to names; sets of names fold back to the shortest bracket
notation we can find (``web[01-03,07]``), so many hosts display as one line, as ClusterShell's
nodeset does. Zero padding is part of a name: ``web[01-03]`` and ``web[1-3]`` are different hosts.

Patterns select hosts from an inventory with set algebra (see ``select``). Evaluation follows
Ansible rather than reading left to right: the union of the plain terms (or everything when there is
none), intersected with every ``&`` term, minus every ``!`` term. Order therefore never matters,
which keeps patterns easy to reason about and makes ``a,b`` == ``b,a`` a law, not a coincidence.
"""

from __future__ import annotations

import difflib
import fnmatch
import itertools
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Optional, Tuple

from .._remote.errors import XnetError

__all__ = [
    "MAX_EXPANSION",
    "HostSet",
    "PatternError",
    "Term",
    "expand",
    "expand_list",
    "fold",
    "natural_key",
    "natural_sorted",
    "parse_pattern",
    "select",
]

#: A range that would produce more names than this is refused (a typo like ``[1-10000000]``
#: must not eat the machine's memory).
MAX_EXPANSION = 1_000_000

# ASCII digits only: ``\d`` would take other scripts' digits, which do not survive formatting.
_DIGITS = re.compile(r"([0-9]+)")
_DIGIT_CHARS = "0123456789"
_LAST_NUMBER = re.compile(r"([0-9]+)([^0-9]*)\Z")
_NUM_RANGE = re.compile(r"([0-9]+)(?:[-:]([0-9]+)(?:[/:]([0-9]+))?)?\Z")
_ALPHA_RANGE = re.compile(r"([a-zA-Z])[-:]([a-zA-Z])(?:[/:]([0-9]+))?\Z")


class PatternError(XnetError, ValueError):
    """A malformed range or pattern, or a pattern that selects nothing.

    ``column`` is 1-based within ``pattern``; the inventory re-raises range errors found in
    a file at the file position, so the offset is kept separate from the message.
    """

    def __init__(self, message: str, pattern: str = "", column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.pattern = pattern
        self.column = column

    # The same position attributes as InventoryError: a pattern is one line of no file.
    file = None

    @property
    def line(self) -> int:
        return 1 if self.column else 0

    def __str__(self) -> str:
        if not self.pattern:
            return self.message
        where = f" at column {self.column}" if self.column else ""
        return f"in pattern {self.pattern!r}{where}: {self.message}"


# --------------------------------------------------------------------------- ranges


def _bracket_values(body: str, text: str, column: int) -> list[str]:
    """The names one ``[...]`` body stands for; ``column`` is where the body starts."""
    values: list[str] = []
    offset = 0
    for item in body.split(","):
        col = column + offset
        offset += len(item) + 1
        item = item.strip()
        m = _NUM_RANGE.match(item)
        if m:
            first, last, step = m.group(1), m.group(2), m.group(3)
            if last is None:
                values.append(first)
                continue
            lo, hi, inc = int(first), int(last), int(step or 1)
            width = len(first) if first[0] == "0" and len(first) > 1 else 0
            if lo > hi:
                raise PatternError(f"range {item!r} goes backwards", text, col)
            if inc < 1:
                raise PatternError(f"range {item!r} has a step of 0", text, col)
            if (hi - lo) // inc >= MAX_EXPANSION:
                raise PatternError(f"range {item!r} is too large", text, col)
            if width:
                values += [v.zfill(width) for v in map(str, range(lo, hi + 1, inc))]
            else:
                values.extend(map(str, range(lo, hi + 1, inc)))
            continue
        m = _ALPHA_RANGE.match(item)
        if m and m.group(1).islower() == m.group(2).islower():
            lo, hi, inc = ord(m.group(1)), ord(m.group(2)), int(m.group(3) or 1)
            if lo > hi or inc < 1:
                raise PatternError(f"range {item!r} goes backwards", text, col)
            values.extend(chr(c) for c in range(lo, hi + 1, inc))
            continue
        what = f"{item!r}" if item else "nothing"
        raise PatternError(
            f"expected a number or a range like 1-3, 01-12 or a-f inside [...], got {what}",
            text,
            col,
        )
    return values


def expand(text: str, column: int = 1) -> list[str]:
    """Expand every bracketed range in one name: ``rack[1-2]-n[1-2]`` gives four names.

    ``column`` is where ``text`` starts in a larger pattern, for error positions.
    """
    if "[" not in text and "]" not in text:
        return [text]
    pieces: list[list[str]] = []
    pos = 0
    total = 1
    while pos < len(text):
        open_ = text.find("[", pos)
        close = text.find("]", pos)
        if close != -1 and (open_ == -1 or close < open_):
            raise PatternError("']' without a matching '['", text, column + close)
        if open_ == -1:
            pieces.append([text[pos:]])
            break
        if open_ > pos:
            pieces.append([text[pos:open_]])
        if close == -1:
            raise PatternError("'[' is never closed", text, column + open_)
        nested = text.find("[", open_ + 1)
        if nested != -1 and nested < close:
            raise PatternError("ranges cannot nest", text, column + nested)
        values = _bracket_values(text[open_ + 1 : close], text, column + open_ + 1)
        total *= len(values)
        if total > MAX_EXPANSION:
            raise PatternError(f"expands to more than {MAX_EXPANSION} names", text, column)
        pieces.append(values)
        pos = close + 1
    names = pieces[0]
    for piece in pieces[1:]:  # pairwise concatenation: cheaper than joining product tuples
        names = [a + b for a in names for b in piece]
    return list(names)


def _split_top(text: str, seps: str, column: int = 1) -> list[tuple[str, int]]:
    """Split on ``seps`` outside brackets; each piece with its 1-based start column."""
    out: list[tuple[str, int]] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch in "[({":
            depth += 1
        elif ch in "])}":
            depth = max(0, depth - 1)
        elif depth == 0 and ch in seps:
            out.append((text[start:i], column + start))
            start = i + 1
    out.append((text[start:], column + start))
    return out


def expand_list(text: str, column: int = 1) -> list[str]:
    """Expand a comma-separated list of ranges (``web[01-03],db1``); blanks are skipped."""
    names: list[str] = []
    for piece, col in _split_top(text, ","):
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            names.extend(expand(stripped, column + col - 1 + lead))
    return names


# --------------------------------------------------------------------------- folding


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


def _fold_numbers(values: Collection[str]) -> str:
    """``{"01","02","03","07"}`` -> ``[01-03,07]``; one value stays bare.

    A value without a leading zero joins a padded run when its length equals that padding
    (``09,10`` folds to ``[09-10]``), since both spellings expand to the same string.
    """
    if len(values) == 1:
        return next(iter(values))
    widths = {len(s) for s in values if len(s) > 1 and s[0] == "0"}
    by_width: dict[int, list[int]] = {}
    for s in values:
        w = len(s) if (len(s) > 1 and s[0] == "0") or len(s) in widths else 0
        by_width.setdefault(w, []).append(int(s))
    runs: list[tuple[int, int, int]] = []
    for w, nums in by_width.items():
        nums.sort()
        start = prev = nums[0]
        for v in nums[1:]:
            if v != prev + 1:
                runs.append((start, w, prev))
                start = v
            prev = v
        runs.append((start, w, prev))
    runs.sort()
    items = []
    for start, w, end in runs:
        a = str(start).zfill(w)
        items.append(a if start == end else f"{a}-{str(end).zfill(w)}")
    return "[" + ",".join(items) + "]"


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
                "".join(itertools.chain.from_iterable(zip(skel, map(_fold_numbers, block))))
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


# --------------------------------------------------------------------------- patterns

_OPS = {",": "|", ":": "|", "&": "&", "!": "!"}


@dataclass(frozen=True)
class Term:
    """One operand of a pattern: ``op`` is ``|``, ``&`` or ``!``; ``column`` is 1-based."""

    op: str
    text: str
    column: int

    @property
    def kind(self) -> str:
        """``regex`` (``~...``), ``glob`` (has ``*`` or ``?``) or ``name`` (host, group, range)."""
        if self.text.startswith("~"):
            return "regex"
        if "*" in self.text or "?" in self.text:
            return "glob"
        return "name"


def parse_pattern(pattern: str) -> tuple[Term, ...]:
    """Split a pattern into terms.

    ``,`` and ``:`` separate union terms; ``&`` and ``!`` start an intersection or difference
    term, alone (``web&prod``) or after a separator (``web:&prod``, ``all,!db``); ``&!`` is ``!``
    (an intersection with a complement is a difference). Separators
    inside ``[]``, ``()`` or ``{}`` belong to the term, so ranges and regexes keep theirs.
    """
    terms: list[Term] = []
    op, explicit, start, depth = "|", False, 0, 0

    def flush(end: int) -> None:
        raw = pattern[start:end]
        text = raw.strip()
        if text:
            col = start + 1 + len(raw) - len(raw.lstrip())
            terms.append(Term(op, text, col))
        elif explicit:
            sym = "&" if op == "&" else "!"
            raise PatternError(f"expected a name after {sym!r}", pattern, end + 1)

    for i, ch in enumerate(pattern):
        if ch in "[({":
            depth += 1
        elif ch in "])}":
            depth = max(0, depth - 1)
        elif depth == 0 and ch in _OPS:
            pending = pattern[start:i].strip()
            if ch in "&!" and not pending and explicit:
                if not (op == "&" and ch == "!"):  # "&!x" is "!x": A & (all - x) == A - x
                    raise PatternError(f"two operators in a row before {ch!r}", pattern, i + 1)
            elif pending or ch in ",:":
                flush(i)
                op, explicit = "|", False
            if ch in "&!":
                op, explicit = _OPS[ch], True
            start = i + 1
    flush(len(pattern))
    if not terms:
        raise PatternError("empty pattern", pattern, 1)
    return tuple(terms)


def _suggest(name: str, candidates: Iterable[str], groups: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    if close:
        return "; close names: " + ", ".join(close)
    shown = sorted(g for g in groups if g not in ("all", "ungrouped"))
    if not shown:
        return ""
    more = f", ... ({len(shown)} in all)" if len(shown) > 12 else ""
    return "; groups are: " + ", ".join(shown[:12]) + more


def _match_term(
    term: Term, pattern: str, all_hosts: HostSet, groups: Mapping[str, HostSet]
) -> frozenset[str]:
    """The names one term stands for; unknown names and empty matches are errors."""
    kind = term.kind
    if kind == "regex":
        try:
            rx = re.compile(term.text[1:])
        except re.error as exc:
            raise PatternError(f"bad regex {term.text[1:]!r}: {exc}", pattern, term.column) from exc
        matcher = rx.match
    elif kind == "glob":
        texts = expand(term.text, term.column)
        matcher = re.compile("|".join(f"(?:{fnmatch.translate(t)})" for t in texts)).match
    else:
        if term.text in ("all", "*"):
            return all_hosts.names
        names = expand(term.text, term.column)
        found: set[str] = set()
        unknown: list[str] = []
        hosts = all_hosts.names
        for name in names:
            group = groups.get(name)
            if group is not None:
                found.update(group.names)
            if name in hosts:
                found.add(name)
            elif group is None:
                unknown.append(name)
        if unknown:
            what = unknown[0] if len(unknown) == 1 else fold(unknown)
            hint = _suggest(unknown[0], itertools.chain(groups, hosts), groups)
            noun = "host or group" if len(unknown) == 1 else "hosts or groups"
            raise PatternError(f"unknown {noun} {what!r}{hint}", pattern, term.column)
        return frozenset(found)
    found = set()
    for gname, members in groups.items():
        if matcher(gname):
            found.update(members.names)
    found.update(filter(matcher, all_hosts.names))
    if not found:
        raise PatternError(f"{term.text!r} matches no host or group", pattern, term.column)
    return frozenset(found)


def select(
    pattern: str, all_hosts: Iterable[str], groups: Mapping[str, HostSet] | None = None
) -> HostSet:
    """Evaluate a pattern against a universe of hosts and named groups.

    A term is ``all`` (or ``*``), a host or group name (ranges allowed: ``web[01-03]``), a glob
    (``web*``) or a regex after ``~`` (matched from the start of the name, as Ansible does);
    globs and regexes match group names and host names alike. The result is
    ``(union of | terms, or all) & every & term - every ! term``. Every name must exist, every
    glob must match, and an empty result is an error: a pattern never silently selects nothing.
    """
    universe = all_hosts if isinstance(all_hosts, HostSet) else HostSet(list(all_hosts))
    groups = groups or {}
    terms = parse_pattern(pattern)
    plus = [t for t in terms if t.op == "|"]
    result: frozenset[str] = frozenset()
    if plus:
        result = frozenset().union(*(_match_term(t, pattern, universe, groups) for t in plus))
    else:
        result = universe.names
    for t in terms:
        if t.op == "&":
            result = result & _match_term(t, pattern, universe, groups)
    for t in terms:
        if t.op == "!":
            result = result - _match_term(t, pattern, universe, groups)
    if not result:
        raise PatternError("selects no hosts", pattern)
    if len(result) == len(universe) and result == universe.names:
        return universe  # keeps its sorted order, computed once
    return HostSet(result)
