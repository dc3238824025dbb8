from __future__ import annotations

import pytest

from execnet_cli._remote.errors import FrameTooLarge, LoadError
from execnet_cli._remote.framing import (
    COPY_BELOW,
    HEADER_SIZE,
    MAX_MESSAGE_TYPE,
    MAX_PAYLOAD,
    Frame,
    FrameDecoder,
    encode_frame,
)


def wire(*frames: tuple) -> bytes:
    return b"".join(b"".join(encode_frame(t, c, [p])) for t, c, p in frames)


SAMPLE = [(4, 1, b"hello"), (5, 2, b""), (4, 3, b"x" * 70000), (6, 1, b"err" * 10)]


def as_tuples(frames: list) -> list:
    return [(t, c, bytes(p)) for t, c, p in frames]


def test_whole_input_at_once():
    assert as_tuples(FrameDecoder().feed(wire(*SAMPLE))) == SAMPLE


def test_one_byte_at_a_time():
    decoder = FrameDecoder()
    out = []
    for byte in wire(*SAMPLE):
        out.extend(decoder.feed(bytes([byte])))
    assert as_tuples(out) == SAMPLE
    assert decoder.buffered == 0


@pytest.mark.parametrize("size", [1, 7, 9, 10, 4096, 65535, 65536, 100000])
def test_any_chunking(size):
    data = wire(*SAMPLE)
    decoder = FrameDecoder()
    out = []
    for i in range(0, len(data), size):
        out.extend(decoder.feed(bytearray(data[i : i + size])))
    assert as_tuples(out) == SAMPLE


def test_trailing_partial_frame_is_kept():
    data = wire(*SAMPLE)
    partial = wire((4, 9, b"tail-payload"))[:-3]
    decoder = FrameDecoder()
    assert as_tuples(decoder.feed(data + partial)) == SAMPLE
    assert decoder.buffered == len(partial)
    assert as_tuples(decoder.feed(b"oad")) == [(4, 9, b"tail-payload")]


def test_whole_frames_are_views_kept_frames_are_copies():
    """A frame whole in the data fed is a view of it (no copy) from COPY_BELOW bytes on,
    a copy below; a frame completed from bytes kept across calls is the decoder's own copy."""
    big = b"b" * COPY_BELOW
    buffer = bytearray(wire((4, 1, big), (4, 3, b"abc")) + wire((4, 2, b"defg"))[:-2])
    decoder = FrameDecoder()
    first, small = decoder.feed(memoryview(buffer))
    assert isinstance(first[2], memoryview) and bytes(first[2]) == big
    assert type(small[2]) is bytes and small[2] == b"abc"
    buffer[:] = b"\0" * len(buffer)  # the caller reuses its buffer
    assert bytes(first[2]) != big  # views follow it: dispatch before reusing
    assert small[2] == b"abc"
    (second,) = decoder.feed(b"fg")
    assert bytes(second[2]) == b"defg"


def test_one_whole_small_frame_is_checked_like_any():
    """The shortcut for a read holding exactly one small frame refuses what the loop does."""
    with pytest.raises(LoadError, match="message type"):
        FrameDecoder().feed(wire((MAX_MESSAGE_TYPE + 1, 1, b"x")))
    with pytest.raises(LoadError, match="maximum"):
        FrameDecoder(max_payload=2).feed(wire((4, 1, b"xyz")))
    assert FrameDecoder().feed(wire((4, 5, b"xyz"))) == [(4, 5, b"xyz")]


def test_encode_is_segments_not_a_copy():
    big = b"z" * 1_000_000
    segments = encode_frame(4, 7, [big])
    assert segments[1] is big
    assert len(segments[0]) == HEADER_SIZE


def test_oversized_message_refused_before_writing():
    with pytest.raises(FrameTooLarge, match="chunks"):
        encode_frame(4, 1, [b"x" * 11], max_payload=10)


def test_two_gib_cannot_be_expressed():
    assert MAX_PAYLOAD < 2**31


def test_decoder_refuses_oversized_announcement():
    header = encode_frame(4, 1, [b"x" * 11])[0]
    with pytest.raises(LoadError, match="maximum"):
        FrameDecoder(max_payload=10).feed(header)


def test_decoder_refuses_unknown_message_type():
    with pytest.raises(LoadError, match="unknown message type"):
        FrameDecoder().feed(b"\xff" + b"\0" * 8)


def test_frame_is_a_value():
    frame = Frame(1, 2, b"x")
    assert frame == (1, 2, b"x") and (frame.type, frame.channel, frame.payload) == (1, 2, b"x")


def test_small_frames_are_one_segment():
    assert encode_frame(4, 1, [b"ab", b"cd"]) == [b"\x04\x00\x00\x00\x01\x00\x00\x00\x04abcd"]


def test_reader_can_fill_a_large_payload_directly():
    payload = bytes(range(256)) * 1024  # 256 KiB
    data = wire((4, 5, payload))
    decoder = FrameDecoder()
    assert decoder.feed(data[:1000]) == []
    target = decoder.big_target()
    assert target is not None and len(target) == len(payload) - (1000 - HEADER_SIZE)
    rest = data[1000:]
    target[:100] = rest[:100]
    assert decoder.big_filled(100) == []
    target = decoder.big_target()
    target[:] = rest[100:]
    (frame,) = decoder.big_filled(len(rest) - 100)
    assert frame[:2] == (4, 5) and bytes(frame[2]) == payload
    assert decoder.big_target() is None and decoder.buffered == 0


def test_large_payloads_stay_valid_for_the_next_large_frame():
    first, second = b"a" * 100_000, b"b" * 100_000
    decoder = FrameDecoder()
    frames = []
    for chunk in (wire((4, 1, first))[:50_000], wire((4, 1, first))[50_000:], wire((4, 2, second))):
        frames += decoder.feed(chunk)
    assert [bytes(p) for _, _, p in frames] == [first, second]


def test_oversized_payloads_are_not_kept_for_reuse():
    from execnet_cli._remote.framing import REUSE_LIMIT

    big = b"z" * (REUSE_LIMIT + 1)
    decoder = FrameDecoder()
    data = wire((4, 1, big))
    (frame,) = decoder.feed(data[:70_000]) + decoder.feed(data[70_000:])
    assert bytes(frame[2]) == big
    assert all(spare is None or len(spare) <= REUSE_LIMIT for spare in decoder._spares)


def _address(view: memoryview) -> int:
    import ctypes

    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def test_value_prefix_is_the_serializers():
    from execnet_cli._remote.framing import VALUE_PREFIX
    from execnet_cli._remote.serializer import BIG_SEGMENT, dumps_parts

    for value in (b"x" * BIG_SEGMENT, "y" * BIG_SEGMENT):
        prefix, data = dumps_parts(value)
        assert len(prefix) == VALUE_PREFIX
        assert data is value or data == value.encode()


@pytest.mark.parametrize("head", [5, HEADER_SIZE, HEADER_SIZE + 6, 50_000])
def test_big_value_data_starts_a_page(head):
    """A big frame split across feeds is collected with its value's data on a page."""
    from execnet_cli._remote.framing import PAGE, VALUE_PREFIX
    from execnet_cli._remote.serializer import dumps_parts, loads

    value = bytes(range(256)) * 400
    data = wire((4, 1, b"".join(dumps_parts(value))))
    decoder = FrameDecoder()
    frames = decoder.feed(data[:head]) + decoder.feed(data[head:])
    ((_, _, payload),) = frames
    assert _address(payload[VALUE_PREFIX:]) % PAGE == 0
    assert loads(payload) == value
