"""execnet's message and IO objects, over our own frames.

``Message`` is one frame of our protocol (``_remote/framing.py``: a 9-byte header, type,
channel id, payload length, then the payload), with execnet's API: ``from_io``/``to_io``
on an object with ``read(n)``/``write(data)`` (a ``Popen2IO``), ``received(gateway)`` to
have a gateway handle it, the message-type constants and ``_types`` (code -> name,
handler). The layout of the header is execnet's too (its fields are signed there; ours
are unsigned, which only matters for values no sender produces). Payloads are ours:
channel data in our serializer's format, not execnet's.

``Popen2IO`` reads and writes whole messages over two file objects; ``init_popen_io``
turns this process's stdin/stdout into one (as a worker does) and points fds 0 and 1 at
``/dev/null``. Our gateways use their own transports (``transports/``), never these.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, Callable, Dict, Optional, Protocol, Tuple, Type

from .._remote.errors import XnetError
from .._remote.execmodel import ExecModel, get_execmodel
from .._remote.framing import HEADER, HEADER_SIZE, Frame
from .._remote.protocol import MessageType

#: Exceptions execnet never catches on their way up (``sysex``).
sysex = (KeyboardInterrupt, SystemExit)


class WriteIO(Protocol):
    def write(self, data: bytes, /) -> None: ...


class ReadIO(Protocol):
    def read(self, numbytes: int, /) -> bytes: ...


class IO(Protocol):
    """What execnet's gateways read and write (ours use ``transports.base.Transport``)."""

    execmodel: ExecModel

    def read(self, numbytes: int, /) -> bytes: ...

    def write(self, data: bytes, /) -> None: ...

    def close_read(self) -> None: ...

    def close_write(self) -> None: ...

    def wait(self) -> Optional[int]: ...

    def kill(self) -> None: ...


class Event(Protocol):
    """What looks like ``threading.Event``."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def wait(self, timeout: Optional[float] = None) -> bool: ...


class GatewayReceivedTerminate(XnetError):
    """A GATEWAY_TERMINATE message was handled (``Message.received``): the receiving
    gateway is to stop."""


def geterrortext(
    exc: BaseException,
    format_exception: Callable[..., Any] = traceback.format_exception,
    sysex: Tuple[Type[BaseException], ...] = sysex,
) -> str:
    """The formatted traceback of ``exc`` (its type and message if formatting fails)."""
    try:
        return "".join(format_exception(type(exc), exc, exc.__traceback__))
    except sysex:
        raise
    except BaseException:
        return f"{type(exc).__name__}: {exc}"


class Popen2IO:
    """Message IO over two binary file objects (``outfile`` written, ``infile`` read)."""

    error = (OSError, EOFError)

    def __init__(self, outfile: Any, infile: Any, execmodel: Any) -> None:
        self.outfile, self.infile = outfile, infile
        self._read = getattr(infile, "buffer", infile).read
        self._write = getattr(outfile, "buffer", outfile).write
        self.execmodel = get_execmodel(execmodel)

    def read(self, numbytes: int) -> bytes:
        """Exactly ``numbytes`` bytes; EOFError if the stream ends first."""
        parts = []
        missing = numbytes
        while missing > 0:
            data = self._read(missing)
            if not data:
                raise EOFError(f"expected {numbytes} bytes, got {numbytes - missing}")
            parts.append(data)
            missing -= len(data)
        return b"".join(parts)

    def write(self, data: bytes) -> None:
        """Write all of ``data`` and flush."""
        self._write(data)
        self.outfile.flush()

    def close_read(self) -> None:
        self.infile.close()

    def close_write(self) -> None:
        self.outfile.close()


def _handle(message: Message, gateway: Any) -> None:
    """Have ``gateway`` (ours) handle ``message`` as if it had come off its stream."""
    if message.msgcode == MessageType.GATEWAY_TERMINATE:
        raise GatewayReceivedTerminate(gateway)
    gateway._dispatch(Frame(message.msgcode, message.channelid, message.data))


class Message:
    """One frame of our protocol: ``msgcode``, ``channelid``, ``data`` (the payload)."""

    _types: Dict[int, Tuple[str, Callable[[Message, Any], None]]] = {}

    STATUS = MessageType.STATUS
    RECONFIGURE = MessageType.RECONFIGURE
    GATEWAY_TERMINATE = MessageType.GATEWAY_TERMINATE
    CHANNEL_EXEC = MessageType.CHANNEL_EXEC
    CHANNEL_DATA = MessageType.CHANNEL_DATA
    CHANNEL_CLOSE = MessageType.CHANNEL_CLOSE
    CHANNEL_CLOSE_ERROR = MessageType.CHANNEL_CLOSE_ERROR
    CHANNEL_LAST_MESSAGE = MessageType.CHANNEL_LAST_MESSAGE
    WORKER_READY = MessageType.WORKER_READY

    def __init__(self, msgcode: int, channelid: int = 0, data: bytes = b"") -> None:
        self.msgcode = msgcode
        self.channelid = channelid
        self.data = data

    @staticmethod
    def from_io(io: ReadIO) -> Message:
        """The next message from ``io``; EOFError at the end of the stream."""
        try:
            header = io.read(HEADER_SIZE)
            if not header:
                raise EOFError("empty read")
        except EOFError as exc:
            raise EOFError(f"couldn't load message header, {exc}") from None
        msgcode, channelid, length = HEADER.unpack(header)
        return Message(msgcode, channelid, io.read(length))

    def to_io(self, io: WriteIO) -> None:
        """Write this message to ``io`` in one call."""
        io.write(HEADER.pack(self.msgcode, self.channelid, len(self.data)) + bytes(self.data))

    def received(self, gateway: Any) -> None:
        """Have ``gateway`` handle this message (GatewayReceivedTerminate for a terminate)."""
        self._types[self.msgcode][1](self, gateway)

    def __repr__(self) -> str:
        name = MessageType.name_of(self.msgcode)
        return f"<Message {name} channel={self.channelid} lendata={len(self.data)}>"


for _code in range(MessageType.WORKER_READY + 1):
    Message._types[_code] = (MessageType.name_of(_code), _handle)


def init_popen_io(execmodel: Any) -> Popen2IO:
    """This process's stdin/stdout as a message IO; fds 0 and 1 then read and write
    ``/dev/null`` (and ``sys.stdin``/``sys.stdout`` follow them), so nothing printed
    can corrupt the stream."""
    read_fd, write_fd = os.dup(0), os.dup(1)
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY)):
        null = os.open(os.devnull, mode)
        os.dup2(null, fd)
        os.close(null)
    io = Popen2IO(os.fdopen(write_fd, "wb", 0), os.fdopen(read_fd, "rb", 0), execmodel)
    sys.stdin = os.fdopen(0, "r", 1, closefd=False)
    sys.stdout = os.fdopen(1, "w", 1, closefd=False)
    return io
