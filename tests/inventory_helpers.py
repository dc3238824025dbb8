"""Inventory texts and helpers shared by the tests/test_inventory_*.py modules.

The texts are written once here and used by several modules: the same inventory is read
by both readers, resolved, and checked for its errors. ``reader_fixture`` is the ``reader``
fixture (import it by that name: ``from inventory_helpers import reader_fixture``).
"""

from __future__ import annotations

import getpass
import textwrap
from pathlib import Path

import pytest
from sshd_fixtures import SshdHost

from execnet_cli.errors import XnetError
from execnet_cli.inventory import Host, Inventory, InventoryError, fast_reader

EXAMPLES = Path(__file__).resolve().parent.parent / "inventories"

#: Our format: ranges, children, host variables, env, a relayed popen worker, an ungrouped host.
#: Three local popen hosts (local2 marked to fail by the jobs that look for it) and one
#: whose interpreter does not exist: what xnet run / sh and the runner are tried on.
LOCAL = """\
groups:
  local:
    hosts: local[1-3]
    vars: {transport: popen}
hosts:
  local2: {env: {XNET_TEST_BOOM: "1"}}
  bad: {transport: popen, python: /nonexistent/python}
"""

LAB = """\
vars:
  user: deploy
  env: {LANG: C}
groups:
  web:
    hosts: web[01-03]
    vars: {port: 2201}
  db:
    hosts:
      db01:
      db02: {port: 2222}
  prod:
    hosts: web[01-02]
    children: [db]
    vars: {proxy_jump: gw, env: {STAGE: prod}}
  bastion:
    hosts:
      bastion: {address: 203.0.113.10}
      bastion-py: {transport: popen, via: bastion}
hosts:
  build: {transport: popen}
"""

#: Variables at every level: all, parent and child groups, groups of one depth, a host.
PRECEDENCE = """\
vars: {user: all, chdir: /all, python: p-all}
groups:
  parent:
    children: [child]
    vars: {user: parent, chdir: /parent, port: 1}
  child:
    hosts: h1, h2
    vars: {user: child}
  alpha:
    hosts: h1
    vars: {python: p-alpha, port: 2}
  beta:
    hosts: h1
    vars: {python: p-beta}
hosts:
  h2: {user: host}
"""

#: Ansible's format: ranges with ':', a host with a port, become, priorities, xnet_ variables.
ANSIBLE = """\
all:
  vars:
    ansible_user: ops
    ansible_python_interpreter: auto_silent
    ntp_server: ntp.example.com
  hosts:
    mail.example.com:
  children:
    web:
      hosts:
        www[01:03].example.com:
        www09.example.com:2222:
          ansible_host: 10.0.0.9
          ansible_ssh_private_key_file: ~/.ssh/k
          http_port: 8080
    db:
      hosts:
        db-[a:b]:
          ansible_become: true
          ansible_become_user: postgres
          ansible_timeout: 7
      vars:
        ansible_group_priority: 3
        xnet_proxy_jump: jump@mail.example.com
    local:
      hosts:
        localhost: {ansible_connection: local, ansible_python_interpreter: /usr/bin/python3}
    prod:
      children:
        web:
        db:
"""

#: A long inventory in the fast reader's subset; ``with_line`` changes one line of it.
LISTED = """\
vars:
  user: deploy
groups:
  web:
    hosts:
      web01:
      web02:
      web03:
    priority: 1
    vars:
      port: 2201
  db:
    hosts:
      db01:
      db02:
    children: [web]
"""


def listed_inventory(groups: int = 3, per_group: int = 4) -> str:
    """The bench's worst case, small: every host a line of its own."""
    lines = ["vars:", "  user: bench", "groups:"]
    for g in range(groups):
        lines += [f"  g{g}:", "    hosts:"]
        lines += [f"      g{g}-n{n:02d}:" for n in range(per_group)]
        lines.append(f"    vars: {{python: /opt/py{g}/bin/python3}}")
    lines += ["  even:", "    children: [g0, g2]", "hosts:", "  g0-n00: {port: 2222}"]
    return "\n".join(lines) + "\n"


def with_line(number: int, line: str) -> str:
    """``LISTED`` with its line ``number`` (1-based) replaced by ``line``."""
    lines = LISTED.splitlines()
    lines[number - 1] = line
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, text: str, name: str = "inv.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str) -> Inventory:
    return Inventory.from_files([write(tmp_path, text)])


def error(tmp_path: Path, text: str, pattern: str = "all") -> InventoryError:
    """The error loading ``text`` and resolving the hosts of ``pattern`` raises."""
    with pytest.raises(InventoryError) as info:
        load(tmp_path, text).hosts(pattern)
    return info.value


def assert_error_at(tmp_path: Path, text: str, line: int, column: int, words: str) -> None:
    """Loading ``text`` fails with ``words`` at ``inv.yaml:line:column``."""
    exc = error(tmp_path, text)
    assert isinstance(exc, XnetError) and isinstance(exc, ValueError)
    assert words in exc.message, exc.message
    assert (exc.file, exc.line, exc.column) == (str(tmp_path / "inv.yaml"), line, column), str(exc)
    assert str(exc).startswith(f"{tmp_path / 'inv.yaml'}:{line}:{column}: ")


@pytest.fixture(name="reader", params=["fast", "compose"])
def reader_fixture(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the fast reader (where it takes the text), then with compose only."""
    if request.param == "compose":
        monkeypatch.setattr(fast_reader, "compose", lambda text: None)
    return str(request.param)


def ssh_host(
    sshd_host: SshdHost, home: Path, monkeypatch: pytest.MonkeyPatch, name: str = "far"
) -> Host:
    """An inventory host on ``sshd_host`` using its system Python, with ``home`` as $HOME:
    our known_hosts there, no ~/.ssh/config, no ssh-agent."""
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(sshd_host.known_hosts_line() + "\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return Host(
        name,
        transport="ssh",
        address=sshd_host.address,
        port=sshd_host.port,
        user=getpass.getuser(),
        identity_file=str(sshd_host.key),
        python="/usr/bin/python3",
    )
