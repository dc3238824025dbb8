"""The exit status of ``xnet run`` and ``xnet sh``: the one table mapping outcomes to codes.

    0    every host ran the job and it succeeded
    1    some host failed: the code raised or exited non-zero, the command exited
         non-zero, the job timed out, or the worker was lost while running
         (whether or not other hosts were unreachable: a failure is what to look at first)
    2    usage or inventory error, before any host was contacted (``cli_options.EXIT_USAGE``)
    3    no host failed, but some host was unreachable (its gateway did not open)
    130  interrupted (Ctrl-C); every gateway was ended first

Library errors carry no codes (see ``errors``); only this table turns outcomes into them.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..fleet.runner import FAILED, UNREACHABLE, HostResult
from .options import EXIT_USAGE

__all__ = [
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
EXIT_INTERRUPTED = 130


def exit_status(results: Iterable[HostResult]) -> int:
    """The status for a finished run: failures first, then unreachable hosts, else 0."""
    statuses = {r.status for r in results}
    if FAILED in statuses:
        return EXIT_FAILED
    if UNREACHABLE in statuses:
        return EXIT_UNREACHABLE
    return EXIT_OK
