"""Import forwarding through relays (``_remote/relay_imports.py``): hosts behind popen and
ssh relays import a package that exists only in the controller's temp dir, the relay
answers them from its own cache (each request reaches the controller once per relay),
the controller's policy decides, and a relay lost while a host imports loses only its
own hosts."""

from __future__ import annotations

import ast
import json
import os
import signal
from pathlib import Path
from typing import Callable, List

import pytest
from click.testing import CliRunner
from imports_helpers import SYSTEM_PYTHON, make_package
from proc_helpers import pid_alive, wait_until
from sshd_fixtures import SshdHost
from test_fleet_relays import _ssh_line, _trust

from execnet_cli.cli import main
from execnet_cli.fleet import relays
from execnet_cli.fleet.events import OK, UNREACHABLE, Output
from execnet_cli.fleet.jobs import call_job, python_job
from execnet_cli.fleet.results import GroupResult
from execnet_cli.fleet.runner import Runner, run_job
from execnet_cli.imports import ImportPolicy, ImportServer, Root
from execnet_cli.inventory import Inventory

pytestmark = pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="no /usr/bin/python3")

#: Uses the package every way the issue lists; prints one JSON line of what happened.
PROBE = """
import json, sys
import ctrlonly.tasks
from importlib.resources import files
out = {
    "deploy": ctrlonly.tasks.deploy(),
    "data": files("ctrlonly").joinpath("data/greeting.txt").read_text(),
    "listing": sorted(entry.name for entry in files("ctrlonly").iterdir()),
}
for name in ("ctrlonly.broken", "ctrlonly._c", "ctrlonly.leak", "beside", "nosuch_xyz"):
    try:
        __import__(name)
    except Exception as exc:
        out[name] = type(exc).__name__ + ": " + str(exc)
finder = [f for f in sys.meta_path if type(f).__name__ == "ControllerImporter"][0]
out["asked"] = [
    list(finder.ask(("read", "ctrlonly", "../../secret.py"))),
    list(finder.ask(("find", "../beside"))),
    list(finder.ask(("bogus", 1))),
]
print(json.dumps(out))
"""

