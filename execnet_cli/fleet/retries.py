"""Connecting again (``--retries``, an inventory's ``retries``): which errors are worth
another attempt, and how long to wait before it.

A host rebooting refuses connections, or accepts and drops them, for a while: another
attempt after a wait may succeed. A host key, authentication, an unknown name or
interpreter, or a worker that cannot start (an impossible ``chdir``) will fail the same way
again, so they are not retried. The runner waits ``backoff(n)`` +-20 % (hosts failing
together do not come back together), and reports each retry as a ``Retrying`` event.
"""

from __future__ import annotations

from ..errors import (
    AuthenticationFailed,
    BootstrapError,
    ConnectFailed,
    HostKeyError,
    InterpreterNotFound,
)

__all__ = ["RETRY_FIRST_DELAY", "RETRY_MAX_DELAY", "backoff", "retryable"]

#: The first wait between connection attempts, and the longest.
RETRY_FIRST_DELAY = 0.5
RETRY_MAX_DELAY = 30.0


def retryable(exc: BaseException) -> bool:
    """Whether another connection attempt may succeed: refused, reset, timed out, no
    banner (a host rebooting). Not a host key, authentication, an unknown name or
    interpreter, a worker that cannot start: those stay as they are."""
    if isinstance(exc, (AuthenticationFailed, HostKeyError, InterpreterNotFound, BootstrapError)):
        return False
    return isinstance(exc, (ConnectFailed, OSError, EOFError)) and not isinstance(
        exc, FileNotFoundError
    )


def backoff(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``: 0.5, 1, 2, 4, ... at most 30 (the runner
    adds +-20 % so that hosts failing together do not retry together)."""
    return min(RETRY_FIRST_DELAY * 2 ** (attempt - 1), RETRY_MAX_DELAY)
