"""From a job's channel to host events, in bounded memory and in few events.

The gateway's reading thread hands each item of the job's channel to ``Collector.on_item``
(a channel callback); the pool thread serving the host takes what has gathered
(``Collector.take``) and makes ``Output`` events of it: whole lines only, many at once.
Two bounds keep memory flat however much a host prints and however slowly its events
are consumed:

- a host's collector holds at most ``HOST_BUFFER`` characters: past that, the reading
  thread waits in ``on_item``, so it stops reading the gateway's stream, the OS pipe
  fills, and the worker waits in its write: flow control from end to end;
- ``Budget``: the characters in events put but not yet consumed, for the whole run; past
  ``RUN_BUFFER`` the pool threads wait before putting more.

Batching: after the first piece the pool thread waits up to ``COALESCE`` seconds for more
(a bound on how late a line shows), so a million lines become a few hundred events.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from .events import Returned

__all__ = ["COALESCE", "HOST_BUFFER", "RUN_BUFFER", "Budget", "Collector", "LineSplitter"]

HOST_BUFFER = 256 * 1024
RUN_BUFFER = 8 * 1024 * 1024
COALESCE = 0.05
#: How often a waiting thread looks whether the run was cancelled.
_POLL = 0.1
#: The channel's endmarker: the channel closed (the job's end, or the worker's).
CLOSED = object()

Piece = tuple[str, str]  # (stream, text)


class Collector:
    """One host's job channel: its output pieces and how it ended, between two threads."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._pieces: list[Piece] = []
        self._size = 0
        self.exit: Optional[tuple[Any, ...]] = None  # the job's ("exit", code, text) item
        self.returned: Optional[Returned] = None  # a called function's ("return", ...) item
        self.closed = False  # the channel closed (endmarker)
        self._stopped = False  # nobody takes any more: never wait
        #: The thread that takes: it may deliver items itself (``setcallback`` hands over
        #: what was queued before it in the calling thread), and must never wait for room.
        self._taker = threading.get_ident()

    # -- the reading thread ----------------------------------------------------------------

    def on_item(self, item: Any) -> None:
        """The channel callback: keep output, note the end; wait while the buffer is full."""
        if item is CLOSED:
            with self._cond:
                self.closed = True
                self._cond.notify_all()
            return
        if not isinstance(item, tuple) or not item:
            return
        if item[0] in ("out", "err") and len(item) == 2 and isinstance(item[1], str):
            with self._cond:
                while (
                    self._size >= HOST_BUFFER
                    and not self._stopped
                    and threading.get_ident() != self._taker
                ):
                    self._cond.notify_all()
                    self._cond.wait(_POLL)
                self._pieces.append((item[0], item[1]))
                self._size += len(item[1])
                if self._size >= HOST_BUFFER:
                    self._cond.notify_all()
        elif item[0] == "return" and len(item) == 3:
            value, text = item[1], item[2]
            self.returned = Returned.of(value, text)
        elif item[0] == "exit" and len(item) == 3:
            with self._cond:
                self.exit = item
                self._cond.notify_all()

    # -- the pool thread -------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.exit is not None or self.closed

    def take(self, timeout: Optional[float]) -> list[Piece]:
        """What has gathered, once there is some (or the end, or ``timeout`` passed).

        After the first piece, waits up to ``COALESCE`` more for a fuller batch.
        """
        with self._cond:
            if not self._pieces and not self.ended:
                self._cond.wait(timeout)
            if self._pieces and not self.ended and self._size < HOST_BUFFER:
                wait = COALESCE if timeout is None else min(COALESCE, timeout)
                self._cond.wait_for(lambda: self.ended or self._size >= HOST_BUFFER, wait)
            pieces, self._pieces, self._size = self._pieces, [], 0
            self._cond.notify_all()  # a reading thread waiting for room
            return pieces

    def stop(self) -> None:
        """Nobody takes any more: the reading thread must never wait again."""
        with self._cond:
            self._stopped = True
            self._pieces, self._size = [], 0
            self._cond.notify_all()


class Budget:
    """Characters in events put but not consumed yet, for the whole run (see above)."""

    def __init__(self, limit: int = RUN_BUFFER) -> None:
        self.limit = limit
        self._cond = threading.Condition(threading.Lock())
        self._used = 0

    def acquire(self, size: int, cancelled: threading.Event) -> None:
        """Wait for room for ``size`` more (not once the run is cancelled: then it drains)."""
        with self._cond:
            while self._used >= self.limit and not cancelled.is_set():
                self._cond.wait(_POLL)
            self._used += size

    def release(self, size: int) -> None:
        with self._cond:
            self._used -= size
            if self._used < self.limit:
                self._cond.notify_all()


class LineSplitter:
    """Cuts a stream's text pieces at line ends, so renderers always get whole lines."""

    def __init__(self) -> None:
        self.pending = ""

    def feed(self, text: str) -> str:
        """The whole lines ``text`` completes ("" if none); the rest waits for more."""
        if self.pending:
            text = self.pending + text
        cut = text.rfind("\n") + 1
        if cut == len(text):
            self.pending = ""
            return text
        self.pending = text[cut:]
        return text[:cut]

    def rest(self) -> str:
        data, self.pending = self.pending, ""
        return data
