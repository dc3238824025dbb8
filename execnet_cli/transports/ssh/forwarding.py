"""An ssh gateway's frames decoded and dispatched in paramiko's transport thread, as each
packet arrives.

A reply used to cross two thread hand-offs: paramiko's transport thread fed the channel's
buffer, our receiver thread woke to decode and dispatch it, then the waiting consumer
woke. Here the transport thread decodes and hands items straight to the channels' queues,
and the receiver thread sleeps unless it is needed.

That thread also takes in the window adjusts that a send blocked on a full window waits
for, so it must never wait on us. It dispatches a frame only where nothing can block or
run user code (``BaseGateway._dispatch_inline``); any other frame (a channel with a
callback, a lock held elsewhere, a request) goes to the receiver thread, and so does
everything after it until that thread has caught up: the order stays the stream's. The
end of the stream is always handled there too (it ends every channel, which may call
their callbacks).

Flow control stays what ``Channel.recv`` does: the server is granted window for what was
dispatched (counted every ``GRANT_STEP`` bytes); a frame waiting for the receiver thread
(a slow callback) is granted only once it is dispatched, so a stalled consumer still
stops the sender.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any, Deque, Optional, Tuple, Union

from ..._remote.errors import DataFormatError
from ..._remote.framing import HEADER_SIZE
from .channel import ChunkPipe, send_window_adjust

log = logging.getLogger("execnet_cli.ssh")

__all__ = ["PacketDispatcher"]

#: Bytes taken before the window accounting runs: small next to the 16 MiB window
#: (``connect.WINDOW_SIZE``), of which paramiko grants only in tenths anyway.
GRANT_STEP = 256 * 1024


class _End:
    """A task: the stream ended, for this reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: BaseException) -> None:
        self.reason = reason


#: What waits for the receiver thread: a frame (with its size on the wire), window to
#: grant (an int), or the end.
Task = Tuple[Union[Tuple[int, int, bytes], int, _End], int]


