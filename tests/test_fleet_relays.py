"""Relays: hosts opened and served by relay gateways, on real popen workers and sshd hosts.

What a relayed run must keep of a direct one (the same events, results, exit statuses),
what it must do that a direct one does not (one gateway per relay on the controller, the
bootstrap served by the relay), and what happens when a relay is lost or the run is
stopped (its hosts unreachable, the rest finish, no process left anywhere).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Callable, List

import pytest
from click.testing import CliRunner
from faults_helpers import REMOTE_PYTHON
from proc_helpers import pid_alive, wait_until
from sshd_fixtures import SshdHost, descendants

from execnet_cli.cli import main
from execnet_cli.fleet import relays
from execnet_cli.fleet.events import (
    FAILED,
    INTERRUPTED,
    OK,
    TIMED_OUT,
    UNREACHABLE,
    Event,
    Output,
    Running,
)
from execnet_cli.fleet.jobs import python_job, shell_job
from execnet_cli.fleet.results import GroupResult
from execnet_cli.fleet.runner import Runner, run_job
from execnet_cli.inventory import Inventory, InventoryError

#: Two popen relays, each serving a rack; r2's rack has a host whose job raises, a host
#: that exits 3, and a host whose interpreter does not exist.
RACKS = """\
groups:
  relays:
    hosts: r[1-2]
    vars: {transport: popen}
  rack1:
    hosts: a[1-3]
    vars: {transport: popen, relay: r1, env: {NAP: "30"}}
  rack2:
    hosts: b[1-3]
    vars: {transport: popen, relay: r2}
hosts:
  b2: {env: {BOOM: "1"}}
  b3: {env: {CODE: "3"}}
  b4: {transport: popen, relay: r2, python: /nonexistent/python}
  solo: {transport: popen}
"""

REPORT = """\
import os, sys
with open("/proc/%d/stat" % os.getppid()) as stat:
    grandparent = stat.read().rpartition(")")[2].split()[1]
print("host", os.environ.get("BOOM", "-"), "parent", os.getppid(), grandparent)
print("warning", file=sys.stderr)
if os.environ.get("BOOM"):
    raise ValueError("boom")
