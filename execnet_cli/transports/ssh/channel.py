"""Channel-level helpers paramiko lacks: a copy-once receive buffer, window adjusts,
"signal" requests and fire-and-forget commands.

They use paramiko's channel internals (``in_buffer``, ``_check_add_window``,
``remote_chanid``, ``transport._send_user_message``), which ``Channel.recv`` and
``exec_command`` themselves use and which have not changed in a decade; ``ssh.py`` falls
back to ``Channel.recv`` when they are missing.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Deque, List, Optional, Tuple

from .connect import Connection


class ForwardingPipe:
    """Stands in for paramiko's ``BufferedPipe`` where each packet's data is passed on as
    it arrives (``feed``, from the transport's thread): nothing is ever left to read."""

    def feed(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def set_event(self, event: threading.Event) -> None:  # for Channel.fileno(): unused
        event.set()

    def read_ready(self) -> bool:
        return False

    def read(self, nbytes: int, timeout: Optional[float] = None) -> bytes:
        return b""

    def empty(self) -> bytes:
        return b""

    def __len__(self) -> int:
        return 0


class ChunkPipe:
    """Stands in for paramiko's ``BufferedPipe`` as a channel's ``in_buffer``.

    paramiko appends each packet's data to an ``array`` and ``recv`` slices a new bytes
    object off its front (moving the rest down); here packets stay as they arrived and
    ``readinto`` copies each byte once, into the gateway's read buffer. It implements
    the ``BufferedPipe`` methods ``Channel`` calls. A gateway may then have each packet
    passed on as it arrives (``forward``: ``forwarding.PacketDispatcher``).
    """

    def __init__(self) -> None:
        self._chunks: Deque[bytes] = collections.deque()
        self._offset = 0
        self._size = 0
        self._closed = False
        self._cond = threading.Condition(threading.Lock())
        self._event: Optional[threading.Event] = None
        self._forward: Optional[Tuple[Callable[[bytes], None], Callable[[], None]]] = None

    def set_event(self, event: threading.Event) -> None:
        with self._cond:
            self._event = event
            if self._closed or self._size:
                event.set()
            else:
                event.clear()

    def forward(
        self, feed: Callable[[bytes], None], close: Callable[[], None]
    ) -> Tuple[List[bytes], bool]:
        """From now on pass each packet's data to ``feed`` as it arrives (in the transport's
        thread), and the end to ``close``. Returns what was buffered and whether the end
        came: the caller handles them first, holding a lock its ``feed`` takes too, so
        the order stays the stream's."""
        with self._cond:
            chunks = list(self._chunks)
            if chunks and self._offset:
                chunks[0] = chunks[0][self._offset :]
            self._chunks, self._offset, self._size = collections.deque(), 0, 0
            self._forward = (feed, close)
            return chunks, self._closed

    def feed(self, data: bytes) -> None:
        forward = self._forward  # set once (``forward``): then no lock is needed
        if forward is None:
            with self._cond:
                forward = self._forward
                if forward is None:
                    if data:
                        self._chunks.append(data)
                        self._size += len(data)
                    if self._event is not None:
                        self._event.set()
                    self._cond.notify()
                    return
        forward[0](data)

    def readinto(self, buffer: bytearray | memoryview, timeout: Optional[float] = None) -> int:
        """Wait for data (or the end: 0), then move up to ``len(buffer)`` bytes."""
        with self._cond:
            if not self._size:
                if self._closed:
                    return 0
                self._cond.wait_for(lambda: self._size or self._closed, timeout)
                if not self._size:
                    if self._closed:
                        return 0
                    from paramiko.buffered_pipe import PipeTimeout

                    raise PipeTimeout()
            view = memoryview(buffer)
            want, got = len(buffer), 0
            chunks = self._chunks
            while got < want and chunks:
                chunk, start = chunks[0], self._offset
                count = min(len(chunk) - start, want - got)
                if start == 0 and count == len(chunk):
                    view[got : got + count] = chunk
                else:
                    view[got : got + count] = memoryview(chunk)[start : start + count]
                got += count
                if start + count == len(chunk):
                    chunks.popleft()
                    self._offset = 0
                else:
                    self._offset = start + count
            self._size -= got
            if not self._size and self._event is not None and not self._closed:
                self._event.clear()
            return got

    def read(self, nbytes: int, timeout: Optional[float] = None) -> bytes:
        buffer = bytearray(nbytes)
        return bytes(buffer[: self.readinto(buffer, timeout)])

    def read_ready(self) -> bool:
        return self._size > 0

    def empty(self) -> bytes:
        size = self._size  # read() takes the lock itself
        return self.read(size, 0) if size else b""

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            if self._event is not None:
                self._event.set()
            forward = self._forward
        if forward is not None:
            forward[1]()

    def __len__(self) -> int:
        return self._size


def send_window_adjust(channel: Any, count: int) -> None:
    from paramiko.common import cMSG_CHANNEL_WINDOW_ADJUST
    from paramiko.message import Message

    message = Message()
    message.add_byte(cMSG_CHANNEL_WINDOW_ADJUST)
    message.add_int(channel.remote_chanid)
    message.add_int(count)
    channel.transport._send_user_message(message)


def send_signal(channel: Any, name: str) -> None:
    """RFC 4254 6.9 "signal" request (OpenSSH's sshd honours it for exec sessions)."""
    from paramiko.common import cMSG_CHANNEL_REQUEST
    from paramiko.message import Message

    message = Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("signal")
    message.add_boolean(False)
    message.add_string(name)
    channel.transport._send_user_message(message)


def run_detached(connection: Connection, command: str, password: Optional[str]) -> None:
    """Start ``command`` on a new channel without waiting for anything (it closes itself)."""
    from paramiko.common import cMSG_CHANNEL_REQUEST
    from paramiko.message import Message

    channel = connection.transport.open_session(timeout=2.0)
    message = Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("exec")
    message.add_boolean(False)  # want no reply: a stuck server must not block us
    message.add_string(command)
    channel.transport._send_user_message(message)
    if password is not None:
        channel.sendall((password + "\n").encode())
    channel.shutdown_write()
