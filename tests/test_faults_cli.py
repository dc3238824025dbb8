"""The fault suite, ``xnet run`` / ``xnet sh`` as users run them (a subprocess, real popen
workers and the sshd hosts): commands that wait on stdin or never end, floods on both
pipes, background children, bytes that are not text, and signals to ``xnet`` itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List

import pytest
from faults_helpers import (
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


@pytest.fixture
def popen_hosts(tmp_path: Path) -> tuple:
    """Four local hosts: (inventory path, environment)."""
    inventory = tmp_path / "local.yaml"
    inventory.write_text(popen_inventory(4))
    return str(inventory), xnet_env(tmp_path / "home")


@pytest.fixture
def ssh_hosts(sshd_hosts, tmp_path: Path) -> tuple:  # type: ignore[no-untyped-def]
    """Eight sshd hosts: (inventory path, environment, the hosts)."""
    hosts = sshd_hosts(8)
    inventory = tmp_path / "ssh.yaml"
    inventory.write_text(ssh_inventory(hosts))
    return str(inventory), xnet_env(tmp_path / "home", hosts), hosts


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
def test_commands_waiting_on_stdin(popen_hosts, args, figures):  # type: ignore[no-untyped-def]
    """A command that reads stdin gets end-of-file, even while xnet's own stdin stays open."""
    inventory, env = popen_hosts
    proc = start_xnet([*args, "-i", inventory, "--json"], env, stdin=subprocess.PIPE)
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
    figures.seconds(f"`xnet {args[0]} {args[1][:24]}` on 4 hosts ended in", took)


def test_a_command_that_never_exits_under_timeout(popen_hosts, figures):  # type: ignore[no-untyped-def]
    """`tail -f` under `-t 1`: every host times out, xnet ends, and no tail is left."""
    inventory, env = popen_hosts
    marker = f"xnet-fault-tail-{os.getpid()}"
    started = time.monotonic()
    done = run_xnet(["sh", f"tail -f /dev/null {marker} 2>/dev/null", "-t", "1", "-i", inventory,
                     "--json"], env, timeout=60)  # fmt: skip
    took = time.monotonic() - started
    rows = _json(done.stdout)
    assert len(rows) == 4, done.stderr
    assert all("timed out" in (row["error"] or "") for row in rows.values()), rows
    assert done.returncode not in (0, 2, 3), done.returncode
    left = wait_no_pids_with(marker, 5)
    figures.seconds("4 hosts timed out, xnet exited in", took, 30)
    figures.seconds("last tail gone", left)


def test_more_than_2_mib_on_both_pipes(ssh_hosts, figures):  # type: ignore[no-untyped-def]
    """3 MiB on stdout and 3 MiB on stderr at once, over ssh: all of it, no deadlock."""
    inventory, env, _ = ssh_hosts
    size = 3 << 20
    command = (
        f"head -c {size} /dev/zero | tr '\\0' o & head -c {size} /dev/zero | tr '\\0' e >&2; wait"
    )
    started = time.monotonic()
    done = run_xnet(["sh", command, "-i", inventory, "--hosts", "n0[1-2]", "--json"], env)
    took = time.monotonic() - started
    rows = _json(done.stdout)
    assert done.returncode == 0, done.stderr
    for row in rows.values():
        assert row["stdout"] == "o" * size and row["stderr"] == "e" * size
    figures.seconds("2 hosts x 2 x 3 MiB over ssh in", took)


def test_a_background_child_keeping_the_pipes_open(popen_hosts, figures):  # type: ignore[no-untyped-def]
    """`sleep 100 &` holds stdout and stderr open: the command's end is reported anyway."""
    inventory, env = popen_hosts
    marker = f"100.{os.getpid()}"
    started = time.monotonic()
    try:
        done = run_xnet(["sh", f"echo before; sleep {marker} & echo after", "-i", inventory,
                         "--json"], env, timeout=60)  # fmt: skip
        took = time.monotonic() - started
        rows = _json(done.stdout)
        assert done.returncode == 0, done.stderr
        assert all(row["stdout"] == "before\nafter\n" for row in rows.values()), rows
        assert took < 30, f"xnet waited {took:.1f} s for a background child"
    finally:
        kill_all(pids_with(f"sleep {marker}"))
    figures.seconds("4 hosts reported in", took, 30)
    figures.note("the background child is left running, its later output not collected")


def test_bytes_that_are_not_utf8_and_carriage_returns(popen_hosts, figures):  # type: ignore[no-untyped-def]
    """Invalid UTF-8 shows as U+FFFD; CR-LF and lone CR reach --json as written."""
    inventory, env = popen_hosts
    done = run_xnet(["sh", r"printf 'a\377b\r\nprogress 1\rprogress 2\nend'", "-i", inventory,
                     "--json", "--hosts", "p01"], env)  # fmt: skip
    rows = _json(done.stdout)
    assert done.returncode == 0, done.stderr
    assert rows["p01"]["stdout"] == "a\ufffdb\r\nprogress 1\rprogress 2\nend"
    plain = run_xnet(["sh", r"printf 'a\r\nb\377\n'", "-i", inventory, "--hosts", "p01"], env)
    lines = [line.rstrip("\r") for line in plain.stdout.decode().split("\n")[1:]]
    assert lines == ["a", "b\ufffd", ""], plain.stdout
    figures.note("--json: U+FFFD for invalid bytes, CR-LF and lone CR kept; gathered: lines at LF")


def _remote_processes(hosts) -> List[int]:  # type: ignore[no-untyped-def]
    """Everything running under the hosts' sshd daemons (sessions, workers, commands)."""
    return [pid for host in hosts for pid in descendants(host.pid)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=str)
def test_signals_to_xnet_on_8_hosts(ssh_hosts, sig, figures):  # type: ignore[no-untyped-def]
    """SIGINT, SIGTERM, SIGHUP to `xnet sh` on 8 ssh hosts: it ends, nothing left anywhere."""
    inventory, env, hosts = ssh_hosts
    assert wait_until(lambda: not _remote_processes(hosts), 10), "hosts busy before the test"
    marker = f"1000.{os.getpid()}{int(sig)}"
    proc = start_xnet(["sh", f"echo up; sleep {marker}", "-i", inventory, "--no-gather"], env)
    assert proc.stdout is not None
    try:
        up = 0
        while up < 8:
            line = proc.stdout.readline()
            assert line, proc.communicate()[1]
            up += line.endswith(b": up\n")
        assert wait_until(lambda: len(pids_with(f"sleep {marker}")) >= 8, 10)
        proc.send_signal(sig)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=30)
        ended = time.monotonic() - sent
        gone = wait_until(lambda: not pids_with(marker) and not _remote_processes(hosts), 10)
        cleaned = time.monotonic() - sent
        left_locally = descendants(proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        kill_all(pids_with(f"sleep {marker}"))
    assert proc.returncode in (130, 128 + sig, -sig), (proc.returncode, err)
    assert gone, f"left on the ssh side: {_remote_processes(hosts)}"
    assert left_locally == []
    figures.seconds(f"{sig.name}: xnet exited ({proc.returncode}) in", ended, 30)
    figures.seconds("nothing left on the 8 hosts after", cleaned, 10)
