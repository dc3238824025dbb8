"""What a run on many hosts reports, one event at a time, and the outcomes a host can have.

    Started(host)                   the host's turn came: connecting now
    Output(host, stream, text)      one line (or a last, unterminated piece) of out or err
    Exited(host, exit_code, ...)    the job ran to its end; 0 is success
    Failed(host, outcome, error...) it could not; ``outcome`` says why:
        FAILED       the job raised, timed out, or its worker was lost
        UNREACHABLE  the gateway did not open (a connection error: refused, host key,
                     authentication, no such interpreter, ...)
        ERROR        a bug on our side (an unexpected exception): its traceback is logged
                     at debug level, only its last line travels here

Every host gets ``Started`` then any ``Output`` then exactly one ``Exited`` or ``Failed``.
Values only: this module imports nothing of the package, so whatever consumes events
(results, renderers) does not pull in gateways or transports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

__all__ = [
    "ERROR",
    "FAILED",
    "OK",
    "OUTCOMES",
    "UNREACHABLE",
    "Event",
    "Exited",
    "Failed",
    "Output",
    "Started",
]

OK, FAILED, UNREACHABLE, ERROR = "ok", "failed", "unreachable", "error"
#: Every outcome, in the order reports list them (problems last, next to the summary).
OUTCOMES = (OK, FAILED, UNREACHABLE, ERROR)


@dataclass(frozen=True)
class Started:
    host: str


@dataclass(frozen=True)
class Output:
    host: str
    stream: str  # "out" or "err"
    text: str  # one line with its "\n", or the last piece of a stream without one


@dataclass(frozen=True)
class Exited:
    host: str
    exit_code: int
    duration: float
    error: Optional[str] = None  # why a non-zero exit, when known ("killed by signal 9")


@dataclass(frozen=True)
class Failed:
    host: str
    status: str  # FAILED, UNREACHABLE or ERROR
    error: str  # one line
    duration: float
    detail: Optional[str] = None  # the remote traceback or the full message
    exit_code: Optional[int] = None


Event = Union[Started, Output, Exited, Failed]
