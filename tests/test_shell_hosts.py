"""Which hosts ``xnet shell HOST`` means: inventory patterns, else ad-hoc ssh hosts."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import pytest
from faults_helpers import ssh_inventory
from sshd_fixtures import client_home

from execnet_cli.cli.selection import adhoc_host
from execnet_cli.cli.shell_hosts import Opened, open_hosts, select
from execnet_cli.group import Group
from execnet_cli.inventory import Inventory


@pytest.mark.parametrize(
    "text, user, address, port",
    [
        ("db01", None, "db01", None),
        ("deploy@db01.example.com", "deploy", "db01.example.com", None),
        ("root@127.0.0.2:2222", "root", "127.0.0.2", 2222),
        ("[::1]:22", None, "::1", 22),
    ],
)
def test_adhoc_hosts(text: str, user, address: str, port) -> None:
    host = adhoc_host(text)
    assert host is not None
    assert (host.transport, host.user, host.address, host.port) == ("ssh", user, address, port)
    assert host.name == text  # named as written: the name selects the same target again


@pytest.mark.parametrize("text", ["web*", "a,b", "web&prod", "host:99999", "a b", "@host"])
def test_patterns_are_not_adhoc_hosts(text: str) -> None:
    assert adhoc_host(text) is None


def test_the_default_inventory_has_localhost(env: Path) -> None:
    _, hosts = select((), "localhost")
    assert [(h.name, h.transport) for h in hosts] == [("localhost", "popen")]


def test_an_unknown_name_is_an_adhoc_ssh_host(env: Path) -> None:
    _, hosts = select((), "ops@build01:2200")
    assert [(h.name, h.spec()) for h in hosts] == [
        ("ops@build01:2200", "ssh=-p 2200 -l ops build01//id=ops@build01:2200")
    ]


def test_a_pattern_that_selects_nothing_gives_runs_status(env: Path) -> None:
    with pytest.raises(click.exceptions.Exit) as exc:
        select((), "web*")
    assert exc.value.exit_code == 5


def test_a_bare_unknown_word_is_a_typo_not_a_host(env: Path, capsys) -> None:  # noqa: ANN001
    """As for ``xnet run -H``: only address-like names are tried over the network."""
    with pytest.raises(click.exceptions.Exit) as exc:
        select((), "localhots")
    assert exc.value.exit_code == 2
    assert "close names: localhost" in capsys.readouterr().err


def test_stdin_is_for_statements_not_host_names(env: Path, capsys) -> None:  # noqa: ANN001
    with pytest.raises(click.exceptions.Exit) as exc:
        select((), "-")
    assert exc.value.exit_code == 2


@contextmanager
def hanging_up() -> Iterator[tuple[int, list[int]]]:
    """A loopback port that takes each connection and closes it: its port, and how many."""
    taken = [0]
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.2)
        done = threading.Event()

        def serve() -> None:
            while not done.is_set():
                try:
                    connection, _ = server.accept()
                except OSError:
                    continue
                taken[0] += 1
                connection.close()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            yield server.getsockname()[1], taken
        finally:
            done.set()
            thread.join()


def open_all(inventory: Inventory) -> Opened:
    """Every host of ``inventory`` opened as ``xnet shell`` does, the new keys accepted."""
    group = Group()
    try:
        return open_hosts(group, inventory, inventory.hosts(), 4, lambda keys: True)
    finally:
        group.terminate()


def test_after_new_keys_only_the_hosts_that_met_them_open_again(
    tmp_path: Path,
    sshd_hosts,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host unreachable for another reason is tried once, as ``xnet run`` tries it."""
    [host] = sshd_hosts(1)
    client_home([], tmp_path / "home", monkeypatch)  # the sshd host's key is new
    with hanging_up() as (port, taken):
        dead = f"  dead: {{address: 127.0.0.1, port: {port}, connect_timeout: 10}}\n"
        alone = open_all(Inventory.from_text(ssh_inventory([]) + dead))
        once = taken[0]  # the connections one open makes (the ssh layer may try again)
        opened = open_all(Inventory.from_text(ssh_inventory([host]) + dead))
    assert list(alone.unreachable) == ["dead"] and once >= 1
    assert sorted(opened.gateways) == ["n01"], opened
    assert list(opened.unreachable) == ["dead"]
    assert taken[0] == 2 * once


def test_a_key_that_cannot_be_recorded_does_not_keep_the_others_out(
    tmp_path: Path,
    sshd_hosts,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """n01's known_hosts cannot be written: n01 is refused, n02's key is recorded, n02 opens."""
    hosts = sshd_hosts(2)
    client_home([], tmp_path / "home", monkeypatch)
    (tmp_path / "a-file").write_text("")
    text = ssh_inventory(hosts).replace(
        "n01: {", f"n01: {{known_hosts_file: {tmp_path / 'a-file' / 'known_hosts'}, "
    )
    opened = open_all(Inventory.from_text(text))
    assert sorted(opened.gateways) == ["n02"], opened
    assert "cannot record the host key" in opened.unreachable["n01"]
    assert [key.hosts for key in opened.refused] == [("n01",)]
