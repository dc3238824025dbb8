"""The exit status of ``xnet run`` and ``xnet sh``: the one table mapping outcomes to codes.

    0    every host ran the job and it succeeded
    1    some host failed: the code raised or exited non-zero, the command exited
         non-zero, the job timed out, or the worker was lost while running
         (whether or not other hosts were unreachable: a failure is what to look at first)
    2    usage or inventory error, before any host was contacted (``options.EXIT_USAGE``)
    3    no host failed, but some host was unreachable (its gateway did not open)
    70   a bug of ours on some host (an unexpected exception, not a connection error):
         wins over the others, whose outcomes it may have caused; ``--debug`` shows it
    130  interrupted (Ctrl-C); every gateway was ended first

Library errors and results carry no codes (see ``errors``, ``fleet.results``); only this
table turns outcomes into them.
"""

from __future__ import annotations

from collections.abc import Collection

from ..fleet.events import ERROR, FAILED, UNREACHABLE
from .options import EXIT_USAGE

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "exit_status",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNREACHABLE = 3
EXIT_ERROR = 70  # sysexits.h EX_SOFTWARE; 4 and 5 are kept for timed out and no host
EXIT_INTERRUPTED = 130

#: Outcome -> status, the most important first: the first outcome that occurred decides.
_BY_OUTCOME = ((ERROR, EXIT_ERROR), (FAILED, EXIT_FAILED), (UNREACHABLE, EXIT_UNREACHABLE))


def exit_status(outcomes: Collection[str]) -> int:
    """The status for a finished run, from the kinds of ending that occurred in it."""
    for outcome, status in _BY_OUTCOME:
        if outcome in outcomes:
            return status
    return EXIT_OK
