"""Byte I/O over a pair of file descriptors (pipes), as both sides of popen and ssh use.

The transport verb set (``execnet_cli/transports/base.py`` describes it): ``readinto``
(0 at end of stream), ``write`` (all segments, in one ``writev`` where the kernel takes
them), ``close_write``, ``close``, ``fileno`` (what to poll), which lets a waiting thread
read the stream itself, and ``readinto_many`` (a scatter read). A closed side's
descriptor reads as -1, so a late read or write fails (EBADF) instead of reaching
whatever file reused the number.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import List, Sequence, Union

    Buffer = Union[bytes, bytearray, memoryview]

F_SETPIPE_SZ = 1031  # Linux fcntl: resize a pipe's kernel buffer


def write_all(fd: int, data: Buffer) -> None:
    """Write all of ``data`` to ``fd`` (a pipe or a pty may take it in pieces)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def enlarge_pipe(fd: int, size: int = 1 << 20) -> None:
    """Grow a pipe's kernel buffer (Linux): fewer syscalls and wake-ups per MiB moved."""
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, size)
    except (ImportError, OSError, ValueError):
        pass  # not Linux, not a pipe, or over the limit: the default still works


class FdIO:
    """Reads from one descriptor and writes to another; owns both."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._write_open = True
        self._read_open = True

    def fileno(self) -> int:
        """The descriptor to poll for readable data."""
        return self.read_fd

    def readinto(self, buffer: bytearray | memoryview) -> int:
        return os.readv(self.read_fd, [buffer])

    def readinto_many(self, buffers: Sequence[Buffer]) -> int:
        """Fill ``buffers`` in order with one ``readv``; return the byte count."""
        return os.readv(self.read_fd, buffers)

    def write(self, segments: Sequence[Buffer]) -> None:
        if len(segments) == 1:
            data = segments[0]
            written = os.write(self.write_fd, data)
            if written < len(data):
                self._write_rest([memoryview(data)[written:]])
            return
        written = os.writev(self.write_fd, segments)
        total = 0
        for segment in segments:
            total += len(segment)
        if written < total:
            self._write_rest(_skip(segments, written))

    def _write_rest(self, segments: List[memoryview]) -> None:
        for segment in segments:
            view = memoryview(segment)
            while view:
                view = view[os.write(self.write_fd, view) :]

    def close_write(self) -> None:
        if self._write_open:
            self._write_open = False
            _close_quietly(self.write_fd)
            self.write_fd = -1

    def close_read(self) -> None:
        if self._read_open:
            self._read_open = False
            _close_quietly(self.read_fd)
            self.read_fd = -1

    def close(self) -> None:
        self.close_write()
        self.close_read()


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _skip(segments: Sequence[Buffer], count: int) -> List[memoryview]:
    """The segments that remain after the first ``count`` bytes were written."""
    rest: List[memoryview] = []
    for segment in segments:
        size = len(segment)
        if count >= size:
            count -= size
            continue
        rest.append(memoryview(segment)[count:])
        count = 0
    return rest
