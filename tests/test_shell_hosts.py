"""Which hosts ``xnet shell HOST`` means: inventory patterns, else ad-hoc ssh hosts."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from execnet_cli.cli.shell_hosts import adhoc_host, select


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


def test_a_pattern_that_selects_nothing_is_a_usage_error(env: Path) -> None:
    with pytest.raises(click.exceptions.Exit) as exc:
        select((), "web*")
    assert exc.value.exit_code == 2
