"""Trimming paramiko's per-connection overhead on the controller (same protocol, same checks).

A fan-out opens one paramiko ``Transport`` per host, so whatever paramiko does per
connection beyond the protocol is paid N times on the controller's CPU:

- its handshake timeout runs a ``threading.Timer``: one more thread per connection,
  cancelled (a lock, a condition, a notify) after every message the connection reads.
  Here it is a deadline that the reading loop compares with the clock where paramiko
  looks at the timer's flag (it wakes at least every 0.1 s, as before);
- every SSH_MSG_DEBUG (OpenSSH sends one per authorized key's options) is formatted
  for the log byte by byte in Python even when nothing logs it: skipped unless paramiko's
  logger takes DEBUG records;
- each packet's random padding was an ``os.urandom`` call: a ``getrandom`` system call
  and a release and retake of the GIL per packet sent (a warm round over 64 gateways
  sends 64 from one thread). The padding comes from a pool of ``os.urandom`` bytes, each
  used once (``_Padding``), as OpenSSH's comes from its in-process generator.

``trim(transport)`` must run before ``start_client``. It touches only instance attributes.

And the socket (``LeanSocket``, for direct TCP connections): paramiko reads each packet
with two exact-size ``recv`` calls (the first block, then the rest) and writes each with a
``send``; on a socket with a timeout each is a ``poll`` and then the call, and each a
release and retake of the GIL that two threads per host contend for. ``LeanSocket``
reads what has arrived (up to ``READ_AHEAD``) in one call and serves the next calls from
it (a burst of packets, such as the server's key exchange reply, costs one read), and
writes with one ``write`` while the kernel takes the data, polling only when it does not.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import time
from typing import Any, Optional

__all__ = ["READ_AHEAD", "LeanSocket", "trim"]

#: The most one read takes from the kernel (OpenSSH sends packets of up to 32 KiB).
READ_AHEAD = 64 * 1024
#: Random bytes fetched at a time for packet padding (4 to 19 bytes a packet).
PADDING_POOL = 4096
_PACKET_HEAD = struct.Struct(">IB")


def trim(transport: Any) -> None:
    """Apply the trims above to a paramiko ``Transport`` that has not started yet."""
    _HandshakeDeadline(transport.packetizer)
    _Padding(transport.packetizer)
    original = transport._parse_debug

    def parse_debug(message: Any) -> None:
        if transport.logger.isEnabledFor(logging.DEBUG):
            original(message)

    transport._parse_debug = parse_debug


class _HandshakeDeadline:
    """The packetizer's handshake timeout as a deadline instead of a timer thread."""

    def __init__(self, packetizer: Any) -> None:
        self.deadline: Optional[float] = None
        self.complete = False
        packetizer.start_handshake = self.start
        packetizer.handshake_timed_out = self.timed_out
        packetizer.complete_handshake = self.finish

    def start(self, timeout: float) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + float(timeout)

    def timed_out(self) -> bool:
        deadline = self.deadline
        return not self.complete and deadline is not None and time.monotonic() > deadline

    def finish(self) -> None:
        if self.deadline is not None:
            self.complete = True


class _Padding:
    """The packetizer's ``_build_packet`` (paramiko's own, line for line) with its random
    padding taken from a pool. It runs under the packetizer's write lock."""

    def __init__(self, packetizer: Any) -> None:
        self.packetizer = packetizer
        self.pool = b""
        self.used = 0
        packetizer._build_packet = self.build

    def random(self, count: int) -> bytes:
        start = self.used
        if start + count > len(self.pool):
            self.pool, start = os.urandom(PADDING_POOL), 0
        self.used = start + count
        return self.pool[start : start + count]

    def build(self, payload: bytes) -> bytes:
        p = self.packetizer
        block_size = p._Packetizer__block_size_out
        # The length field is not encrypted with EtM and AEAD: not counted.
        addlen = 4 if p._Packetizer__etm_out or p._Packetizer__aead_out else 8
        padding = 3 + block_size - ((len(payload) + addlen) % block_size)
        packet = _PACKET_HEAD.pack(len(payload) + padding + 1, padding) + payload
        if p._Packetizer__sdctr_out or p._Packetizer__block_engine_out is None:
            return packet + bytes(padding)  # what paramiko (and OpenSSH) send there
        return packet + self.random(padding)


class LeanSocket(socket.socket):
    """A TCP socket whose ``recv`` reads ahead and whose ``send`` polls only when it must
    (see above); the rest is ``socket.socket``.

    Only ``recv`` without flags knows of the data read ahead, which is all paramiko
    uses; nothing here waits for the socket to become readable.
    """

    __slots__ = ("_ahead", "_offset")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ahead = b""
        self._offset = 0

    def send(self, data: Any, flags: int = 0) -> int:
        """Write at once where the kernel takes it (the socket is non-blocking under its
        timeout): one syscall; the socket's own send (a poll, then the send) only when
        the kernel's buffer is full."""
        if not flags:
            try:
                return os.write(self.fileno(), data)
            except BlockingIOError:
                pass
        return super().send(data, flags)

    def recv(self, size: int, flags: int = 0) -> bytes:
        ahead, start = self._ahead, self._offset
        if start < len(ahead):
            end = min(start + size, len(ahead))
            self._offset = end
            return ahead[start:end]
        if flags or size <= 0:
            return super().recv(size, flags)
        data = super().recv(max(size, READ_AHEAD))
        if len(data) <= size:
            return data
        self._ahead, self._offset = data, size
        return data[:size]