class PacketDispatcher:
    """Decodes one ssh channel's data in paramiko's thread; ``serve`` is the receiver
    thread's loop for what cannot be done there."""

    def __init__(self, gateway: Any, channel: Any, pipe: ChunkPipe) -> None:
        self._reader = gateway._reader
        self._dispatch_inline = gateway._dispatch_inline
        self._dispatch = gateway._dispatch
        self._name = gateway.id
        self._channel = channel
        self._pipe = pipe
        #: Held while data is decoded and dispatched: keeps the stream's order between
        #: ``start`` (what was buffered) and the transport thread.
        self._feed_lock = threading.Lock()
        self._lock = threading.Lock()  # the tasks and the window counts
        self._wake = threading.Condition(self._lock)
        #: Tasks for the receiver thread; the first stays until it is done, so "empty"
        #: means nothing is pending or in progress there.
        self._tasks: Deque[Task] = deque()
        self._ending = False  # an end was queued: later data is ignored
        self._fed = 0  # bytes taken from the channel
        self._held = 0  # of those, bytes of frames waiting for the receiver thread
        self._granted = 0  # window granted to the server for them
        self._untold = 0  # bytes taken but not yet counted in ``_fed`` (under _feed_lock)

    def start(self) -> None:
        """Take the channel's data from now on (what is buffered first)."""
        with self._feed_lock:
            chunks, ended = self._pipe.forward(self.feed, self.close)
            for chunk in chunks:
                self._untold += self._take(chunk)
            if ended:
                self._end_of_data()
            taken, self._untold = self._untold, 0
        self._grant(taken, here=True)

    # -- paramiko's transport thread ---------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """One packet's data: dispatch its whole frames, here or in the receiver thread;
        then grant the window (outside the lock: ``close`` comes under the channel's)."""
        with self._feed_lock:
            untold = self._untold + self._take(data)
            if untold < GRANT_STEP:  # the server's window has room: no lock, no call
                self._untold = untold
                return
            self._untold = 0
        self._grant(untold, here=True)

    def close(self) -> None:
        """The channel's end of data (EOF, close, or the connection is gone)."""
        with self._feed_lock:
            self._end_of_data()

    def _end_of_data(self) -> None:
        if not self._ending:
            self._queue_end(EOFError(f"gateway {self._name!r}: the other side closed the stream"))

    def _take(self, data: bytes) -> int:
        """Decode and dispatch ``data``; how many bytes were taken (0 after the end)."""
        if self._ending or not data:
            return 0
        tasks = self._tasks
        try:
            frames = self._reader.decode(data)
            for frame in frames:
                if not tasks:
                    outcome = self._dispatch_inline(frame)
                    if outcome is not None:
                        if not outcome:
                            self._queue_end(EOFError(f"gateway {self._name!r}: terminated"))
                            return len(data)
                        continue
                msgtype, channel_id, payload = frame
                if type(payload) is not bytes:  # a view of a buffer the decoder reuses
                    payload = bytes(payload)
                size = HEADER_SIZE + len(payload)
                self._put(((msgtype, channel_id, payload), size), size)
        except DataFormatError as exc:
            log.error("gateway %r: corrupt stream: %s", self._name, exc)
            self._queue_end(EOFError(f"gateway {self._name!r}: corrupt stream ({exc})"))
        except Exception as exc:  # a bug of ours: log it, end cleanly
            log.exception("gateway %r: reading failed", self._name)
            self._queue_end(EOFError(f"gateway {self._name!r}: reading failed ({exc!r})"))
        return len(data)

    def _queue_end(self, reason: BaseException) -> None:
        self._ending = True
        self._put((_End(reason), 0), 0)

    def _put(self, task: Task, held: int) -> None:
        with self._lock:
            self._tasks.append(task)
            self._held += held
            self._wake.notify()

    # -- window ------------------------------------------------------------------------------

    def _grant(self, fed: int, here: bool) -> None:
        """Grant the server window for what was taken and is not waiting for the receiver
        thread. In the transport thread, only while no key exchange runs (a send would wait
        for its end, which that very thread brings): else the receiver thread grants it."""
        with self._lock:
            self._fed += fed
            give = self._fed - self._held - self._granted
            if give <= 0:
                return
            self._granted += give
        channel = self._channel
        if here and not channel.transport.clear_to_send.is_set():
            self._put((give, 0), 0)
            return
        count = channel._check_add_window(give)
        if count > 0:
            send_window_adjust(channel, count)

    # -- the receiver thread -----------------------------------------------------------------

    def serve(self) -> None:
        """Run what was left to this thread, in order, until the end of the stream."""
        reader = self._reader
        reader.serve_here()
        tasks = self._tasks
        while True:
            with self._lock:
                while not tasks:
                    self._wake.wait()
                task, size = tasks[0]
            if isinstance(task, _End):
                reader.finish(task.reason)
                return
            if isinstance(task, int):
                self._grant_deferred(task)
            elif not self._run(task):
                return
            with self._lock:
                tasks.popleft()
                self._held -= size
            if size:
                self._grant(0, here=False)

    def _grant_deferred(self, count: int) -> None:
        try:
            count = self._channel._check_add_window(count)
            if count > 0:
                send_window_adjust(self._channel, count)
        except Exception:  # the connection is gone: its end follows
            log.debug("gateway %r: window adjust failed", self._name, exc_info=True)

    def _run(self, frame: Tuple[int, int, bytes]) -> bool:
        """Dispatch one frame; False (after ending the stream) when it was the last."""
        reason: Optional[BaseException] = None
        try:
            if not self._dispatch(frame):
                reason = EOFError(f"gateway {self._name!r}: terminated")
        except DataFormatError as exc:
            log.error("gateway %r: corrupt stream: %s", self._name, exc)
            reason = EOFError(f"gateway {self._name!r}: corrupt stream ({exc})")
        except Exception as exc:
            log.exception("gateway %r: dispatching failed", self._name)
            reason = EOFError(f"gateway {self._name!r}: reading failed ({exc!r})")
        if reason is None:
            return True
        self._ending = True
        self._reader.finish(reason)
        return False
