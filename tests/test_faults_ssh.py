"""The fault suite over real sshd: hosts killed, stopped or cut off mid-run, and many hosts
behind one jump host whose sshd keeps its default ``MaxStartups``. Hosts that a case
kills or stops are its own (a private ``SshdCluster``), never the session's."""

from __future__ import annotations

import getpass
import json
import os
import signal
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from faults_helpers import (
    REMOTE_PYTHON,
    descendants,
    kill_all,
    pids_with,
    run_xnet,
    ssh_inventory,
    start_xnet,
    xnet_env,
)
from proc_helpers import pid_alive, wait_until
from sshd_fixtures import SshdCluster, SshdHost, find_sshd

import execnet_cli

pytestmark = pytest.mark.faults


def _cluster(tmp_path: Path, count: int, max_startups: str = "200:30:400") -> SshdCluster:
    sshd = find_sshd()
    if sshd is None:
        pytest.skip("OpenSSH sshd not found (apt-get install openssh-server)")
    workdir = tmp_path / "sshd"
    workdir.mkdir()
    cluster = SshdCluster(sshd, workdir, max_startups)
    try:
        cluster.start(count)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture
def own_hosts(tmp_path: Path) -> Iterator[List[SshdHost]]:
    """Eight sshd hosts of this test's own, which it may kill or stop."""
    cluster = _cluster(tmp_path, 8)
    try:
        yield cluster.hosts
    finally:
        for host in cluster.hosts:  # a stopped host must run again to be stopped for good
            for pid in [host.pid, *descendants(host.pid)]:
                try:
                    os.kill(pid, signal.SIGCONT)
                except OSError:
                    pass
        cluster.stop()


def _host_processes(host: SshdHost) -> List[int]:
    return [host.pid, *descendants(host.pid)]


def _json(out: bytes) -> Dict[str, dict]:
    return {row["name"]: row for row in map(json.loads, out.decode().splitlines())}


def test_one_host_killed_and_one_stopped_while_six_finish(own_hosts, tmp_path, figures):  # type: ignore[no-untyped-def]
    """`xnet run -t 6` on 8 hosts: one sshd killed, one host SIGSTOPped; the 6 others finish."""
    inventory = tmp_path / "eight.yaml"
    inventory.write_text(ssh_inventory(own_hosts))
    env = xnet_env(tmp_path / "home", own_hosts)
    flags = tmp_path / "up"
    flags.mkdir()
    code = (
        "import os, time\n"
        f"open(os.path.join({str(flags)!r}, str(os.getpid())), 'w').close()\n"
        "time.sleep(2)\nprint('done')\n"
    )
    proc = start_xnet(["run", code, "-t", "6", "-i", str(inventory), "--json"], env)
    started = time.monotonic()
    try:
        assert wait_until(lambda: len(list(flags.iterdir())) == 8, 30), "not all hosts started"
        killed, stopped = own_hosts[0], own_hosts[1]
        kill_all(_host_processes(killed))
        for pid in _host_processes(stopped):
            os.kill(pid, signal.SIGSTOP)
        faulted = time.monotonic()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - faulted
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    rows = _json(out)
    assert len(rows) == 8, err
    ok = [name for name, row in rows.items() if row["status"] == "ok"]
    assert sorted(ok) == [f"n{k:02d}" for k in range(3, 9)], rows
    assert rows["n01"]["status"] != "ok" and "done" not in rows["n01"]["stdout"]
    assert "timed out" in (rows["n02"]["error"] or ""), rows["n02"]
    assert proc.returncode not in (0, 2, 3), proc.returncode
    assert took < 20
    figures.seconds("6 ok, n01 lost, n02 timed out; xnet ended after the faults in", took, 20)
    figures.seconds("n01 (sshd killed) reported after", rows["n01"]["duration"])
    figures.note(f"exit status {proc.returncode}; whole run {time.monotonic() - started:.1f} s")


def test_connection_cut_under_an_open_gateway(own_hosts, figures):  # type: ignore[no-untyped-def]
    """The sshd process serving an open gateway killed: the gateway ends, the worker too."""
    host = own_hosts[2]
    gateway = execnet_cli.makegateway(host.spec(python=REMOTE_PYTHON))
    try:
        worker = gateway._rinfo().pid
        channel = gateway.remote_exec("channel.send(1)\nchannel.receive()")
        assert channel.receive(10) == 1
        kill_all(host.connection_pids())
        cut = time.monotonic()
        with pytest.raises(EOFError):
            channel.receive(10)
        noticed = time.monotonic() - cut
    finally:
        gateway.exit()
    assert wait_until(lambda: not pid_alive(worker), 10), "the worker outlived its connection"
    figures.seconds("gateway ended in", noticed, 10)
    figures.seconds("worker gone after", time.monotonic() - cut, 10)


