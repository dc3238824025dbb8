"""The verb set every transport offers the gateway, and the shared ending procedure.

``readinto(buffer) -> int`` (0 at end of stream), ``write(segments)``, ``close_write()``,
``close()``, ``wait(timeout) -> exit status or None``, ``kill()``. ``describe()`` says
what is on the other end, for messages. The gateway never touches a process, socket
or channel directly; a new transport only has to provide these.
"""

from __future__ import annotations

from typing import Optional, Protocol, Sequence, Union

Buffer = Union[bytes, bytearray, memoryview]


class Transport(Protocol):
    def readinto(self, buffer: bytearray) -> int: ...

    def write(self, segments: Sequence[Buffer]) -> None: ...

    def close_write(self) -> None: ...

    def close(self) -> None: ...

    def wait(self, timeout: Optional[float]) -> Optional[int]: ...

    def kill(self) -> None: ...

    def describe(self) -> str: ...
