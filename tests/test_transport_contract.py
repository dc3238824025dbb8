"""The transport contract (``transports/base.py``), checked on every transport.

In the spirit of trio's ``check_two_way_stream``: each transport is opened by the opener
registered for its kind, on a real worker, and driven with raw protocol frames (no
gateway): bytes both ways, end of stream, half-close, exit status, and ``wait`` /
``kill`` / ``close`` that may be called again and late.
"""

from __future__ import annotations

import os
import queue
import select
import threading
from typing import Any, Iterator, Optional, Tuple

import pytest
from proc_helpers import sudo_unavailable

import execnet_cli
from execnet_cli import XSpec, bootstrap
from execnet_cli._remote.framing import FrameDecoder, encode_frame
from execnet_cli._remote.protocol import MessageType
from execnet_cli._remote.serializer import dumps_parts, loads
from execnet_cli.gateway import worker_config
from execnet_cli.source import prepare_request
from execnet_cli.transports.base import Transport
from execnet_cli.transports.opening import opener_for

#: kind -> spec (``SSH`` stands for the sshd fixture's ``ssh=`` value).
SPECS = {
    "popen": "popen",
    "popen-spawn": "popen//spawn",
    "popen-via": "popen//via=carrier",
    "popen-sudo": "popen//sudo=nobody",
    "socket": "socket//installvia=carrier",
    "ssh": "SSH",
    "ssh-via": "SSH//via=carrier",
}
END = ("end",)
WAIT = 15.0


class Peer:
    """Our end of a transport: frames read by a thread into a queue, frames written."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.frames: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._read, name="contract-reader", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        decoder = FrameDecoder()
        buffer = memoryview(bytearray(256 * 1024))
        try:
            while True:
                count = self.transport.readinto(buffer)
                if not count:
                    break
                for msgtype, channel, payload in decoder.feed(buffer[:count]):
                    if msgtype == MessageType.SOURCES:
                        self._answer_sources()
                        continue
                    self.frames.put((msgtype, channel, bytes(payload)))
        except OSError:
            pass  # the end, seen as an error (a closed descriptor)
        finally:
            self.frames.put(END)

    def _answer_sources(self) -> None:
        """A worker of another bytecode magic (the CI matrix runs us under other Pythons
        than the workers') asks for our sources, as the gateway would answer: from a thread
        of its own, so this reader goes on reading while the answer is written."""
        frame = encode_frame(MessageType.SOURCES, 0, [bootstrap.packed_sources()])
        threading.Thread(target=self.transport.write, args=(frame,), daemon=True).start()

    def until(self, msgtype: int) -> Tuple[int, int, bytes]:
        """The next frame of ``msgtype`` (others skipped)."""
        while True:
            frame = self.frames.get(timeout=WAIT)
            assert frame is not END, f"the stream ended before a frame of type {msgtype}"
            if frame[0] == msgtype:
                return frame

    def reaches_the_end(self) -> bool:
        """Read (and drop) frames until the end of the stream."""
        while True:
            try:
                if self.frames.get(timeout=WAIT) is END:
                    return True
            except queue.Empty:
                return False

    def send(self, msgtype: int, channel: int, value: Any = None) -> None:
        segments = () if value is None else dumps_parts(value)
        self.transport.write(encode_frame(msgtype, channel, segments))

    def run(self, channel: int, source: str) -> None:
        self.send(MessageType.CHANNEL_EXEC, channel, prepare_request(source, {}))


@pytest.fixture(params=list(SPECS))
def opened(request: pytest.FixtureRequest) -> Iterator[Tuple[str, Transport, Peer]]:
    """(kind, transport, peer) for a worker that has just been sent its bootstrap."""
    kind = request.param
    spec_text = SPECS[kind]
    if "SSH" in spec_text:
        spec_text = spec_text.replace("SSH", request.getfixturevalue("sshd_host").spec())
    if kind == "popen-sudo":
        reason = sudo_unavailable()
        if reason:
            pytest.skip(reason)
    group = execnet_cli.Group()
    transport: Optional[Transport] = None
    peer: Optional[Peer] = None
    try:
        if "carrier" in spec_text:
            group.makegateway("popen//id=carrier")
        spec = XSpec(spec_text + "//id=contract")
        opener = opener_for(spec.transport or "", spec.fields)
        transport = opener(spec.fields, worker_config(spec, "thread"), group._context)
        peer = Peer(transport)
        yield kind, transport, peer
    finally:
        if transport is not None:
            transport.kill()
            transport.wait(WAIT)
            if peer is not None:
                peer.thread.join(WAIT)
            transport.close()
        group.terminate(10)


def ready(peer: Peer, transport: Transport) -> int:
    """Wait for the worker's ready message; pass its pid on, as the gateway does."""
    pid = loads(peer.until(MessageType.WORKER_READY)[2])["pid"]
    transport.worker_ready(pid)
    return pid


def test_bytes_go_both_ways_in_order(opened):
    _, transport, peer = opened
    ready(peer, transport)
    peer.run(1, "for item in channel:\n    channel.send(item)")
    for value in [b"small", os.urandom(3 << 20), "last"]:  # one write of many segments
        peer.send(MessageType.CHANNEL_DATA, 1, value)
        assert loads(peer.until(MessageType.CHANNEL_DATA)[2]) == value


def test_half_close_ends_the_worker_then_the_stream(opened):
    kind, transport, peer = opened
    ready(peer, transport)
    transport.close_write()
    transport.close_write()
    assert peer.reaches_the_end()
    assert transport.wait(WAIT) == 0
    assert transport.wait(0) == 0, "the same status every time"
    assert "still" not in transport.exit_description()


def test_the_end_of_stream_when_the_worker_exits(opened):
    kind, transport, peer = opened
    ready(peer, transport)
    peer.run(1, "import os; os._exit(3)")
    assert peer.reaches_the_end()
    status = transport.wait(WAIT)
    assert status == (0 if kind == "socket" else 3), transport.exit_description()
    if kind != "socket":  # a socket's far end only closes: there is no status
        assert "3" in transport.exit_description()


def test_wait_kill_and_close_may_come_again_and_late(opened):
    _, transport, peer = opened
    ready(peer, transport)
    assert transport.wait(0) is None
    assert transport.exit_description().startswith("still")
    transport.kill()
    status = transport.wait(WAIT)
    assert status is not None
    transport.kill()
    assert transport.wait(0) == status
    assert peer.reaches_the_end()
    assert not transport.exit_description().startswith("still")
    peer.thread.join(WAIT)
    transport.close()
    transport.close()
    transport.kill()
    transport.wait(0)
    with pytest.raises((OSError, ValueError)):
        transport.write([b"too late"])
    assert transport.describe()


def test_optional_verbs_are_declared(opened):
    _, transport, peer = opened
    ready(peer, transport)
    assert transport.describe()
    fd = transport.fileno()
    if fd is not None:  # something to poll: the waiting thread may read itself
        select.poll().register(fd, select.POLLIN)
    assert transport.readinto_many is None or callable(transport.readinto_many)
    error = RuntimeError("worker gone")
    assert isinstance(transport.startup_error(error), Exception)
