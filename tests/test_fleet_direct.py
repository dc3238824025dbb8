"""``xnet sh`` on ssh hosts without a remote Python (``fleet.direct``), against real sshd:
the same results as the Python worker gives, and the same guarantees (a timeout or a
cancelled run kills the command's whole process group)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest
from faults_helpers import kill_all, pids_with
from inventory_helpers import ssh_host
from proc_helpers import wait_until
from sshd_fixtures import SshdHost

from execnet_cli.fleet import direct
from execnet_cli.fleet.events import FAILED, INTERRUPTED, OK, TIMED_OUT, Failed, Running
from execnet_cli.fleet.jobs import python_job, shell_job
from execnet_cli.fleet.results import HostResult
from execnet_cli.fleet.runner import Runner, run_job
from execnet_cli.inventory import Host
from execnet_cli.transports.ssh.command import wrapper_line


@pytest.fixture
def far(sshd_host: SshdHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    return ssh_host(sshd_host, tmp_path / "home", monkeypatch)


@pytest.fixture(params=[True, False], ids=["direct", "python"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    """Each case on both paths: straight on the channel, and through the Python worker."""
    monkeypatch.setattr(direct, "ENABLED", request.param)
    yield request.param


def _sh(host: Host, command: str, timeout: float | None = None) -> HostResult:
    return run_job([host], shell_job(command, timeout))[host.name]


def _seen(result: HostResult) -> tuple:
    return (result.status, result.exit_code, result.stdout, result.stderr, result.error)


SAME_ON_BOTH = [
    ("echo out; echo err >&2; exit 3", (FAILED, 3, "out\n", "err\n", None)),
    ("printf 'a\\nb'", (OK, 0, "a\nb", "", None)),
    ("echo 'it'\"'\"'s $HOME-less'; echo \"$0\"", (OK, 0, "it's $HOME-less\n/bin/sh\n", "", None)),
    ("printf 'x\\377y\\n'", (OK, 0, "x\ufffdy\n", "", None)),
    ("cat; echo cat-done", (OK, 0, "cat-done\n", "", None)),
    ("echo before; kill -9 $$", (FAILED, 137, "before\n", "", "killed by signal 9")),
    ("sh -c 'kill -TERM $$'; echo $?", (OK, 0, "143\n", "Terminated\n", None)),
]


@pytest.mark.parametrize(("command", "expected"), SAME_ON_BOTH, ids=[c for c, _ in SAME_ON_BOTH])
def test_same_results_on_both_paths(far: Host, path: bool, command: str, expected: tuple) -> None:
    assert _seen(_sh(far, command)) == expected


def test_the_direct_path_starts_no_python(far: Host) -> None:
    """The command's parent is sshd itself: no interpreter in between."""
    result = _sh(far, "cat /proc/$PPID/comm")
    assert result.stdout == "sshd\n", result
    python = run_job([far], python_job("print(1)"))["far"]  # `run` keeps its worker
    assert python.stdout == "1\n"


def test_timeout_kills_the_whole_process_group(far: Host, path: bool) -> None:
    marker = f"1000.{os.getpid()}{int(path)}1"
    try:
        began = time.monotonic()
        result = _sh(far, f"echo started; sleep {marker} & sleep {marker}", timeout=1)
        took = time.monotonic() - began
        assert result.status == TIMED_OUT, result
        assert (result.error, result.exit_code, result.stdout) == (
            "timed out after 1 s",
            137,
            "started\n",
        )
        assert wait_until(lambda: not pids_with(marker), 5), "the group was left"
    finally:
        kill_all(pids_with(marker))
    assert took < 15  # generous: the command alone would take 1000 s


def test_a_cancelled_run_kills_the_command(far: Host) -> None:
    """Closing the run (Ctrl-C in ``xnet sh``) ends the command and its children there."""
    marker = f"1000.{os.getpid()}2"
    try:
        with Runner([far], shell_job(f"sleep {marker} & sleep {marker}")) as runner:
            events = runner.events()
            assert any(isinstance(event, Running) for event in events)
            assert wait_until(lambda: len(pids_with(marker)) >= 2, 10)
            runner.stop()
            ends = [e for e in events if isinstance(e, Failed)]
        assert [e.status for e in ends] == [INTERRUPTED]
        assert wait_until(lambda: not pids_with(marker), 10), "left running"
    finally:
        kill_all(pids_with(marker))


def test_a_background_child_is_left_running_and_the_end_reported(far: Host, path: bool) -> None:
    marker = f"1000.{os.getpid()}{int(path)}3"
    try:
        result = _sh(far, f"echo before; sleep {marker} & echo after")
        assert _seen(result) == (OK, 0, "before\nafter\n", "", None)
        assert wait_until(lambda: len(pids_with(marker)) == 1, 5), "not as with nohup"
    finally:
        kill_all(pids_with(marker))


