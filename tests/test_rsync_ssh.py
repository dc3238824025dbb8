"""``xnet rsync`` and ``RSync`` over ssh: three loopback sshd hosts at once, the system Python
on the far side (the remote half travels as source), deltas, pulls."""

from __future__ import annotations

import getpass
import json
import os
import shutil
from pathlib import Path
from typing import Callable, List

import pytest
from click.testing import CliRunner, Result
from rsync_helpers import make_tree, snapshot
from sshd_fixtures import SshdHost

import execnet_cli
from execnet_cli.cli import main
from execnet_cli.rsync import RSync

SYSTEM_PYTHON = "/usr/bin/python3"
pytestmark = pytest.mark.skipif(shutil.which(SYSTEM_PYTHON) is None, reason=f"no {SYSTEM_PYTHON}")
HOSTS = ("far1", "far2", "far3")


@pytest.fixture
def fleet(
    sshd_hosts: Callable[[int], List[SshdHost]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """An inventory of three ssh hosts, each working in its own directory; a source tree."""
    hosts = sshd_hosts(3)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    lines = "".join(h.known_hosts_line() + "\n" for h in hosts)
    (home / ".ssh" / "known_hosts").write_text(lines)
    monkeypatch.setenv("HOME", str(home))  # our known_hosts, no ~/.ssh/config
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("XNET_INVENTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    entries = []
    for name, host in zip(HOSTS, hosts):
        (tmp_path / name).mkdir()
        entries.append(
            f"  {name}: {{address: {host.address}, port: {host.port}, chdir: {tmp_path / name}}}"
        )
    (tmp_path / "inv.yaml").write_text(
        "vars:\n"
        f"  user: {getpass.getuser()}\n"
        f"  identity_file: {hosts[0].key}\n"
        f"  python: {SYSTEM_PYTHON}\n"
        "hosts:\n" + "\n".join(entries) + "\n"
    )
    (tmp_path / "src").mkdir()
    make_tree(tmp_path / "src")
    return tmp_path


def xnet(fleet: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["rsync", "-i", str(fleet / "inv.yaml"), *args])


def test_push_to_three_ssh_hosts_then_a_delta(fleet: Path) -> None:
    result = xnet(fleet, "src", "far[1-3]:site")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("far[1-3] (3) ---")
    for name in HOSTS:
        assert snapshot(fleet / name / "site") == snapshot(fleet / "src")
    big = fleet / "src" / "big.bin"
    big.write_bytes(os.urandom(8 << 20))
    assert xnet(fleet, "src", "far[1-3]:site").exit_code == 0
    with big.open("ab") as out:
        out.write(os.urandom(100_000))
    result = xnet(fleet, "--json", "src", "far[1-3]:site")
    assert result.exit_code == 0, result.output
    for record in map(json.loads, result.stdout.splitlines()):
        assert record["files"] == 1 and record["file_bytes"] == (8 << 20) + 100_000
        assert record["literal_bytes"] == 100_000
        assert record["wire_bytes"] < 200_000  # the appended bytes, not the whole file
    for name in HOSTS:
        assert (fleet / name / "site" / "big.bin").read_bytes() == big.read_bytes()


def test_pull_from_three_ssh_hosts(fleet: Path) -> None:
    for name in HOSTS:
        (fleet / name / "etc").mkdir()
        (fleet / name / "etc" / "hostname").write_text(name + "\n")
    result = xnet(fleet, "far[1-3]:etc", str(fleet / "pulled"), "-v")
    assert result.exit_code == 0, result.output
    for name in HOSTS:
        assert (fleet / "pulled" / name / "hostname").read_text() == name + "\n"
    assert "received hostname" in result.stdout  # a pull receives: nothing was sent
    assert "1 file (5 B) received" in result.stdout


def test_library_rsync_to_two_ssh_gateways_at_once(
    sshd_hosts: Callable[[int], List[SshdHost]], tmp_path: Path
) -> None:
    hosts = sshd_hosts(2)
    source = tmp_path / "src"
    source.mkdir()
    make_tree(source)
    group = execnet_cli.Group([h.spec(python=SYSTEM_PYTHON) for h in hosts])
    try:
        rsync = RSync(source, verbose=False)
        for i, gateway in enumerate(group):
            rsync.add_target(gateway, tmp_path / f"dest{i}", delete=True)
        results = rsync.send()
    finally:
        group.terminate(10)
    assert [r.files for r in results] == [6, 6]
    for i in range(2):
        assert snapshot(tmp_path / f"dest{i}") == snapshot(source)
