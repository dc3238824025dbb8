"""What a run on many hosts reports, one event at a time, and the outcomes a host can have.

    Started(host)                   the host's turn came: connecting now
    Retrying(host, attempt, ...)    connecting failed in a way worth trying again (refused,
                                    timed out): waiting ``delay`` s, then attempt + 1
    Running(host)                   its gateway is open and the job was sent
    Output(host, stream, text)      whole lines (or a last, unterminated piece) of a stream
    Exited(host, exit_code, ...)    the job ran to its end; 0 is success (``returned``:
                                    the value of an ``xnet run -m pkg.mod:func`` call)
    Failed(host, outcome, error...) it could not; ``outcome`` says why:
        FAILED       the job raised, or its worker was lost while running it
        TIMED_OUT    the job ran longer than its timeout (and was killed)
        UNREACHABLE  the gateway did not open (a connection error: refused, host key,
                     authentication, no such interpreter, ...)
        INTERRUPTED  the run was stopped (Ctrl-C, SIGTERM, SIGHUP) before the host ended
        ERROR        a bug on our side (an unexpected exception): its traceback is logged
                     at debug level, only its last line travels here

Streams: ``out`` and ``err`` are what the job printed; ``log`` is what is not the job's
but about this host: the worker's own stderr (e.g. the remote shell's complaints over ssh)
and xnet's log records about its gateway ("corrupt stream ...").

Every host gets ``Started``, any ``Retrying``, maybe ``Running``, then any ``Output`` then
exactly one ``Exited`` or ``Failed``; a host stopped before its turn came gets only ``Failed``
(``INTERRUPTED``). Values only: this module imports nothing of the package, so whatever
consumes events (results, renderers) does not pull in gateways or transports.
"""

from __future__ import annotations

from typing import Optional, Union

from ..records import Record as _Record

__all__ = [
    "ERROR",
    "FAILED",
    "INTERRUPTED",
    "OK",
    "OUTCOMES",
    "STREAMS",
    "TIMED_OUT",
    "UNREACHABLE",
    "Event",
    "Exited",
    "Failed",
    "Output",
    "Retrying",
    "Returned",
    "Running",
    "Started",
]

OK, FAILED, TIMED_OUT, UNREACHABLE = "ok", "failed", "timed out", "unreachable"
INTERRUPTED, ERROR = "interrupted", "error"
#: Every outcome, in the order reports list them (problems last, next to the summary).
OUTCOMES = (OK, FAILED, TIMED_OUT, UNREACHABLE, INTERRUPTED, ERROR)
STREAMS = ("out", "err", "log")


class Started(_Record):
    __slots__ = ("host",)
    host: str

    def __init__(self, host: str) -> None:
        self._set(host)


class Retrying(_Record):
    __slots__ = ("host", "attempt", "attempts", "error", "delay")  # noqa: RUF023 (in order)
    host: str
    attempt: int  # the attempt that failed, 1 for the first
    attempts: int  # how many there may be in all (1 + retries)
    error: str  # why it failed, one line
    delay: float  # seconds until the next attempt

    def __init__(self, host: str, attempt: int, attempts: int, error: str, delay: float) -> None:
        self._set(host, attempt, attempts, error, delay)

    def describe(self) -> str:
        """The line the host's log and the live table show."""
        return (
            f"connect attempt {self.attempt} of {self.attempts} failed, again in "
            f"{self.delay:.1f} s: {self.error}"
        )


class Running(_Record):
    __slots__ = ("host",)
    host: str

    def __init__(self, host: str) -> None:
        self._set(host)


class Output(_Record):
    __slots__ = ("host", "stream", "text")
    host: str
    stream: str  # "out", "err" or "log"
    text: str  # whole lines, each with its "\n", or the last piece of a stream without one

    def __init__(self, host: str, stream: str, text: str) -> None:
        self._set(host, stream, text)


class Returned(_Record):
    """What a called function returned: the value as it came (None when it could not
    travel) and its ``repr`` as the host made it."""

    __slots__ = ("value", "text")  # noqa: RUF023 (in order)
    value: object
    text: str

    def __init__(self, value: object, text: str) -> None:
        self._set(value, text)

    @classmethod
    def of(cls, value: object, text: object) -> Returned:
        """From a job's ("return", value, text) item: ``text`` is the host's repr when the
        value could not travel, else None (the repr is made here)."""
        return cls(value, repr(value) if text is None else str(text))


class Exited(_Record):
    __slots__ = ("host", "exit_code", "duration", "error", "returned")  # noqa: RUF023 (in order)
    host: str
    exit_code: int
    duration: float
    error: Optional[str]  # why a non-zero exit, when known ("killed by signal 9")
    returned: Optional[Returned]

    def __init__(
        self,
        host: str,
        exit_code: int,
        duration: float,
        error: Optional[str] = None,
        returned: Optional[Returned] = None,
    ) -> None:
        self._set(host, exit_code, duration, error, returned)


class Failed(_Record):
    __slots__ = ("host", "status", "error", "duration", "detail", "exit_code")  # noqa: RUF023 (in order)
    host: str
    status: str  # FAILED, TIMED_OUT, UNREACHABLE, INTERRUPTED or ERROR
    error: str  # one line
    duration: float
    detail: Optional[str]  # the remote traceback or the full message
    exit_code: Optional[int]

    def __init__(
        self,
        host: str,
        status: str,
        error: str,
        duration: float,
        detail: Optional[str] = None,
        exit_code: Optional[int] = None,
    ) -> None:
        self._set(host, status, error, duration, detail, exit_code)


Event = Union[Started, Retrying, Running, Output, Exited, Failed]
