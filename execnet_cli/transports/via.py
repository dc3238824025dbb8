"""``via=``: reach a worker through an existing gateway, over one of its channels.

``ChannelTransport`` carries a new gateway's bytes over a channel to a relay running in
the via gateway (``_remote/via.py``), which spawns the worker there. ``ChannelSocket``
is the same pipe shaped like a socket, for protocols that need one (paramiko's
``sock=``, the socket gateway handshake): the relay then connects to host:port as seen
from the via host, so a bastion needs nothing but Python.
"""

from __future__ import annotations

import socket
import sys
import threading
from typing import Any, List, Optional, Sequence

from .. import bootstrap
from .._remote import via as relay
from .._remote.errors import ChannelClosed, RemoteError
from .._remote.errors import TimeoutError as XnetTimeoutError
from ..errors import ConnectFailed
from .base import PassiveTransport
from .opening import Carrier, OpenContext, SpecFields, WorkerConfig, send_bootstrap

#: Largest item sent over the via channel (the relay's too); keeps outer frames bounded.
CHUNK = relay.CHUNK

Buffer = Any


def _open_relay(gateway: Carrier, request: tuple, what: str, timeout: float) -> Any:
    try:
        package = gateway.remote_modules("via", timeout=timeout)  # sent once per gateway
        channel = gateway.remote_exec(f"from {package} import via\nvia.serve(channel)")
        channel.send(request)
        answer = channel.receive(timeout)
    except RemoteError as exc:
        last = str(exc).strip().splitlines()[-1]
        raise ConnectFailed(f"via {gateway.id}: cannot reach {what}: {last}") from exc
    except (EOFError, XnetTimeoutError) as exc:
        raise ConnectFailed(f"via {gateway.id}: no answer from the relay for {what}") from exc
    if answer != "ok":
        raise ConnectFailed(f"via {gateway.id}: unexpected relay answer {answer!r}")
    return channel


class _ChannelPipe:
    """Bytes in and out of a relay channel, with its end-of-stream status."""

    def __init__(self, channel: Any, label: str) -> None:
        self.channel = channel
        self.label = label
        self._leftover = b""
        self._status: Optional[int] = None
        self._ended = threading.Event()

    def _next_bytes(self, size: int, timeout: Optional[float] = None) -> bytes:
        """Up to ``size`` bytes of data (the rest is kept); b"" at the end of the stream."""
        if self._leftover:
            data = self._leftover
        elif self._ended.is_set():
            return b""
        else:
            try:
                data = self.channel.receive(timeout)
            except (EOFError, RemoteError):
                self._ended.set()
                return b""
            if isinstance(data, int):
                self._status = data
                self._ended.set()
                return b""
        data, self._leftover = data[:size], data[size:]
        return data

    def _send_bytes(self, segments: Sequence[Buffer]) -> None:
        if len(segments) == 1 and type(segments[0]) is bytes and len(segments[0]) <= CHUNK:
            self.channel.send(segments[0])  # the common case: as it is, no copy
            return
        data = b"".join(segments)
        for start in range(0, len(data), CHUNK):
            self.channel.send(data[start : start + CHUNK])

    def _control(self, word: str) -> None:
        try:
            self.channel.send(word)
        except (ChannelClosed, OSError):
            pass


class ChannelTransport(_ChannelPipe, PassiveTransport):
    """The transport verb set over a relay channel that spawned a worker."""

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self._next_bytes(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def write(self, segments: Sequence[Buffer]) -> None:
        self._send_bytes(segments)

    def close_write(self) -> None:
        self._control("eof")

    def close(self) -> None:
        self.channel.close()

    def wait(self, timeout: Optional[float]) -> Optional[int]:
        if self._ended.wait(timeout):
            return self._status if self._status is not None else -1
        return None

    def kill(self) -> None:
        self._control("kill")

    def describe(self) -> str:
        return self.label

    def exit_description(self) -> str:
        if self._status is None:
            return "ended" if self._ended.is_set() else "still running"
        return f"exited with status {self._status}"


def open_via_process(gateway: Carrier, argv: List[str], timeout: float) -> ChannelTransport:
    """Spawn ``argv`` inside ``gateway``'s worker host; return a transport to it."""
    channel = _open_relay(gateway, ("spawn", list(argv)), argv[0], timeout)
    return ChannelTransport(channel, f"via {gateway.id}: {argv[0]}")


def open_popen_via(
    fields: SpecFields, config: WorkerConfig, context: OpenContext
) -> ChannelTransport:
    """A worker started on the ``via=`` gateway's host (``popen//via=ID``), given ``config``."""
    fields.refuse(["sudo"], "with popen via= (yet)")
    via = context.carrier(fields, "via")
    info = via._rinfo()
    python = fields.python or info.executable
    transport = open_via_process(via, bootstrap.stage1_argv(python), fields.timeout())
    same = python == info.executable and same_minor_python(info)
    return send_bootstrap(transport, config, same)


def same_minor_python(info: Any) -> bool:
    """Can code objects compiled here run there? (same minor version, final releases)"""
    theirs = tuple(getattr(info, "version_info", ()))
    return (
        len(theirs) >= 4
        and theirs[:2] == tuple(sys.version_info[:2])
        and theirs[3] == "final"
        and sys.version_info.releaselevel == "final"
    )


class ChannelSocket(_ChannelPipe):
    """A socket-like object (send/recv/settimeout/close) over a relay's TCP connection."""

    def __init__(self, channel: Any, label: str) -> None:
        super().__init__(channel, label)
        self._timeout: Optional[float] = None

    def settimeout(self, timeout: Optional[float]) -> None:
        self._timeout = timeout

    def gettimeout(self) -> Optional[float]:
        return self._timeout

    def recv(self, size: int) -> bytes:
        try:
            return self._next_bytes(size, self._timeout)
        except XnetTimeoutError:
            raise socket.timeout("timed out") from None

    def send(self, data: Buffer) -> int:
        self._send_bytes([data])
        return len(data)

    def sendall(self, data: Buffer) -> None:
        self._send_bytes([data])

    def shutdown(self, how: int) -> None:
        self._control("eof" if how == socket.SHUT_WR else "kill")

    def close(self) -> None:
        self._control("kill")
        self.channel.close()

    @property
    def closed(self) -> bool:
        return self.channel.isclosed()

    @property
    def _closed(self) -> bool:
        """What paramiko's ``Transport.close`` looks at on a real socket."""
        return self.channel.isclosed()


def open_via_tcp(gateway: Carrier, host: str, port: int, timeout: float) -> ChannelSocket:
    """A TCP connection to host:port made from ``gateway``'s worker host."""
    channel = _open_relay(gateway, ("tcp", host, int(port), timeout), f"{host}:{port}", timeout)
    return ChannelSocket(channel, f"via {gateway.id}: {host}:{port}")
