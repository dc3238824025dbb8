"""Popen workers forked from a group's fork server: what they get, when forking is not
used, and that the server and its workers never outlive their group or controller."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from proc_helpers import pid_alive, run_in_threads, wait_gone

import execnet_cli
from execnet_cli.errors import BootstrapError
from execnet_cli.transports.forkserver import ForkedTransport
from execnet_cli.transports.popen import PopenTransport

PROBE = """
import os, sys
channel.send({
    "pid": os.getpid(),
    "ppid": os.getppid(),
    "cwd": os.getcwd(),
    "umask": os.umask(0o022),
    "env": dict(os.environ),
    "dont_write_bytecode": sys.dont_write_bytecode,
    "nice": os.nice(0),
    "executable": sys.executable,
})
"""

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or not hasattr(os, "pidfd_open"), reason="forking needs Linux pidfds"
)


def probe(gateway: execnet_cli.Gateway) -> dict:
    return gateway.remote_exec(PROBE).receive(30)


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(") ", 1)[1].split()[1])


@pytest.fixture
def group():
    group = execnet_cli.Group()
    yield group
    group.terminate(5)


@pytest.fixture(autouse=True)
def forking_on(monkeypatch):
    monkeypatch.delenv("XNET_POPEN_FORK", raising=False)


SECRET_PROBE = """
import os
with open("/proc/self/environ", "rb") as block:  # what the process was started with
    channel.send((os.environ.get(channel.receive()), block.read()))
