"""TCP connections begun before their host's turn (``transports.ssh.early``, picked by
``fleet.preconnect``): a begun connection is the one the host uses (never a second one),
failures read as they did without it, nothing begun outlives the run, and hosts whose
destination is not plain TCP to their address are never begun."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from execnet_cli.cli import main
from execnet_cli.errors import ConnectFailed
from execnet_cli.fleet import preconnect
from execnet_cli.inventory import Host
from execnet_cli.transports.ssh import early
from execnet_cli.transports.ssh.connect import open_socket
from execnet_cli.transports.ssh.settings import command_line, settings_for_line


class Listener:
    """A TCP server on loopback that answers each connection with an SSH-1 banner (a
    handshake that fails at once, not retried), and counts the connections it accepted
    and those the client then closed."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.05)
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self.closed_by_client = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve, daemon=True)]
        self._threads[0].start()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(25)
        self.server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except socket.timeout:
                continue
            with self._lock:
                self.accepted += 1
            talk = threading.Thread(target=self._talk, args=(conn,), daemon=True)
            self._threads.append(talk)
            talk.start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(20)
            try:
                conn.sendall(b"SSH-1.0-old\r\n")
                while conn.recv(4096):
                    pass
            except socket.timeout:
                return  # still open
            except OSError:
                pass  # reset: closed with our line unread
            with self._lock:
                self.closed_by_client += 1

    def wait_closed(self, count: int) -> bool:
        for _ in range(200):
            with self._lock:
                if self.closed_by_client >= count:
                    return True
            threading.Event().wait(0.05)
        return False


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    early.close_all()
    server.close()


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def _settings(port: int):  # type: ignore[no-untyped-def]
    return settings_for_line(command_line("127.0.0.1", port=port, connect_timeout=5), "none")


def test_a_begun_connection_is_the_one_used_and_the_rest_are_closed(listener: Listener) -> None:
    assert early.begin([("127.0.0.1", listener.port, 5.0)] * 3, per_server=8) == 3
    sock = open_socket(_settings(listener.port), 5.0)
    try:
        assert sock.recv(100) == b"SSH-1.0-old\r\n"
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()
    early.close_all()  # the two not taken
    assert listener.wait_closed(3)
    assert listener.accepted == 3  # open_socket made none of its own


def test_begun_connections_per_server_are_bounded(listener: Listener) -> None:
    destinations = [("127.0.0.1", listener.port, 5.0)] * 12
    assert early.begin(destinations, per_server=8) == 8
    assert early.begin(destinations, per_server=8) == 0
    early.close_all()
    assert listener.wait_closed(8)
    assert listener.accepted == 8


def test_a_refused_begun_connection_reads_as_one_made_then() -> None:
    port = _free_port()
    with pytest.raises(ConnectFailed) as plain:
        open_socket(_settings(port), 5.0)
    early.begin([("127.0.0.1", port, 5.0)], per_server=8)
    with pytest.raises(ConnectFailed) as begun:
        open_socket(_settings(port), 5.0)
    assert str(begun.value) == str(plain.value)
    assert "Connection refused" in str(begun.value)


def test_only_plain_tcp_hosts_are_begun_and_only_the_first_fanout() -> None:
    hosts = [
        Host("a", address="10.0.0.1"),
        Host("b", address="10.0.0.2", port=2222, connect_timeout=3),
        Host("c", via="a"),
        Host("d", proxy_jump="a"),
        Host("e", relay="a"),
        Host("f", ssh_options=(("proxycommand", "nc %h %p"),)),
        Host("g", ssh_options=(("hostname", "elsewhere"),)),
        Host("h", transport="popen"),
        Host("i", ssh_options=(("user", "ops"),)),
        Host("j"),
    ]
    assert preconnect.destinations(hosts, 9) == [
        ("10.0.0.1", 22, 10.0),
        ("10.0.0.2", 2222, 3.0),
        ("i", 22, 10.0),
    ]


@pytest.mark.parametrize("line", ["Host web\n  HostName 10.0.0.9\n", "Match all\n  Port 2\n"])
def test_a_config_that_may_send_hosts_elsewhere_begins_none(
    line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".ssh").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    assert preconnect.destinations([Host("web")], 8) == [("web", 22, 10.0)]
    (tmp_path / ".ssh" / "config").write_text(line)
    assert preconnect.destinations([Host("web")], 8) == []


@pytest.mark.parametrize("enabled", [True, False], ids=["begun", "not-begun"])
def test_xnet_sh_makes_one_connection_per_host_and_closes_it(
    enabled: bool, listener: Listener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the CLI: the same error either way, one connection per host, all closed."""
    monkeypatch.setattr(preconnect, "ENABLED", enabled)
    monkeypatch.setenv("HOME", str(tmp_path))
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(
        "hosts:\n"
        + "".join(f"  h{i}: {{address: 127.0.0.1, port: {listener.port}}}\n" for i in range(3))
    )
    done = CliRunner().invoke(main, ["sh", "--json", "-i", str(inventory), "true"])
    rows = [json.loads(line) for line in done.output.splitlines() if line.startswith("{")]
    assert [(r["name"], r["status"]) for r in sorted(rows, key=lambda r: r["name"])] == [
        (f"h{i}", "unreachable") for i in range(3)
    ], done.output
    assert {r["error"] for r in rows} == {rows[0]["error"]}
    assert rows[0]["error"].endswith("Incompatible version (1.0 instead of 2.0)"), rows[0]["error"]
    assert listener.wait_closed(3)
    assert listener.accepted == 3
