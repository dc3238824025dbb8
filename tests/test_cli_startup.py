"""What an ``xnet`` process loads (``cli.startup``): ``xnet sh --json`` over ssh runs
without rich, PyYAML and paramiko's optional ``invoke``, and ``Match exec`` in an ssh
config still works there (it loads ``invoke`` when first used)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from faults_helpers import ssh_inventory, xnet_env

#: Runs xnet as ``python -m execnet_cli`` does; at its end, prints on stderr which of the
#: watched modules were really loaded (a stand-in of ``cli.startup`` is not).
PROBE = """
import json, sys, types
from execnet_cli.cli import main
try:
    main(prog_name="xnet")
finally:
    loaded = [name for name in ("rich", "yaml", "invoke", "paramiko")
              if type(sys.modules.get(name)) is types.ModuleType]
    print("LOADED " + json.dumps(loaded), file=sys.stderr)
"""


def loaded_by(args: list[str], env: dict[str, str]) -> tuple[list[str], str]:
    """The watched modules an ``xnet ARGS`` process loaded, and its standard output."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, timeout=120
    )
    err = done.stderr.decode()
    last = [line for line in err.splitlines() if line.startswith("LOADED ")]
    assert last, err
    return json.loads(last[-1][len("LOADED ") :]), done.stdout.decode()


def test_sh_json_over_ssh_loads_no_rich_yaml_or_invoke(sshd_hosts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hosts = sshd_hosts(2)
    inventory = tmp_path / "ssh.yaml"
    inventory.write_text(ssh_inventory(hosts))
    env = xnet_env(tmp_path / "home", hosts)
    loaded, out = loaded_by(["sh", "--json", "-i", str(inventory), "echo hi"], env)
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted((r["name"], r["status"], r["stdout"]) for r in rows) == [
        ("n01", "ok", "hi\n"),
        ("n02", "ok", "hi\n"),
    ]
    assert loaded == ["paramiko"]


def test_a_terminal_style_run_still_loads_rich(tmp_path: Path) -> None:
    """The stand-ins leave nothing out that a renderer needs (gathered output: rich)."""
    inventory = tmp_path / "local.yaml"
    inventory.write_text("hosts:\n  p1: {transport: popen}\n")
    env = xnet_env(tmp_path / "home")
    loaded, out = loaded_by(["sh", "-i", str(inventory), "echo hi"], env)
    assert "hi" in out
    assert "rich" in loaded


MATCH_EXEC = """
import sys
from execnet_cli.cli.startup import defer
defer()
stand_in = type(sys.modules["invoke"]).__name__
from execnet_cli.transports.ssh.config import lookup
found = lookup('Match exec "test %h = far"\\n  HostName 127.0.0.9\\n', "far")
print(stand_in, found["hostname"], type(sys.modules["invoke"]).__name__)
"""


def test_match_exec_loads_invoke_on_first_use() -> None:
    pytest.importorskip("invoke")
    done = subprocess.run(
        [sys.executable, "-c", MATCH_EXEC], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split() == ["_Deferred", "127.0.0.9", "module"], done.stderr
