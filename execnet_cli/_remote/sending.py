"""Writing a gateway's stream: whole frames, from any thread, in the calling thread.

Rules:

1. Each send writes one whole frame under one lock, in the thread that sends (no writer
   thread: a send costs one ``writev``).
2. A failed write closes the writing side for good: that send and every later one
   raise ``ChannelClosed``.
3. A context that must neither block nor interleave with a write in progress (a
   channel's ``__del__``) defers its frame: whoever holds or next takes the lock
   writes it.
4. ``finish`` writes a last frame and closes the writing side; when a send is stuck on
   a full pipe it gives up instead (only ending the far side frees that send).
"""

from __future__ import annotations

from _collections import deque
from _thread import allocate_lock

from .errors import ChannelClosed
from .framing import encode_frame

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Deque, Sequence, Tuple

    from .framing import Buffer


class Sender:
    """The writing side of one stream (``io.write`` and ``io.close_write``)."""

    def __init__(self, io: Any, name: str) -> None:
        self._io = io
        self._write = io.write
        self._name = name
        self._lock = allocate_lock()
        self._deferred: Deque[Tuple[int, int]] = deque()
        self._closed = False

    def send(self, msgtype: int, channel_id: int, segments: Sequence[Buffer] = ()) -> None:
        """Write one frame; raise ChannelClosed once the stream cannot be written."""
        frame = encode_frame(msgtype, channel_id, segments)
        lock = self._lock
        lock.acquire()  # not ``with``: half the cost, on every send
        try:
            self._write_locked(frame)
            while self._deferred:
                self._write_locked(encode_frame(*self._deferred.popleft()))
        finally:
            lock.release()
        if self._deferred:
            self._flush_deferred()

    def send_quietly(self, msgtype: int, channel_id: int, segments: Sequence[Buffer]) -> None:
        """Send, ignoring a dead connection (for close notices nobody may hear)."""
        try:
            self.send(msgtype, channel_id, segments)
        except ChannelClosed:
            pass

    def send_later(self, msgtype: int, channel_id: int) -> None:
        """Rule 3: queue an empty frame; it is written now if nobody writes, else next."""
        self._deferred.append((msgtype, channel_id))
        self._flush_deferred()

    def finish(self, msgtype: int, timeout: float) -> bool:
        """Rule 4: write a last frame (errors ignored) and close the writing side.

        False, with nothing written, when the lock is not free within ``timeout``.
        """
        if not self._lock.acquire(timeout=timeout):
            return False
        try:
            self._write_locked(encode_frame(msgtype, 0))
        except ChannelClosed:
            pass
        finally:
            self._closed = True
            self._lock.release()
        self._io.close_write()
        return True

    def _write_locked(self, frame: Sequence[Buffer]) -> None:
        if self._closed:
            raise ChannelClosed(f"gateway {self._name!r}: the connection is closed")
        try:
            self._write(frame)
        except (OSError, ValueError) as exc:
            self._closed = True
            raise ChannelClosed(
                f"gateway {self._name!r}: the connection is closed ({exc})"
            ) from exc

    def _flush_deferred(self) -> None:
        while self._deferred and self._lock.acquire(blocking=False):
            try:
                while self._deferred:
                    self._write_locked(encode_frame(*self._deferred.popleft()))
            except ChannelClosed:
                self._deferred.clear()
            finally:
                self._lock.release()
