"""paramiko's per-connection overhead trimmed (``transports.ssh.lean``), against real sshd:
no timer thread per handshake, the handshake still bounded, SSH_MSG_DEBUG still logged
when someone listens."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any, List

import pytest
from proc_helpers import wait_until
from sshd_fixtures import SshdHost

from execnet_cli.errors import ConnectFailed
from execnet_cli.transports.ssh.connect import connect
from execnet_cli.transports.ssh.settings import settings_for


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


def test_a_connection_starts_only_the_transport_thread(
    sshd_host: SshdHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: List[threading.Thread] = []
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        started.append(thread)
        original(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    connection = connect(settings_for(sshd_host.ssh_value()), 10)
    try:
        assert connection.transport.is_authenticated()
        assert started == [connection.transport], started  # paramiko's was a Timer too
    finally:
        connection.close()
    assert wait_until(lambda: not connection.transport.is_alive(), 5)


def test_a_stalled_key_exchange_still_times_out() -> None:
    """A server that sends its banner and then nothing: the handshake deadline ends the
    transport's thread, as paramiko's timer did."""
    server = socket.socket()
    server.bind(("127.0.0.2", 0))
    server.listen(1)
    accepted: List[Any] = []

    def serve() -> None:
        conn, _ = server.accept()
        accepted.append(conn)
        conn.sendall(b"SSH-2.0-OpenSSH_9.2 stall\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    value = f"-p {server.getsockname()[1]} -o StrictHostKeyChecking=no root@127.0.0.2"
    before = set(threading.enumerate())
    started = time.monotonic()
    try:
        with pytest.raises(ConnectFailed, match="127.0.0.2"):
            connect(settings_for(value), 1.0)
        assert time.monotonic() - started < 6
        assert wait_until(lambda: set(threading.enumerate()) <= before | {thread}, 5)
    finally:
        thread.join(5)
        for conn in accepted:
            conn.close()
        server.close()


def test_server_debug_messages_reach_a_debug_log(
    sshd_host: SshdHost, caplog: pytest.LogCaptureFixture
) -> None:
    """OpenSSH sends SSH_MSG_DEBUG about the authorized key's options; it is formatted and
    logged only when paramiko's logger takes DEBUG records."""
    for level, logged in ((logging.DEBUG, True), (logging.INFO, False)):
        caplog.clear()
        with caplog.at_level(level, logger="paramiko"):
            _connect_and_open_a_session(sshd_host)
        assert any("Debug msg:" in r.getMessage() for r in caplog.records) is logged


def _connect_and_open_a_session(host: SshdHost) -> None:
    """Connect, then open a session: its answer comes after the server's debug message."""
    connection = connect(settings_for(host.ssh_value()), 10)
    try:
        connection.transport.open_session(timeout=10).close()
    finally:
        connection.close()


