"""``xnet shell --sh HOST``: a login shell on a remote pseudo-terminal, over popen and ssh."""

from __future__ import annotations

import os
import shlex
import signal
from pathlib import Path

import pexpect
import pytest
from shell_helpers import (
    Target,
    popen_target,
    spawned,
    target_fixture,  # noqa: F401 (the target fixture)
    wait_end,
)
from sshd_fixtures import descendants

#: Runs the shell, then shows our terminal's modes: raw mode must have been undone.
AFTER = "; echo status=$?; stty -a | grep -o -- '-\\?icanon'"


def in_sh(target: Target) -> list[str]:
    return ["/bin/sh", "-c", shlex.join(target.args("--sh")) + AFTER]


def ready(child) -> None:  # noqa: ANN001 (a pexpect child)
    """Wait until the remote shell reads commands (its start-up may drop what came before)."""
    for _ in range(30):
        child.sendline("echo ready-$((1+1))")
        if child.expect(["ready-2", pexpect.TIMEOUT], timeout=1) == 0:
            return
    raise AssertionError("the remote shell did not answer")


def command(child, line: str, marker: str) -> None:  # noqa: ANN001 (a pexpect child)
    """Type a shell command; wait for its output (the marker, made by the shell itself)."""
    child.sendline(line)
    child.expect(marker)


def test_window_size_resize_and_exit_status(target: Target) -> None:
    with spawned(in_sh(target), target.env, rows=24, cols=80) as child:
        ready(child)
        command(child, "stty size; echo size-$((2+2))", "24 80\r\nsize-4")
        child.setwinsize(40, 100)  # SIGWINCH for xnet, which sends the new size
        command(child, "stty size; echo size-$((3+3))", "40 100\r\nsize-6")
        child.sendline("exit 3")
        child.expect("status=3\r\nicanon")
        assert wait_end(child) == 0


def test_terminal_is_restored_when_the_connection_is_lost(target: Target) -> None:
    with spawned(in_sh(target), target.env) as child:
        ready(child)
        child.sendline("kill -9 $PPID")  # the worker, which holds the terminal's master side
        child.expect("connection lost")
        child.expect("status=1\r\nicanon")
        assert wait_end(child) == 0


def test_ctrl_d_ends_it_and_restores_the_terminal(target: Target) -> None:
    with spawned(in_sh(target), target.env) as child:
        ready(child)
        child.sendline("false")
        for _ in range(10):  # retyped: one that lands while bash runs a command is not read
            child.sendcontrol("d")
            if child.expect(["status=", pexpect.TIMEOUT], timeout=1) == 0:
                break
        child.expect("1\r\nicanon")  # bash's last status: the failed `false`
        assert wait_end(child) == 0


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_terminal_is_restored_when_xnet_is_terminated(
    tmp_path: Path, signum: int, status: int
) -> None:
    """SIGTERM (and SIGHUP: the terminal closed) raises in the relay loop: the way out of an
    exception restores the modes (README/docs/shell.md: "on every way out")."""
    target = popen_target(tmp_path)
    with spawned(in_sh(target), target.env) as child:
        ready(child)
        xnet = [pid for pid in descendants(child.pid) if b"--sh" in _cmdline(pid)]
        assert len(xnet) == 1
        os.kill(xnet[0], signum)
        child.expect(f"status={status}\r\nicanon")
        assert wait_end(child) == 0


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_ctrl_c_goes_to_the_remote_shell(tmp_path: Path) -> None:
    target = popen_target(tmp_path)
    with spawned(target.args("--sh"), target.env) as child:
        ready(child)
        # Wait for the sleep to run: a Ctrl-C typed before bash read the line flushes the
        # line unread (the terminal's rule), and the test then proves nothing; one typed
        # after bash's echo but before its child took the terminal went to bash, and the
        # sleep ran its 60 s. So the child itself says it runs, then becomes the sleep.
        child.sendline("sh -c 'echo sleeping-$((3+4)); exec sleep 60'; echo slept-$((4+5))")
        child.expect("sleeping-7")
        child.sendcontrol("c")
        child.sendline("echo still-$((2+3))")
        child.expect("still-5")  # within the timeout, not after 60 s
        assert "slept-9" not in child.before  # the sleep was interrupted, not finished
        # A Ctrl-D typed while bash still runs the echo is an end-of-file nobody reads
        # (readline starts after it): type it again until the shell ends.
        for _ in range(10):
            child.sendcontrol("d")
            if child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=1) == 0:
                break
        assert wait_end(child) == 0


def test_sh_takes_one_host(tmp_path: Path) -> None:
    target = popen_target(tmp_path, "web")
    with spawned(target.args("--sh"), target.env) as child:
        child.expect("--sh takes one host; 'web' selects 3 \\(web\\[01-03\\]\\)")
        assert wait_end(child) == 2
