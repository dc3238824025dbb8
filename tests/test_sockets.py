"""Socket gateways against real servers: ``xnet serve`` subprocesses and in-thread servers."""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from click.testing import CliRunner
from proc_helpers import IdleFlood, free_port, pid_alive, run_in_threads, wait_until

import execnet_cli
from execnet_cli import bootstrap
from execnet_cli._remote import handshake as hs
from execnet_cli._remote import sockets as server_module
from execnet_cli._remote.refusals import RefusalLog
from execnet_cli.cli import main as cli_main
from execnet_cli.cli.serve import is_loopback
from execnet_cli.transports.sockets import SecretError, load_secret

PYTHON38 = "/root/.pyenv/versions/3.8.18/bin/python3.8"


def write_secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


@pytest.fixture(autouse=True)
def private_config(monkeypatch, tmp_path):
    """No test reads or writes the real ~/.config/xnet or sees a real XNET_SECRET."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("XNET_SECRET", raising=False)


@pytest.fixture
def secret_file(tmp_path) -> Path:
    return write_secret(tmp_path / "secret", "s3cret-" + "ab" * 20)


@pytest.fixture
def wrong_secret_file(tmp_path) -> Path:
    return write_secret(tmp_path / "wrong", "wrong-" + "cd" * 20)


class ServerProcess:
    def __init__(self, process: subprocess.Popen, port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    def spec(self, secret: Path) -> str:
        return f"socket=127.0.0.1:{self.port}//secret_file={secret}"

    def log_text(self) -> str:
        return self.log.read_text()


def start_server(tmp_path: Path, *args: str) -> ServerProcess:
    log = tmp_path / f"serve-{time.monotonic_ns()}.log"
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "execnet_cli", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=err,
        )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    assert "listening on" in line, f"{line!r} {log.read_text()}"
    return ServerProcess(process, int(line.rsplit(":", 1)[1]), log)


def stop_server(server: ServerProcess) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        code = server.process.wait()
    assert server.process.stdout is not None
    server.process.stdout.close()
    return code


@pytest.fixture
def server(tmp_path, secret_file) -> Iterator[ServerProcess]:
    """``xnet serve`` as a subprocess, with a short handshake timeout for the tests."""
    running = start_server(
        tmp_path,
        "--listen",
        "127.0.0.1:0",
        "--secret-file",
        str(secret_file),
        "--handshake-timeout",
        "0.5",
    )
    yield running
    stop_server(running)


class ThreadServer:
    def __init__(self, secret: bytes, **options) -> None:
        self.lines: List[str] = []
        listener = server_module.bind_listener("127.0.0.1", 0)
        self.server = server_module.SocketServer(
            listener, secret, bootstrap.STAGE1, log=self.lines.append, **options
        )
        self.port = self.server.address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-server")
        self.thread.start()

    def stop(self) -> None:
        self.server.request_stop()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def thread_server(secret_file) -> Iterator[ThreadServer]:
    running = ThreadServer(secret_file.read_text().strip().encode(), handshake_timeout=0.5)
    yield running
    running.stop()


def handshake(sock: socket.socket, secret: bytes) -> None:
    """The client side of the handshake, done by hand (raises if refused)."""
    hello = recv_exact(sock, hs.SERVER_HELLO_SIZE)
    server_nonce = hs.parse_server_hello(hello)
    client_nonce = hs.new_nonce()
    sock.sendall(hs.client_proof(secret, server_nonce, client_nonce))
    hs.check_verdict(secret, server_nonce, client_nonce, recv_exact(sock, hs.VERDICT_SIZE))


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError(data)
        data += chunk
    return data


def recv_until_eof(sock: socket.socket) -> Tuple[bytes, float]:
    started = time.monotonic()
    data = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:  # closed with our bytes unread: TCP resets
            chunk = b""
        if not chunk:
            return data, time.monotonic() - started
        data += chunk


def stage1_payload(source: str) -> bytes:
    """What stage 1 of a worker would read and execute."""
    code = source.encode() + b"\n#" + b"x" * 200  # longer than any handshake message
    return b"%08d" % len(code) + code


# -- working gateways -----------------------------------------------------------------------


def test_exec_and_channels(server, secret_file):
    gw = execnet_cli.makegateway(server.spec(secret_file))
    try:
        channel = gw.remote_exec(
            "import os\nchannel.send((os.getpid(), os.getppid()))\n"
            "for item in channel: channel.send(item)"
        )
        pid, parent = channel.receive(10)
        assert parent == server.process.pid  # the server started it...
        assert pid != server.process.pid  # ...and it is not the server
        blob = os.urandom(3 << 20)
        channel.send(blob)
        assert channel.receive(30) == blob
        side = gw.newchannel()
        other = gw.remote_exec("c = channel.receive(); c.send(channel.receive() + 1)")
        other.send(side)
        other.send(41)
        assert side.receive(10) == 42
        channel.close()
        assert gw._rinfo().executable
    finally:
        gw.exit()
    assert wait_until(lambda: not pid_alive(pid))
    assert f"accepted: worker pid {pid}" in server.log_text()


def test_several_concurrent_clients(server, secret_file):
    results: List[object] = []

    def client() -> None:
        try:
            gw = execnet_cli.makegateway(server.spec(secret_file))
        except Exception as exc:
            results.append(exc)
            return
        try:
            results.append(gw.remote_exec("import os; channel.send(os.getpid())").receive(10))
        finally:
            gw.exit()

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 6


def test_server_stop_ends_workers(tmp_path, secret_file):
    running = start_server(tmp_path, "--listen", "127.0.0.1:0", "--secret-file", str(secret_file))
    gateways = [execnet_cli.makegateway(running.spec(secret_file)) for _ in range(2)]
    try:
        pids = [gw._rinfo().pid for gw in gateways]
        busy = gateways[0].remote_exec(
            "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "channel.send(1)\nwhile True: time.sleep(0.01)"
        )
        assert busy.receive(10) == 1
        assert stop_server(running) == 0  # SIGTERM: a clean stop
        assert not any(pid_alive(pid) for pid in pids)  # reaped, even the one ignoring SIGTERM
        with pytest.raises(EOFError):
            busy.waitclose(10)
        assert "stopped (2 clients served, 0 refused)" in running.log_text()
    finally:
        for gw in gateways:
            gw.exit(timeout=2)


def test_sigint_stops_the_server(tmp_path, secret_file):
    running = start_server(tmp_path, "--listen", "127.0.0.1:0", "--secret-file", str(secret_file))
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(10) == 0
    stop_server(running)
    assert "stopped" in running.log_text()


def test_thread_server_stop_ends_workers(thread_server, secret_file):
    spec = f"socket=127.0.0.1:{thread_server.port}//secret_file={secret_file}"
    gw = execnet_cli.makegateway(spec)
    try:
        pid = gw._rinfo().pid
        thread_server.stop()
        assert not pid_alive(pid)
        with pytest.raises(EOFError):
            gw.remote_exec("channel.receive()").waitclose(10)
    finally:
        gw.exit(timeout=2)


def test_exit_is_prompt_even_with_a_stuck_worker(thread_server, secret_file):
    spec = f"socket=127.0.0.1:{thread_server.port}//secret_file={secret_file}"
    gw = execnet_cli.makegateway(spec)
    started = time.monotonic()
    gw.exit()
    assert time.monotonic() - started < 1.0  # EOF ends the wait, no polling delay
    stuck = execnet_cli.makegateway(spec)
    pid = stuck._rinfo().pid
    stuck.remote_exec("import time\nwhile True: time.sleep(0.01)")
    started = time.monotonic()
    stuck.exit(timeout=0.5)  # shuts the connection down; the worker gives up on its task
    assert time.monotonic() - started < 2.0
    assert wait_until(lambda: not pid_alive(pid), 5)


# -- refusals -------------------------------------------------------------------------------


def test_wrong_secret_is_refused(server, wrong_secret_file):
    with pytest.raises(execnet_cli.AuthenticationFailed, match="refused our secret") as info:
        execnet_cli.makegateway(server.spec(wrong_secret_file))
    assert f"127.0.0.1:{server.port}" in str(info.value)
    assert str(wrong_secret_file) in str(info.value)
    assert wait_until(lambda: "refused: wrong secret" in server.log_text())


def test_code_without_handshake_never_runs(server, tmp_path, secret_file):
    marker = tmp_path / "pwned"
    payload = stage1_payload(f"open({str(marker)!r}, 'w').close()")
    payload += bootstrap.bootstrap_bytes({"id": "x"}, False)

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(payload)  # straight in, as to execnet's socket server
        recv_until_eof(sock)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        with pytest.raises(hs.Refused):
            handshake(sock, b"a guessed secret, not the right one")
        sock.sendall(payload)
        recv_until_eof(sock)
    # The server logs a refusal once it has dealt with the connection: nothing ran by then.
    assert wait_until(lambda: server.log_text().count("refused") == 2)
    assert not marker.exists()

    # The control: the same bytes after a correct handshake do run, so the test can see it.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        handshake(sock, secret_file.read_text().strip().encode())
        sock.sendall(stage1_payload(f"open({str(marker)!r}, 'w').close()"))
        recv_until_eof(sock)
    assert wait_until(marker.exists)


def test_garbage_and_silent_clients_do_not_harm_others(server, secret_file):
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    stalled = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    stalled.sendall(hs.TAG)  # a plausible start, then nothing
    garbage = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        gw = execnet_cli.makegateway(server.spec(secret_file))  # served meanwhile
        assert gw.remote_exec("channel.send(6 * 7)").receive(10) == 42
        gw.exit()
        data, _ = recv_until_eof(garbage)
        assert data == hs.server_hello(data[len(hs.TAG) + 1 : hs.SERVER_HELLO_SIZE]) + (
            hs.refuse_verdict()
        )
        for sock in (silent, stalled):
            data, waited = recv_until_eof(sock)  # dropped after the handshake timeout
            assert len(data) == hs.SERVER_HELLO_SIZE
            assert waited < 5
    finally:
        for sock in (silent, stalled, garbage):
            sock.close()
    assert wait_until(lambda: server.log_text().count("no handshake within 0.5s") == 2)
    assert "not speaking" in server.log_text()


def handshake_from(source: str, port: int, secret: bytes) -> None:
    """A whole authentication from ``source`` (127.0.0.K stands for another host)."""
    with socket.create_connection(("127.0.0.1", port), 10, (source, 0)) as sock:
        handshake(sock, secret)


def greeted(sock: socket.socket, within: float) -> bool:
    """Whether the server sent ``sock`` its HELLO (or closed it) within ``within`` s."""
    return bool(select.select([sock], [], [], within)[0])


def test_idle_attackers_delay_nobody(tmp_path, secret_file):
    """Issue 16: 80 idle connections, reopened as soon as they are dropped, from the
    legitimate clients' own address and from another: every legitimate client is served."""
    running = start_server(tmp_path, "--listen", "127.0.0.1:0", "--secret-file", str(secret_file))
    secret = secret_file.read_text().strip().encode()
    attackers = ["127.0.0.1"] * 32 + ["127.0.0.2"] * 48
    failures: List[str] = []
    try:
        with IdleFlood(running.port, attackers) as flood:
            assert wait_until(lambda: flood.greeted >= 32)  # they hold the slots they can
            for _ in range(2):
                for source in ("127.0.0.3", "127.0.0.1"):
                    try:
                        handshake_from(source, running.port, secret)
                    except (OSError, EOFError) as exc:
                        failures.append(f"{source}: {exc!r}")
                try:
                    gw = execnet_cli.makegateway(running.spec(secret_file))
                except execnet_cli.ConnectFailed as exc:
                    failures.append(f"gateway: {exc}")
                    continue
                assert gw.remote_exec("channel.send(6 * 7)").receive(10) == 42
                gw.exit()
    finally:
        stop_server(running)
    assert failures == []
    assert "dropped: idle for 1s while others waited" in running.log_text()