def test_a_worker_without_stderr_starts_no_stderr_thread(
    sshd_host: SshdHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's stderr is copied by one writer thread, started only when some worker
    writes there (one thread per connection before)."""
    import execnet_cli

    names: List[str] = []
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        names.append(thread.name)
        original(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    gateways = [execnet_cli.makegateway(sshd_host.spec()) for _ in range(2)]
    try:
        for gateway in gateways:
            assert gateway.remote_exec("channel.send(1)").receive() == 1
    finally:
        for gateway in gateways:
            gateway.exit()
    assert not [name for name in names if name.startswith("xnet-ssh-stderr")], names


def test_read_ahead_socket_serves_reads_in_order() -> None:
    """What one read took from the kernel is handed out in the sizes asked for, in order,
    before the socket is read again."""
    from execnet_cli.transports.ssh.lean import READ_AHEAD, LeanSocket

    ours, theirs = socket.socketpair()
    sock = LeanSocket(fileno=ours.detach())
    try:
        sock.settimeout(5)
        theirs.sendall(b"0123456789")
        assert sock.recv(4) == b"0123"
        assert sock.recv(3) == b"456"
        assert sock.recv(100) == b"789"  # the rest read ahead; no more asked of the kernel
        big = bytes(range(256)) * (READ_AHEAD // 128)
        theirs.sendall(big + b"end")
        got = b""
        while len(got) < len(big) + 3:
            got += sock.recv(16)
        assert got == big + b"end"
        theirs.close()
        assert sock.recv(16) == b""
    finally:
        sock.close()
        theirs.close()


def test_a_known_hosts_file_missing_then_written_is_read(
    sshd_host: SshdHost, tmp_path: Path
) -> None:
    """A missing known_hosts file is remembered as missing (no open per host), until it
    appears."""
    from execnet_cli.transports.ssh.hostkeys import load_known_hosts

    path = tmp_path / "known_hosts"
    name = f"[{sshd_host.address}]:{sshd_host.port}"
    assert not load_known_hosts(name, [str(path)]).known
    assert not load_known_hosts(name, [str(path)]).known
    path.write_text(sshd_host.known_hosts_line() + "\n")
    assert load_known_hosts(name, [str(path)]).known
    path.unlink()
    assert not load_known_hosts(name, [str(path)]).known


def test_the_command_line_beats_a_config_files_leading_proxycommand_none(
    tmp_path: Path,
) -> None:
    """The config files are parsed once per run, apart from each host's own options, which
    go first: OpenSSH's first-value-wins then holds even for the options before any
    ``Host`` line of an ``-F`` file (one block with them before: paramiko let its
    ``ProxyCommand none`` replace the command line's)."""
    config = tmp_path / "config"
    config.write_text("ProxyCommand none\nPort 2200\nUser other\n")
    settings = settings_for(f"-F {config} -o 'ProxyCommand=nc %h %p' -p 2222 user@h1")
    assert settings.proxy_command == "nc %h %p"
    assert (settings.port, settings.user) == (2222, "user")
    plain = settings_for(f"-F {config} h1")
    assert (plain.proxy_command, plain.port, plain.user) == (None, 2200, "other")


def test_lean_socket_send_waits_only_when_the_kernel_is_full() -> None:
    """Sends go through at once while the kernel takes them; a full buffer waits for the
    socket's timeout as a plain socket's send does, and nothing is lost or reordered."""
    from execnet_cli.transports.ssh.lean import LeanSocket

    ours, theirs = socket.socketpair()
    sock = LeanSocket(fileno=ours.detach())
    try:
        sock.settimeout(0.2)
        sent = bytearray()
        chunk = bytes(range(256)) * 256
        with pytest.raises(socket.timeout):
            while True:  # nobody reads: the kernel's buffers fill, then the timeout
                count = sock.send(chunk)
                sent += chunk[:count]
        received = bytearray()
        theirs.settimeout(5)
        while len(received) < len(sent):
            received += theirs.recv(65536)
        assert received == sent
        assert sock.send(b"more") == 4 and theirs.recv(16) == b"more"
    finally:
        sock.close()
        theirs.close()


def test_packet_padding_is_paramikos_with_pooled_random_bytes(sshd_host: SshdHost) -> None:
    from paramiko.packet import Packetizer

    from execnet_cli.transports.ssh import lean

    connection = connect(settings_for(sshd_host.ssh_value()), 10)
    try:
        packetizer = connection.transport.packetizer
        assert packetizer._build_packet.__self__.__class__ is lean._Padding
        for size in (0, 1, 11, 12, 13, 100, 4096, 32768):
            payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
            ours = packetizer._build_packet(payload)
            theirs = Packetizer._build_packet(packetizer, payload)  # paramiko's own
            padding = ours[4]
            assert len(ours) == len(theirs) and ours[:5] == theirs[:5]
            assert ours[5 : 5 + size] == payload and len(ours) == 5 + size + padding
        channel = connection.transport.open_session(timeout=10)  # the server accepts them
        channel.exec_command("true")
        assert channel.recv_exit_status() == 0
    finally:
        connection.close()


def test_padding_bytes_are_never_reused() -> None:
    from execnet_cli.transports.ssh import lean

    class Packetizer:
        _build_packet = None

    padding = lean._Padding(Packetizer())
    taken = [padding.random(19) for _ in range(3 * lean.PADDING_POOL // 19)]
    assert all(len(piece) == 19 for piece in taken)
    assert len(set(taken)) == len(taken)  # 152 random bits each: a repeat is a reuse
