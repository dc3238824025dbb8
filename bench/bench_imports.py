"""Import forwarding: the first import of a 50-module package on 32 hosts at once.

    python3 bench/bench_imports.py [--quick] [--hosts N] [--rounds N]

Contenders, interleaved round by round (``common.interleaved``), figures are medians:

(forwarded)  our workers import ``benchpkg`` from the controller (``serve_imports``):
             the forwarding set-up (sending ``_remote/imports`` and installing the finder)
             and the import itself, every module asked for and sent once per worker;
(installed)  our workers import the same package from their own disk, its bytecode
             cached (``__pycache__``), as an installed package would be;
(mitogen)    mitogen's own import forwarding (``router.local`` contexts calling a
             function of the package), where mitogen is installed.

With ``--relays R`` (default 4; 0 leaves them out) two more rows, runs of ``xnet run``'s
runner (``run_job``, fanout 32) with a job that imports the package, forwarding on:

(run direct)     the controller opens every host and serves each one's imports;
(run, R relays)  R popen relays (not selected: they only carry) open the hosts, and each
                 answers its hosts' imports from its own cache, asking the controller once.

Their hosts run this interpreter (the package is not on its path), so that both sides
fork them (the controller's fork server, or each relay's: ``docs/relays.md``); hosts of
another Python are started as new interpreters by a relay, which costs more than the
import. Each also runs with a job that imports nothing (``, no import``: the same set-up),
so that the import's own share of the wall shows. These rows include opening the hosts (a
relay opens its own), so they compare with each other, not with the rows above. For them
the table also gives the bytes of import answers the controller sent (serialized), per
run.

"Hosts" are popen workers running /usr/bin/python3 on this machine, all on its two
cores: wall time mixes the workers' CPU (compiling 50 modules each) with the
controller's. So each figure is given three ways: wall time for the import on all hosts,
the controller's CPU per host (this process, all threads, during the import), and the
workers' CPU per host (``time.process_time`` in the worker around the import). Opening
the workers is not timed; every round starts fresh ones, and the controller's file cache
is cleared before each forwarded round (a first import is a cold one).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from common import (
    Results,
    Targets,
    add_common_args,
    fmt_ms,
    fmt_ratio,
    interleaved,
    median,
    print_table,
    ratio,
    spread,
)

import execnet_cli
from execnet_cli._remote.serializer import dumps
from execnet_cli.fleet import relays as relay_plan
from execnet_cli.fleet.events import OK
from execnet_cli.fleet.jobs import python_job
from execnet_cli.fleet.runner import run_job
from execnet_cli.imports import CACHE, ImportPolicy, ImportServer, serve_imports
from execnet_cli.inventory import Inventory

PYTHON = "/usr/bin/python3"
MODULES = 50
FORWARDED, INSTALLED, MITOGEN = "forwarded (ours)", "installed (ours)", "forwarded (mitogen)"
RUN_DIRECT = "run direct (ours)"
NO_IMPORT = ", no import"

#: One module of the package: a few classes and functions, ~4 KB like a real module.
MODULE = '''\
"""Generated module {index} of benchpkg."""

import os
import re

PATTERN = re.compile(r"item-(\\d+)")


class Record{index}:
    """A record with a few methods."""

    def __init__(self, name, size=0):
        self.name = name
        self.size = size

    def __repr__(self):
        return "Record{index}(%r, %r)" % (self.name, self.size)

    def grow(self, amount):
        self.size += amount
        return self.size

    def matches(self, text):
        found = PATTERN.search(text)
        return bool(found) and found.group(1) == str(self.size)


class Store{index}:
    def __init__(self):
        self.records = {{}}

    def add(self, record):
        self.records[record.name] = record

    def total(self):
        return sum(r.size for r in self.records.values())

    def names(self):
        return sorted(self.records)


def build(count):
    store = Store{index}()
    for i in range(count):
        store.add(Record{index}("r%d" % i, i))
    return store


def summary(store):
    lines = []
    for name in store.names():
        lines.append("%s=%d" % (name, store.records[name].size))
    return os.linesep.join(lines)
''' + "\n".join(
    f"def helper_{n}(value):\n    return [v * {n} for v in value if v % {n + 1}]\n"
    for n in range(40)
)

INIT = "\n".join(
    ['"""A generated package of 50 modules (bench_imports.py)."""', ""]
    + [f"from . import m{i:02d}" for i in range(MODULES)]
    + [
        "",
        "",
        "def probe():",
        "    import time",
        "",
        "    return time.process_time()",
        "",
    ]
)

#: Worker side: CPU before and after importing the package (one item back).
IMPORT_IT = """\
import time
before = time.process_time()
import benchpkg
channel.send((before, time.process_time(), len([m for m in __import__('sys').modules
                                                 if m.startswith('benchpkg')])))
