"""Limits the docs promise that no other test held the code to (docs/promises.md)."""

from __future__ import annotations

import os
import queue
import selectors
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import execnet_cli
from execnet_cli._remote.rsync_send import Sender, Target
from execnet_cli._remote.rsync_tree import PROTOCOL, Excludes, Tree
from execnet_cli.errors import ConnectFailed
from execnet_cli.rsync import program as rsync_program
from execnet_cli.transports.ssh.connect import HANDSHAKES_PER_SERVER


class SilentServer:
    """A port that accepts and never speaks (an sshd past its start-ups, or a stuck one);
    counts the connections open at once."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.listener.getsockname()[1]
        self.open = self.peak = self.accepted = 0
        self.stop_r, self.stop_w = socket.socketpair()
        self.thread = threading.Thread(target=self._serve, name="silent-server")
        self.thread.start()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        selector.register(self.stop_r, selectors.EVENT_READ)
        conns: list[socket.socket] = []
        while True:
            # Ends before starts: a client that gave up and the next one, seen in one
            # round, are never counted open at once.
            events = sorted(selector.select(), key=lambda e: e[0].fileobj is self.listener)
            for key, _ in events:
                if key.fileobj is self.stop_r:
                    for conn in conns:
                        selector.unregister(conn)
                        conn.close()
                    selector.close()
                    return
                if key.fileobj is self.listener:
                    conn, _ = self.listener.accept()
                    conn.setblocking(False)
                    self.accepted += 1
                    if ended(conn):  # closed while it waited to be accepted (a busy test)
                        conn.close()
                        continue
                    conns.append(conn)
                    selector.register(conn, selectors.EVENT_READ)
                    self.open += 1
                    self.peak = max(self.peak, self.open)
                    continue
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                if ended(conn):  # the client gave up: its slot is free
                    selector.unregister(conn)
                    conns.remove(conn)
                    conn.close()
                    self.open -= 1

    def close(self) -> None:
        self.stop_w.send(b"x")
        self.thread.join(10)
        for sock in (self.listener, self.stop_r, self.stop_w):
            sock.close()


def ended(conn: socket.socket) -> bool:
    """Whether the client closed its end; what it sent (its banner) is read and dropped."""
    while True:
        try:
            if not conn.recv(65536):
                return True
        except BlockingIOError:
            return False


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_at_most_8_connections_to_one_server_are_in_their_handshake(silent) -> None:
    """README/docs/ssh.md: "at most 8 connections to one server (address and port) are
    between TCP connect and authentication at once, the others wait their turn"."""
    assert HANDSHAKES_PER_SERVER == 8
    spec = f"ssh=-p {silent.port} -o UserKnownHostsFile=/dev/null root@127.0.0.1//connect_timeout=3"
    errors: list[BaseException] = []
    together = threading.Barrier(12)

    def open_one() -> None:
        together.wait(30)
        try:
            execnet_cli.makegateway(spec).exit()
        except BaseException as exc:  # noqa: BLE001 (collected, checked below)
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(errors) == 12 and all(isinstance(e, ConnectFailed) for e in errors), errors
    assert silent.accepted >= 12  # every one had its turn
    assert silent.peak == 8, (silent.peak, silent.accepted)


def test_a_server_that_never_speaks_is_tried_once(silent) -> None:
    """docs/inventories.md: `connect_timeout` "give up connecting ... after this long";
    a banner that does not come in time is a timeout, not a drop to try again (it was
    tried three times: three times the bound)."""
    spec = (
        f"ssh=-p {silent.port} -o UserKnownHostsFile=/dev/null root@127.0.0.1//connect_timeout=0.3"
    )
    for _ in range(6):  # paramiko's banner timeout and ours race: each wins some
        with pytest.raises(ConnectFailed):
            execnet_cli.makegateway(spec)
    assert silent.accepted == 6


def test_a_connection_dropped_before_the_banner_is_tried_again_twice() -> None:
    """README (Reliability): "one the server closes before its banner is tried again
    (twice at most)": what sshd does past its MaxStartups."""
    closing = socket.create_server(("127.0.0.1", 0), backlog=16)
    closing.settimeout(0.2)
    accepted = 0
    done = threading.Event()

    def drop_each() -> None:
        nonlocal accepted
        while not done.is_set():
            try:
                conn, _ = closing.accept()
            except socket.timeout:
                continue
            accepted += 1
            conn.close()

    thread = threading.Thread(target=drop_each)
    thread.start()
    try:
        port = closing.getsockname()[1]
        spec = f"ssh=-p {port} -o UserKnownHostsFile=/dev/null root@127.0.0.1//connect_timeout=5"
        with pytest.raises(ConnectFailed):
            execnet_cli.makegateway(spec)
    finally:
        done.set()
        thread.join(10)
        closing.close()
    assert accepted == 3


# -- rsync: a bounded amount in flight per host -------------------------------------------

#: docs/rsync.md: "at most 8 MiB in flight per host" (the literal, not the module's
#: constant: raising the constant must fail this test).
RSYNC_IN_FLIGHT = 8 << 20

#: Worker side: the receiver's file writes wait (the first one says so) until released.
_HOLD_WRITES = """
import threading
from {package} import rsync_data

held = threading.Event()
write_all = rsync_data.write_all

def waiting_write_all(fd, data):
    if not held.is_set():
        channel.send("writing")
        release.wait()
        held.set()
    write_all(fd, data)

release = threading.Event()
rsync_data.write_all = waiting_write_all
channel.send("ready")
channel.receive()
release.set()
"""


class WatchedEvents(queue.SimpleQueue):  # type: ignore[type-arg]
    """The sender's event queue, noting when it waited and nothing came (it is stuck)."""

    def __init__(self) -> None:
        self.armed = False
        self.idle = threading.Event()

    def get(self, block: bool = True, timeout: float | None = None) -> object:
        try:
            return super().get(block, timeout)
        except queue.Empty:
            if self.armed and block:  # a wait that timed out, not a look
                self.idle.set()
            raise


def test_rsync_keeps_at_most_8_mib_in_flight_to_a_stalled_host(gw, tmp_path: Path) -> None:
    """docs/rsync.md: "at most 8 MiB in flight per host". A real worker whose disk writes
    wait still reads what arrives; the sender must stop at the window, not send it all."""
    source = tmp_path / "src"
    source.mkdir()
    content = os.urandom(4 * RSYNC_IN_FLIGHT)
    (source / "big.bin").write_bytes(content)
    package = gw.remote_modules("rsync")
    hold = gw.remote_exec(_HOLD_WRITES.format(package=package))
    assert hold.receive(30) == "ready"
    channel = rsync_program.start(gw)
    channel.send(("rsync", PROTOCOL, "push", str(tmp_path / "dest"), {}))
    target = Target(channel, "stalled")
    sender = Sender(Tree(str(source), Excludes(())), [target])
    events = sender.events = WatchedEvents()
    thread = threading.Thread(target=sender.run, name="rsync-sender")
    thread.start()
    try:
        assert hold.receive(60) == "writing"  # the receiver took the first chunk and waits
        events.armed = True
        # The sender waits for an acknowledgement with nothing left to handle: whatever it
        # would send without one, it has sent.
        assert events.idle.wait(60), "the sender never came to wait"
        in_flight = target.in_flight
    finally:
        hold.send("release")
        thread.join(60)
    assert RSYNC_IN_FLIGHT // 2 < in_flight <= RSYNC_IN_FLIGHT
    assert target.done and target.failure is None
    assert (tmp_path / "dest" / "big.bin").read_bytes() == content
