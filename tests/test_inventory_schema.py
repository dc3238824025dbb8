"""Inventory variables and names: checks of values, ours and Ansible's, with positions."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from inventory_helpers import assert_error_at, error, load, reader_fixture  # noqa: F401

from execnet_cli.inventory.schema import are_names, is_name


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        (
            "groups:\n  web:\n    hosts: w1\n    vars: {prot: 22}\n",
            4,
            12,
            "unknown variable 'prot' (did you mean 'port'?)",
        ),
        (
            "groups:\n  web:\n    hosts: w1\n    vars:\n      port: seventy\n",
            5,
            13,
            "port: expected a number, got a string ('seventy')",
        ),
        (
            "hosts:\n  a:\n    env:\n      OK: x\n      BAD: [1]\n",
            5,
            12,
            "env.BAD: expected a string",
        ),
        ("hosts:\n  a: {port: 70000}\n", 2, 13, "expected a port number 1-65535"),
        (
            "hosts:\n  a: {transport: sshh}\n",
            2,
            18,
            "unknown transport 'sshh' (did you mean 'ssh'?)",
        ),
        ("hosts:\n  a: {connect_timeout: -1}\n", 2, 24, "positive number of seconds"),
        ("hosts:\n  a: {address: -oProxyCommand=x}\n", 2, 16, "cannot start with '-'"),
        ("hosts:\n  a: {chdir: /a//b}\n", 2, 14, "'//' cannot appear"),
        ("hosts:\n  a: {user: two words}\n", 2, 13, "without spaces"),
        ("hosts:\n  a: {sudo: [x]}\n", 2, 13, "sudo: expected a string"),
        ("hosts:\n  a: {hostname: x, address: y}\n", 2, 20, "set the same thing"),
        ("hosts:\n  a: {ansible_host: x}\n", 2, 7, "in xnet's format it is 'address'"),
        ('groups:\n  web: {hosts: "web[01-x]"}\n', 2, 21, "bad host range 'web[01-x]'"),
        ("groups:\n  web:\n    hosts: web[01-\n", 3, 15, "'[' is never closed"),
        ("groups:\n  web: {hosts: 'a b'}\n", 2, 16, "'a b' is not a valid host name"),
        ("groups:\n  web: {hosts: [1]}\n", 2, 17, "expected host names"),
        ("groups:\n  'we b': {hosts: x}\n", 2, 3, "not a valid group name"),
        ("groups:\n  web: {hosts: all}\n", 2, 16, "'all' is a group, not a host name"),
    ],
)
def test_value_and_name_errors_name_file_line_column(
    tmp_path: Path, text: str, line: int, column: int, words: str, reader: str
) -> None:
    assert_error_at(tmp_path, text, line, column, words)


def test_hostname_alias_and_user_variables(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts:\n  a: {hostname: 10.0.0.5, x_rack: 7, x_tags: [a, b]}\n")
    host = inv.host("a")
    assert host.address == "10.0.0.5"
    assert host.vars["x_rack"] == 7 and host.vars["x_tags"] == ["a", "b"]


@pytest.mark.parametrize(
    ("var", "words"),
    [
        ("ansible_hots: x", "unknown variable 'ansible_hots' (did you mean 'ansible_host'?)"),
        ("xnet_vai: x", "unknown variable 'xnet_vai' (did you mean 'xnet_via'"),
        ("xnet_x_foo: 1", "unknown variable 'xnet_x_foo'"),
        ("ansible_port: http", "ansible_port: expected a number"),
    ],
)
def test_ansible_variable_errors(tmp_path: Path, var: str, words: str) -> None:
    exc = error(tmp_path, f"all:\n  hosts:\n    a:\n      {var}\n")
    assert words in exc.message and exc.line == 4


def test_ansible_keeps_unknown_non_typo_variables(tmp_path: Path) -> None:
    inv = load(tmp_path, "all:\n  hosts:\n    a: {ansible_user_dir: /h, ansible_ssh_pass: s}\n")
    assert inv.host("a").vars == {"ansible_user_dir": "/h", "ansible_ssh_pass": "s"}


@given(st.lists(st.text(alphabet="ab-~ \t\n,:[/.\u00e9", max_size=5), max_size=6))
def test_names_in_bulk_are_checked_as_one_by_one(names: list[str]) -> None:
    """The fast reader checks a list of host names with one match; same verdict."""
    assert are_names(names) == all(is_name(name) for name in names)