def test_an_idle_handshake_gives_its_slot_to_a_waiting_client(secret_file):
    secret = secret_file.read_text().strip().encode()
    running = ThreadServer(secret, max_pending=1, grace=0.2)
    try:
        with socket.create_connection(("127.0.0.1", running.port), 10, ("127.0.0.2", 0)) as hog:
            recv_exact(hog, hs.SERVER_HELLO_SIZE)  # its handshake holds the only slot
            handshake_from("127.0.0.2", running.port, secret)  # waits, then takes it
            assert recv_until_eof(hog)[0] == b""
    finally:
        running.stop()
    assert any("dropped: idle for 0.2s while others waited" in line for line in running.lines)


def test_one_address_cannot_take_every_slot(secret_file):
    secret = secret_file.read_text().strip().encode()
    running = ThreadServer(secret, max_pending=4, max_per_source=2, grace=60)
    hogs = [
        socket.create_connection(("127.0.0.1", running.port), 10, ("127.0.0.2", 0))
        for _ in range(3)
    ]
    try:
        assert wait_until(lambda: len(select.select(hogs, [], [], 0.1)[0]) == 2)
        waiting = [hog for hog in hogs if not greeted(hog, 0)]
        assert len(waiting) == 1 and not greeted(waiting[0], 0.3)  # past the share: it waits
        handshake_from("127.0.0.3", running.port, secret)  # a free slot for another address
    finally:
        for hog in hogs:
            hog.close()
        running.stop()


