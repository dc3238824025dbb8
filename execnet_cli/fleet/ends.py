"""How a host's turn ends, as its end event, when it did not run its job to the end or
when the job reported its end.

How a host that did not get its job done is classified (``events`` names the outcomes):
only a connection error while opening (``CONNECTION_ERRORS``) makes it "unreachable"; the
job raising or losing its worker makes it "failed" (a lost worker says how it ended: "the
worker exited with status 3", "killed by signal 9"); running past the job's timeout makes
it "timed out"; ``stop()`` (the CLI calls it on SIGINT, SIGTERM, SIGHUP) makes every host
not yet ended "interrupted", with what it printed so far; any other exception is a bug of
ours, "error", with its traceback logged at debug level (``xnet --debug``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

from ..errors import HostNotFound
from .events import (
    ERROR,
    FAILED,
    INTERRUPTED,
    TIMED_OUT,
    UNREACHABLE,
    Event,
    Exited,
    Failed,
    Returned,
)
from .jobs import SH_TIMED_OUT, Job
from .jobstart import one_line

if TYPE_CHECKING:  # loaded with the first gateway: ``sh`` straight on ssh opens none
    from ..gateway import Gateway

__all__ = ["CONNECTION_ERRORS", "KILL_WAIT"]

#: The runner's bugs are logged under its name (``xnet --debug`` shows where they were met).
log = logging.getLogger(f"{__package__}.runner")

#: How long a timed-out or cancelled worker is given to end before it is killed.
KILL_WAIT = 1.0
#: What opening a gateway raises when the host cannot be reached: ours (``HostNotFound`` and
#: kinds), OS-level ones (refused, reset, timed out: ``OSError``; stream ended: ``EOFError``).
CONNECTION_ERRORS = (HostNotFound, OSError, EOFError)


class _Cancelled(Exception):
    """The run was closed before this host's turn ended."""


def _not_opened(name: str, exc: Exception, duration: float) -> Failed:
    """The end of a host whose gateway did not open: unreachable, interrupted, or our bug."""
    if isinstance(exc, _Cancelled):
        return Failed(name, INTERRUPTED, "interrupted", duration)
    if isinstance(exc, CONNECTION_ERRORS):
        return Failed(name, UNREACHABLE, one_line(exc), duration, f"{type(exc).__name__}: {exc}")
    return _bug(name, exc, duration)


def _bug(name: str, exc: Exception, duration: float) -> Failed:
    """An exception nobody expected: its line for the report, its traceback for ``--debug``."""
    log.debug("host %s: internal error", name, exc_info=exc)
    return Failed(name, ERROR, one_line(exc), duration, f"{type(exc).__name__}: {exc}")


def _worker_end(gateway: Gateway) -> tuple[str, Optional[int]]:
    """How a worker that went away mid-job ended: ("the worker exited with status 3", 3).

    A signal is reported as a shell would, 128 + N; a transport that cannot tell (a
    socket) says the connection was lost.
    """
    transport = gateway.transport
    code = transport.wait(KILL_WAIT)
    describe = getattr(transport, "exit_description", None)
    if describe is None or code is None:
        return "the worker was lost (the connection to it closed)", None
    return f"the worker {describe()}", (128 - code if code < 0 else code)


def _job_end(
    job: Job,
    name: str,
    code: int,
    text: Optional[str],
    duration: float,
    returned: Optional[Returned] = None,
) -> Event:
    """The end event for the job's own report: its exit code and why (or its traceback),
    and what a called function returned."""
    if job.kind == "run" and text:  # an exception: its traceback is the detail
        last = text.strip().splitlines()[-1]
        return Failed(name, FAILED, last, duration, text, code)
    if job.kind == "sh" and text and text.startswith(SH_TIMED_OUT):
        return Failed(name, TIMED_OUT, text, duration, None, code)
    return Exited(name, code, duration, text, returned)
