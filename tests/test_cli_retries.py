"""``--retries N`` (and the inventory's ``retries``): connecting again, with backoff, after
errors that may pass; each retry visible in the live table's rows and the host's result."""

from __future__ import annotations

import getpass
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sshd_fixtures import SshdHost

from execnet_cli.cli import main
from execnet_cli.cli.live import table_rows
from execnet_cli.errors import ConnectFailed, HostKeyError, InterpreterNotFound
from execnet_cli.fleet.events import Failed, Retrying, Started
from execnet_cli.fleet.results import RETRYING, GroupResult
from execnet_cli.fleet.retries import backoff, retryable


def xnet(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def records(result: Result) -> dict[str, dict]:
    return {r["name"]: r for r in map(json.loads, result.stdout.splitlines())}


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port bound but not listening: every connection is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _inventory(env: Path, port: int, extra: str = "") -> str:
    path = env / "inv.yaml"
    path.write_text(
        f"groups:\n  gone: {{hosts: g1, vars: {{address: 127.0.0.1, port: {port}{extra}}}}}\n"
        "  fine: {hosts: f1, vars: {transport: popen}}\n"
    )
    return str(path)


def test_backoff_doubles_up_to_a_bound() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff(20) == 30.0


def test_only_errors_that_may_pass_are_retried() -> None:
    assert retryable(ConnectFailed("refused")) and retryable(ConnectionResetError())
    assert not retryable(HostKeyError("changed")) and not retryable(InterpreterNotFound("x"))
    assert not retryable(ValueError("a bug"))


def test_each_attempt_is_in_the_hosts_result(env: Path, refused_port: int) -> None:
    result = xnet("sh", "-i", _inventory(env, refused_port), "--retries", "2", "--json", "true")
    assert result.exit_code == 3, result.output
    found = records(result)
    assert found["f1"]["attempts"] == 1 and found["f1"]["log"] == ""
    gone = found["g1"]
    assert gone["status"] == "unreachable" and gone["attempts"] == 3
    lines = gone["log"].splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        "connect attempt 1 of 3 failed, again in 0.5 s",
        "connect attempt 2 of 3 failed, again in 1.0 s",
    ]
    assert lines[0].endswith("Connection refused")


def test_the_inventory_variable_and_the_flag_over_it(env: Path, refused_port: int) -> None:
    inventory = _inventory(env, refused_port, ", retries: 1")
    assert records(xnet("sh", "-i", inventory, "--json", "true"))["g1"]["attempts"] == 2
    typed = xnet("sh", "-i", inventory, "--json", "--retries", "0", "true")
    assert records(typed)["g1"]["attempts"] == 1
    gathered = xnet("sh", "-i", inventory, "-H", "g1", "true")
    first = gathered.stdout.splitlines()[1]
    assert first.startswith("connect attempt 1 of 2 failed, again in 0.5 s: ")


def test_ansible_ssh_retries_is_the_variable(env: Path) -> None:
    path = env / "hosts.yaml"
    path.write_text("all:\n  hosts:\n    a: {ansible_ssh_retries: 4}\n")
    assert json.loads(xnet("hosts", "-i", str(path), "--json").stdout)["retries"] == 4


def test_a_missing_interpreter_is_not_retried(env: Path) -> None:
    path = env / "inv.yaml"
    path.write_text("groups: {w: {hosts: w1, vars: {transport: popen, python: /no/python}}}\n")
    result = xnet("run", "-i", str(path), "--retries", "3", "--json", "pass")
    assert records(result)["w1"]["attempts"] == 1


@pytest.fixture
def late_port(sshd_host: SshdHost) -> Iterator[int]:
    """A port that refuses connections for a while (a host rebooting), then forwards them
    to the sshd fixture host."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    opened = threading.Event()
    stop = threading.Event()

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    pairs: list[tuple[socket.socket, socket.socket]] = []
    pumps: list[threading.Thread] = []

    def serve() -> None:
        opened.wait()
        server.listen(8)
        while not stop.is_set():
            try:
                client = server.accept()[0]
            except OSError:
                return
            upstream = socket.create_connection((sshd_host.address, sshd_host.port))
            pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=pump, args=(a, b), daemon=True)
                thread.start()
                pumps.append(thread)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    timer = threading.Timer(1.0, opened.set)
    timer.start()
    try:
        yield server.getsockname()[1]
    finally:
        timer.cancel()
        opened.set()
        stop.set()
        server.shutdown(socket.SHUT_RDWR)
        server.close()
        thread.join(5)
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes its pump; close alone may not
                except OSError:
                    pass
                sock.close()
        for pump_thread in pumps:
            pump_thread.join(5)


def test_a_host_that_comes_back_is_reached(env: Path, sshd_host: SshdHost, late_port: int) -> None:
    path = env / "inv.yaml"
    path.write_text(
        f"groups: {{s: {{hosts: s1, vars: {{address: 127.0.0.1, port: {late_port}, "
        f"user: {getpass.getuser()}, identity_file: {sshd_host.key}, "
        "ssh_options: {StrictHostKeyChecking: accept-new}, "
        f"known_hosts_file: {env / 'known_hosts'}}}}}}}\n"
    )
    result = xnet("sh", "-i", str(path), "--retries", "5", "--json", "echo back")
    record = records(result)["s1"]
    assert record["status"] == "ok", record
    assert record["stdout"] == "back\n"
    assert record["attempts"] >= 2
    assert record["log"].startswith("connect attempt 1 of 6 failed, again in 0.5 s: ")


def test_a_retrying_host_is_a_row_of_its_own_first_among_those_at_work() -> None:
    result = GroupResult()
    for name in ("a1", "a2"):
        result.add(Started(name))
    result.add(Retrying("a2", 1, 3, "ConnectFailed: refused", 0.5))
    rows = {r.name: r for r in result.rows()}
    assert rows["a2"].state == RETRYING
    assert rows["a2"].last_line == (
        "connect attempt 1 of 3 failed, again in 0.5 s: ConnectFailed: refused"
    )
    shown = table_rows(result.rows(), ["a1", "a2"], 10)
    assert [(str(r[0]), r[1]) for r in shown] == [("a2", "retrying"), ("a1", "connecting")]
    done = result.add(Failed("a2", "unreachable", "ConnectFailed: refused", 1.0))
    assert done is not None and done.attempts == 2
    assert done.log == "connect attempt 1 of 3 failed, again in 0.5 s: ConnectFailed: refused\n"