"""


def probe_secret(gateway, name):
    channel = gateway.remote_exec(SECRET_PROBE)
    channel.send(name)
    return channel.receive(30)


@pytest.mark.parametrize("name", ["XNET_SECRET", "XNET_SUDO_PASSWORD"])
@pytest.mark.parametrize("spec", ["popen", "popen//spawn"])
def test_workers_do_not_inherit_our_secrets(group, monkeypatch, spec, name):
    """Issue 16: code a worker runs must not find the secret that opens socket gateways, nor
    the sudo password; neither in os.environ nor in the block its process started with (a
    fork server's)."""
    monkeypatch.setenv(name, "the-controllers-own-secret")
    gateway = group.makegateway(spec)
    assert isinstance(gateway.transport, PopenTransport if "spawn" in spec else ForkedTransport)
    value, block = probe_secret(gateway, name)
    assert value is None and b"the-controllers-own-secret" not in block
    assert gateway.remote_exec(PROBE).receive(30)["env"] == {
        key: value for key, value in os.environ.items() if key != name
    }
    chosen = group.makegateway(f"{spec}//env:{name}=given-on-purpose")
    assert probe_secret(chosen, name)[0] == "given-on-purpose"


def test_popen_workers_are_forked_from_one_server(group):
    first, second = group.makegateway(), group.makegateway()
    assert isinstance(first.transport, ForkedTransport)
    facts = [probe(first), probe(second)]
    server = facts[0]["ppid"]
    assert server != os.getpid() and parent_of(server) == os.getpid()
    assert facts[1]["ppid"] == server
    assert facts[0]["pid"] != facts[1]["pid"] == second._rinfo().pid
    assert facts[0]["executable"] == sys.executable


def test_a_forked_worker_gets_our_current_environment_directory_and_umask(
    group, tmp_path, monkeypatch
):
    probe(group.makegateway())  # the server starts with the environment of that moment
    monkeypatch.setenv("XNET_FORK_PROBE", "later")
    monkeypatch.delenv("USER", raising=False)
    monkeypatch.chdir(tmp_path)
    old_umask = os.umask(0o027)
    try:
        facts = probe(group.makegateway())
    finally:
        os.umask(old_umask)
    assert facts["env"]["XNET_FORK_PROBE"] == "later"
    assert "USER" not in facts["env"]
    assert facts["env"] == dict(os.environ)
    assert Path(facts["cwd"]) == tmp_path
    assert facts["umask"] == 0o027


def test_spec_settings_apply_to_a_forked_worker(group, tmp_path):
    spec = f"popen//env:XNET_SPEC_VAR=yes//chdir={tmp_path / 'sub'}//nice=3//dont_write_bytecode"
    gateway = group.makegateway(spec)
    assert isinstance(gateway.transport, ForkedTransport)
    facts = probe(gateway)
    assert facts["env"]["XNET_SPEC_VAR"] == "yes"
    assert facts["cwd"] == str(tmp_path / "sub")
    assert facts["dont_write_bytecode"] is True
    assert facts["nice"] >= 3


def test_remote_print_goes_to_our_stderr_as_it_is_now(group, capfd):
    probe(group.makegateway())
    capfd.readouterr()
    gateway = group.makegateway()  # forked while fd 2 is pytest's capture file
    gateway.remote_exec("print('from the forked worker')").waitclose(30)
    gateway.exit()
    assert "from the forked worker" in capfd.readouterr().err


@pytest.mark.parametrize(
    "spec, env",
    [
        ("popen//spawn", {}),
        ("popen//env:PYTHONPATH=/nowhere", {}),
        ("popen", {"XNET_POPEN_FORK": "0"}),
    ],
    ids=["spawn-key", "spec-startup-env", "turned-off"],
)
def test_when_forking_does_not_apply_a_new_interpreter_starts(group, monkeypatch, spec, env):
    probe(group.makegateway())  # a server exists, started with the old environment
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    gateway = group.makegateway(spec)
    assert isinstance(gateway.transport, PopenTransport)
    assert probe(gateway)["ppid"] == os.getpid()


def test_a_changed_startup_environment_gets_a_server_of_its_own(group, monkeypatch):
    old_server = probe(group.makegateway())["ppid"]
    monkeypatch.setenv("PYTHONNOUSERSITE", "1")  # read only when an interpreter starts
    gateway = group.makegateway()
    assert isinstance(gateway.transport, ForkedTransport)
    assert probe(gateway)["ppid"] != old_server
    assert gateway.remote_exec("import sys; channel.send(sys.flags.no_user_site)").receive(30)


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs /usr/bin/python3")
def test_another_interpreter_is_started_not_forked(group):
    gateway = group.makegateway("popen//python=/usr/bin/python3")
    assert isinstance(gateway.transport, PopenTransport)
    assert probe(gateway)["executable"] == "/usr/bin/python3"


def test_parallel_opens_share_one_server(group):
    gateways = []
    assert run_in_threads(lambda: gateways.append(group.makegateway()), 8) == []
    facts = [probe(gateway) for gateway in gateways]
    assert len({f["pid"] for f in facts}) == 8
    assert len({f["ppid"] for f in facts}) == 1


def test_terminate_ends_the_workers_then_the_server(group):
    gateways = [group.makegateway() for _ in range(3)]
    pids = [probe(gateway)["pid"] for gateway in gateways]
    server = parent_of(pids[0])
    group.terminate(5)
    for pid in [*pids, server]:
        assert wait_gone(pid, 10), f"pid {pid} outlived its group"


def test_a_killed_worker_is_reported_by_signal(group):
    gateway = group.makegateway()
    channel = gateway.remote_exec("channel.receive()")
    os.kill(gateway._rinfo().pid, signal.SIGKILL)
    with pytest.raises(EOFError):
        channel.waitclose(30)
    gateway.exit()
    assert gateway.transport.returncode == -signal.SIGKILL
    assert gateway.transport.exit_description() == "killed by signal 9"


def test_a_killed_server_spares_its_workers_and_is_replaced(group):
    gateway = group.makegateway()
    server = probe(gateway)["ppid"]
    os.kill(server, signal.SIGKILL)
    assert wait_gone(server)
    assert gateway.remote_exec("channel.send(6 * 7)").receive(30) == 42
    replacement = group.makegateway()
    assert isinstance(replacement.transport, ForkedTransport)
    assert probe(replacement)["ppid"] not in (server, os.getpid())
    gateway.exit()
    replacement.exit()
    # its reaper was killed: the worker's status is lost, which is said, not invented
    assert gateway.transport.exit_description().startswith("ended (its exit status was lost")


def test_a_stopped_server_is_retired_and_the_open_spawns(group, caplog):
    """Issue 16, defect 9: a SIGSTOPped fork server never answers; the open must not wait
    for it (it cost 10 s), but retire it (killed and reaped) and start an interpreter."""
    caplog.set_level("DEBUG", logger="execnet_cli.forkserver")
    gateway = group.makegateway()
    worker = probe(gateway)["pid"]
    server = parent_of(worker)
    os.kill(server, signal.SIGSTOP)
    started = time.monotonic()
    spawned = group.makegateway()
    took = time.monotonic() - started
    assert isinstance(spawned.transport, PopenTransport)
    assert took < 5.0, f"the open waited {took:.1f} s for a stopped fork server"
    assert not os.path.exists(f"/proc/{server}")  # killed and reaped, no zombie
    assert f"fork server pid {server} retired" in caplog.text
    assert probe(spawned)["ppid"] == os.getpid()
    assert gateway.remote_exec("channel.send(6 * 7)").receive(30) == 42  # spared
    group.terminate(5)
    assert wait_gone(worker), "the stopped server's worker outlived its group"
    assert isinstance(group.makegateway().transport, ForkedTransport)  # a new server


def test_a_server_that_never_answers_is_retired_at_the_reply_deadline(group, caplog):
    """A server that runs but does not answer (here: its answers go elsewhere) is retired
    after REPLY_TIMEOUT, and the open starts an interpreter."""
    import socket

    caplog.set_level("DEBUG", logger="execnet_cli.forkserver")
    gateway = group.makegateway()
    server = gateway.transport.server
    silent, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    real, server._control = server._control, silent
    try:
        spawned = group.makegateway()
        assert isinstance(spawned.transport, PopenTransport)
        assert f"fork server pid {server.process.pid} retired: no answer in 2 s" in caplog.text
        assert server.process.returncode is not None  # killed and reaped
    finally:
        real.close()
        peer.close()


def test_workers_ending_at_once_keep_their_exit_status(group):
    """Hundreds of workers ending at once overflow the server's socket with exit reports;
    none may be dropped (each dropped one cost its gateway a 2 s wait and its status)."""
    gateways = [group.makegateway() for _ in range(400)]
    for gateway in gateways:  # ended while nobody reads the server's socket
        os.kill(gateway.transport.pid, signal.SIGKILL)
    for gateway in gateways:
        assert wait_gone(gateway.transport.pid)
    group.terminate(30)
    lost = [gw.id for gw in gateways if gw.transport.returncode != -signal.SIGKILL]
    assert lost == []


def test_a_killed_controller_leaves_no_server_and_no_worker(tmp_path):
    script = tmp_path / "controller.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, execnet_cli
            gateways = [execnet_cli.makegateway() for _ in range(2)]
            for gw in gateways:
                gw.remote_exec("channel.receive()")
            pids = [gw._rinfo().pid for gw in gateways]
            server = int(open(f"/proc/{pids[0]}/stat").read().rsplit(") ", 1)[1].split()[1])
            print(server, *pids, flush=True)
            os.kill(os.getpid(), 9)
            """
        )
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    pids = [int(pid) for pid in out.stdout.split()]
    assert len(pids) == 3, out.stderr
    for pid in pids:
        assert wait_gone(pid, 10), f"pid {pid} outlived a SIGKILLed controller"


def test_a_failing_forked_worker_is_reported_with_its_status(group, capfd):
    # A niceness past a C int makes the forked worker's start raise (an impossible chdir
    # did until the worker learned to report it: tests/test_chdir.py).
    with pytest.raises(BootstrapError, match="exited with status 70") as info:
        group.makegateway(f"popen//nice={2**70}")
    assert "forked from" in str(info.value)
    assert "OverflowError" in capfd.readouterr().err  # the child's traceback
    assert isinstance(group.makegateway().transport, ForkedTransport)  # the server goes on


MODULE_LOADED = "import sys; channel.send({name!r} in sys.modules)"


def test_preloaded_modules_are_imported_in_every_worker(group):
    group.set_forkserver_preload(["fractions"])
    plain = execnet_cli.Group()
    try:
        for gateway in (group.makegateway(), group.makegateway()):
            assert isinstance(gateway.transport, ForkedTransport)
            assert gateway.remote_exec(MODULE_LOADED.format(name="fractions")).receive(30)
        assert (
            not plain.makegateway().remote_exec(MODULE_LOADED.format(name="fractions")).receive(30)
        )
    finally:
        plain.terminate(5)


def test_a_preload_that_fails_or_differs_means_no_forking(group, tmp_path, monkeypatch, caplog):
    caplog.set_level("DEBUG", logger="execnet_cli")
    group.set_forkserver_preload(["xnet_no_such_module"])
    assert isinstance(group.makegateway().transport, PopenTransport)
    assert "preloading xnet_no_such_module failed: ModuleNotFoundError" in caplog.text
    # the controller has the module from one directory, the server would find another
    for where in ("ours", "cwd"):
        (tmp_path / where).mkdir()
        (tmp_path / where / "xnet_preload_probe.py").write_text(f"WHERE = {where!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "ours"))
    monkeypatch.chdir(tmp_path / "cwd")
    import xnet_preload_probe  # noqa: F401

    try:
        other = execnet_cli.Group()
        other.set_forkserver_preload(["xnet_preload_probe"])
        gateway = other.makegateway()
        assert isinstance(gateway.transport, PopenTransport)
        assert "not the controller's" in caplog.text
        other.terminate(5)
    finally:
        sys.modules.pop("xnet_preload_probe", None)


def test_the_execnet_alias_preloads_pytest_for_xdist_workers(tmp_path):
    script = tmp_path / "controller.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import execnet
            plain = execnet.Group()
            print(plain.makegateway().remote_exec(PROBE).receive(30))
            plain.terminate()
            import xdist.workermanage  # what pytest-xdist's controller has imported
            group = execnet.Group(execmodel="main_thread_only")
            print(group.makegateway().remote_exec(PROBE).receive(30))
            group.terminate()
            """
        ).replace("PROBE", repr(MODULE_LOADED.format(name="pytest")))
    )
    alias = subprocess.run(
        [sys.executable, "-m", "execnet_cli.compat"], capture_output=True, text=True, check=True
    ).stdout.strip()
    paths = [alias, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]  # ours after it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.stdout.split() == ["False", "True"], out.stderr


