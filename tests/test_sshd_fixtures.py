"""The sshd test hosts end with the test run that started them, however it ends: a run
killed by ``timeout`` or SIGKILL never reaches teardown, and sshd daemonizes (it is not
the run's child), so its daemons would listen on for good."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from proc_helpers import pid_alive, wait_until
from sshd_fixtures import create_sudo_users, find_sshd, remove_sudo_users

TESTS = Path(__file__).resolve().parent

RUN = """
import os, sys, time
sys.path.insert(0, {tests!r})
from sshd_fixtures import SshdCluster
cluster = SshdCluster({sshd!r})
print(" ".join(str(h.pid) for h in cluster.start(2)), flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_run_leaves_no_sshd_behind(signum: int) -> None:
    sshd = find_sshd()
    if sshd is None:
        pytest.skip("OpenSSH sshd not found (apt-get install openssh-server)")
    run = subprocess.Popen(
        [sys.executable, "-c", RUN.format(tests=str(TESTS), sshd=sshd)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None
        pids = [int(word) for word in run.stdout.readline().split()]
        assert len(pids) == 2 and all(pid_alive(pid) for pid in pids)
        run.send_signal(signum)
        run.wait(30)
        gone = wait_until(lambda: not any(pid_alive(pid) for pid in pids), 15)
    finally:
        run.kill()
        run.wait()
    for pid in pids:  # the old fixture's daemons: stop them here, then fail
        if pid_alive(pid):
            subprocess.run(["kill", "-KILL", str(pid)], check=False)
    assert gone, f"sshd {pids} outlived the run that started them"


# -- the sudo test users ---------------------------------------------------------------------

SUDO_RUN = """
import os, sys, tempfile
sys.path.insert(0, {tests!r})
from sshd_fixtures import create_sudo_users, remove_sudo_users
users = create_sudo_users(__import__("pathlib").Path(tempfile.mkdtemp()))
print(users.nopass, users.passwd, flush=True)
if {finish!r}:
    remove_sudo_users(users)
else:
    sys.stdin.read()  # until killed
"""

needs_useradd = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("visudo") is None,
    reason="creates users: root, useradd and visudo",
)


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def sudo_run(finish: bool) -> subprocess.Popen[str]:
    code = SUDO_RUN.format(tests=str(TESTS), finish=finish)
    return subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


@needs_useradd
def test_two_runs_at_once_have_their_own_sudo_users(tmp_path: Path) -> None:
    """Another run that makes and removes its users leaves this run's alone."""
    ours = create_sudo_users(tmp_path)
    try:
        other = sudo_run(finish=True)
        theirs = other.communicate(timeout=60)[0].split()
        assert other.returncode == 0
        assert len(theirs) == 2 and not set(theirs) & {ours.nopass, ours.passwd}
        assert not any(user_exists(name) for name in theirs)
        assert user_exists(ours.nopass) and user_exists(ours.passwd)
        assert ours.sudoers_file.exists()
    finally:
        remove_sudo_users(ours)
    assert not user_exists(ours.nopass) and not user_exists(ours.passwd)
    assert not ours.sudoers_file.exists()


@needs_useradd
def test_a_killed_run_leaves_no_sudo_users_behind() -> None:
    run = sudo_run(finish=False)
    assert run.stdout is not None and run.stdin is not None
    names = run.stdout.readline().split()
    assert len(names) == 2 and all(user_exists(name) for name in names)
    run.kill()
    run.wait(30)
    run.stdin.close()
    run.stdout.close()
    assert wait_until(lambda: not any(user_exists(name) for name in names), 30), names
    assert not list(Path("/etc/sudoers.d").glob(f"xnet-test-{run.pid}x*"))