sys.exit(int(os.environ.get("CODE", "0")))
"""

#: Prints its pid, then naps.
NAP = """\
import os, time
print(os.getpid(), flush=True)
time.sleep(float(os.environ.get("NAP", "0")))
"""


@pytest.fixture(scope="module")
def racks() -> Inventory:
    return Inventory.from_text(RACKS)


def _plan(inventory: Inventory, pattern: str, count: int = 0) -> relays.RelayPlan:
    return relays.plan(inventory.hosts(pattern), inventory.host, count)


def _run(inventory: Inventory, pattern: str, job, count: int = 0, **kwargs) -> GroupResult:  # type: ignore[no-untyped-def]
    plan = _plan(inventory, pattern, count)
    hosts = inventory.hosts(pattern)
    return run_job(hosts, job, carriers=plan.carriers, relays=plan.served, **kwargs)


# -- choosing relays --------------------------------------------------------------------


def test_the_relay_variable_places_hosts_and_unselected_relays_are_opened_only(
    racks: Inventory,
) -> None:
    plan = _plan(racks, "rack1,rack2,b4,solo")
    assert {k: [h.name for h in v] for k, v in plan.served.items()} == {
        "r1": ["a1", "a2", "a3"],
        "r2": ["b1", "b2", "b3", "b4"],
    }
    assert [h.name for h in plan.carriers] == ["r1", "r2"]
    assert _plan(racks, "solo").served == {}


def test_relays_n_picks_n_selected_hosts_spread_over_the_selection() -> None:
    inventory = Inventory.from_text(
        "groups:\n  w:\n    hosts: w[01-10]\n    vars: {transport: popen}\n"
    )
    plan = _plan(inventory, "all", 3)
    assert {k: [h.name for h in v] for k, v in plan.served.items()} == {
        "w01": ["w02", "w03"],
        "w04": ["w05", "w06"],
        "w07": ["w08", "w09", "w10"],
    }
    assert plan.carriers == []
    assert len(_plan(inventory, "w01,w02,w03", 5).served) == 0  # no relay serves nobody


def test_a_relay_must_be_a_known_host_and_its_hosts_relayable() -> None:
    with pytest.raises(InventoryError, match="relay names unknown host 'r9'"):
        Inventory.from_text("hosts:\n  a: {transport: popen, relay: r9}\n").host("a")
    inventory = Inventory.from_text(
        "hosts:\n  r: {transport: popen}\n  a: {transport: popen, relay: r, sudo: true}\n"
    )
    with pytest.raises(InventoryError, match="relay 'r' cannot open it"):
        _plan(inventory, "a")
    ansible = Inventory.from_text(
        "all:\n  hosts:\n    r: {ansible_connection: local}\n"
        "    a: {ansible_connection: local, xnet_relay: r}\n"
    )
    assert ansible.host("a").relay == "r"
    chained = Inventory.from_text(
        "hosts:\n  r: {transport: popen, relay: s}\n  s: {transport: popen}\n"
        "  a: {transport: popen, relay: r}\n"
    )
    with pytest.raises(InventoryError, match="'r' is a relay and cannot be relayed itself"):
        _plan(chained, "a")


def test_relays_n_leaves_the_hosts_the_inventory_places(racks: Inventory) -> None:
    plan = _plan(racks, "a1,b1,solo,r1,r2", 1)
    assert {k: [h.name for h in v] for k, v in plan.served.items()} == {
        "r1": ["a1"],
        "r2": ["b1"],
    }  # solo, r1 and r2 are free, but r1 and r2 are relays already: solo would serve nobody
    assert plan.carriers == []


def test_ssh_hosts_are_opened_with_the_settings_resolved_here(tmp_path: Path) -> None:
    inventory = Inventory.from_text(
        "hosts:\n  h: {address: 127.0.0.9, port: 2222, user: u, identity_file: /k/id,"
        " connect_timeout: 2.5}\n"
    )
    name, argv, env, config, timeout, fork = relays.host_entry(inventory.host("h"))
    assert argv is not None and argv[0] == "ssh" and argv[-2] == "127.0.0.9"
    words = " ".join(argv[:-1])
    assert "-p 2222 -l u" in words and "-i /k/id" in words and "ConnectTimeout=3" in words
    home = os.path.expanduser("~")
    assert f'UserKnownHostsFile="{home}/.ssh/known_hosts"' in words
    assert "BatchMode=yes" in words  # so "ask" (the default) refuses an unknown key
    assert "StrictHostKeyChecking=ask" in words or "StrictHostKeyChecking=yes" in words
    assert argv[-1].startswith("python3 -c ") and (name, env, config["id"]) == ("h", {}, "h")
    assert timeout == 30.0 and not fork
    options = "{ssh_options: {ServerAliveInterval: 14.5}}"
    alive = Inventory.from_text(f"hosts:\n  h: {options}\n").host("h")
    assert "ServerAliveInterval=15" in relays.host_entry(alive)[1]  # type: ignore[operator]
    popen = Inventory.from_text(
        "hosts:\n  p: {transport: popen}\n  q: {transport: popen, env: {LANG: C.UTF-8}}\n"
        "  s: {transport: popen, python: /usr/bin/python3}\n"
    )
    forks = {h: relays.host_entry(popen.host(h))[5] for h in "pqs"}
    assert forks == {"p": True, "q": False, "s": False}  # a start-up variable, another python


# -- popen relays -----------------------------------------------------------------------


def test_a_relayed_run_reports_what_a_direct_run_reports(racks: Inventory) -> None:
    pattern = "rack2,b4,solo"
    direct = run_job(racks.hosts(pattern), python_job(REPORT))
    relayed = _run(racks, pattern, python_job(REPORT))
    assert sorted(relayed) == sorted(direct)
    for name in direct:
        want, got = direct[name], relayed[name]
        assert (got.status, got.exit_code) == (want.status, want.exit_code), name
        assert got.stderr == want.stderr and got.error == want.error, name
        assert got.stdout.split(" parent")[0] == want.stdout.split(" parent")[0], name
    assert (relayed["b1"].status, relayed["b2"].status, relayed["b3"].exit_code) == (OK, FAILED, 3)
    assert "ValueError: boom" in (relayed["b2"].detail or "")
    assert relayed["b4"].status == UNREACHABLE and "/nonexistent/python" in (
        relayed["b4"].error or ""
    )


def test_the_controller_opens_only_the_relays_which_start_the_workers(racks: Inventory) -> None:
    plan = _plan(racks, "rack2")
    seen: List[str] = []
    hosts = racks.hosts("b[1-3]")
    served = {"r2": hosts}
    with Runner(hosts, python_job(REPORT), carriers=plan.carriers, relays=served) as runner:
        result = GroupResult()
        for event in runner.events():
            result.add(event)
            if isinstance(event, Running):
                seen.append(",".join(sorted(gw.id for gw in runner.group)))
        relay_pid = runner.group["r2"]._rinfo().pid
    assert set(seen) == {"r2"}
    for name in ("b1", "b3"):  # the relay's child, or its fork server's
        assert relay_pid in map(int, result[name].stdout.split()[3:5])


def test_many_lines_and_no_newline_at_the_end_arrive_whole(racks: Inventory) -> None:
    job = shell_job("seq 1 20000; printf tail")
    result = _run(racks, "b1", job)
    assert result["b1"].stdout == "".join(f"{n}\n" for n in range(1, 20001)) + "tail"


def test_a_job_past_its_timeout_is_killed_by_the_relay(racks: Inventory) -> None:
    result = _run(
        racks, "b1", python_job("import time; print('x', flush=True); time.sleep(60)", timeout=1)
    )
    assert result["b1"].status == TIMED_OUT and result["b1"].stdout == "x\n"
    sh = _run(racks, "b1", shell_job("sleep 60", timeout=1))
    assert sh["b1"].status == TIMED_OUT


def test_a_relay_that_does_not_open_makes_its_hosts_unreachable() -> None:
    inventory = Inventory.from_text(
        "hosts:\n  r: {transport: popen, python: /nonexistent/python}\n"
        "  a: {transport: popen, relay: r}\n  b: {transport: popen}\n"
    )
    result = _run(inventory, "a,b", python_job("print(1)"))
    assert result["b"].status == OK
    assert result["a"].status == UNREACHABLE
    assert (result["a"].error or "").startswith("relay r: unreachable (")


def _pids_from(event: Event) -> List[int]:
    if isinstance(event, Output) and event.stream == "out":
        return [int(word) for word in event.text.split()]
    return []


def _run_napping(
    inventory: Inventory, pattern: str, nappers: List[str], act: Callable[[Runner, int], None]
) -> tuple[GroupResult, List[int]]:
    """Run NAP; once every napper has printed its pid, ``act(runner, the pid of their relay's
    worker)``. Returns the result and the nappers' worker pids."""
    plan = _plan(inventory, pattern)
    hosts = inventory.hosts(pattern)
    workers: dict[str, int] = {}
    result = GroupResult()
    with Runner(hosts, python_job(NAP), carriers=plan.carriers, relays=plan.served) as runner:
        for event in runner.events():
            result.add(event)
            pids = _pids_from(event)
            if pids and event.host in nappers:
                workers[event.host] = pids[0]
                if len(workers) == len(nappers):
                    relay = inventory.host(event.host).relay
                    act(runner, runner.group[relay]._rinfo().pid)
    return result, list(workers.values())


