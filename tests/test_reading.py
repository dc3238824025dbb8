"""StreamReader over a real pipe: where frames land, and that they arrive intact."""

from __future__ import annotations

import ctypes
import os
import threading

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