def test_an_answer_to_an_abandoned_request_is_not_taken_for_the_next(group):
    """A caller interrupted after sending (Ctrl-C) leaves an answer behind; the next
    request must get its own child, and the abandoned child ends on its closed pipes."""
    import marshal
    import socket

    gateway = group.makegateway()
    server = gateway.transport.server
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    request = {"id": -1, "config": {}, "env": dict(os.environ), "cwd": "/", "umask": 0o022}
    socket.send_fds(server._control, [marshal.dumps(request)], [stdin_r, stdout_w, 2])
    for fd in (stdin_r, stdin_w, stdout_r, stdout_w):
        os.close(fd)
    second = group.makegateway()
    facts = probe(second)
    assert facts["pid"] == second.transport.pid
    assert facts["ppid"] == probe(gateway)["ppid"]


def test_a_terminated_group_keeps_its_preload_for_new_servers(group):
    group.set_forkserver_preload(["fractions"])
    probe(group.makegateway())
    group.terminate(5)
    gateway = group.makegateway()  # a new server for a group used again
    assert isinstance(gateway.transport, ForkedTransport)
    assert gateway.remote_exec(MODULE_LOADED.format(name="fractions")).receive(30)


def fork_server_pid(gateway: execnet_cli.Gateway) -> int:
    assert isinstance(gateway.transport, ForkedTransport)
    return gateway.transport.server.process.pid


