"""The fault suite, ``xnet run`` / ``xnet sh`` as users run them (a subprocess, real popen
workers and the sshd hosts): commands that wait on stdin or never end, floods on both
pipes, background children, bytes that are not text, and signals to ``xnet`` itself.

``xnet sh`` takes two paths: popen hosts run the command from a Python worker, ssh hosts
straight on the ssh session channel (``fleet/direct.py``). The ``sh`` cases run on both
(``fleet``: ``local`` and ``direct``); the direct hosts name a Python that does not exist,
so only the direct path can run their commands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import pytest
from faults_helpers import (
    REMOTE_PYTHON,
    descendants,
    kill_all,
    pids_with,
    popen_inventory,
    run_xnet,
    ssh_inventory,
    start_xnet,
    wait_no_pids_with,
    xnet_env,
)
from proc_helpers import wait_until

pytestmark = pytest.mark.faults


@dataclass
class Fleet:
    """Four hosts of one kind: the inventory, the environment, the first host's name, and
    an inventory of the same hosts whose Python exists (for ``xnet run``)."""

    inventory: str
    env: Dict[str, str]
    first: str
    with_python: str


@pytest.fixture(params=["local", "direct"])
def fleet(request, sshd_hosts, tmp_path: Path) -> Fleet:  # type: ignore[no-untyped-def]
    """Four popen hosts (``sh`` from a Python worker), or four sshd hosts (``sh`` on the
    session channel: their ``python`` does not exist)."""
    if request.param == "local":
        inventory = tmp_path / "local.yaml"
        inventory.write_text(popen_inventory(4))
        return Fleet(str(inventory), xnet_env(tmp_path / "home"), "p01", str(inventory))
    hosts = sshd_hosts(4)
    with_python = tmp_path / "ssh.yaml"
    with_python.write_text(ssh_inventory(hosts))
    inventory = tmp_path / "direct.yaml"
    inventory.write_text(ssh_inventory(hosts).replace(REMOTE_PYTHON, "/nonexistent/python3"))
    return Fleet(str(inventory), xnet_env(tmp_path / "home", hosts), "n01", str(with_python))


@pytest.fixture
def ssh_hosts(sshd_hosts, tmp_path: Path) -> tuple:  # type: ignore[no-untyped-def]
    """Eight sshd hosts: (inventory path, environment, the hosts, an inventory of the
    same hosts whose Python does not exist: only ``xnet sh``'s direct path runs there)."""
    hosts = sshd_hosts(8)
    inventory = tmp_path / "ssh.yaml"
    inventory.write_text(ssh_inventory(hosts))
    direct = tmp_path / "direct.yaml"
    direct.write_text(ssh_inventory(hosts).replace(REMOTE_PYTHON, "/nonexistent/python3"))
    return str(inventory), xnet_env(tmp_path / "home", hosts), hosts, str(direct)


def _json(out: bytes) -> Dict[str, dict]:
    return {row["name"]: row for row in map(json.loads, out.decode().splitlines())}


@pytest.mark.parametrize(
    "args",
    [
        ["sh", "cat; echo cat-done"],
        ["sh", "read line; echo read-done"],
        ["run", "import sys; print(repr(sys.stdin.read())); input()"],
    ],
    ids=["cat", "read", "python-input"],
)
def test_commands_waiting_on_stdin(fleet, args, figures):  # type: ignore[no-untyped-def]
    """A command that reads stdin gets end-of-file, even while xnet's own stdin stays open."""
    inventory = fleet.inventory if args[0] == "sh" else fleet.with_python
    proc = start_xnet([*args, "-i", inventory, "--json"], fleet.env, stdin=subprocess.PIPE)
    started = time.monotonic()
    try:
        out, err = proc.communicate(timeout=30)  # our stdin to xnet is never closed early
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"xnet {args[0]} waited on stdin for 30 s")
    took = time.monotonic() - started
    rows = _json(out)
    assert len(rows) == 4, err
    if args[0] == "sh":
        assert all(row["stdout"].endswith("-done\n") for row in rows.values()), rows
    else:  # sys.stdin reads as empty; input() raises EOFError: a failure, not a hang
        assert all(row["stdout"] == "''\n" for row in rows.values()), rows
        assert all("EOFError" in (row["error"] or "") for row in rows.values()), rows
    figures.seconds(
        f"{_kind(fleet, args[0])}: `xnet {args[0]} {args[1][:16]}` on 4 hosts ended in", took
    )


