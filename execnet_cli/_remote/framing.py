"""Frames on the wire, without I/O: bytes in, frames out; frames in, byte segments out.

A frame is a fixed 9-byte header followed by its payload::

    offset 0  u8   message type   (see protocol.MessageType)
    offset 1  u32  channel id     (big endian; 0 is the gateway itself)
    offset 5  u32  payload length (big endian; at most MAX_PAYLOAD)

MAX_PAYLOAD bounds one message: a payload of 2 GiB or more cannot be expressed, and a
larger send fails with FrameTooLarge before a byte is written. Big data goes as a stream
of bounded chunks, each its own message.
"""

from __future__ import annotations

import struct

from .errors import FrameTooLarge, LoadError

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, List, Optional, Sequence, Tuple, Union

    Buffer = Union[bytes, bytearray, memoryview]
    #: What the decoder hands out: (message type, channel id, payload).
    FrameTuple = Tuple[int, int, Buffer]

HEADER = struct.Struct(">BII")
HEADER_SIZE = HEADER.size
_unpack_from = HEADER.unpack_from
#: The largest payload one frame may carry (256 MiB): far below the u32 limit, and a
#: size a receiver can always afford to buffer.
MAX_PAYLOAD = 256 * 1024 * 1024
#: Payloads below this size are handed out as ``bytes``: copying a few hundred bytes costs
#: less than what a memoryview costs ``loads`` (its set-up and release), and a copy does
#: not hold the reader's buffer.
COPY_BELOW = 1024
#: Payloads from this size on are collected in a (reused) buffer of their own.
BIG_FRAME = 65536
#: Larger payload buffers are not kept for reuse (memory would stay held).
REUSE_LIMIT = 4 * 1024 * 1024
#: Highest message type the decoder accepts; the protocol layer owns their meaning.
MAX_MESSAGE_TYPE = 15
#: Where received bytes land within a page matters. Copying out of a pipe into memory
#: 1-40 bytes past the source's offset within its page runs at a quarter of the speed on
#: some CPUs (this VM's AMD EPYC: the kernel's ``rep movsb`` trips over the 4 KiB alias),
#: and a ``bytearray`` from glibc's mmap starts 16 bytes into a page. A sender's big
#: value starts a pipe page, or 15 bytes into one (its frame header merged or not), so
#: receive buffers are page-aligned and place a big value's data on a page boundary.
PAGE = 4096
#: The serializer's prefix of a single bytes or str value of 256 bytes and more (version
#: byte, opcode, u32 size): in a big payload the data starts this far in.
VALUE_PREFIX = 6
#: Where a frame that starts a read goes in a page-aligned read buffer: its value's data
#: then starts on a page boundary.
FRAME_SKEW = PAGE - HEADER_SIZE - VALUE_PREFIX


def aligned_buffer(size: int) -> Any:
    """A writable buffer of ``size`` bytes that starts on a page boundary (see PAGE)."""
    try:
        import mmap

        return mmap.mmap(-1, size)
    except (ImportError, OSError, ValueError):  # pragma: no cover - no mmap here
        return bytearray(size)


class Frame(tuple):
    """One decoded frame: (message type, channel id, payload bytes)."""

    __slots__ = ()

    def __new__(cls, msgtype: int, channel: int, payload: Buffer) -> Frame:
        return tuple.__new__(cls, (msgtype, channel, payload))

    @property
    def type(self) -> int:
        return self[0]

    @property
    def channel(self) -> int:
        return self[1]

    @property
    def payload(self) -> Buffer:
        return self[2]


def encode_frame(
    msgtype: int, channel: int, segments: Sequence[Buffer] = (), max_payload: int = MAX_PAYLOAD
) -> List[Buffer]:
    """Return the byte segments of one frame: the header, then the payload segments.

    A large payload is not joined, so it reaches ``writev`` uncopied; a small one is
    joined to the header (one ``write`` beats a ``writev`` of tiny pieces).
    """
    if len(segments) == 1:  # one serialized item: the common case
        length = len(segments[0])
        if length < SMALL_FRAME and length <= max_payload:
            return [_pack(msgtype, channel, length) + segments[0]]
    else:
        length = 0
        for segment in segments:
            length += len(segment)
    if length > max_payload:
        raise FrameTooLarge(
            f"message of {length} bytes exceeds the maximum frame payload of {max_payload} "
            "bytes; send large data as a stream of smaller chunks"
        )
    header = _pack(msgtype, channel, length)
    if length < SMALL_FRAME:
        return [b"".join((header, *segments))]
    out: List[Buffer] = [header]
    out.extend(segments)
    return out


_pack = HEADER.pack
#: Frames below this size are written as one joined bytes object.
SMALL_FRAME = 16384