"""

#: The same as an ``xnet run`` job: the worker's CPU for the import, and the modules.
IMPORT_JOB = """\
import sys, time
before = time.process_time()
import benchpkg
print(time.process_time() - before, len([m for m in sys.modules if m.startswith("benchpkg")]))
"""


def make_package(root: Path) -> None:
    package = root / "benchpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(INIT)
    for index in range(MODULES):
        (package / f"m{index:02d}.py").write_text(MODULE.format(index=index))


class Lab:
    """The directories and the per-round measurements of one run."""

    def __init__(self, hosts: int, relays: int = 0) -> None:
        self.hosts = hosts
        self.relays = relays
        self.answered = 0  # bytes of import answers sent, counted in ``fleet`` runs
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-imports-"))
        self.controller = self.tmp / "controller"  # the package, served from here
        self.installed = self.tmp / "installed"  # the package, on the workers' own path
        self.empty = self.tmp / "empty"  # where forwarded workers run: no package
        for place in (self.controller, self.installed):
            make_package(place)
        self.empty.mkdir()
        import compileall  # the installed copy has its bytecode, as pip leaves it

        compileall.compile_dir(str(self.installed), quiet=1)
        self.policy = ImportPolicy.from_directories([str(self.controller)])
        self.figures: Dict[str, List[Dict[str, float]]] = {}

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def record(
        self, name: str, wall: float, cpu: float, remote: List[float], **more: float
    ) -> float:
        self.figures.setdefault(name, []).append(
            {
                "wall": wall,
                "cpu_per_host": cpu / self.hosts,
                "remote_per_host": median(remote),
                **more,
            }
        )
        return wall

    # -- xnet run's runner, direct or through relays -----------------------------------------

    def inventory(self, relays: int) -> Inventory:
        """``hosts`` popen hosts of this interpreter in the empty directory, shared among
        ``relays`` popen relays that only carry."""
        lines = ["hosts:"]
        for r in range(relays):
            lines.append(f"  r{r}: {{transport: popen}}")
        for i in range(self.hosts):
            relay = f", relay: r{i * relays // self.hosts}" if relays else ""
            lines.append(f"  h{i:02d}: {{transport: popen, chdir: {self.empty}{relay}}}")
        return Inventory.from_text("\n".join(lines) + "\n")

    def fleet(self, relays: int, imports: bool = True) -> float:
        """A run importing the package (``imports``), or the same run with a job that
        imports nothing (forwarding set up all the same): the difference is the import's."""
        inventory = self.inventory(relays)
        hosts = inventory.hosts("h*")
        plan = relay_plan.plan(hosts, inventory.host)
        code = IMPORT_JOB if imports else f"print(0.0, {MODULES + 1})"
        job = python_job(code, imports=self.policy)
        CACHE.clear()
        self.answered = 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        result = run_job(hosts, job, carriers=plan.carriers, relays=plan.served, fanout=32)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        bad = {h: r.error for h, r in result.items() if r.status != OK}
        assert not bad, list(bad.items())[:3]
        figures = [result[h.name].stdout.split() for h in hosts]
        assert all(int(f[1]) == MODULES + 1 for f in figures), figures[0]
        name = f"run, {relays} relays (ours)" if relays else RUN_DIRECT
        name += "" if imports else NO_IMPORT
        remote = [float(f[0]) for f in figures]
        return self.record(name, wall, cpu, remote, answer_bytes=float(self.answered))

    # -- ours ------------------------------------------------------------------------------

    def ours(self, forwarded: bool) -> float:
        where = self.empty if forwarded else self.installed
        group = execnet_cli.Group()
        try:
            gateways = _open_all(
                lambda i: group.makegateway(f"popen//python={PYTHON}//chdir={where}//id=h{i}"),
                self.hosts,
            )
            if forwarded:
                CACHE.clear()
            cpu0, t0 = time.process_time(), time.perf_counter()
            if forwarded:
                _each(gateways, lambda gw: serve_imports(gw, self.policy))
            channels = [gw.remote_exec(IMPORT_IT) for gw in gateways]
            answers = [ch.receive(120) for ch in channels]
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            assert all(a[2] == MODULES + 1 for a in answers), answers[0]
            if forwarded:
                assert CACHE.reads == MODULES + 1, CACHE.reads  # one read per file, all hosts
        finally:
            group.terminate(10)
        name = FORWARDED if forwarded else INSTALLED
        return self.record(name, wall, cpu, [a[1] - a[0] for a in answers])

    # -- mitogen ---------------------------------------------------------------------------

    def mitogen(self) -> float:
        import mitogen.master

        sys.path.insert(0, str(self.controller))
        try:
            import benchpkg
        finally:
            sys.path.remove(str(self.controller))
        broker = mitogen.master.Broker()
        router = mitogen.master.Router(broker)
        try:
            contexts = _open_all(lambda i: router.local(python_path=PYTHON), self.hosts)
            befores = [c.call_async(time.process_time) for c in contexts]
            before = [b.get().unpickle() for b in befores]
            cpu0, t0 = time.process_time(), time.perf_counter()
            calls = [c.call_async(benchpkg.probe) for c in contexts]
            after = [call.get().unpickle() for call in calls]
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        finally:
            broker.shutdown()
            broker.join()
            for name in [m for m in sys.modules if m.startswith("benchpkg")]:
                del sys.modules[name]
        return self.record(MITOGEN, wall, cpu, [a - b for a, b in zip(after, before)])