#: A command that says it is up, sleeps (a ``sleep`` process, whose command line is found
#: by its marker) and says it is done: for ``xnet sh`` (on the session channel) and ``xnet
#: run`` (a Python worker).
SLEEPERS = {
    "sh": "echo up; sleep {marker}; echo done",
    "run": "import subprocess\nprint('up', flush=True)\nsubprocess.run(['sleep', '{marker}'])\n"
    "print('done')",
}


@pytest.mark.parametrize("command", ["sh", pytest.param("run", marks=pytest.mark.slow)])
def test_a_host_that_goes_away_mid_command(own_hosts, tmp_path, command, figures):  # type: ignore[no-untyped-def]
    """A host whose sshd dies during `xnet sh` or `xnet run`: it fails, the other finishes,
    nothing is left."""
    hosts = own_hosts[3:5]
    inventory = tmp_path / "two.yaml"
    inventory.write_text(ssh_inventory(hosts))
    env = xnet_env(tmp_path / "home", hosts)
    marker = f"3.{os.getpid()}7"
    code = SLEEPERS[command].format(marker=marker)
    proc = start_xnet([command, code, "-i", str(inventory), "--json"], env)
    try:
        sleeping = f"sleep\0{marker}"  # the sleep processes (xnet's own command line has it too)
        assert wait_until(lambda: len(pids_with(sleeping)) == 2, 30), proc.communicate(timeout=30)
        kill_all(_host_processes(hosts[0]))
        gone = time.monotonic()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    rows = _json(out)
    assert rows["n02"]["status"] == "ok" and rows["n02"]["stdout"] == "up\ndone\n", rows
    assert rows["n01"]["status"] != "ok", rows
    assert wait_until(lambda: not pids_with(sleeping), 10)
    figures.seconds(
        f"`xnet {command}`: the lost host reported; run ended after", time.monotonic() - gone
    )


def _behind_jump(
    count: int, tmp_path: Path, targets: List[SshdHost], command: str, figures
) -> None:  # type: ignore[no-untyped-def]
    jump_cluster = _cluster(tmp_path, 1, max_startups="10:30:100")  # sshd's default
    try:
        jump = jump_cluster.hosts[0]
        with jump_cluster.authorized_keys.open("a") as keys:  # the targets' key (inherited)
            keys.write(Path(f"{targets[0].key}.pub").read_text())
        hosts = [targets[k % len(targets)] for k in range(count)]
        names = [f"t{k:02d}" for k in range(count)]
        text = ssh_inventory(hosts, names).replace(
            "vars:\n", f"vars:\n  proxy_jump: {getpass.getuser()}@{jump.address}:{jump.port}\n", 1
        )
        inventory = tmp_path / "behind.yaml"
        inventory.write_text(text)
        env = xnet_env(tmp_path / "home", [*targets, jump])
        started = time.monotonic()
        job = "echo ok" if command == "sh" else "print('ok')"
        done = run_xnet([command, job, "-i", str(inventory), "--json"], env, timeout=300)
        took = time.monotonic() - started
    finally:
        jump_cluster.stop()
    rows = _json(done.stdout)
    bad = {name: row["error"] for name, row in rows.items() if row["status"] != "ok"}
    assert len(rows) == count and bad == {}, done.stderr.decode()[-2000:]
    figures.note(
        f"`xnet {command}`: {count} hosts behind one jump host (MaxStartups 10:30:100): "
        f"all ok in {took:.1f} s"
    )


@pytest.mark.parametrize("command", ["sh", pytest.param("run", marks=pytest.mark.slow)])
def test_hosts_behind_one_jump_host(sshd_hosts, tmp_path, command, figures):  # type: ignore[no-untyped-def]
    """24 hosts behind one jump host with sshd's default MaxStartups: none dropped."""
    _behind_jump(24, tmp_path, sshd_hosts(8), command, figures)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("command", ["sh", "run"])
def test_64_hosts_behind_one_jump_host(sshd_hosts, tmp_path, command, figures):  # type: ignore[no-untyped-def]
    """64 hosts behind one jump host with sshd's default MaxStartups: none dropped."""
    _behind_jump(64, tmp_path, sshd_hosts(64), command, figures)
