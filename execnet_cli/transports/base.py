"""The verb set every transport offers the gateway and its reader: the seam between them.

A transport carries one worker's byte stream and stands for the worker's life. The gateway
and ``_remote/reading.py`` use these verbs and nothing else (``tests/test_transport_contract.py``
holds every transport to them):

- ``readinto(buffer) -> int``: blocks until some bytes arrive; 0 only at the end of the
  stream (the worker ended or closed its side). After ``close`` it returns 0 or raises OSError.
- ``write(segments)``: all the bytes, in order, or OSError / ValueError (the far side is gone,
  or after ``close``); never a partial write that returns.
- ``close_write()``: half-close; the worker sees the end of its input, and what it still
  sends can be read. Idempotent.
- ``wait(timeout) -> status | None``: the exit status once the worker has ended (the same
  every time; 0 for a socket, whose far end only closes), None while it runs.
- ``kill()``: end the worker now (a second call may be harsher); harmless once it has ended
  and after ``close``.
- ``close()``: release everything (descriptors, connections, helper threads). Idempotent.
- ``describe()``: what is on the far side, for messages; ``exit_description()``: how it ended
  ("exited with status 1", "killed by signal 9", "still running").

Optional verbs have defaults in ``TransportBase`` and ``PassiveTransport``:

- ``fileno() -> int | None``: a descriptor to poll for readable data, which lets a thread
  waiting for a reply read the stream itself (None: only the background thread reads);
- ``readinto_many``: None, or a scatter read filling several buffers in order;
- ``push_frames(gateway) -> loop | None``: the transport decodes and dispatches what
  arrives itself, as it arrives (ssh: in paramiko's thread, one thread hand-off less per
  reply); the gateway's receiver thread runs the returned loop for what cannot be done
  there. None: the gateway reads with ``readinto``;
- ``worker_ready(pid)``: the worker reported ready (its pid over there, to kill it by);
- ``startup_error(error)``: the error to raise for a worker that ended before it was ready
  (ssh adds the remote's stderr).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol, Sequence, Union

Buffer = Union[bytes, bytearray, memoryview]
#: What a read fills.
Target = Union[bytearray, memoryview]
ScatterRead = Callable[[Sequence[memoryview]], int]


class Transport(Protocol):
    """One worker's byte stream and life (the verbs are described in the module doc)."""

    def readinto(self, buffer: Target) -> int: ...

    @property
    def readinto_many(self) -> Optional[ScatterRead]: ...

    def fileno(self) -> Optional[int]: ...

    def write(self, segments: Sequence[Buffer]) -> None: ...

    def close_write(self) -> None: ...

    def close(self) -> None: ...

    def wait(self, timeout: Optional[float]) -> Optional[int]: ...

    def kill(self) -> None: ...

    def describe(self) -> str: ...

    def exit_description(self) -> str: ...

    def push_frames(self, gateway: Any) -> Optional[Callable[[], None]]: ...

    def worker_ready(self, pid: Optional[int]) -> None: ...

    def startup_error(self, error: Exception) -> Exception: ...


class TransportBase:
    """Defaults for the optional verbs a transport over descriptors does not define."""

    def push_frames(self, gateway: Any) -> Optional[Callable[[], None]]:
        """The gateway reads (``readinto``)."""
        return None

    def worker_ready(self, pid: Optional[int]) -> None:
        """Nothing to remember: ending the process we started ends the worker."""

    def startup_error(self, error: Exception) -> Exception:
        return error


class PassiveTransport(TransportBase):
    """A transport without a descriptor (a channel of ssh or of another gateway): the
    gateway's background thread reads it, one buffer at a time."""

    readinto_many: Optional[ScatterRead] = None

    def fileno(self) -> Optional[int]:
        return None