def test_a_burst_from_one_address_waits_and_is_served(secret_file):
    """More clients at once than the slots and the address's share: none is refused."""
    secret = secret_file.read_text().strip().encode()
    running = ThreadServer(secret, max_pending=4, max_per_source=2)
    try:
        errors = run_in_threads(lambda: handshake_from("127.0.0.1", running.port, secret), 10)
    finally:
        running.stop()
    assert errors == []
    assert running.server.accepted == 10


def test_a_full_waiting_room_refuses_the_crowded_address_newest(secret_file):
    secret = secret_file.read_text().strip().encode()
    running = ThreadServer(secret, max_pending=1, max_waiting=2, grace=60)
    socks: List[socket.socket] = []

    def connect(source: str, waiting: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", running.port), 10, (source, 0))
        socks.append(sock)
        assert wait_until(lambda: len(running.server._waiting) == waiting)
        return sock

    try:
        hog = socket.create_connection(("127.0.0.1", running.port), 10, ("127.0.0.3", 0))
        socks.append(hog)
        recv_exact(hog, hs.SERVER_HELLO_SIZE)
        first, second = connect("127.0.0.2", 1), connect("127.0.0.2", 2)
        connect("127.0.0.1", 2)  # the room is full: 127.0.0.2 gives up its newest
        assert recv_until_eof(second)[0] == b""
        assert not greeted(first, 0.2)  # the one that waited longest keeps its place
    finally:
        for sock in socks:
            sock.close()
        running.stop()
    assert any("too many connections waiting" in line for line in running.lines)


def test_clients_from_one_address_are_greeted_in_the_order_they_came(secret_file):
    """An attacker reopening dropped connections at once makes them the newest waiters
    of its address: serving the newest first starved an honest client there (CI run)."""
    secret = secret_file.read_text().strip().encode()
    running = ThreadServer(secret, max_pending=1, grace=0.3)
    socks: List[socket.socket] = []

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", running.port), 10, ("127.0.0.2", 0))
        socks.append(sock)
        return sock

    try:
        hog = connect()
        recv_exact(hog, hs.SERVER_HELLO_SIZE)  # holds the only slot, idle
        honest = connect()
        assert wait_until(lambda: len(running.server._waiting) == 1)
        later = [connect(), connect()]  # reopened attackers, newer than the honest client
        assert wait_until(lambda: len(running.server._waiting) == 3)
        assert greeted(honest, 10)
        assert not any(greeted(sock, 0) for sock in later)
    finally:
        for sock in socks:
            sock.close()
        running.stop()


@pytest.mark.parametrize(
    "address, source",
    [
        (("10.1.2.3", 5), "10.1.2.3"),
        (("2001:db8:1:2:aa::1", 5, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:bb::9", 5, 0, 0), "2001:db8:1:2::/64"),
        (("::ffff:10.1.2.3", 5, 0, 0), "10.1.2.3"),
        (("fe80::1%eth0", 5, 0, 2), "fe80::/64"),
        ("/run/x.sock", "/run/x.sock"),
    ],
)
def test_source_address_of_a_peer(address, source):
    assert server_module.source_of(address) == source


def test_refusal_log_sums_up_a_flood():
    lines: List[str] = []
    log = RefusalLog(lines.append, burst=2, interval=10)
    for n, (source, why) in enumerate(
        [("127.0.0.2", "refused: x")] * 4
        + [("127.0.0.2", "refused: y"), ("127.0.0.3", "refused: x")]
    ):
        log.add(f"{source}:{1000 + n}", source, why, now=100.0 + n / 10)
    assert lines == ["127.0.0.2:1000 refused: x", "127.0.0.2:1001 refused: x"]
    assert log.due() == 110.0
    log.tick(109.9)
    assert len(lines) == 2
    log.tick(110.0)
    assert lines[2] == (
        "4 more connections refused or dropped in 10s, not logged one by one: "
        "127.0.0.2: 3 (2 refused: x, 1 refused: y); 127.0.0.3: 1 (1 refused: x)"
    )
    assert log.due() is None
    log.add("127.0.0.2:2000", "127.0.0.2", "refused: z", now=111.0)  # a new interval
    assert lines[3] == "127.0.0.2:2000 refused: z"


def test_refusal_log_names_the_busiest_addresses():
    lines: List[str] = []
    log = RefusalLog(lines.append, burst=0, interval=10)
    for k in range(2, 10):
        for _ in range(k):
            log.add(f"127.0.0.{k}:1", f"127.0.0.{k}", "refused: x", now=0.0)
    log.flush(3.0)
    assert lines[0].startswith("44 more connections refused or dropped in 3s")
    assert "; ".join(f"127.0.0.{k}: {k} ({k} refused: x)" for k in (9, 8, 7, 6, 5)) in lines[0]
    assert lines[0].endswith("; 3 other addresses: 9")


def test_serve_logs_a_garbage_flood_in_few_lines(secret_file):
    running = ThreadServer(secret_file.read_text().strip().encode(), log_burst=3)
    try:
        for source in ["127.0.0.2"] * 6 + ["127.0.0.3"] * 2:
            with socket.create_connection(("127.0.0.1", running.port), 10, (source, 0)) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
                recv_until_eof(sock)
    finally:
        running.stop()  # the summary of the interval so far is written on the way out
    speaking = "refused: not speaking xnet-socket-auth/1"
    assert [line.split(" ", 1)[1] for line in running.lines[:3]] == [speaking] * 3
    assert len(running.lines) == 4
    assert running.lines[3].startswith("5 more connections refused or dropped in")
    assert running.lines[3].endswith(f"127.0.0.2: 3 (3 {speaking}); 127.0.0.3: 2 (2 {speaking})")


def tcp_settings_source() -> str:
    """Remote code: the TCP options of the worker's connection (a dup of its stdin)."""
    return """
import os, socket
options = channel.receive()
found = []
for name in os.listdir("/proc/self/fd"):
    try:
        sock = socket.socket(fileno=os.dup(int(name)))
    except OSError:
        continue
    try:
        if sock.type == socket.SOCK_STREAM and sock.family == socket.AF_INET:
            found.append([sock.getsockopt(level, option) for level, option in options])
    finally:
        sock.close()
channel.send(found)
"""


TCP_OPTIONS = [
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    (socket.IPPROTO_TCP, socket.TCP_NODELAY),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
]


@pytest.mark.skipif(sys.platform != "linux", reason="TCP_KEEPIDLE and TCP_USER_TIMEOUT: Linux")
def test_both_ends_find_a_dead_peer_within_a_minute(thread_server, secret_file):
    """Keepalive (and the user timeout for unacknowledged data) on both real sockets: a
    peer whose host vanished without a FIN is found in under a minute, not two hours."""
    gw = execnet_cli.makegateway(
        f"socket=127.0.0.1:{thread_server.port}//secret_file={secret_file}"
    )
    try:
        ours = [gw.transport.sock.getsockopt(level, option) for level, option in TCP_OPTIONS]
        channel = gw.remote_exec(tcp_settings_source())
        channel.send(TCP_OPTIONS)
        theirs = channel.receive(10)
    finally:
        gw.exit()
    idle, interval, count = hs.KEEPALIVE_IDLE, hs.KEEPALIVE_INTERVAL, hs.KEEPALIVE_COUNT
    expected = [1, 1, idle, interval, count, int(hs.USER_TIMEOUT * 1000)]
    assert [min(value, 1) for value in ours[:2]] + ours[2:] == expected
    assert theirs  # the worker's connection: its protocol fds (dups of one socket)
    assert all([min(value, 1) for value in got[:2]] + got[2:] == expected for got in theirs)
    assert idle + interval * count <= 60 and hs.USER_TIMEOUT <= 60


@pytest.mark.skipif(sys.platform != "linux", reason="TCP_USER_TIMEOUT: Linux")
def test_a_worker_whose_client_stops_answering_ends(monkeypatch, tmp_path, secret_file):
    """The user timeout on the worker's real socket: a client that takes nothing more
    (here it stops reading; a vanished host acknowledges nothing at all) ends the worker's
    connection with ETIMEDOUT. The timeout is cut to 1 s for the test."""
    monkeypatch.setattr(hs, "USER_TIMEOUT", 1.0)
    secret = secret_file.read_text().strip().encode()
    running = ThreadServer(secret)
    marker = tmp_path / "errno"
    source = (
        "import os\ntry:\n    while True:\n        os.write(1, b'x' * 65536)\n"
        f"except OSError as exc:\n    open({str(marker)!r}, 'w').write(str(exc.errno))\n"
    )
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            handshake(sock, secret)
            sock.sendall(stage1_payload(source))
            assert wait_until(marker.exists, 30)  # we never read: the window stays shut
    finally:
        running.stop()
    assert wait_until(lambda: marker.read_text() == str(errno.ETIMEDOUT))


def test_impostor_server_gets_nothing(secret_file):
    """A server without the secret: the client notices and sends no bootstrap."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: List[bytes] = []

    def impostor() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(hs.server_hello(hs.new_nonce()))
            received.append(recv_exact(conn, hs.CLIENT_PROOF_SIZE))
            conn.sendall(hs.TAG + b"A" + hs.bytecode_magic() + os.urandom(hs.MAC_SIZE))
            conn.settimeout(10)
            received.append(recv_until_eof(conn)[0])

    thread = threading.Thread(target=impostor)
    thread.start()
    try:
        spec = f"socket=127.0.0.1:{listener.getsockname()[1]}//secret_file={secret_file}"
        with pytest.raises(execnet_cli.AuthenticationFailed, match="could not prove"):
            execnet_cli.makegateway(spec)
    finally:
        thread.join(10)
        listener.close()
    assert received[1] == b""  # not one byte after the proof


@pytest.mark.parametrize("greeting", [b"", b"HTTP/1.0 400 Bad Request\r\n" * 3])
def test_not_an_xnet_server(secret_file, greeting):
    listener = socket.create_server(("127.0.0.1", 0))

    def other_server() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(greeting)
            conn.settimeout(10)
            recv_until_eof(conn)

    thread = threading.Thread(target=other_server)
    thread.start()
    port = listener.getsockname()[1]
    try:
        spec = f"socket=127.0.0.1:{port}//secret_file={secret_file}//connect_timeout=0.5"
        with pytest.raises(execnet_cli.ConnectFailed, match=f"127.0.0.1:{port}") as info:
            execnet_cli.makegateway(spec)
        assert ("not an xnet socket server" if greeting else "in time") in str(info.value)
    finally:
        thread.join(10)
        listener.close()


def test_connection_refused(secret_file):
    port = free_port()
    with pytest.raises(execnet_cli.ConnectFailed, match=f"127.0.0.1:{port} refused"):
        execnet_cli.makegateway(f"socket=127.0.0.1:{port}//secret_file={secret_file}")


def test_unknown_host_is_host_not_found(monkeypatch, secret_file):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)  # no DNS traffic from tests
    with pytest.raises(execnet_cli.HostNotFound, match="nosuchhost.invalid") as info:
        execnet_cli.makegateway(f"socket=nosuchhost.invalid:8888//secret_file={secret_file}")
    assert type(info.value) is execnet_cli.HostNotFound


@pytest.mark.parametrize(
    "spec, message",
    [
        ("socket=127.0.0.1", "not host:port"),
        ("socket=127.0.0.1:0", "needs a port"),
        ("socket=127.0.0.1:99999", "out of range"),
        ("socket=127.0.0.1:8888//python=python3", "python="),
        ("socket=127.0.0.1:0//installvia=gw0//secret_file=/x", "secret_file="),
    ],
)
def test_spec_errors(spec, message):
    with pytest.raises(execnet_cli.SpecError, match=message):
        execnet_cli.makegateway(spec)


# -- the secret -----------------------------------------------------------------------------


def test_secret_file_must_be_private(server, tmp_path):
    loose = write_secret(tmp_path / "loose", "s3cret-" + "ab" * 20, mode=0o644)
    with pytest.raises(SecretError, match=f"chmod 600 {loose}"):
        load_secret(str(loose))
    with pytest.raises(execnet_cli.AuthenticationFailed, match="chmod 600"):
        execnet_cli.makegateway(server.spec(loose))
    args = ["serve", "--listen", "127.0.0.1:0", "--secret-file", str(loose)]
    result = CliRunner().invoke(cli_main, args)
    assert result.exit_code == 2
    assert "mode 0644" in result.output and f"chmod 600 {loose}" in result.output


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file away")
def test_secret_file_must_be_ours(tmp_path):
    foreign = write_secret(tmp_path / "foreign", "s3cret-" + "ab" * 20)
    os.chown(foreign, 12345, -1)
    with pytest.raises(SecretError, match="belongs to uid 12345.*chown"):
        load_secret(str(foreign))


def test_missing_and_short_secrets(tmp_path, monkeypatch):
    with pytest.raises(SecretError, match="does not exist.*umask 077"):
        load_secret(str(tmp_path / "absent"))
    with pytest.raises(SecretError, match="no secret: set XNET_SECRET"):
        load_secret()
    with pytest.raises(execnet_cli.AuthenticationFailed, match="socket=127.0.0.1:8888.*no secret"):
        execnet_cli.makegateway("socket=127.0.0.1:8888")
    monkeypatch.setenv("XNET_SECRET", "short")
    with pytest.raises(SecretError, match="too short"):
        load_secret()
    monkeypatch.setenv("XNET_SECRET", "long enough secret text")
    assert load_secret() == (b"long enough secret text", "$XNET_SECRET", False)


def test_default_secret_is_created_once_and_private(tmp_path):
    secret, origin, created = load_secret(create=True)
    path = tmp_path / "config" / "xnet" / "secret"
    assert (origin, created) == (str(path), True)
    assert len(secret) == 64 and int(secret, 16) >= 0
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert load_secret(create=True) == (secret, str(path), False)
    assert load_secret() == (secret, str(path), False)  # clients find the same file


def test_serve_creates_and_announces_a_default_secret(tmp_path):
    running = start_server(tmp_path, "--listen", "127.0.0.1:0")
    try:
        path = tmp_path / "config" / "xnet" / "secret"
        assert f"created a new secret in {path}" in running.log_text()
        gw = execnet_cli.makegateway(f"socket=127.0.0.1:{running.port}")  # default file
        assert gw.remote_exec("channel.send(1)").receive(10) == 1
        gw.exit()
    finally:
        stop_server(running)


def test_xnet_secret_env_on_both_sides(tmp_path, monkeypatch):
    monkeypatch.setenv("XNET_SECRET", "an environment secret")
    running = start_server(tmp_path, "--listen", "127.0.0.1:0")
    try:
        assert "using the secret from $XNET_SECRET" in running.log_text()
        gw = execnet_cli.makegateway(f"socket=127.0.0.1:{running.port}")
        source = "import os; channel.send(os.environ.get('XNET_SECRET'))"
        assert gw.remote_exec(source).receive(10) is None  # workers do not inherit it
        assert server_module.PRIVATE_ENV == bootstrap.PRIVATE_ENV  # as local ones
        gw.exit()
    finally:
        stop_server(running)


# -- the command line -----------------------------------------------------------------------


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("127.0.0.5") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.1.2.3")


def test_non_loopback_listen_warns(tmp_path, secret_file):
    running = start_server(tmp_path, "--listen", "0.0.0.0:0", "--secret-file", str(secret_file))
    try:
        assert "warning: listening on 0.0.0.0:0" in running.log_text()
        assert "not encrypted" in running.log_text()
    finally:
        stop_server(running)


def test_loopback_listen_does_not_warn(server):
    assert "warning" not in server.log_text()


def test_serve_reports_a_busy_address(server, secret_file):
    result = CliRunner().invoke(
        cli_main,
        ["serve", "--listen", f"127.0.0.1:{server.port}", "--secret-file", str(secret_file)],
    )
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{server.port}" in result.output


def test_serve_refuses_a_non_loopback_address_from_elsewhere(secret_file):
    """Only an explicit --listen may open the server to the network (not a config default)."""
    args = ["serve", "--secret-file", str(secret_file)]
    result = CliRunner().invoke(cli_main, args, default_map={"serve": {"listen": "0.0.0.0:0"}})
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0:0" in result.output


# -- installvia -----------------------------------------------------------------------------


@pytest.fixture
def group() -> Iterator[execnet_cli.Group]:
    group = execnet_cli.Group(["popen"])
    yield group
    group.terminate(5)


def test_installvia_and_group_terminate_leaves_nothing(group):
    carrier_pid = group["gw0"]._rinfo().pid
    gw = group.makegateway("socket=127.0.0.1:0//installvia=gw0")
    assert gw.id == "gw1"
    channel = gw.remote_exec("import os; channel.send((os.getpid(), os.getppid()))")
    worker_pid, parent = channel.receive(10)
    assert parent == carrier_pid
    assert gw.transport.same_python
    group.terminate(5)
    assert wait_until(lambda: not pid_alive(worker_pid) and not pid_alive(carrier_pid), 5)


def test_installvia_exit_stops_the_server_and_keeps_the_carrier(group):
    gw = group.makegateway("socket//installvia=gw0")  # execnet's form: loopback, any port
    worker_pid = gw._rinfo().pid
    carrier = group["gw0"]
    assert carrier.remote_status().numexecuting == 1  # the server
    gw.exit()
    assert wait_until(lambda: carrier.remote_status().numexecuting == 0, 5)
    assert not pid_alive(worker_pid)
    assert carrier.remote_exec("channel.send(3)").receive(10) == 3


def test_installvia_server_takes_one_client_only(group):
    gw = group.makegateway("socket=127.0.0.1:0//installvia=gw0")
    port = int(gw.transport.address.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    gw.exit()


@pytest.mark.skipif(not os.path.exists(PYTHON38), reason="needs Python 3.8")
def test_installvia_in_python38(group):
    old = group.makegateway(f"popen//python={PYTHON38}")
    gw = group.makegateway(f"socket=127.0.0.1:0//installvia={old.id}")
    assert not gw.transport.same_python  # the bootstrap went as source
    assert tuple(gw._rinfo().version_info[:2]) == (3, 8)
    channel = gw.remote_exec("channel.send(channel.receive() * 2)")
    channel.send(21)
    assert channel.receive(10) == 42


def test_installvia_errors(group):
    with pytest.raises(execnet_cli.SpecError, match="installvia='nope'.*gw0"):
        group.makegateway("socket=127.0.0.1:0//installvia=nope")
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(execnet_cli.ConnectFailed, match=f"cannot listen on 127.0.0.1:{port}"):
            group.makegateway(f"socket=127.0.0.1:{port}//installvia=gw0")
    assert group["gw0"].remote_exec("channel.send(4)").receive(10) == 4


def test_a_secret_file_through_a_link_is_checked_where_it_leads(tmp_path):
    """docs/socket.md: a link is followed as ssh follows one to a key; the file it leads
    to must be ours and 0600, and the error names the path given and where it leads."""
    target = write_secret(tmp_path / "real", "s3cret-" + "ab" * 20)
    link = tmp_path / "link"
    link.symlink_to(target)
    assert load_secret(str(link)) == (b"s3cret-" + b"ab" * 20, str(link), False)
    target.chmod(0o640)
    with pytest.raises(SecretError, match=f"{link} \\(a link to {target}\\).*mode 0640"):
        load_secret(str(link))
    if os.geteuid() == 0:
        target.chmod(0o600)
        os.chown(target, 12345, -1)
        with pytest.raises(SecretError, match=f"{link} \\(a link to {target}\\).*uid 12345"):
            load_secret(str(link))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a link away")
def test_a_link_another_user_owns_is_refused(tmp_path):
    """Whoever owns a link (one left in /tmp, say) can point it anywhere, at any moment."""
    target = write_secret(tmp_path / "real", "s3cret-" + "ab" * 20)
    link = tmp_path / "link"
    link.symlink_to(target)
    os.lchown(link, 12345, -1)
    with pytest.raises(SecretError, match=f"{link} is a link owned by uid 12345"):
        load_secret(str(link))


def test_a_link_swapped_while_it_is_checked_never_yields_another_files_text(tmp_path):
    """The file checked is the file read: it is opened once. A link flipped between our
    private file and a readable one gives the private secret or a refusal, never the
    readable file's text (the old check looked up the path, then read it again)."""
    private = write_secret(tmp_path / "private", "private-" + "ab" * 20)
    readable = write_secret(tmp_path / "readable", "readable-" + "cd" * 20, mode=0o644)
    link, spare = tmp_path / "link", tmp_path / "spare"
    link.symlink_to(private)
    stop = threading.Event()

    def flip() -> None:
        targets = [readable, private]
        while not stop.is_set():
            for target in targets:
                spare.symlink_to(target)
                os.replace(spare, link)

    flipper = threading.Thread(target=flip)
    flipper.start()
    seen = set()
    try:
        for _ in range(3000):
            try:
                seen.add(load_secret(str(link))[0][:8])
            except SecretError as exc:
                seen.add(str(exc).split(" is ")[-1][:10])
    finally:
        stop.set()
        flipper.join(10)
    assert b"readable" not in seen, seen