def open_in_home(group, monkeypatch, home: str) -> execnet_cli.Gateway:
    """A gateway opened while HOME (read when an interpreter starts) is ``home``."""
    monkeypatch.setenv("HOME", home)
    gateway = group.makegateway("execmodel=main_thread_only//popen")
    assert gateway.remote_exec("import os; channel.send(os.environ['HOME'])").receive(30) == home
    return gateway


def test_a_fork_server_module_imported_again_never_fails_an_open(group, monkeypatch):
    """Issue 13: pytest's pytester drops the modules a run imported; the next run imports
    the fork server module again, whose ForkUnavailable is another class than the one the
    group's servers raise. No error of the fork server may reach an open."""
    from execnet_cli import transports
    from execnet_cli.transports import forkserver

    open_in_home(group, monkeypatch, "/nonexistent/home-first").exit()
    monkeypatch.delitem(sys.modules, forkserver.__name__)
    monkeypatch.delattr(transports, "forkserver")
    for i in range(forkserver.MAX_SERVERS + 2):
        open_in_home(group, monkeypatch, f"/nonexistent/home-{i}").exit()


def test_a_few_hundred_environments_each_open_and_never_more_servers_than_kept(group, monkeypatch):
    """Issue 13: a program that changes its start-up environment for every gateway (tests
    that set HOME each) gets every gateway, from at most MAX_SERVERS fork servers."""
    from execnet_cli.transports.forkserver import MAX_SERVERS

    servers = group._context.fork_servers()
    homes = iter([f"/nonexistent/home-{i}" for i in range(200)])
    lock = threading.Lock()
    seen: list[tuple[str, str, int]] = []

    def open_some() -> None:
        while True:
            with lock:  # the environment is the process's: one change and open at a time
                home = next(homes, None)
                if home is None:
                    return
                monkeypatch.setenv("HOME", home)
                gateway = group.makegateway("execmodel=main_thread_only//popen")
                seen.append((home, type(gateway.transport).__name__, len(servers)))
            # the workers run and end concurrently
            reported = gateway.remote_exec("import os; channel.send(os.environ['HOME'])")
            assert reported.receive(30) == home
            gateway.exit()

    assert run_in_threads(open_some, 4, timeout=300) == []
    assert len(seen) == 200
    assert max(count for _, _, count in seen) == MAX_SERVERS
    forked = [home for home, kind, _ in seen if kind == "ForkedTransport"]
    assert len(forked) == MAX_SERVERS  # one-off environments are not worth a server


