"""via= gateways: bytes relayed over a channel of an existing gateway."""

from __future__ import annotations

import os
import signal
import socket
import threading

import pytest
from proc_helpers import free_port

import execnet_cli
from execnet_cli import SpecError
from execnet_cli.transports.via import open_via_tcp


@pytest.fixture
def group():
    group = execnet_cli.Group(["popen"])
    yield group
    group.terminate(5)


def test_popen_via_popen(group):
    inner = group.makegateway("popen//via=gw0")
    carrier_pid = group["gw0"]._rinfo().pid
    channel = inner.remote_exec("import os; channel.send((os.getppid(), channel.receive()))")
    channel.send("hi")
    assert channel.receive(10) == (carrier_pid, "hi")


def test_chained_via(group):
    group.makegateway("popen//via=gw0//id=hop1")
    far = group.makegateway("popen//via=hop1//id=hop2")
    assert far.remote_exec("channel.send(6 * 7)").receive(10) == 42
    assert far._rinfo().pid != group["hop1"]._rinfo().pid


def test_big_data_through_via(group):
    inner = group.makegateway("popen//via=gw0")
    channel = inner.remote_exec("for x in channel: channel.send(x)")
    blob = os.urandom(3 << 20)
    channel.send(blob)
    assert channel.receive(30) == blob
    channel.close()


def test_via_unknown_gateway_named(group):
    with pytest.raises(SpecError, match="via='nope'.*gw0"):
        group.makegateway("popen//via=nope")


def test_inner_exit_leaves_carrier_usable(group):
    inner = group.makegateway("popen//via=gw0")
    inner_pid = inner._rinfo().pid
    inner.exit()
    with pytest.raises(ProcessLookupError):
        os.kill(inner_pid, 0)
    assert group["gw0"].remote_exec("channel.send(1)").receive(10) == 1


def test_carrier_death_ends_inner_gateway(group):
    inner = group.makegateway("popen//via=gw0")
    channel = inner.remote_exec("channel.receive()")
    os.kill(group["gw0"]._rinfo().pid, signal.SIGKILL)
    with pytest.raises(EOFError):
        channel.waitclose(10)


def test_via_missing_python_reports(group):
    with pytest.raises(execnet_cli.HostNotFound):
        group.makegateway("popen//via=gw0//python=/nonexistent/python3")


@pytest.fixture
def echo_server():
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data.upper())

    thread = threading.Thread(target=serve)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def test_tcp_tunnel_through_gateway(group, echo_server):
    sock = open_via_tcp(group["gw0"], "127.0.0.1", echo_server, timeout=10)
    sock.settimeout(10)
    sock.sendall(b"hello tunnel")
    received = b""
    while len(received) < 12:
        received += sock.recv(4)
    assert received == b"HELLO TUNNEL"
    sock.settimeout(0.05)
    with pytest.raises(socket.timeout):
        sock.recv(10)
    sock.close()


def test_tcp_tunnel_refused_port(group):
    port = free_port()
    with pytest.raises(execnet_cli.ConnectFailed, match="refused"):
        open_via_tcp(group["gw0"], "127.0.0.1", port, timeout=5)
