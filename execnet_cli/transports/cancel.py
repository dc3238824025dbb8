"""Aborting gateways that are still opening: ``Group.terminate`` must not wait for them.

An open can wait a long time on the far side: a server that accepts and never speaks
holds an ssh handshake until its timeout (30 s by default), and a worker that never says
ready holds the gateway's start. A thread doing that cannot be interrupted, but its
stream can be shut down, which makes the wait fail at once (and so is anything that open
connects after the abort: a retry).

So each open runs in an ``OpenScope.opening()`` block; what it connects along the way is
registered with ``watch`` (the TCP socket, the jump host's channel, the transport to a
worker not yet ready), and ``OpenScope.abort()`` (from ``Group.terminate``, e.g. on
Ctrl-C) shuts down everything registered by opens still in progress. Finished opens
drop their registrations: aborting never touches a gateway that is open.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

__all__ = ["OpenScope", "watch"]

_local = threading.local()


class OpenScope:
    """The opens in progress of one group, and how to cut each short."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closers: dict[int, list[Callable[[], None]]] = {}  # opening thread -> closers
        self._aborted: set[int] = set()  # opening threads cut short: what they open next too

    @contextmanager
    def opening(self) -> Iterator[None]:
        """Mark this thread's open as in progress (``watch`` registers with it)."""
        ident = threading.get_ident()
        previous: Optional[OpenScope] = getattr(_local, "scope", None)
        _local.scope = self
        with self._lock:
            self._closers[ident] = []
        try:
            yield
        finally:
            with self._lock:
                self._closers.pop(ident, None)
                self._aborted.discard(ident)
            _local.scope = previous

    def add(self, closer: Callable[[], None]) -> None:
        ident = threading.get_ident()
        with self._lock:
            closers = self._closers.get(ident)
            if closers is not None:
                closers.append(closer)
            aborted = ident in self._aborted
        if aborted:  # a retry after the abort (ssh tries a dropped connection again)
            _quietly(closer)

    def abort(self) -> None:
        """Cut every open in progress short (each then fails with its connection error)."""
        with self._lock:
            self._aborted.update(self._closers)
            closers = [c for cs in self._closers.values() for c in cs]
        for closer in closers:
            _quietly(closer)


def _quietly(closer: Callable[[], None]) -> None:
    try:
        closer()
    except Exception:  # already closed, or closing for another reason
        pass


def watch(stream: Any) -> None:
    """Let the open in progress in this thread be aborted by shutting ``stream`` down
    (a socket, a paramiko channel, anything with ``shutdown``, ``kill`` or ``close``).
    Outside an open: nothing."""
    scope: Optional[OpenScope] = getattr(_local, "scope", None)
    if scope is not None:
        scope.add(lambda: _cut(stream))


def _cut(stream: Any) -> None:
    if isinstance(stream, socket.socket):
        stream.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading it; close may not
    elif hasattr(stream, "kill"):
        stream.kill()
    elif hasattr(stream, "shutdown"):
        stream.shutdown(2)
    else:
        stream.close()