def _kind(fleet: Fleet, command: str = "sh") -> str:
    if fleet.first == "p01":
        return "local"
    return "direct over ssh" if command == "sh" else "Python worker over ssh"


def test_a_command_that_never_exits_under_timeout(fleet, figures):  # type: ignore[no-untyped-def]
    """`tail -f` under `-t 1`: every host times out, xnet ends, and no tail is left."""
    marker = f"xnet-fault-tail-{os.getpid()}"
    started = time.monotonic()
    done = run_xnet(["sh", f"tail -f /dev/null {marker} 2>/dev/null", "-t", "1", "-i",
                     fleet.inventory, "--json"], fleet.env, timeout=60)  # fmt: skip
    took = time.monotonic() - started
    rows = _json(done.stdout)
    assert len(rows) == 4, done.stderr
    assert all("timed out" in (row["error"] or "") for row in rows.values()), rows
    assert done.returncode not in (0, 2, 3), done.returncode
    left = wait_no_pids_with(marker, 5)
    figures.seconds(f"{_kind(fleet)}: 4 hosts timed out, xnet exited in", took, 30)
    figures.seconds("last tail gone", left)


#: 3 MiB on both pipes at once: ``xnet sh`` (on the session channel), ``xnet run`` (a
#: Python worker over ssh, writing from two threads).
FLOODS = {
    "sh": "head -c 3145728 /dev/zero | tr '\\0' o & "
    "head -c 3145728 /dev/zero | tr '\\0' e >&2; wait",
    "run": "import sys, threading\n"
    "t = threading.Thread(target=sys.stdout.write, args=('o' * 3145728,)); t.start()\n"
    "sys.stderr.write('e' * 3145728); t.join()",
}


@pytest.mark.parametrize("command", ["sh", pytest.param("run", marks=pytest.mark.slow)])
def test_more_than_2_mib_on_both_pipes(ssh_hosts, command, figures):  # type: ignore[no-untyped-def]
    """3 MiB on stdout and 3 MiB on stderr at once, over ssh: all of it, no deadlock."""
    inventory, env, _, direct = ssh_hosts
    size = 3 << 20
    hosts = direct if command == "sh" else inventory
    started = time.monotonic()
    done = run_xnet([command, FLOODS[command], "-i", hosts, "--hosts", "n0[1-2]", "--json"], env)
    took = time.monotonic() - started
    rows = _json(done.stdout)
    assert done.returncode == 0, done.stderr
    for row in rows.values():
        assert row["stdout"] == "o" * size and row["stderr"] == "e" * size
    how = "direct, `xnet sh`" if command == "sh" else "Python worker, `xnet run`"
    figures.seconds(f"{how}: 2 hosts x 2 x 3 MiB over ssh in", took)


def test_a_background_child_keeping_the_pipes_open(fleet, figures):  # type: ignore[no-untyped-def]
    """`sleep 100 &` holds stdout and stderr open: the command's end is reported anyway."""
    marker = f"100.{os.getpid()}"
    started = time.monotonic()
    try:
        done = run_xnet(["sh", f"echo before; sleep {marker} & echo after", "-i",
                         fleet.inventory, "--json"], fleet.env, timeout=60)  # fmt: skip
        took = time.monotonic() - started
        rows = _json(done.stdout)
        assert done.returncode == 0, done.stderr
        assert all(row["stdout"] == "before\nafter\n" for row in rows.values()), rows
        assert took < 30, f"xnet waited {took:.1f} s for a background child"
    finally:
        kill_all(pids_with(f"sleep {marker}"))
    figures.seconds(f"{_kind(fleet)}: 4 hosts reported in", took, 30)
    figures.note("the background child is left running, its later output not collected")


