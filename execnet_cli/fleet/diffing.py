"""Which hosts printed the same, and how the others differ from the most common output.

An output class is the set of hosts whose job printed the same text: stdout and stderr as
they came, in order (the ``log`` stream, ssh's warnings and ours, is not the job's and is
left out). ``OutputClasses`` numbers each class by its first host to end, so a number is
known as soon as a host ends (``--json`` writes it then as ``group``); ``ranked()`` orders
them for ``--diff``: the most common first (the reference), ties to the class whose first
host sorts first, as ``clush --diff`` compares against the majority.

Hosts whose job did not run to an end (unreachable, interrupted, a bug of ours) printed
nothing of the job's to compare and belong to no class.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterator
from typing import Optional

from ..inventory import HostSet, natural_key
from .events import ERROR, INTERRUPTED, UNREACHABLE
from .results import HostResult

__all__ = ["OutputClasses", "shown_text", "unified_diff"]

#: Outcomes of hosts that belong to no output class.
_UNCLASSED = frozenset({UNREACHABLE, INTERRUPTED, ERROR})
#: Lines of context around each change, as ``diff -u``.
CONTEXT = 3


def shown_text(result: HostResult) -> str:
    """What the host's job printed, stdout and stderr in the order it came."""
    return "".join(text for stream, text in result.output if stream != "log")


def _digest(result: HostResult) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for stream, text in result.output:
        if stream != "log":
            digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.digest()


class OutputClasses:
    """Hosts by the output their job printed: each distinct output numbered from 0."""

    def __init__(self) -> None:
        self._numbers: dict[bytes, int] = {}
        self._known: dict[tuple[bytes, int], int] = {}  # by the whole output's key: no reading
        self._members: list[list[str]] = []
        self._samples: list[HostResult] = []

    def add(self, result: HostResult) -> Optional[int]:
        """The class ``result``'s host joins (None: it printed nothing to compare)."""
        if result.status in _UNCLASSED:
            return None
        number = self._known.get(result.output.key)
        if number is None:  # a new output: its text decides (read once, log left out)
            key = _digest(result)
            number = self._numbers.get(key)
            if number is None:
                number = self._numbers[key] = len(self._members)
                self._members.append([])
                self._samples.append(result)
            self._known[result.output.key] = number
        self._members[number].append(result.name)
        return number

    def __len__(self) -> int:
        return len(self._members)

    def ranked(self) -> list[tuple[HostSet, HostResult]]:
        """Each class as (its hosts, one of their results): the most common first."""
        classes = [(HostSet(names), self._samples[i]) for i, names in enumerate(self._members)]
        classes.sort(key=lambda c: (-len(c[0]), natural_key(next(iter(c[0])))))
        return classes


def unified_diff(
    reference: HostResult, reference_hosts: HostSet, other: HostResult, other_hosts: HostSet
) -> Iterator[str]:
    """``other``'s output as a unified diff against ``reference``'s, each file named by its
    folded host set; lines without their newline (a last line without one is marked, as
    ``diff`` does)."""
    before = shown_text(reference).splitlines(keepends=True)
    after = shown_text(other).splitlines(keepends=True)
    for line in difflib.unified_diff(
        before,
        after,
        f"{reference_hosts} ({len(reference_hosts)})",
        f"{other_hosts} ({len(other_hosts)})",
        n=CONTEXT,
    ):
        if line.endswith("\n"):
            yield line[:-1]
        else:
            yield line
            yield "\\ No newline at end of file"