def test_an_environment_seen_again_takes_the_place_of_the_least_recently_used_server(
    group, monkeypatch
):
    from execnet_cli.transports.forkserver import MAX_SERVERS

    homes = [f"/nonexistent/home-{i}" for i in range(MAX_SERVERS + 1)]
    servers = []
    for home in homes[:MAX_SERVERS]:
        gateway = open_in_home(group, monkeypatch, home)
        servers.append(fork_server_pid(gateway))
        gateway.exit()
    open_in_home(group, monkeypatch, homes[1]).exit()  # home-0's server is now the oldest
    once = open_in_home(group, monkeypatch, homes[-1])
    assert isinstance(once.transport, PopenTransport)  # a one-off: an interpreter starts
    again = open_in_home(group, monkeypatch, homes[-1])
    assert isinstance(again.transport, ForkedTransport)
    assert wait_gone(servers[0])
    assert all(pid_alive(pid) for pid in servers[1:])
    once.exit()
    again.exit()


def test_servers_with_workers_are_not_retired(group, monkeypatch):
    from execnet_cli.transports.forkserver import MAX_SERVERS

    held = [open_in_home(group, monkeypatch, f"/nonexistent/home-{i}") for i in range(MAX_SERVERS)]
    for _ in range(2):
        extra = open_in_home(group, monkeypatch, "/nonexistent/home-extra")
        assert isinstance(extra.transport, PopenTransport)
        extra.exit()
    for gateway in held:
        assert gateway.remote_exec("channel.send(6 * 7)").receive(30) == 42
        gateway.exit()