def test_bytes_that_are_not_utf8_and_carriage_returns(fleet, figures):  # type: ignore[no-untyped-def]
    """Invalid UTF-8 shows as U+FFFD; CR-LF and lone CR reach --json as written."""
    inventory, env, first = fleet.inventory, fleet.env, fleet.first
    done = run_xnet(["sh", r"printf 'a\377b\r\nprogress 1\rprogress 2\nend'", "-i", inventory,
                     "--json", "--hosts", first], env)  # fmt: skip
    rows = _json(done.stdout)
    assert done.returncode == 0, done.stderr
    assert rows[first]["stdout"] == "a\ufffdb\r\nprogress 1\rprogress 2\nend"
    plain = run_xnet(["sh", r"printf 'a\r\nb\377\n'", "-i", inventory, "--hosts", first], env)
    lines = [line.rstrip("\r") for line in plain.stdout.decode().split("\n")[1:]]
    assert lines == ["a", "b\ufffd", ""], plain.stdout
    figures.note(
        f"{_kind(fleet)}: --json: U+FFFD for invalid bytes, CR-LF and lone CR kept; "
        "gathered: lines at LF"
    )


def _remote_processes(hosts) -> List[int]:  # type: ignore[no-untyped-def]
    """Everything running under the hosts' sshd daemons (sessions, workers, commands)."""
    return [pid for host in hosts for pid in descendants(host.pid)]


@pytest.mark.parametrize(
    "command", ["sh", pytest.param("run", marks=pytest.mark.slow)]
)  # run: make faults
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=str)
def test_signals_to_xnet_on_8_hosts(ssh_hosts, sig, command, figures):  # type: ignore[no-untyped-def]
    """SIGINT, SIGTERM, SIGHUP to `xnet sh` (direct) and `xnet run` (Python workers) on 8
    ssh hosts: it ends, nothing left anywhere."""
    inventory, env, hosts, direct = ssh_hosts
    assert wait_until(lambda: not _remote_processes(hosts), 10), "hosts busy before the test"
    marker = f"1000.{os.getpid()}{int(sig)}"
    if command == "sh":  # the shell's command line holds the marker
        args, sleeping = ["sh", f"echo up; sleep {marker}", "-i", direct], f"sleep {marker}"
    else:  # the workers start the sleep: a job cut short ends what it started
        code = f"import subprocess\nprint('up', flush=True)\nsubprocess.run(['sleep', '{marker}'])"
        args, sleeping = ["run", code, "-i", inventory], ""
    proc = start_xnet([*args, "--no-gather"], env)
    assert proc.stdout is not None
    try:
        up = 0
        while up < 8:
            line = proc.stdout.readline()
            assert line, proc.communicate()[1]
            up += line.endswith(b": up\n")
        assert not sleeping or wait_until(lambda: len(pids_with(sleeping)) >= 8, 10)
        assert sleeping or wait_until(lambda: len(set(pids_with(marker)) - {proc.pid}) >= 8, 10)
        proc.send_signal(sig)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=30)
        ended = time.monotonic() - sent
        gone = wait_until(lambda: not pids_with(f"{marker}") and not _remote_processes(hosts), 10)
        cleaned = time.monotonic() - sent
        left_locally = descendants(proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        kill_all(pids_with(sleeping) if sleeping else [])
    assert proc.returncode in (130, 128 + sig, -sig), (proc.returncode, err)
    assert gone, f"left on the ssh side: {_remote_processes(hosts)}"
    assert left_locally == []
    figures.seconds(f"{sig.name} to `xnet {command}`: exited ({proc.returncode}) in", ended, 30)
    figures.seconds("nothing left on the 8 hosts after", cleaned, 10)
