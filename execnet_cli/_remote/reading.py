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

Transports without a file descriptor (``fileno()`` is None: a channel of ssh or of
another gateway) keep the plain model: the background thread reads everything.
"""

from __future__ import annotations

import os
from _collections import deque
from _thread import allocate_lock, get_ident
from time import monotonic

from .errors import DataFormatError
from .framing import BIG_FRAME, FRAME_SKEW, HEADER_SIZE, PAGE, FrameDecoder, aligned_buffer
from .logs import get_logger
from .threads import Condition

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Deque, List, Optional, Sequence, Tuple

    from .framing import Buffer, FrameTuple

log = get_logger("execnet_cli.gateway")

#: How much a read of small frames asks for. (Bigger reads once ran at half speed here:
#: that was where the buffer sat in its page, see framing.PAGE, not its size.)
READ_BUFFER_SIZE = 128 * 1024
#: After a big frame, a read asks for frames of the same size, each in a slot of its own
#: where its value's data starts a page: a frame that fits its slot is read whole into it
#: (never copied together), in as many reads as it takes. Room for the slots: a 1 MiB
#: chunk's frame fits.
SLOT_SPACE = 1024 * 1024 + 64 * 1024
#: At most this many slots per read: a frame read ahead becomes a ``bytes`` item waiting
#: in a queue, and with 16 of 64 KiB waiting, glibc gave the heap's top back to the
#: kernel after each batch and page-faulted it in again (14 faults per item). Never more
#: than 2: frames of another size spill across slots, each slot's feed can begin one big
#: frame, and the decoder's two payload buffers must hold them until they are dispatched.
SLOTS = 2
#: Seconds after a consumer last read before the background thread takes over.
GRACE = 0.001
#: How long a consumer waits for the background thread to hand over the role.
HANDOVER_WAIT = 0.005

LED = 1  # the caller read until its condition held, its deadline passed or the end
BUSY = 2  # another consumer reads; wait for dispatched items
PASSIVE = 3  # this stream is only ever read by the background thread

BACKGROUND = "background"  # the role's owner while the background thread holds it


def _length(header: memoryview) -> int:
    """The payload length a frame header announces."""
    return int.from_bytes(header[5:HEADER_SIZE], "big")


class StreamReader:
    """Owns the reading side of one stream and the role of reader."""

    def __init__(
        self,
        io: Any,
        name: str,
        dispatch: Callable[[FrameTuple], bool],
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
        self._buffer = aligned_buffer(FRAME_SKEW + SLOT_SPACE)  # pages are touched on use
        self._view = memoryview(self._buffer)
        readv = io.readinto_many  # scatter reads, or None (transports/base.py)
        self._scatter = readv is not None  # else one slot per read (see _plan_slots)
        self._readinto = io.readinto
        self._readv: Callable[[List[memoryview]], int] = readv or (
            lambda slots: io.readinto(slots[0])
        )
        self._small_slot = self._view[FRAME_SKEW : FRAME_SKEW + READ_BUFFER_SIZE]
        self._slots: List[memoryview] = []  # where a read that starts a frame puts frames
        self._slot_size = 0  # the frame size the slots are laid out for (0: small frames)
        self._partial: Optional[Tuple[memoryview, int]] = None  # (slot, bytes in it)
        self._role = allocate_lock()
        self._state = Condition(allocate_lock())
        self._wanting = 0
        self._last_release = 0.0
        self._owner: object = None  # who holds the role: a thread ident, or BACKGROUND
        self._backlog: Deque[FrameTuple] = deque()  # frames read but not yet dispatched
        self._background: Optional[int] = None  # the background thread's ident
        self.ended = False
        self.reason: Optional[BaseException] = None
        self._wake_lock = allocate_lock()
        self._wake_r = self._wake_w = -1
        self._fd = self._stream_fd(io)
        if self._fd is not None:
            import select

            self._wake_r, self._wake_w = os.pipe()
            self._stream_poller = select.poll()  # used by the role holder only
            self._stream_poller.register(self._fd, select.POLLIN)

    @staticmethod
    def _stream_fd(io: Any) -> Optional[int]:
        """The descriptor to poll, or None: the transport has none (``fileno()`` is None),
        or this platform has no ``poll``."""
        try:
            import select

            select.poll  # noqa: B018  (not on every platform)
        except (AttributeError, ImportError):
            return None
        return io.fileno()

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
            if self._partial is None and not self._slot_size and decoder.at_boundary:
                # Small frames (the hot path): one read, the first frame where a big
                # one would go.
                slot = self._small_slot
                count = self._readinto(slot)
                frames = decoder.feed(slot[:count]) if count else ()
            elif self._partial is not None:  # the rest of a frame that fits its slot
                slot, filled = self._partial
                count = self._io.readinto(slot[filled:])
                frames = self._slot_filled(slot, filled + count) if count else ()
            elif not decoder.at_boundary:
                target = decoder.big_target()
                if target is not None:
                    # The rest of a large payload: straight into its buffer, one copy
                    # less, and no further: the next read starts a frame.
                    count = self._io.readinto(target)
                    frames = decoder.big_filled(count) if count else ()
                else:  # the rest of a small frame: at the start of the buffer
                    count = self._io.readinto(self._view[:READ_BUFFER_SIZE])
                    frames = decoder.feed(self._view[:count]) if count else ()
            else:  # after big frames: into the slots
                count, frames = self._read_slots(decoder)
            if not count:
                self._end(EOFError(f"gateway {self._name!r}: the other side closed the stream"))
                return
            if not frames:
                return
            size = HEADER_SIZE + len(frames[-1][2])
            if (size >= BIG_FRAME or self._slot_size) and decoder.at_boundary:
                self._plan_slots(size)
            if len(frames) == 1:  # no backlog needed: nothing waits behind it
                if not self._dispatch(frames[0]):
                    self._end(EOFError(f"gateway {self._name!r}: terminated"))
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

    def _read_slots(self, decoder: FrameDecoder) -> Tuple[int, List[FrameTuple]]:
        """A read that starts a frame, after big ones: into the slots, each frame where its
        value's data starts a page (framing.PAGE). Frames of another size than planned
        still decode (a frame across slots is copied together), only slower."""
        slots = self._slots
        if len(slots) == 1:
            count = self._io.readinto(slots[0])
            return count, self._slot_filled(slots[0], count) if count else []
        count = self._readv(slots)
        frames: List[FrameTuple] = []
        left = count
        for slot in slots:
            if left <= 0:
                break
            if left >= len(slot):
                frames += decoder.feed(slot)
            elif decoder.at_boundary:
                frames += self._slot_filled(slot, left)
            else:
                frames += decoder.feed(slot[:left])
            left -= len(slot)
        return count, frames

    def _slot_filled(self, slot: memoryview, filled: int) -> List[FrameTuple]:
        """``filled`` bytes of ``slot`` hold the start of a frame. If the frame fits the
        slot exactly, its rest is read into the slot too (``_partial``): no copy."""
        if filled < len(slot):
            if filled >= HEADER_SIZE and HEADER_SIZE + _length(slot) == len(slot):
                self._partial = (slot, filled)
                return []
            self._partial = None
            return self._decoder.feed(slot[:filled])
        self._partial = None
        return self._decoder.feed(slot)

    def _plan_slots(self, frame_size: int) -> None:
        """Lay the slots out for frames of ``frame_size`` bytes: big frames come in runs
        (a stream of chunks), small ones share one slot of READ_BUFFER_SIZE."""
        if frame_size == self._slot_size:
            return
        if frame_size < BIG_FRAME or frame_size > SLOT_SPACE:
            self._slots, self._slot_size = [], 0
            return
        stride = -(-(FRAME_SKEW + frame_size) // PAGE) * PAGE
        count = min(SLOTS, (SLOT_SPACE - frame_size) // stride + 1)
        if not self._scatter:
            count = 1
        view = self._view
        self._slots = [
            view[i * stride + FRAME_SKEW : i * stride + FRAME_SKEW + frame_size]
            for i in range(count)
        ]
        self._slot_size = frame_size

    def _dispatch_backlog(self) -> None:
        backlog = self._backlog
        dispatch = self._dispatch
        while backlog:
            if not dispatch(backlog.popleft()):
                backlog.clear()
                self._end(EOFError(f"gateway {self._name!r}: terminated"))
                return

    def dispatch_early(self, frames: Sequence[FrameTuple]) -> None:
        """Dispatch ``frames`` read before this reader existed (a worker's bootstrap read
        them while it waited for our sources), in the calling thread, before the receiver
        starts; a terminate among them ends the stream."""
        self._backlog.extend(frames)
        self._dispatch_backlog()

    def dispatching_here(self) -> bool:
        """Whether the calling thread reads the stream now, so dispatches what it reads
        (a channel callback runs there): it must not wait for an item, which only it
        would read. (The reader's role says so; the hot path records nothing more.)"""
        me = get_ident()
        owner = self._owner
        if owner == me:
            return True
        return self._background == me and (owner == BACKGROUND or self._fd is None)

    def _wait_readable(self, timeout: float) -> bool:
        return bool(self._stream_poller.poll(max(0.0, timeout) * 1000))

    # -- a pushed stream (the transport calls with each packet: ssh) -------------------

    def decode(self, data: Buffer) -> List[FrameTuple]:
        """The frames ``data`` completes, for a transport that pushes its bytes: they are
        dispatched by the caller (views stay valid as ``FrameDecoder.feed`` says)."""
        return self._decoder.feed(data)

    def serve_here(self) -> None:
        """The calling thread dispatches what a pushing transport leaves to it (callbacks
        run there): ``dispatching_here`` is true in it."""
        self._background = get_ident()

    def finish(self, reason: BaseException) -> None:
        """End a pushed stream (once), then run the end hook, as ``background_loop`` does
        at its end; called in the thread that ``serve_here``."""
        self._end(reason)
        assert self.reason is not None
        self._on_end(self.reason)

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

    def lead(self, waiting: Callable[[], bool], deadline: Optional[float]) -> int:
        """Read as the leader while ``waiting()``, until the deadline or the end of the
        stream. (``waiting``, not ``done``: a receive passes its queue's ``empty``.)"""
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
                        while waiting() and not self.ended:
                            self._read_once(None)
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
                self._read_until(waiting, deadline)
            finally:
                self._let_go(me)
            return LED
        finally:
            with state:
                self._wanting -= 1
                self._last_release = monotonic()

    def _read_until(self, waiting: Callable[[], bool], deadline: Optional[float]) -> None:
        """As the role holder: read and dispatch while ``waiting()``, until the deadline or
        the end."""
        while waiting() and not self.ended:
            if deadline is None:
                self._read_once(None)
                continue
            remaining = deadline - monotonic()
            if remaining <= 0:
                return
            self._read_once(remaining)

    def _let_go(self, me: object) -> None:
        self._last_release = monotonic()
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
        self._background = get_ident()
        try:
            if self._fd is None:
                while not self.ended:
                    self._read_once(None)
            else:
                self._background_with_handover(self._fd)
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

    def _background_with_handover(self, fd: int) -> None:
        import select

        assert self._fd is not None
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        state = self._state
        role = self._role
        while not self.ended:
            with state:
                while not self.ended and (
                    self._wanting or monotonic() - self._last_release < GRACE
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
