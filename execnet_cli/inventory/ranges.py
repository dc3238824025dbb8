"""Host ranges, one axis at a time: ``web[01-12]`` expands to names, numbers fold to ``[01-12]``.

This is the RangeSet half of ClusterShell's split: a bracket stands for a list of values
(``[1-3,7]``, Ansible's ``[01:12]`` and ``[a:f]``, steps ``[1-10/4]``), a name may hold several
brackets (``rack[1-4]-node[01-32]``), and a set of numbers folds back to the shortest bracket
(``fold_numbers``). Zero padding is part of a name: ``web[01-03]`` and ``web[1-3]`` are
different hosts. Names as a set (algebra, natural order, folding whole names) are
``hostset.py``; patterns over groups are ``patterns.py``.

``top_level`` is the one bracket-depth scanner: lists of ranges and patterns both split on
separators outside ``[]``, ``()`` and ``{}``, so ranges and regexes keep theirs.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator

from .._remote.errors import XnetError

__all__ = [
    "MAX_EXPANSION",
    "PatternError",
    "expand",
    "expand_list",
    "fold_numbers",
    "split_top",
    "top_level",
]

#: A range that would produce more names than this is refused (a typo like ``[1-10000000]``
#: must not eat the machine's memory).
MAX_EXPANSION = 1_000_000

# ASCII digits only: ``\d`` would take other scripts' digits, which do not survive formatting.
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


class NoHostSelected(PatternError):
    """A well-formed pattern that selects no host (a glob or regex matching nothing, or
    set algebra leaving nothing): not a typo, so the command line says it apart."""


# --------------------------------------------------------------------------- scanning


def top_level(text: str, seps: str) -> Iterator[tuple[int, str]]:
    """Each character of ``seps`` outside brackets, with its index.

    ``[]``, ``()`` and ``{}`` nest alike (a range's commas, a regex's groups); a closer
    without an opener is passed over.
    """
    depth = 0
    for i, ch in enumerate(text):
        if ch in "[({":
            depth += 1
        elif ch in "])}":
            depth = max(0, depth - 1)
        elif depth == 0 and ch in seps:
            yield i, ch


def split_top(text: str, seps: str, column: int = 1) -> list[tuple[str, int]]:
    """Split on ``seps`` outside brackets; each piece with its 1-based start column."""
    out: list[tuple[str, int]] = []
    start = 0
    for i, _ in top_level(text, seps):
        out.append((text[start:i], column + start))
        start = i + 1
    out.append((text[start:], column + start))
    return out


# --------------------------------------------------------------------------- expanding


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


def expand_list(text: str, column: int = 1) -> list[str]:
    """Expand a comma-separated list of ranges (``web[01-03],db1``); blanks are skipped."""
    names: list[str] = []
    for piece, col in split_top(text, ","):
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            names.extend(expand(stripped, column + col - 1 + lead))
    return names


# --------------------------------------------------------------------------- folding


def fold_numbers(values: Collection[str]) -> str:
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