#: Two relays not selected (they only carry), three hosts of the system's Python each.
RACKS = """\
groups:
  relays:
    hosts: r[1-2]
    vars: {{transport: popen}}
  rack1:
    hosts: a[1-3]
    vars: {{transport: popen, relay: r1, python: {python}, chdir: {workdir}}}
  rack2:
    hosts: b[1-3]
    vars: {{transport: popen, relay: r2, python: {python}, chdir: {workdir}}}
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The package, beside it a module outside the roots, and a link out of the root."""
    root = make_package(tmp_path / "controller")
    (root / "beside.py").write_text("X = 1\n")
    (tmp_path / "secret.py").write_text("KEY = 'x'\n")
    (root / "ctrlonly" / "leak.py").symlink_to(tmp_path / "secret.py")
    (root / "ctrlonly" / "_c.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    return root


@pytest.fixture
def racks(tmp_path: Path) -> Inventory:
    workdir = tmp_path / "worker"
    workdir.mkdir()
    return Inventory.from_text(RACKS.format(python=SYSTEM_PYTHON, workdir=workdir))


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> List[tuple]:
    """Every request the controller answers, as (server, request)."""
    seen: List[tuple] = []
    answer = ImportServer.answer

    def counting(self: ImportServer, request: object) -> object:
        seen.append((id(self), request))
        return answer(self, request)

    monkeypatch.setattr(ImportServer, "answer", counting)
    return seen


def _run(inventory: Inventory, pattern: str, job, **kwargs) -> GroupResult:  # type: ignore[no-untyped-def]
    plan = relays.plan(inventory.hosts(pattern), inventory.host)
    hosts = inventory.hosts(pattern)
    return run_job(hosts, job, carriers=plan.carriers, relays=plan.served, **kwargs)


def _policy(root: Path) -> ImportPolicy:
    """The package only, as ``-m ctrlonly...`` serves it (not ``beside`` next to it)."""
    return ImportPolicy((Root(str(root), only="ctrlonly"),))


def _probed(result: GroupResult, host: str) -> dict:
    assert result[host].status == OK, (result[host].error, result[host].detail)
    return json.loads(result[host].stdout.splitlines()[-1])


def _check_probe(got: dict) -> None:
    assert got["deploy"] == {"deep": 42, "version": "1.0"}  # a subpackage, relative imports
    assert got["data"] == "hello from the controller\n"
    assert "greeting.txt" not in got["listing"] and "data" in got["listing"]
    assert ".secret" not in got["listing"]
    assert got["ctrlonly.broken"] == "RuntimeError: broken at import"
    assert got["ctrlonly._c"].startswith("ImportError: ctrlonly._c is a compiled extension")
    assert "outside the directories the controller serves" in got["ctrlonly.leak"]
    assert got["beside"] == "ModuleNotFoundError: No module named 'beside'"
    assert got["nosuch_xyz"] == "ModuleNotFoundError: No module named 'nosuch_xyz'"
    read, find, bogus = got["asked"]
    assert read[0] == "refused" and "'..'" in read[1]
    assert find[0] == "refused" and "not a module name" in find[1]
    assert bogus[0] == "refused" and "malformed import request" in bogus[1]


def test_hosts_behind_popen_relays_import_from_the_controller(
    racks: Inventory, root: Path, asked: List[tuple]
) -> None:
    result = _run(racks, "rack1,rack2", python_job(PROBE, imports=_policy(root)))
    for host in ("a1", "a2", "a3", "b1", "b2", "b3"):
        _check_probe(_probed(result, host))


def test_each_request_reaches_the_controller_once_per_relay(
    racks: Inventory, root: Path, asked: List[tuple]
) -> None:
    """Six hosts behind two relays, asking at once (fanout 8): the controller answers each
    request once per relay. Were every host to ask, "ctrlonly" alone would come 6 times."""
    result = _run(racks, "rack1,rack2", python_job(PROBE, imports=_policy(root)), fanout=8)
    assert result.count(OK) == 6
    servers = {server for server, _ in asked}
    assert len(servers) == 2  # one import server per relay, none per host
    assert len(asked) == len(set(asked)), sorted(map(repr, asked))
    assert sum(request == ("find", "ctrlonly") for _, request in asked) == 2
    assert sum(request[0] == "read" for _, request in asked) == 2 * 2  # greeting, secret


def test_xnet_run_m_with_relays_and_json(
    env: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--relays 2`` on five hosts: the relays run it themselves (directly served), the
    three others behind them; every host reports the function's value."""
    workdir = env / "worker"
    workdir.mkdir()
    (env / "hosts.yaml").write_text(
        "groups:\n  w:\n    hosts: w[1-5]\n"
        f"    vars: {{transport: popen, python: {SYSTEM_PYTHON}, chdir: {workdir}}}\n"
    )
    monkeypatch.chdir(root)
    base = ["run", "-i", str(env / "hosts.yaml"), "--relays", "2"]
    out = CliRunner().invoke(main, [*base, "--json", "-m", "ctrlonly.tasks:deploy"])
    assert out.exit_code == 0, out.output
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(r["name"] for r in records) == [f"w{i}" for i in range(1, 6)]
    assert all(r["value"] == {"deep": 42, "version": "1.0"} for r in records)
    shown = CliRunner().invoke(main, [*base, "-m", "ctrlonly.tasks:data"])
    assert shown.stdout.splitlines()[1:] == ["=> 'hello from the controller\\n'"], shown.output
    raising = CliRunner().invoke(main, [*base, "-m", "ctrlonly.tasks:raising"])
    assert raising.exit_code == 1
    assert "ValueError: deploy failed on purpose" in raising.stdout
    tools = env / "tools"
    tools.mkdir()
    (tools / "check.py").write_text("import checklib\nprint(checklib.verdict())\n")
    (tools / "checklib.py").write_text("def verdict():\n    return 'all good'\n")
    script = CliRunner().invoke(main, [*base, "--file", str(tools / "check.py")])
    assert script.exit_code == 0, script.output
    assert script.stdout.splitlines()[1:] == ["all good"]


#: At import: prints the pids of its worker and of the worker's parent (the relay: the
#: system's Python is started by the relay itself), then naps.
SLOW = "import os, time\nprint(os.getpid(), os.getppid(), flush=True)\ntime.sleep(30)\n"


def test_a_relay_lost_while_its_hosts_import(root: Path, tmp_path: Path) -> None:
    """r1 is killed while a1 is inside an import: rack1 is unreachable (the relay is lost),
    rack2 finishes, and no worker r1 started is left."""
    (root / "ctrlonly" / "slow.py").write_text(SLOW)
    code = (
        "import os\nif os.environ.get('SLOW'):\n    import ctrlonly.slow\nimport ctrlonly.tasks\n"
    )
    inventory = Inventory.from_text(
        RACKS.format(python=SYSTEM_PYTHON, workdir=tmp_path).replace(
            "relay: r1,", "relay: r1, env: {SLOW: '1'},"
        )
    )
    plan = relays.plan(inventory.hosts("rack1,rack2"), inventory.host)
    result = GroupResult()
    workers: List[int] = []
    job = python_job(code, imports=_policy(root))
    with Runner(
        inventory.hosts("rack1,rack2"), job, carriers=plan.carriers, relays=plan.served
    ) as runner:
        for event in runner.events():
            result.add(event)
            if isinstance(event, Output) and event.stream == "out" and event.host == "a1":
                worker, relay = map(int, event.text.split())
                workers.append(worker)
                os.kill(relay, signal.SIGKILL)
    assert workers, "a1 never reached the slow import"
    assert [result[h].status for h in ("a1", "a2", "a3")] == [UNREACHABLE] * 3
    assert (result["a1"].error or "").startswith("relay r1: relay lost")
    assert [result[h].status for h in ("b1", "b2", "b3")] == [OK] * 3
    assert wait_until(lambda: not any(pid_alive(p) for p in workers), 10)


# -- ssh ----------------------------------------------------------------------------------


@pytest.fixture
def trusted(
    sshd_hosts: Callable[[int], List[SshdHost]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> List[SshdHost]:
    """Two sshd hosts a HOME's known_hosts knows (the relays' ssh clients read it)."""
    hosts = sshd_hosts(2)
    _trust(hosts, tmp_path / "home", monkeypatch)
    return hosts


def test_an_ssh_relay_serves_imports_to_popen_hosts(
    trusted: List[SshdHost], tmp_path: Path, root: Path, asked: List[tuple]
) -> None:
    relay = trusted[0]
    inventory = Inventory.from_text(
        "hosts:\n"
        + _ssh_line(relay, "r")
        + f"  p[1-2]: {{transport: popen, relay: r, python: {SYSTEM_PYTHON}, chdir: {tmp_path}}}\n"
    )
    result = _run(inventory, "p[1-2]", python_job(PROBE, imports=_policy(root)))
    for host in ("p1", "p2"):
        _check_probe(_probed(result, host))
    assert sum(request == ("find", "ctrlonly") for _, request in asked) == 1


def test_a_popen_relay_serves_imports_to_ssh_hosts(
    trusted: List[SshdHost], root: Path, asked: List[tuple]
) -> None:
    text = "hosts:\n  r: {transport: popen}\n"
    for index, host in enumerate(trusted):
        text += _ssh_line(host, f"s{index + 1}", ", relay: r")
    result = _run(
        Inventory.from_text(text),
        "s[1-2]",
        call_job("ctrlonly.tasks:deploy", imports=_policy(root)),
    )
    for host in ("s1", "s2"):
        assert result[host].status == OK, (result[host].error, result[host].detail)
        assert result[host].returned is not None
        assert result[host].returned.value == {"deep": 42, "version": "1.0"}
    assert sum(request == ("find", "ctrlonly") for _, request in asked) == 1


def test_namespace_packages_and_listings_through_a_relay(
    racks: Inventory, root: Path, tmp_path: Path
) -> None:
    from test_imports import NAMESPACES, check_namespaces, namespace_roots

    code = NAMESPACES.replace("channel.send({", "print(repr({").rstrip() + ")\n"
    policy = ImportPolicy.from_directories(namespace_roots(root, tmp_path))
    result = _run(racks, "a[1-2]", python_job(code, imports=policy))
    for host in ("a1", "a2"):
        assert result[host].status == OK, (result[host].error, result[host].detail)
        check_namespaces(ast.literal_eval(result[host].stdout))
