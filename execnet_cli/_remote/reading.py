"""Reading a gateway's stream: whoever waits for data reads it (leader/follower).

Handing every message from a receiver thread to the thread that waits for it costs a
thread switch (10-15 µs here), twice per round trip on each side. So the thread that
waits in ``receive`` or ``waitclose`` reads the stream itself when nobody else does
("leads"), and dispatches what it reads: its own item needs no hand-off at all.

Rules:

1. One lock, the read role, is held by whoever reads the stream and owns the decoder.
2. The background thread reads only when no consumer has wanted the role for
   ``GRACE`` seconds, so a loop of send/receive keeps the role without contention. It
   waits for data with ``poll`` on the stream and a wake-up pipe; a consumer that wants
   the role writes to the pipe and the background thread gives it up.
3. A consumer that cannot get the role (another consumer reads) waits on its own
   queue in short slices: the reader dispatches its items to it meanwhile.
4. The end of the stream is recorded once; the background thread then runs the
   gateway's end-of-stream hook, never a consumer (a consumer may be the very thread
   the hook waits for).

Transports without a file descriptor (a channel of another gateway) keep the plain
model: the background thread reads everything.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from threading import get_ident

from .errors import DataFormatError
from .framing import FRAME_SKEW, FrameDecoder, aligned_buffer
from .logs import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Optional

log = get_logger("execnet_cli.gateway")

#: 128 KiB: reads into buffers of 256 KiB and more ran at half speed here (L2 is 512 KiB).
READ_BUFFER_SIZE = 128 * 1024
#: The rest of a large payload at least this long is read straight into its buffer.
DIRECT_READ = 16 * 1024
#: Seconds after a consumer last read before the background thread takes over.
GRACE = 0.001
#: How long a consumer waits for the background thread to hand over the role.
HANDOVER_WAIT = 0.005

LED = 1  # the caller read until its condition held, its deadline passed or the end
BUSY = 2  # another consumer reads; wait for dispatched items
PASSIVE = 3  # this stream is only ever read by the background thread

BACKGROUND = "background"  # the role's owner while the background thread holds it


class StreamReader:
    """Owns the reading side of one stream and the role of reader."""

    def __init__(
        self,
        io: Any,
        name: str,
        dispatch: Callable[[tuple], bool],
        on_closed: Callable[[BaseException], None],
        on_end: Callable[[BaseException], None],
    ) -> None:
        """``on_closed`` runs once, in whichever thread sees the end (it must not block);
        ``on_end`` runs afterwards in the background thread, as its last act."""
        self._io = io
        self._name = name
        self._dispatch = dispatch
        self._on_closed = on_closed
        self._on_end = on_end
        self._decoder = FrameDecoder()
        self._buffer = aligned_buffer(FRAME_SKEW + READ_BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self._role = threading.Lock()
        self._state = threading.Condition(threading.Lock())
        self._wanting = 0
        self._last_release = 0.0
        self._owner: object = None  # who holds the role: a thread ident, or BACKGROUND
        self._backlog: deque = deque()  # frames read but not yet dispatched
        self.ended = False
        self.reason: Optional[BaseException] = None
        self._wake_lock = threading.Lock()
        self._wake_r = self._wake_w = -1
        self._fd = self._stream_fd(io)
        if self._fd is not None:
            import select

            self._wake_r, self._wake_w = os.pipe()
            self._stream_poller = select.poll()  # used by the role holder only
            self._stream_poller.register(self._fd, select.POLLIN)

    @staticmethod
    def _stream_fd(io: Any) -> Optional[int]:
        try:
            import select

            select.poll  # noqa: B018  (not on every platform)
            return int(io.fileno())
        except (AttributeError, ImportError, OSError, TypeError, ValueError):
            return None

    # -- one read ------------------------------------------------------------------

    def _read_once(self, timeout: Optional[float]) -> None:
        """Read what is available (waiting at most ``timeout``) and dispatch it."""
        backlog = self._backlog
        if not backlog and timeout is not None and not self._wait_readable(timeout):
            return
        try:
            if backlog:  # left by a reader interrupted (Ctrl-C) while dispatching
                self._dispatch_backlog()
                return
            decoder = self._decoder
            target = decoder.big_target()
            if target is not None and len(target) >= DIRECT_READ:
                # The rest of a large payload: straight into its buffer, one copy less.
                count = self._io.readinto(target)
                frames = decoder.big_filled(count) if count else ()
            else:
                # A read that starts a frame puts it where a big value's data will start
                # a page (framing.PAGE); a read that continues one, at the start.
                skew = 0 if decoder.buffered else FRAME_SKEW
                count = self._io.readinto(self._view[skew : skew + READ_BUFFER_SIZE])
                frames = decoder.feed(self._view[skew : skew + count]) if count else ()
            if not count:
                self._end(EOFError(f"gateway {self._name!r}: the other side closed the stream"))
                return
            backlog.extend(frames)
            self._dispatch_backlog()
        except DataFormatError as exc:
            log.error("gateway %r: corrupt stream: %s", self._name, exc)
            self._end(EOFError(f"gateway {self._name!r}: corrupt stream ({exc})"))
        except OSError as exc:
            self._end(EOFError(f"gateway {self._name!r}: connection error ({exc})"))
        except Exception as exc:  # a bug of ours: log it, end cleanly
            log.exception("gateway %r: reading failed", self._name)
            self._end(EOFError(f"gateway {self._name!r}: reading failed ({exc!r})"))

    def _dispatch_backlog(self) -> None:
        backlog = self._backlog
        dispatch = self._dispatch
        while backlog:
            if not dispatch(backlog.popleft()):
                backlog.clear()
                self._end(EOFError(f"gateway {self._name!r}: terminated"))
                return

    def _wait_readable(self, timeout: float) -> bool:
        return bool(self._stream_poller.poll(max(0.0, timeout) * 1000))

    def _end(self, reason: BaseException) -> None:
        if self.ended:
            return
        self.reason = reason
        self.ended = True
        try:
            self._on_closed(reason)
        except Exception:
            log.exception("gateway %r: closing channels failed", self._name)
        with self._state:
            self._state.notify_all()
        self._wake()

    def _wake(self) -> None:
        with self._wake_lock:
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"\0")
                except OSError:
                    pass

    # -- consumers -----------------------------------------------------------------

    def lead(self, done: Callable[[], bool], deadline: Optional[float]) -> int:
        """Read as the leader until ``done()``, the deadline, or the end of the stream."""
        if self._fd is None:
            return PASSIVE
        role = self._role
        me = get_ident()
        if deadline is None:
            # Fast path (a send/receive loop): nobody reads, no deadline to keep.
            try:
                if role.acquire(False):
                    self._owner = me
                    try:
                        self._read_until(done, None)
                    finally:
                        self._let_go(me)
                    return LED
            except BaseException:
                self._drop_orphan(me)
                raise
        state = self._state
        with state:
            self._wanting += 1
        try:
            try:
                got = role.acquire(False)
                if not got and self._owner == BACKGROUND:
                    self._wake()
                    got = role.acquire(True, HANDOVER_WAIT)
                if got:
                    self._owner = me
            except BaseException:
                self._drop_orphan(me)
                raise
            if not got:
                return BUSY
            try:
                self._read_until(done, deadline)
            finally:
                self._let_go(me)
            return LED
        finally:
            with state:
                self._wanting -= 1
                self._last_release = time.monotonic()

    def _read_until(self, done: Callable[[], bool], deadline: Optional[float]) -> None:
        """As the role holder: read and dispatch until ``done()``, the deadline or the end."""
        while not self.ended and not done():
            if deadline is None:
                self._read_once(None)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._read_once(remaining)

    def _let_go(self, me: object) -> None:
        self._last_release = time.monotonic()
        if self._owner == me:
            self._owner = None
            self._role.release()

    def _drop_orphan(self, me: object) -> None:
        """An asynchronous exception (Ctrl-C) may land between taking the role and
        recording it: give the role back, or no thread could ever read again."""
        if self._owner == me or (self._owner is None and self._role.locked()):
            self._owner = None
            try:
                self._role.release()
            except RuntimeError:
                pass

    # -- the background thread -----------------------------------------------------

    def background_loop(self) -> None:
        """Read whenever no consumer does; run the end hook once the stream ends."""
        try:
            if self._fd is None:
                while not self.ended:
                    self._read_once(None)
            else:
                self._background_with_handover()
        finally:
            if not self.ended:
                self._end(EOFError(f"gateway {self._name!r}: reader stopped"))
            assert self.reason is not None
            self._on_end(self.reason)
            with self._wake_lock:
                for fd in (self._wake_r, self._wake_w):
                    if fd >= 0:
                        os.close(fd)
                self._wake_r = self._wake_w = -1

    def _background_with_handover(self) -> None:
        import select

        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        state = self._state
        role = self._role
        while not self.ended:
            with state:
                while not self.ended and (
                    self._wanting or time.monotonic() - self._last_release < GRACE
                ):
                    state.wait(GRACE)
            if self.ended:
                break
            if not role.acquire(False):  # a consumer leads (fast path): look again later
                with state:
                    state.wait(GRACE)
                continue
            self._owner = BACKGROUND
            try:
                stream_ready = False
                for fd, _ in poller.poll():
                    if fd == self._wake_r:
                        os.read(self._wake_r, 4096)
                    else:
                        stream_ready = True
                if stream_ready and not self._wanting:  # else a waiting consumer reads it
                    self._read_once(None)
            finally:
                self._let_go(BACKGROUND)
