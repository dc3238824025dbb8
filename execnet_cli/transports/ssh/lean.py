"""Trimming paramiko's per-connection overhead on the controller (same protocol, same checks).

A fan-out opens one paramiko ``Transport`` per host, so whatever paramiko does per
connection beyond the protocol is paid N times on the controller's CPU:

- its handshake timeout runs a ``threading.Timer``: one more thread per connection,
  cancelled (a lock, a condition, a notify) after every message the connection reads.
  Here it is a deadline that the reading loop compares with the clock where paramiko
  looks at the timer's flag (it wakes at least every 0.1 s, as before);
- every SSH_MSG_DEBUG (OpenSSH sends one per authorized key's options) is formatted
  for the log byte by byte in Python even when nothing logs it: skipped unless paramiko's
  logger takes DEBUG records.

``trim(transport)`` must run before ``start_client``. It touches only instance attributes.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

__all__ = ["trim"]


def trim(transport: Any) -> None:
    """Apply the trims above to a paramiko ``Transport`` that has not started yet."""
    _HandshakeDeadline(transport.packetizer)
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
