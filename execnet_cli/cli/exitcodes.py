"""The exit status of ``xnet``: the one table mapping outcomes to codes.

    0    every host ran the job and it succeeded (or at most ``--tolerate`` did not)
    1    some host failed: the code raised or exited non-zero, the command exited
         non-zero, or the worker was lost while running
    2    usage or inventory error, before any host was contacted (``options.EXIT_USAGE``)
    3    some host was unreachable (its gateway did not open); none failed or timed out
    4    some host timed out (``--timeout``); none failed
    5    the pattern selected no host (nothing was contacted)
    6    stopped on the failure budget: ``--max-fail`` was spent or a ``--canary`` host
         did not succeed, so later batches did not run (``fleet.batches``)
    70   a bug of ours on some host (an unexpected exception, not a connection error)
    128+N  stopped by signal N: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP; every
         gateway was ended first, every host reported (``interrupted`` if unfinished)
    141  standard output was closed (``| head``): as SIGPIPE ends other tools, quietly

When several apply, the first in this order wins: a signal, 70, 6, 1, 4, 3, 0. A bug of ours
comes first because it may have caused the others; a stop on the budget before the host
failures that spent it, since part of the selection was not even tried; a failure before a
timeout, and a timeout before unreachability, because each is more likely the thing to look
at. ``--tolerate N`` (or ``N%`` of the selected hosts) turns 1, 3 and 4 into 0 when at most
that many hosts did not succeed; it never hides a bug of ours, a stop on the budget, nor a
signal.

Library errors and results carry no codes (see ``errors``, ``fleet.results``); only this
table turns outcomes into them.
"""

from __future__ import annotations

import signal
from collections.abc import Collection

from ..fleet.events import ERROR, FAILED, INTERRUPTED, OK, TIMED_OUT, UNREACHABLE
from ..records import Record
from .options import EXIT_NO_HOST, EXIT_USAGE

__all__ = [
    "EXIT_BUDGET",
    "EXIT_CLOSED_OUTPUT",
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NO_HOST",
    "EXIT_OK",
    "EXIT_TIMED_OUT",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "Tolerance",
    "exit_status",
    "signal_status",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNREACHABLE = 3
EXIT_TIMED_OUT = 4
EXIT_BUDGET = 6
EXIT_ERROR = 70  # sysexits.h EX_SOFTWARE
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_CLOSED_OUTPUT = 128 + signal.SIGPIPE  # 141

#: Outcome -> status, the most important first: the first outcome that occurred decides.
_BY_OUTCOME = (
    (INTERRUPTED, EXIT_INTERRUPTED),  # the CLI knows which signal: 128+N (signal_status)
    (ERROR, EXIT_ERROR),
    (FAILED, EXIT_FAILED),
    (TIMED_OUT, EXIT_TIMED_OUT),
    (UNREACHABLE, EXIT_UNREACHABLE),
)
#: The outcomes ``--tolerate`` may forgive.
_TOLERABLE = frozenset({FAILED, TIMED_OUT, UNREACHABLE})


class Tolerance(Record):
    """How many hosts may not succeed with the run still a success: ``count`` or ``percent``
    (a ``Record``: a frozen value, as the dataclass it was, cheaper to import)."""

    __slots__ = ("count", "percent")
    count: int
    percent: bool

    def __init__(self, count: int = 0, percent: bool = False) -> None:
        self._set(count, percent)

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        """``N`` or ``N%``; raises ValueError otherwise."""
        digits = text[:-1] if text.endswith("%") else text
        if not digits.isdigit():
            raise ValueError(f"{text!r} is not a number of hosts (N) or a share of them (N%)")
        count = int(digits)
        if text.endswith("%") and count > 100:
            raise ValueError(f"{text!r}: a share is at most 100%")
        return cls(count, text.endswith("%"))

    def allows(self, bad: int, total: int) -> bool:
        """Whether ``bad`` hosts out of ``total`` is within the tolerance."""
        limit = self.count * total // 100 if self.percent else self.count
        return bad <= limit

    def __str__(self) -> str:
        return f"{self.count}%" if self.percent else str(self.count)


#: No host may fail (the default).
NO_TOLERANCE = Tolerance()


def exit_status(
    outcomes: Collection[str],
    bad: int = 0,
    total: int = 0,
    tolerance: Tolerance = NO_TOLERANCE,
    budget_spent: bool = False,
) -> int:
    """The status for a finished run, from the kinds of ending that occurred in it.

    ``bad`` hosts of ``total`` did not succeed; ``tolerance`` says how many may not;
    ``budget_spent``: the run stopped before its last batch on the failure budget.
    """
    if budget_spent and not {INTERRUPTED, ERROR} & set(outcomes):  # those rows come first
        return EXIT_BUDGET
    if bad and set(outcomes) <= _TOLERABLE | {OK} and tolerance.allows(bad, total):
        return EXIT_OK  # never a bug of ours: ERROR is not tolerable
    for outcome, status in _BY_OUTCOME:
        if outcome in outcomes:
            return status
    return EXIT_OK


def signal_status(signum: int) -> int:
    """The status after being stopped by signal ``signum``: 128 + N, as shells report it."""
    return 128 + signum
