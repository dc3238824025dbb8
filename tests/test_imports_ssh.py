"""Import forwarding over ssh: workers on real sshd hosts (127.0.0.x, see sshd_fixtures.py)
running /usr/bin/python3 import a package that exists only in the controller's temp dir."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import Callable, List

import pytest
from click.testing import CliRunner
from imports_helpers import SYSTEM_PYTHON, make_package
from sshd_fixtures import SshdHost, client_home

import execnet_cli
from execnet_cli.cli import main

pytestmark = pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="no /usr/bin/python3")


def test_a_package_data_and_a_refusal_over_ssh(sshd_host: SshdHost, tmp_path: Path) -> None:
    root = make_package(tmp_path / "controller")
    (root / "ctrlonly" / "_x.abi3.so").write_bytes(b"\x7fELF")
    spec = sshd_host.spec(python=SYSTEM_PYTHON) + f"//chdir={tmp_path}//forward_imports={root}"
    gateway = execnet_cli.makegateway(spec)
    try:
        channel = gateway.remote_exec(
            """
import ctrlonly.tasks
from importlib.resources import files
try:
    import ctrlonly._x
    refused = None
except ImportError as exc:
    refused = str(exc)
try:
    import ctrlonly.broken
except RuntimeError as exc:
    broken = str(exc)
channel.send((ctrlonly.tasks.deploy(), files("ctrlonly").joinpath("data/greeting.txt")
              .read_text(), refused, broken))
"""
        )
        deploy, data, refused, broken = channel.receive(30)
    finally:
        gateway.exit()
    assert deploy == {"deep": 42, "version": "1.0"}
    assert data == "hello from the controller\n"
    assert refused is not None and "compiled extension module" in refused
    assert broken == "broken at import"


def test_xnet_run_m_on_ssh_hosts(
    sshd_hosts: Callable[[int], List[SshdHost]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = sshd_hosts(2)
    client_home(hosts, tmp_path / "home", monkeypatch)
    monkeypatch.chdir(make_package(tmp_path))
    (tmp_path / "remote").mkdir()
    entries = "".join(
        f"  s{i}: {{address: {h.address}, port: {h.port}}}\n" for i, h in enumerate(hosts)
    )
    (tmp_path / "inv.yaml").write_text(
        f"vars: {{user: {getpass.getuser()}, identity_file: {hosts[0].key}, "
        f"python: {SYSTEM_PYTHON}, chdir: {tmp_path / 'remote'}}}\nhosts:\n{entries}"
    )
    result = CliRunner().invoke(
        main, ["run", "-i", "inv.yaml", "--json", "-m", "ctrlonly.tasks:deploy"]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["value"] for r in records] == [{"deep": 42, "version": "1.0"}] * 2
