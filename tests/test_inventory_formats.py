"""The two formats, ours and Ansible's: detection, structure, and what each defines."""

from __future__ import annotations

from pathlib import Path

import pytest
from inventory_helpers import (
    ANSIBLE,
    EXAMPLES,
    assert_error_at,
    load,
    reader_fixture,  # noqa: F401
)

from execnet_cli.inventory import HostSet, Inventory


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        (
            "groups:\n  web: {hots: x}\n",
            2,
            9,
            "unknown key 'hots' in group 'web' (did you mean 'hosts'?)",
        ),
        ("grups:\n  web: {hosts: w}\n", 1, 1, "unknown section 'grups' (did you mean 'groups'?)"),
        ("groups: {}\nhots: {}\n", 2, 1, "unknown section 'hots'"),
        ("- a\n", 1, 1, "expected a mapping at the top level, got a list"),
        ("# nothing\n", 1, 1, "empty inventory"),
        ("all:\n  hosts: [a, b]\n", 2, 10, "expected a mapping of hosts, got a list"),
        ("all:\n  chidren: {}\n", 2, 3, "did you mean 'children'?"),
    ],
)
def test_structure_errors_name_file_line_column(
    tmp_path: Path, text: str, line: int, column: int, words: str, reader: str
) -> None:
    assert_error_at(tmp_path, text, line, column, words)


def test_shipped_examples_load() -> None:
    local = Inventory.from_files([EXAMPLES / "local.yaml"])
    assert [h.spec() for h in local.hosts()] == [h.spec() for h in Inventory.default().hosts()]
    lab = Inventory.from_files([EXAMPLES / "lab.yaml"])
    assert lab.select("web&prod") == HostSet("web[01-02]")
    assert lab.host("db02").sudo == "postgres" and lab.host("web01").proxy_jump
    assert lab.host("bastion-py312").spec().endswith("//via=bastion")
    ansible = Inventory.from_files([EXAMPLES / "ansible-example.yaml"])
    assert ansible.select("webservers:&prod") == HostSet("www[01-04].example.com")
    for inv in (local, lab, ansible):
        assert all(isinstance(h.spec(), str) for h in inv.hosts())


# ----------------------------------------------------------------------------- Ansible


def test_ansible_format(tmp_path: Path) -> None:
    inv = load(tmp_path, ANSIBLE)
    assert str(inv.select("web")) == "www[01-03,09].example.com"
    assert str(inv.select("prod:!web")) == "db-a,db-b"
    www9 = inv.host("www09.example.com")
    assert (www9.address, www9.port, www9.user) == ("10.0.0.9", 2222, "ops")
    assert www9.identity_file == "~/.ssh/k" and www9.python == "python3"  # auto -> default
    assert www9.vars["http_port"] == 8080 and www9.vars["ntp_server"] == "ntp.example.com"
    assert www9.vars["ansible_port"] == "2222"
    dba = inv.host("db-a")
    assert dba.sudo == "postgres" and dba.proxy_jump == "jump@mail.example.com"
    assert dba.connect_timeout == 7
    assert dba.spec() == (
        "ssh=-l ops -J jump@mail.example.com -o ConnectTimeout=7 db-a//id=db-a//python=python3"
        "//sudo=postgres"
    )
    local = inv.host("localhost")
    assert (local.transport, local.python) == ("popen", "/usr/bin/python3")
    assert inv.host("mail.example.com").groups == ("ungrouped",)


def test_ansible_become_without_user_is_root(tmp_path: Path) -> None:
    inv = load(tmp_path, "all:\n  hosts:\n    a: {ansible_become: yes}\n")
    assert inv.host("a").sudo is True and inv.host("a").spec().endswith("//sudo=true")


def test_ansible_top_level_groups_without_all(tmp_path: Path) -> None:
    inv = load(tmp_path, "web:\n  hosts:\n    w1:\n    w2:\ndb:\n  hosts: {d1: }\n")
    assert inv.select("all") == HostSet("w[1-2],d1") and inv.children("all") == ["db", "web"]


def test_ansible_inventory_list_output_with_empty_ungrouped(tmp_path: Path) -> None:
    inv = load(tmp_path, "all:\n  children:\n    ungrouped: {}\n    web:\n      hosts: {w1: }\n")
    assert inv.select("all") == HostSet("w1") and not inv.groups["ungrouped"]