class FrameDecoder:
    """Incremental decoder: ``feed`` any slicing of the byte stream, get whole frames.

    A frame that lies whole in the data fed comes as a view of that data (as ``bytes``
    below ``COPY_BELOW``): valid until the caller reuses its buffer (the reader dispatches
    every frame before it reads again). What the decoder keeps across calls it copies. A
    large payload (``BIG_FRAME`` and up) is collected in a reused buffer and handed out
    as a memoryview, valid until two more large frames have begun. Consumers copy
    payloads (``loads`` does) before then. Readers can fill a large payload directly:
    ``big_target``.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._max_payload = max_payload
        self._pending = bytearray()  # a partial header, or a partial small frame
        self._big: Optional[memoryview] = None  # payload being filled for a large frame
        self._big_fill = 0
        self._big_head = (0, 0)
        self._spares: List[Any] = [None, None]
        self._spare_turn = 0

    def _start_big(self, msgtype: int, channel: int, length: int) -> memoryview:
        """A payload buffer for a large frame, reused: fresh big allocations cost a page
        fault per 4 KiB (glibc maps them anew each time), which halved throughput.

        Two buffers alternate, because one ``feed`` can complete a large frame and start
        the next; so a large payload stays valid until two more large frames began.
        """
        skew = PAGE - VALUE_PREFIX  # the value's data starts a page
        if length > REUSE_LIMIT:
            buffer = aligned_buffer(skew + length)
        else:
            turn = self._spare_turn
            self._spare_turn = 1 - turn
            buffer = self._spares[turn]
            if buffer is None or len(buffer) < skew + length:
                buffer = self._spares[turn] = aligned_buffer(skew + REUSE_LIMIT)  # never resized
        self._big = memoryview(buffer)[skew : skew + length]
        self._big_head = (msgtype, channel)
        self._big_fill = 0
        return self._big

    def big_target(self) -> Optional[memoryview]:
        """The unfilled part of a large payload in progress: read straight into it."""
        big = self._big
        if big is None:
            return None
        return big[self._big_fill :]

    def big_filled(self, count: int) -> List[FrameTuple]:
        """``count`` bytes were read into ``big_target()``; return the frame if complete."""
        self._big_fill += count
        big = self._big
        assert big is not None
        if self._big_fill < len(big):
            return []
        msgtype, channel = self._big_head
        self._big = None
        self._big_fill = 0
        return [(msgtype, channel, big)]

    @property
    def at_boundary(self) -> bool:
        """True when the next byte fed starts a frame."""
        return self._big is None and not self._pending

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a whole frame."""
        return len(self._pending) + self._big_fill

    def feed(self, data: Buffer) -> List[FrameTuple]:
        """Consume ``data`` and return the frames it completes, in order.

        Frames come as plain ``(type, channel, payload)`` tuples: this is the hot path.
        """
        view = data if type(data) is memoryview else memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        end = len(view)
        if end >= HEADER_SIZE and self._big is None and not self._pending:
            # One whole small frame, what a read in a round trip gets: no loop.
            msgtype, channel, length = _unpack_from(view, 0)
            if (
                length == end - HEADER_SIZE
                and length < COPY_BELOW
                and msgtype <= MAX_MESSAGE_TYPE
                and length <= self._max_payload
            ):
                return [(msgtype, channel, view[HEADER_SIZE:].tobytes())]
        frames: list = []
        pos = 0
        if self._big is not None:
            pos = self._fill_big(view, frames)
        if self._pending:
            # Complete the pending header (and small payload) from data.
            pos = self._complete_pending(view, pos, frames)
        unpack = _unpack_from
        max_payload = self._max_payload
        append = frames.append
        while end - pos >= HEADER_SIZE:
            msgtype, channel, length = unpack(view, pos)
            if msgtype > MAX_MESSAGE_TYPE or length > max_payload:
                self._refuse(msgtype, length)
            start = pos + HEADER_SIZE
            stop = start + length
            if stop <= end:
                payload = view[start:stop]  # a view: no copy, unless small
                append((msgtype, channel, payload.tobytes() if length < COPY_BELOW else payload))
                pos = stop
                continue
            # The payload continues beyond this chunk.
            if length >= BIG_FRAME:
                self._start_big(msgtype, channel, length)
                pos = self._fill_big(view[start:], frames) + start
                return frames
            break
        if pos < end:
            self._pending += view[pos:]
        return frames

    def _refuse(self, msgtype: int, length: int) -> None:
        if msgtype > MAX_MESSAGE_TYPE:
            raise LoadError(f"unknown message type 0x{msgtype:02x} in frame header")
        raise LoadError(
            f"frame announces {length} payload bytes, more than the maximum {self._max_payload}"
        )

    def _fill_big(self, view: memoryview, frames: List[FrameTuple]) -> int:
        """Copy from ``view`` into the large payload; return how much was used."""
        big = self._big
        assert big is not None
        take = min(len(big) - self._big_fill, len(view))
        big[self._big_fill : self._big_fill + take] = view[:take]
        self._big_fill += take
        if self._big_fill == len(big):
            msgtype, channel = self._big_head
            frames.append((msgtype, channel, big))
            self._big = None
            self._big_fill = 0
        return take

    def _complete_pending(self, view: memoryview, pos: int, frames: List[FrameTuple]) -> int:
        """Finish the frame started in ``_pending`` using bytes from ``view[pos:]``."""
        pending = self._pending
        if len(pending) < HEADER_SIZE:
            take = min(HEADER_SIZE - len(pending), len(view) - pos)
            pending += view[pos : pos + take]
            pos += take
            if len(pending) < HEADER_SIZE:
                return pos
        msgtype, channel, length = HEADER.unpack_from(pending, 0)
        if msgtype > MAX_MESSAGE_TYPE or length > self._max_payload:
            self._refuse(msgtype, length)
        have = len(pending) - HEADER_SIZE
        if length >= BIG_FRAME and length - have > 0:
            # Switch to a payload buffer for the rest of this payload.
            big = self._start_big(msgtype, channel, length)
            big[:have] = pending[HEADER_SIZE:]
            self._big_fill = have
            pending.clear()
            return pos + self._fill_big(view[pos:], frames)
        take = min(length - have, len(view) - pos)
        pending += view[pos : pos + take]
        pos += take
        if len(pending) - HEADER_SIZE == length:
            frames.append((msgtype, channel, bytes(pending[HEADER_SIZE:])))
            pending.clear()
        return pos