def _open_all(open_one: Callable[[int], Any], count: int) -> List[Any]:
    """``count`` workers opened concurrently (8 at a time), in order."""
    opened: List[Any] = [None] * count
    _each(list(range(count)), lambda i: opened.__setitem__(i, open_one(i)), width=8)
    return opened


def _each(items: List[Any], work: Callable[[Any], Any], width: int = 32) -> None:
    """``work(item)`` for every item, ``width`` threads at once; re-raises the first error."""
    errors: List[BaseException] = []
    todo = list(items)
    lock = threading.Lock()

    def run() -> None:
        while True:
            with lock:
                if not todo or errors:
                    return
                item = todo.pop(0)
            try:
                work(item)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(min(width, len(items)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _counting_answers(lab: Lab) -> Callable[[], None]:
    """Count the bytes of every import answer the controller gives (into ``lab``); return
    what undoes it."""
    answer = ImportServer.answer

    def counted(self: ImportServer, request: Any) -> Any:
        reply = answer(self, request)
        lab.answered += len(dumps(reply))
        return reply

    ImportServer.answer = counted  # type: ignore[method-assign]
    return lambda: setattr(ImportServer, "answer", answer)


def have_mitogen() -> bool:
    try:
        import mitogen.master  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--hosts", type=int, default=32, help="workers at once (default 32)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per contender")
    parser.add_argument(
        "--relays", type=int, default=4, help="relays for the run rows (default 4; 0: none)"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 7)
    lab = Lab(args.hosts, args.relays)
    contenders: Dict[str, Callable[[], Any]] = {
        FORWARDED: lambda: lab.ours(True),
        INSTALLED: lambda: lab.ours(False),
    }
    if args.relays:
        relayed = f"run, {args.relays} relays (ours)"
        contenders[RUN_DIRECT] = lambda: lab.fleet(0)
        contenders[relayed] = lambda: lab.fleet(args.relays)
        contenders[RUN_DIRECT + NO_IMPORT] = lambda: lab.fleet(0, False)
        contenders[relayed + NO_IMPORT] = lambda: lab.fleet(args.relays, False)
    if have_mitogen():
        contenders[MITOGEN] = lab.mitogen
    else:
        print("mitogen is not installed (pip install mitogen): compared with ours only")
    results = Results("bench_imports", save=not args.no_save, hosts=args.hosts, rounds=rounds)
    undo = _counting_answers(lab)
    try:
        interleaved(contenders, rounds, warmup=0 if args.quick else 1)
    finally:
        undo()
        lab.close()
    report(lab, args.hosts, rounds, results)


def report(lab: Lab, hosts: int, rounds: int, results: Results) -> None:
    rows = []
    mid: Dict[str, Dict[str, float]] = {}
    for name, runs in lab.figures.items():
        runs = runs[-rounds:]  # the timed rounds, not the warm-up
        mid[name] = {key: median([r[key] for r in runs]) for key in runs[0]}
        walls = [r["wall"] for r in runs]
        rows.append(
            [
                name,
                fmt_ms(mid[name]["wall"]),
                spread(walls),
                fmt_ms(mid[name]["cpu_per_host"]),
                fmt_ms(mid[name]["remote_per_host"]),
                _kib(mid[name].get("answer_bytes")),
            ]
        )
        for key, value in mid[name].items():
            results.add(f"import {MODULES} modules on {hosts} hosts", name, f"s {key}", value)
    print_table(
        f"First import of a {MODULES}-module package on {hosts} popen workers at once "
        f"(medians of {rounds})",
        ["contender", "wall", "spread", "controller CPU/host", "worker CPU/host", "answers"],
        rows,
    )
    forwarded, installed = mid[FORWARDED], mid[INSTALLED]
    extra = forwarded["wall"] - installed["wall"]
    print(
        f"forwarding costs {fmt_ms(extra / hosts)} of wall time per host over installed "
        f"({fmt_ratio(ratio(forwarded['wall'], installed['wall']))}); the controller read "
        f"each of the {MODULES + 1} files once for all {hosts} hosts"
    )
    relayed = [n for n in mid if n.startswith("run, ") and not n.endswith(NO_IMPORT)]
    if relayed and RUN_DIRECT in mid:
        direct, through = mid[RUN_DIRECT], mid[relayed[0]]
        print(
            f"{relayed[0]} / run direct: wall "
            f"{fmt_ratio(ratio(through['wall'], direct['wall']))}, controller CPU per host "
            f"{fmt_ratio(ratio(through['cpu_per_host'], direct['cpu_per_host']))}, import "
            f"answers {fmt_ratio(ratio(through['answer_bytes'], direct['answer_bytes']))} "
            f"({_kib(through['answer_bytes'])} vs {_kib(direct['answer_bytes'])})"
        )
        for name in (RUN_DIRECT, relayed[0]):
            extra = mid[name]["wall"] - mid[name + NO_IMPORT]["wall"]
            print(f"{name}: the import adds {fmt_ms(extra)} of wall to the same run without it")
    targets = Targets()
    if MITOGEN in mid:
        value = ratio(forwarded["wall"], mid[MITOGEN]["wall"])
        print(f"ours / mitogen, wall: {fmt_ratio(value)}")
        targets.check("forwarded import wall vs mitogen", value, 1.0, True, fmt_ratio(value))
    results.add_targets(targets)


def _kib(value: Optional[float]) -> str:
    return "" if value is None else f"{value / 1024:.0f} KiB"


if __name__ == "__main__":
    main()