def test_chdir_and_env_apply(far: Host, path: bool, tmp_path: Path) -> None:
    where = tmp_path / "made here"
    host = replace(far, chdir=str(where), env={"XNET_T": "a b'c"})
    result = _sh(host, 'pwd; echo "$XNET_T"')
    assert result.stdout == f"{where}\na b'c\n", result
    assert where.is_dir()


def test_hosts_that_keep_the_python_worker(far: Host) -> None:
    job = shell_job("true")
    assert direct.applies(job, far)
    assert not direct.applies(python_job("pass"), far)
    for change in ({"sudo": True}, {"via": "hub"}, {"chdir": "~root/x"}, {"env": {"A-B": "1"}}):
        assert not direct.applies(job, replace(far, **change)), change
    assert direct.applies(job, replace(far, chdir="~/x"))


def test_unreachable_as_on_the_python_path(far: Host, path: bool) -> None:
    refused = replace(far, address="127.0.0.1", port=1)
    result = _sh(refused, "true")
    assert result.status == "unreachable", result
    assert "cannot connect" in (result.error or ""), result


# -- the wrapper itself, under a local /bin/sh as sshd would start it ---------------------------


def _outputs(proc: subprocess.Popen) -> tuple[int, bytes, bytes]:
    """Its status and output, its stdin held open until it ended (as sshd does)."""
    got: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda n=n, f=f: got.setdefault(n, f.read()))
        for n, f in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for reader in readers:
        reader.start()
    status = proc.wait(10)
    for reader in readers:
        reader.join(10)
    assert proc.stdin is not None
    proc.stdin.close()
    return status, got["out"], got["err"]


def _reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _session(line: str) -> subprocess.Popen:
    """``line`` run as sshd runs a command: a login shell, its own session, stdin a pipe."""
    return subprocess.Popen(
        ["/bin/sh", "-c", line],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


@pytest.mark.parametrize(
    "command",
    ["echo \"$1-$0\" '$$' `echo x`", "printf '%s\\n' \"a  b\" 'c\nd'", "exit 7", ""],
)
def test_the_wrapper_passes_any_command_unchanged(command: str) -> None:
    expected = subprocess.run(["/bin/sh", "-c", command], capture_output=True)
    got = _outputs(_session(wrapper_line(command)))
    assert got == (expected.returncode, expected.stdout, expected.stderr)


def test_the_wrapper_kills_the_group_when_its_stdin_ends() -> None:
    marker = f"1000.{os.getpid()}4"
    proc = _session(wrapper_line(f"sleep {marker} & sleep {marker}"))
    try:
        assert wait_until(lambda: len(pids_with(f"sleep\0{marker}")) == 2, 10)
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(10) == -9
        assert wait_until(lambda: not pids_with(marker), 10)
    finally:
        kill_all(pids_with(marker))
        _reap(proc)


def test_the_remote_timer_kills_without_the_controller() -> None:
    """Even when we cannot say so (a partition), the host ends the command after the
    timeout and the grace."""
    marker = f"1000.{os.getpid()}5"
    proc = _session(wrapper_line(f"sleep {marker}", timeout=0.1))
    try:
        assert proc.wait(30) == -9  # stdin stays open: only the timer can have done it
    finally:
        kill_all(pids_with(marker))
        _reap(proc)


def test_a_lost_connection_kills_the_command(far: Host) -> None:
    """The connection closes under a running command (xnet killed, the network gone):
    sshd closes the session's stdin, and the wrapper kills the group."""
    marker = f"1000.{os.getpid()}6"
    command = direct.start(far, shell_job(f"sleep {marker} & sleep {marker}"))
    try:
        assert wait_until(lambda: len(pids_with(marker)) >= 2, 10)
        command.connection.transport.sock.close()  # no EOF, no close: the socket goes
        assert wait_until(lambda: not pids_with(marker), 10), "left running"
    finally:
        command.close()
        kill_all(pids_with(marker))


def test_commands_do_not_see_our_secrets(
    far: Host, path: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: neither path hands the command the socket secret or the sudo password."""
    monkeypatch.setenv("XNET_SECRET", "the-controllers-own-secret")
    monkeypatch.setenv("XNET_SUDO_PASSWORD", "the-controllers-own-password")
    command = 'echo "[${XNET_SECRET:-}${XNET_SUDO_PASSWORD:-}]"; grep -c own- /proc/$$/environ'
    assert _sh(far, command).stdout == "[]\n0\n"  # (grep's status 1: found none)
