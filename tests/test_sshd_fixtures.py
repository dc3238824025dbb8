"""The sshd test hosts end with the test run that started them, however it ends: a run
killed by ``timeout`` or SIGKILL never reaches teardown, and sshd daemonizes (it is not
the run's child), so its daemons would listen on for good."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from proc_helpers import pid_alive, wait_until
from sshd_fixtures import find_sshd

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
