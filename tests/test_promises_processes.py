"""Promises about processes that no other test held the code to (docs/promises.md).

Each test names the sentence it backs; each fails if that sentence stops being true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from proc_helpers import wait_until
from test_execnet_worker import run_controller
from test_sockets import start_server, stop_server, write_secret

import execnet_cli

TESTS = Path(__file__).resolve().parent


def alive(pid: int) -> bool:
    """Running, not a zombie: a reaped process has no /proc entry at all."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_proxy_command_is_hung_up_on_and_reaped(sshd_host, tmp_path: Path) -> None:
    """docs/ssh.md: "ProxyCommand ... at the end it gets SIGHUP (as OpenSSH does) and is
    reaped". The relay below outlives its connection unless hung up on, and says so."""
    marks = tmp_path / "marks"
    relay = tmp_path / "relay.py"
    relay.write_text(
        textwrap.dedent(
            f"""\
            import os, signal, socket, sys, threading, time
            def hup(signum, frame):
                open({str(marks)!r}, "a").write("hup\\n")
                os._exit(0)
            signal.signal(signal.SIGHUP, hup)
            open({str(marks)!r}, "a").write(f"pid {{os.getpid()}}\\n")
            s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
            def pump():
                while True:
                    data = os.read(0, 65536)
                    if not data:
                        return
                    s.sendall(data)
            threading.Thread(target=pump, daemon=True).start()
            while True:
                data = s.recv(65536)
                if not data:
                    break
                os.write(1, data)
            while True:  # only a signal ends it now
                time.sleep(1)
            """
        )
    )
    config = tmp_path / "config"
    config.write_text(f"Host *\n  ProxyCommand {sys.executable} {relay} %h %p\n")
    gateway = execnet_cli.makegateway(sshd_host.spec() + f"//ssh_config={config}")
    try:
        assert gateway.remote_exec("channel.send(6 * 7)").receive(10) == 42
        pid = int(marks.read_text().split()[1])
        assert alive(pid)
    finally:
        gateway.exit()
    assert not alive(pid)  # gone and reaped when exit() returns
    assert marks.read_text().splitlines()[1:] == ["hup"]  # by SIGHUP, not by a kill


def test_forked_siblings_do_not_share_random_state() -> None:
    """docs/popen.md: "`fork()` reseeds `random`": workers forked from one server must not
    draw the same numbers (their hash seed, by contrast, is shared)."""
    group = execnet_cli.Group()
    try:
        draws = []
        for _ in range(3):
            gateway = group.makegateway("popen")
            assert type(gateway.transport).__name__ == "ForkedTransport"
            source = "import random; channel.send([random.random() for _ in range(4)])"
            draws.append(tuple(gateway.remote_exec(source).receive(30)))
            gateway.exit()
        assert len(set(draws)) == 3
    finally:
        group.terminate(timeout=5)


def test_socket_server_workers_run_in_their_own_session(tmp_path: Path, monkeypatch) -> None:
    """docs/socket.md: "Each worker runs as [python, "-c", STAGE1] under the server's own
    interpreter (sys.executable), in its own session"."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("XNET_SECRET", raising=False)
    secret = write_secret(tmp_path / "secret", "promise-" + "ef" * 20)
    server = start_server(tmp_path, "--listen", "127.0.0.1:0", "--secret-file", str(secret))
    try:
        gateway = execnet_cli.makegateway(f"socket=127.0.0.1:{server.port}//secret_file={secret}")
        try:
            source = "import os, sys; channel.send((os.getpid(), os.getsid(0), sys.executable))"
            pid, sid, executable = gateway.remote_exec(source).receive(10)
        finally:
            gateway.exit()
    finally:
        stop_server(server)
    assert sid == pid
    assert os.path.realpath(executable) == os.path.realpath(sys.executable)


LEAKY_TESTS = """
import subprocess, threading, time
import execnet_cli

def test_leaves_a_thread():
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()

def test_leaves_a_child_and_its_child():
    subprocess.Popen(["/bin/sh", "-c", "sleep 30; exit 0"])

def test_leaves_a_gateway():
    execnet_cli.makegateway("popen")

def test_leaves_nothing():
    gateway = execnet_cli.makegateway("popen")
    gateway.exit()
"""


def test_the_suite_fails_a_test_that_leaves_a_thread_process_or_gateway(tmp_path: Path) -> None:
    """README: "The test suite fails any test that leaves a thread or a process, at any
    depth, behind." The suite's own conftest, on tests that leak each of them."""
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_leaky.py").write_text(LEAKY_TESTS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(TESTS.parent)]))
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_leaky.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "4 passed, 3 errors" in out  # the leaks fail their tests at teardown

    def verdict(test: str) -> str:
        header = f"ERROR at teardown of {test} "
        return out.split(header, 1)[1].split("\n", 2)[1] if header in out else ""

    assert verdict("test_leaves_a_thread").startswith("threads left running")
    assert verdict("test_leaves_a_child_and_its_child").startswith("child processes left")
    assert verdict("test_leaves_a_gateway").startswith("gateways not exited")
    assert verdict("test_leaves_nothing") == ""
    assert wait_until(lambda: not leftover_sleeps(tmp_path), 5)


def leftover_sleeps(where: Path) -> list[int]:
    """Nothing of the inner run survives it (the conftest kills what it finds)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.readlink(proc / "cwd") == str(where) and alive(int(proc.name)):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.fixture(autouse=True)
def _no_real_config(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


def test_alias_workers_write_fd_1_to_dev_null(tmp_path: Path) -> None:
    """docs/xdist.md, docs/execnet.md: "As in execnet's workers, the worker's fd 1 goes to
    /dev/null once the alias is in use" (pytest's terminal reporter on a worker must not
    print into the controller's output)."""
    out = run_controller(
        tmp_path,
        """
        import execnet
        gateway = execnet.makegateway()
        where = "import os; channel.send(os.readlink('/proc/self/fd/1'))"
        print(gateway.remote_exec(where).receive(30))
        gateway.exit()
        """,
    )
    assert out.strip() == "/dev/null"


def test_a_fork_server_with_a_thread_of_its_own_is_not_used(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    """docs/popen.md: the server "stays single-threaded (checked through /proc/self/task
    before it reports ready), which keeps fork() safe"; a preload that "starts a thread":
    that server is not used and workers are spawned."""
    (tmp_path / "xnet_threaded_probe.py").write_text(
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"
    )
    monkeypatch.chdir(tmp_path)  # where the server finds it (the controller never imports it)
    caplog.set_level("DEBUG", logger="execnet_cli")
    group = execnet_cli.Group()
    try:
        group.set_forkserver_preload(["xnet_threaded_probe"])
        gateway = group.makegateway("popen")
        assert type(gateway.transport).__name__ == "PopenTransport"  # spawned, not forked
        gateway.exit()
        assert "the fork server has threads of its own" in caplog.text
    finally:
        group.terminate(timeout=5)
