"""Ending never hangs and leaves nothing behind (the autouse fixture checks leaks)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from proc_helpers import pid_alive, run_in_threads, wait_gone

import execnet_cli


def test_exit_kills_a_stuck_worker_within_the_timeout():
    gateway = execnet_cli.makegateway()
    pid = gateway._rinfo().pid
    gateway.remote_exec(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "while True: time.sleep(0.01)"
    )
    gateway.remote_exec("import time; time.sleep(1000)")
    gateway.exit(timeout=0.5)
    assert not pid_alive(pid)


def test_group_terminate_with_stuck_workers():
    group = execnet_cli.Group(["popen"] * 3)
    pids = [gw._rinfo().pid for gw in group]
    for gw in group:
        gw.remote_exec("while True: pass")
    group.terminate(timeout=0.5)
    assert not any(pid_alive(pid) for pid in pids)


def test_worker_killed_with_sigkill():
    gateway = execnet_cli.makegateway()
    channel = gateway.remote_exec("channel.send(1); channel.receive()")
    assert channel.receive(10) == 1
    os.kill(gateway._rinfo().pid, signal.SIGKILL)
    with pytest.raises(EOFError):
        channel.receive(10)
    with pytest.raises(EOFError):
        channel.waitclose(10)
    with pytest.raises(execnet_cli.ChannelClosed, match="connection"):
        channel.send(1)
    gateway.join(10)
    assert not gateway.hasreceiver()
    gateway.exit()


def test_remote_os_exit():
    gateway = execnet_cli.makegateway()
    channel = gateway.remote_exec("import os; os._exit(3)")
    with pytest.raises(EOFError):
        channel.waitclose(10)
    gateway.exit()
    assert gateway.transport.returncode == 3


def test_worker_exits_when_controller_vanishes(tmp_path):
    script = tmp_path / "controller.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, execnet_cli
            gw = execnet_cli.makegateway()
            gw.remote_exec("channel.receive()")
            print(gw._rinfo().pid, flush=True)
            os.kill(os.getpid(), 9)
            """
        )
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    worker_pid = int(out.stdout.split()[0])
    assert wait_gone(worker_pid), "worker outlived a SIGKILLed controller"


def test_interpreter_exit_without_explicit_exit(tmp_path):
    script = tmp_path / "forgetful.py"
    script.write_text(
        textwrap.dedent(
            """
            import execnet_cli
            group = execnet_cli.Group(["popen", "popen"])
            gw = execnet_cli.makegateway()
            gw.remote_exec("import time; time.sleep(1000)")
            print(" ".join(str(g._rinfo().pid) for g in [*group, gw]), flush=True)
            """
        )
    )
    start = time.monotonic()
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "thread" not in out.stderr, out.stderr
    assert time.monotonic() - start < 30
    for pid in map(int, out.stdout.split()):
        assert wait_gone(pid)


def test_ctrl_c_in_controller(tmp_path):
    script = tmp_path / "interrupted.py"
    script.write_text(
        textwrap.dedent(
            """
            import execnet_cli
            gw = execnet_cli.makegateway()
            channel = gw.remote_exec("channel.receive()")
            print(gw._rinfo().pid, flush=True)
            channel.receive()
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    worker_pid = int(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert "KeyboardInterrupt" in err
    assert wait_gone(worker_pid), "worker outlived an interrupted controller"


def test_terminal_ctrl_c_to_the_whole_process_group(tmp_path):
    """Ctrl-C at a terminal signals every process of the group: workers ignore it."""
    script = tmp_path / "group_interrupted.py"
    script.write_text(
        textwrap.dedent(
            """
            import execnet_cli
            gw = execnet_cli.makegateway()
            channel = gw.remote_exec("channel.send('up'); channel.receive()")
            try:
                assert channel.receive() == "up"  # the worker has started (and its handler)
                print(gw._rinfo().pid, flush=True)
                channel.receive()
            except KeyboardInterrupt:
                channel.send("still there?")
                print("worker alive:", gw.remote_exec("channel.send(1)").receive(10) == 1)
                # the fork server ignored the Ctrl-C too: the next worker is its child
                parent = "import os; channel.send(os.getppid())"
                server = gw.remote_exec(parent).receive(10)
                again = execnet_cli.makegateway()
                print("same fork server:", again.remote_exec(parent).receive(10) == server)
                again.exit()
                gw.exit()
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, like a shell job
    )
    assert proc.stdout is not None
    worker_pid = int(proc.stdout.readline())
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert "worker alive: True" in out, err
    assert "same fork server: True" in out, err
    assert wait_gone(worker_pid)


def test_two_threads_finishing_one_exit_close_the_transport_once():
    """``exit()`` in one thread while ``Group.terminate()`` runs in another (xnet run's
    pool does this on Ctrl-C) both finish the same exit: one does it, the other waits;
    nothing is closed twice (a double close could hit a descriptor reused meanwhile)."""
    for _ in range(20):
        gateway = execnet_cli.makegateway()
        gateway.remote_exec("channel.send(1)").receive(30)
        gateway._begin_exit()
        deadline = time.monotonic() + 10
        assert run_in_threads(functools.partial(gateway._finish_exit, deadline), 2, 30) == []
        assert gateway.transport.returncode == 0
