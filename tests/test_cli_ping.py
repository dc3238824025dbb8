"""``xnet ping``: reachable or not, Python version, platform and timing per host."""

from __future__ import annotations

import ast
import json
import os
import platform
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from execnet_cli.cli import main
from execnet_cli.cli.ping import PROBE

INVENTORY = """\
groups:
  local:
    hosts: local[1-3]
    vars: {transport: popen}
hosts:
  gone: {transport: popen, python: /nonexistent/python}
"""
VERSION = platform.python_version()


@pytest.fixture
def inv(env: Path) -> str:
    path = env / "ping.yaml"
    path.write_text(INVENTORY)
    return str(path)


def ping(*args: str) -> Result:
    return CliRunner().invoke(main, ["ping", *args])


def test_every_host_answers_with_its_python_and_platform(inv: str) -> None:
    result = ping("-i", inv, "local")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["HOST", "STATUS", "PYTHON", "PLATFORM", "CONNECT", "RTT"]
    uname = os.uname()
    for name, line in zip(("local1", "local2", "local3"), lines[1:]):
        assert line.split()[:3] == [name, "ok", VERSION]
        assert f"{uname.sysname} {uname.release} {uname.machine}" in line
        assert line.endswith(" ms")
    assert result.stderr.startswith("3 ok, 0 failed, 0 unreachable in ")


def test_json_and_an_unreachable_host(inv: str) -> None:
    result = ping("-i", inv, "--json")
    assert result.exit_code == 3, result.output
    records = {r["name"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert list(records) == ["gone", "local1", "local2", "local3"]  # the inventory's order
    local = records["local1"]
    assert (local["status"], local["python"], local["error"]) == ("ok", VERSION, None)
    assert local["platform"].startswith(os.uname().sysname)
    assert local["connect_ms"] > 0 and local["rtt_ms"] > 0
    gone = records["gone"]
    assert gone["status"] == "unreachable" and gone["python"] is None
    assert "/nonexistent/python" in gone["error"] and gone["rtt_ms"] is None
    assert result.stderr == ""


def test_a_long_error_does_not_stretch_the_table(inv: str) -> None:
    result = ping("-i", inv)
    assert result.exit_code == 3, result.output
    lines = result.stdout.splitlines()
    gone = next(line for line in lines if line.startswith("gone "))
    assert "/nonexistent/python" in gone
    heading, local = lines[0], next(line for line in lines if line.startswith("local1 "))
    # PYTHON is as wide as a version, not as the error: the ok rows stay short
    assert heading.index("PLATFORM") - heading.index("PYTHON") == max(len(VERSION), 6) + 2
    assert local.index(VERSION) == heading.index("PYTHON")


def test_the_probe_is_python_3_8() -> None:
    """It runs on whatever interpreter the far side has (3.8 and up)."""
    ast.parse(PROBE, feature_version=(3, 8))
