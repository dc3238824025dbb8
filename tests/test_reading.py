"""StreamReader over a real pipe: where frames land, and that they arrive intact."""

from __future__ import annotations

import ctypes
import os
import threading

import pytest

from execnet_cli._remote.fdio import FdIO
from execnet_cli._remote.framing import PAGE, VALUE_PREFIX, encode_frame
from execnet_cli._remote.reading import StreamReader
from execnet_cli._remote.serializer import dumps_parts, loads


def _address(view: memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def _read_all(frames: list) -> list:
    """Send ``frames`` (type, channel, value) through a pipe; return what the reader
    dispatched as (type, channel, value, value-data address or None)."""
    read_fd, write_fd = os.pipe()
    io = FdIO(read_fd, write_fd)
    got: list = []

    def dispatch(frame: tuple) -> bool:
        msgtype, channel, payload = frame
        address = None
        if len(payload) > VALUE_PREFIX and isinstance(payload, memoryview):
            address = _address(payload[VALUE_PREFIX:])
        got.append((msgtype, channel, loads(payload), address))
        return True

    reader = StreamReader(io, "test", dispatch, lambda reason: None, lambda reason: None)

    def write() -> None:
        for msgtype, channel, value in frames:
            io.write(encode_frame(msgtype, channel, dumps_parts(value)))
        io.close_write()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        reader.background_loop()
    finally:
        writer.join()
        io.close()
    return got


def test_frames_arrive_intact_and_big_values_start_a_page():
    big, large = bytes(range(256)) * 300, b"q" * (3 * 1024 * 1024)
    frames = [(4, 1, big), (4, 3, "small"), (4, 5, large), (4, 7, [1, "two", b"3"]), (4, 1, big)]
    got = _read_all(frames)
    assert [(t, c, v) for t, c, v, _ in got] == frames
    for _, _, value, address in got:
        if isinstance(value, bytes) and len(value) > 65536:
            assert address is not None and address % PAGE == 0


class ScriptedIO:
    """An io without a descriptor that hands out ``data`` at most ``step`` bytes a call."""

    def __init__(self, data: bytes, steps: list) -> None:
        self._data = memoryview(data)
        self._steps = steps
        self._calls = 0

    def _next(self, room: int) -> memoryview:
        step = self._steps[self._calls % len(self._steps)]
        self._calls += 1
        piece, self._data = self._data[: min(step, room)], self._data[min(step, room) :]
        return piece

    def readinto(self, buffer: memoryview) -> int:
        piece = self._next(len(buffer))
        buffer[: len(piece)] = piece
        return len(piece)

    def fileno(self) -> None:
        return None  # nothing to poll: the background thread reads

    def readinto_many(self, buffers: list) -> int:
        piece = self._next(sum(len(b) for b in buffers))
        done = 0
        for buffer in buffers:
            take = min(len(buffer), len(piece) - done)
            buffer[:take] = piece[done : done + take]
            done += take
        return done


def _decode_scripted(frames: list, steps: list) -> list:
    data = b"".join(b"".join(encode_frame(t, c, dumps_parts(v))) for t, c, v in frames)
    got: list = []

    def dispatch(frame: tuple) -> bool:
        msgtype, channel, payload = frame
        aligned = None
        if isinstance(payload, memoryview) and len(payload) > 65536:
            aligned = _address(payload[VALUE_PREFIX:]) % PAGE == 0
        got.append((msgtype, channel, loads(payload), aligned))
        return True

    reader = StreamReader(ScriptedIO(data, steps), "t", dispatch, lambda r: None, lambda r: None)
    reader.background_loop()
    return got


@pytest.mark.parametrize(
    "steps",
    [[1 << 30], [100_000], [65_551], [65_551 * 3], [9, 70_000], [5, 131_072, 17], [4096]],
)
def test_runs_of_equal_big_frames_in_any_pieces(steps):
    """Runs of equal big frames are read into slots (each value's data on a page), and
    whatever the pieces, frames of other sizes between them still decode."""
    chunk, other = bytes(range(256)) * 256, b"o" * 100_000
    frames = [(4, 1, chunk)] * 6 + [(4, 3, "small"), (4, 1, other)] + [(4, 1, chunk)] * 5
    got = _decode_scripted(frames, steps)
    assert [(t, c, v) for t, c, v, _ in got] == frames
    assert all(aligned is not False for _, _, _, aligned in got)
