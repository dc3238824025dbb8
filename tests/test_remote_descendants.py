"""An ``xnet run`` job cut short takes the processes it started with it (issue #16: nothing
left on the hosts after Ctrl-C or a timeout); a job that finishes leaves its own alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults_helpers import kill_all, pids_with, run_xnet, ssh_inventory, xnet_env
from proc_helpers import wait_until

from execnet_cli._remote import descendants as remote

TREE = "import subprocess, sys; subprocess.run(['sh', '-c', 'sleep {marker}; :'])"


def marker() -> str:
    return f"1009.{os.getpid()}{time.monotonic_ns() % 100000}"


def test_both_ways_of_finding_descendants_agree() -> None:
    mark = marker()
    parent = subprocess.Popen([sys.executable, "-c", TREE.format(marker=mark)])
    try:
        started = lambda: [pid for pid in pids_with(mark) if pid != parent.pid]  # noqa: E731
        assert wait_until(lambda: len(started()) == 2)  # sh -c, then sleep
        below = remote.descendants(parent.pid)
        assert sorted(below) == sorted(remote._scan(parent.pid)) == sorted(started())
    finally:
        parent.kill()
        parent.wait()
        kill_all(pids_with(mark))


def xnet(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    """xnet's output goes to files: a process a job leaves running holds the worker's
    stderr (the controller's), so a pipe would not end before it does."""
    env = dict(os.environ, XDG_STATE_HOME=str(env_home / "state"))
    env.pop("XNET_INVENTORY", None)
    with open(env_home / "out", "w+") as out, open(env_home / "err", "w+") as err:
        done = subprocess.run(
            [sys.executable, "-m", "execnet_cli", *args],
            stdout=out,
            stderr=err,
            timeout=60,
            env=env,
            cwd=env_home,
        )
    done.stdout, done.stderr = (env_home / "out").read_text(), (env_home / "err").read_text()
    return done


def test_a_timed_out_job_ends_what_it_started(tmp_path: Path) -> None:
    mark = marker()
    try:
        done = xnet("run", "-t", "1", TREE.format(marker=mark), env_home=tmp_path)
        assert done.returncode == 4, done.stderr
        # the worker's child (sh) and grandchild (sleep) are gone with the worker
        assert wait_until(lambda: not pids_with(mark), 5), pids_with(mark)
    finally:
        kill_all(pids_with(mark))


def test_a_busy_job_still_ends_at_once(tmp_path: Path) -> None:
    """A job spinning in Python holds the GIL: the worker still ends its processes and
    itself without being killed (it was a 0.7 s wait with a /proc scan)."""
    mark = marker()
    code = TREE.format(marker=mark).replace("subprocess.run", "subprocess.Popen")
    code += "\nwhile True: pass"
    try:
        done = xnet("run", "-t", "1", code, env_home=tmp_path)
        assert done.returncode == 4, done.stderr
        assert wait_until(lambda: not pids_with(mark), 5), pids_with(mark)
    finally:
        kill_all(pids_with(mark))


def test_an_interrupted_job_ends_what_it_started(tmp_path: Path) -> None:
    mark = marker()
    code = "print('up', flush=True)\n" + TREE.format(marker=mark)
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "execnet_cli", "run", "--no-gather", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().endswith(b"up\n")
        started = lambda: [pid for pid in pids_with(mark) if pid != proc.pid]  # noqa: E731
        assert wait_until(lambda: len(started()) == 2, 10)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert wait_until(lambda: not started(), 5), started()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        kill_all(pids_with(mark))


def test_a_finished_job_leaves_its_background_processes_alone(tmp_path: Path) -> None:
    """`subprocess.Popen` then return: started on purpose, as `sh 'cmd &'` leaves it."""
    mark = marker()
    code = f"import subprocess; subprocess.Popen(['sleep', '{mark}'])"
    try:
        done = xnet("run", code, env_home=tmp_path)
        assert done.returncode == 0, done.stderr
        time.sleep(0.3)  # a negative check: give a wrong kill the time to happen
        assert len(pids_with(mark)) == 1  # the sleep (xnet has ended)
    finally:
        kill_all(pids_with(mark))


def test_a_finished_job_over_ssh_leaves_its_background_process_alone(
    sshd_host, tmp_path: Path
) -> None:
    """Over ssh the process holds the session's stderr after the worker has exited: xnet
    still ends (its own pipes are not held) and the process goes on."""
    mark = marker()
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(ssh_inventory([sshd_host]))
    code = f"import subprocess; subprocess.Popen(['sleep', '{mark}']); print('started')"
    try:
        env = xnet_env(tmp_path / "home", [sshd_host])
        done = run_xnet(["run", "-i", str(inventory), code], env)
        assert done.returncode == 0, done.stderr
        assert b"started" in done.stdout
        assert len(pids_with(mark)) == 1
    finally:
        kill_all(pids_with(mark))


@pytest.mark.parametrize("ended", [True, False])
def test_hooks_run_once_and_say_whether_a_job_was_cut_short(ended: bool) -> None:
    calls: list[str] = []
    hook = lambda: calls.append("ran")  # noqa: E731
    remote.add_interrupt_hook(hook)
    if ended:
        remote.remove_interrupt_hook(hook)
    assert remote.run_interrupt_hooks() is (not ended)
    assert remote.run_interrupt_hooks() is False
    assert calls == ([] if ended else ["ran"])
