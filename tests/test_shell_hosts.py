"""Which hosts ``xnet shell HOST`` means: inventory patterns, else ad-hoc ssh hosts."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from execnet_cli.cli.selection import adhoc_host
from execnet_cli.cli.shell_hosts import select


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