#: What ``_kill`` found below the relays it killed (their fork servers, their workers).
_below_killed: List[int] = []


def _kill(runner: Runner, pid: int) -> None:
    _below_killed[:] = descendants(pid)
    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_a_relay_lost_mid_run(racks: Inventory, how: str) -> None:
    """rack1's jobs nap 30 s behind r1; rack2's end at once behind r2. Killing r1 makes
    rack1 unreachable and rack2 finishes; stopping the run interrupts rack1. Either way
    every worker r1 started is gone."""
    act = _kill if how == "killed" else lambda runner, pid: runner.stop()
    _below_killed.clear()
    result, workers = _run_napping(racks, "a[1-3],b1", ["a1", "a2", "a3"], act)
    workers += _below_killed
    lost = UNREACHABLE if how == "killed" else INTERRUPTED
    assert [result[h].status for h in ("a1", "a2", "a3")] == [lost] * 3
    if how == "killed":
        assert result["b1"].status == OK
        assert (result["a1"].error or "").startswith("relay r1: relay lost")
    assert wait_until(lambda: not any(pid_alive(p) for p in workers), 10)


# -- ssh --------------------------------------------------------------------------------


def _trust(hosts: List[SshdHost], home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A HOME whose known_hosts knows ``hosts`` (the relays' ssh clients get its path)."""
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text("".join(h.known_hosts_line() + "\n" for h in hosts))
    monkeypatch.setenv("HOME", str(home))


def _ssh_line(host: SshdHost, name: str, extra: str = "") -> str:
    import getpass

    return (
        f"  {name}: {{address: {host.address}, port: {host.port}, user: {getpass.getuser()},"
        f" identity_file: {host.key}, python: {REMOTE_PYTHON}{extra}}}\n"
    )


def test_an_ssh_relay_serves_popen_workers_on_its_host(
    sshd_hosts: Callable[[int], List[SshdHost]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (relay,) = sshd_hosts(1)
    _trust([relay], tmp_path / "home", monkeypatch)
    inventory = Inventory.from_text(
        "hosts:\n"
        + _ssh_line(relay, "r")
        + "  p1: {transport: popen, relay: r}\n  p2: {transport: popen, relay: r}\n"
    )
    job = python_job("import sys; print(sys.executable, sys.version_info[:2])")
    result = _run(inventory, "p1,p2", job)
    assert result.count(OK) == 2, {h: r.error for h, r in result.items()}
    assert result["p1"].stdout.split()[0] == os.path.realpath(REMOTE_PYTHON) or (
        result["p1"].stdout.startswith(REMOTE_PYTHON)
    )


def test_a_popen_relay_opens_ssh_hosts_with_openssh(
    sshd_hosts: Callable[[int], List[SshdHost]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hosts = sshd_hosts(3)
    _trust(hosts[:2], tmp_path / "home", monkeypatch)  # not the third
    text = "hosts:\n  r: {transport: popen}\n"
    for index, host in enumerate(hosts):
        text += _ssh_line(host, f"s{index + 1}", ", relay: r")
    inventory = Inventory.from_text(text)
    result = _run(inventory, "s[1-3]", shell_job("echo $SSH_CONNECTION"))
    assert [result[h].status for h in ("s1", "s2", "s3")] == [OK, OK, UNREACHABLE]
    assert result["s2"].stdout.split()[2] == hosts[1].address
    assert "Host key verification failed" in (result["s3"].error or "")


def test_an_ssh_relay_killed_mid_run(
    sshd_hosts: Callable[[int], List[SshdHost]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (relay,) = sshd_hosts(1)
    _trust([relay], tmp_path / "home", monkeypatch)
    inventory = Inventory.from_text(
        "hosts:\n"
        + _ssh_line(relay, "r")
        + "  p[1-2]: {transport: popen, relay: r, env: {NAP: '30'}}\n  q: {transport: popen}\n"
    )
    _below_killed.clear()
    result, workers = _run_napping(inventory, "p[1-2],q", ["p1", "p2"], _kill)
    assert len(_below_killed) >= 2  # the workers, and the relay's fork server if it has one
    workers += _below_killed
    assert [result[h].status for h in ("p1", "p2", "q")] == [UNREACHABLE, UNREACHABLE, OK]
    assert wait_until(lambda: not any(pid_alive(p) for p in workers), 10)


# -- the command line -------------------------------------------------------------------


def test_xnet_relays_keeps_the_exit_statuses_and_json(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
        "groups:\n  w:\n    hosts: w[01-08]\n    vars: {transport: popen}\n"
        "hosts:\n  w05: {env: {CODE: '3'}}\n"
    )
    runner = CliRunner()
    args = ["sh", "-i", str(inventory), "--relays", "2", "--json", 'echo hi; exit "${CODE:-0}"']
    out = runner.invoke(main, args)
    assert out.exit_code == 1, out.output
    lines = out.output.splitlines()
    assert len(lines) == 8 and sum('"status": "ok"' in line for line in lines) == 7
    ok = runner.invoke(
        main, ["run", "-i", str(inventory), "--relays", "3", "-H", "w0[1-4]", "print(2)"]
    )
    assert ok.exit_code == 0 and ok.output.count("2\n") == 1, ok.output  # gathered: once
    batches = ["sh", "-i", str(inventory), "--batch", "4", "--relays", "1", "--json", "echo hi"]
    rolled = runner.invoke(main, [*batches, "-H", "w0[1-4],w0[6-8]"])  # relays of each batch
    assert rolled.exit_code == 0, rolled.output
    assert rolled.output.count('"stdout": "hi\\n"') == 7, rolled.output


def test_workers_of_another_python_behind_a_relay() -> None:
    """The relay and its workers may run another Python than the controller."""
    python = REMOTE_PYTHON if os.path.exists(REMOTE_PYTHON) else sys.executable
    inventory = Inventory.from_text(
        f"hosts:\n  r: {{transport: popen, python: {python}}}\n"
        "  a: {transport: popen, relay: r}\n"
    )
    result = _run(inventory, "a", python_job("import sys; print(sys.version_info[0])"))
    assert result["a"].stdout == "3\n", result["a"].error


def test_fanout_bounds_the_hosts_each_relay_works_on_at_once(racks: Inventory) -> None:
    """With --fanout 1 a relay serves its hosts one after another: no two jobs overlap."""
    job = python_job("import time; a = time.time(); time.sleep(0.2); print(a, time.time())")
    result = _run(racks, "b1,b3", job, fanout=1)
    (a0, a1), (b0, b1) = (map(float, result[h].stdout.split()) for h in ("b1", "b3"))
    assert a1 <= b0 or b1 <= a0


#: What a worker finds of our secrets: in its environment, the block its process started
#: with, and its parent's (the relay's fork server, or the relay).
SECRETS = """\
import os
found = [os.environ.get(n) for n in ("XNET_SECRET", "XNET_SUDO_PASSWORD")]
for pid in ("self", str(os.getppid())):
    with open("/proc/%s/environ" % pid, "rb") as block:
        found.append(b"controllers-own" in block.read())
print(found)
"""


def test_relayed_workers_do_not_see_our_secrets(
    racks: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: the relay, its fork server and its hosts' workers start without them."""
    monkeypatch.setenv("XNET_SECRET", "the-controllers-own-secret")
    monkeypatch.setenv("XNET_SUDO_PASSWORD", "the-controllers-own-password")
    result = _run(racks, "b1,b3", python_job(SECRETS))
    assert {name: r.stdout for name, r in result.items()} == dict.fromkeys(
        ("b1", "b3"), "[None, None, False, False]\n"
    )
