"""Relays: a run on many hosts direct from the controller, and through R relay gateways.

    python3 bench/bench_relays.py [--quick] [--hosts N] [--relays R] [--rounds K] [--ssh M]

A. ``--hosts`` popen workers (256; 64 with --quick) run ``pass``: direct (the controller
   forks every worker from its fork server and holds every gateway) against R relays
   (``--relays N``: the controller holds R gateways, each relay starts its share of the
   workers and serves them the bootstrap it got once). Interleaved rounds, medians.
   Reported: wall, the controller's CPU per host (this process's CPU time: the runner runs
   here, the workers and relays are other processes), and the relays' CPU per host.
B. What one relay holds per host: K hosts (64; 32) napping behind one relay; its threads,
   descriptors and memory at the peak, less what it held before its first host, per host;
   and the controller's own threads and descriptors, direct and through the relay.
C. ``--ssh M`` (16; 0 skips): M sshd hosts on loopback (one sshd each, the test fixtures),
   direct (paramiko in this process) against 2 relays (popen relays here, which reach the
   hosts with OpenSSH): the controller's CPU per host when the handshakes are not its own.

Figures are noisy on a shared 2-core machine: everything (controller, relays, workers,
sshd) shares the cores, so wall times mix in costs a real fleet pays on other machines.
"""

from __future__ import annotations

import argparse
import os
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
    fmt_ratio,
    interleaved,
    median,
    print_table,
    spread,
)

from execnet_cli.fleet import relays
from execnet_cli.fleet.events import Event, Exited, Running
from execnet_cli.fleet.jobs import python_job
from execnet_cli.fleet.results import GroupResult
from execnet_cli.fleet.runner import Runner
from execnet_cli.inventory import Inventory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from sshd_fixtures import SshdCluster, find_sshd  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
REMOTE_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def proc_stats(pid: int) -> Dict[str, float]:
    """A process's threads, descriptors, resident memory (MiB) and CPU seconds so far."""
    stats: Dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    stats["rss"] = int(line.split()[1]) / 1024
                elif line.startswith("Threads:"):
                    stats["threads"] = int(line.split()[1])
        stats["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        stats["cpu"] = (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        pass
    return stats


class Run:
    """One run of a job on an inventory's hosts, direct or through relays, measured."""

    def __init__(
        self, inventory: Inventory, count: int, job_source: str, pattern: str = "all"
    ) -> None:
        self.inventory = inventory
        self.count = count
        self.pattern = pattern
        self.job = python_job(job_source)
        self.cpu = 0.0
        self.wall = 0.0
        self.relay_cpu = 0.0
        self.ok = 0
        self.on_event: Optional[Callable[[Runner, Event], None]] = None

    def __call__(self) -> float:
        hosts = self.inventory.hosts(self.pattern)
        plan = relays.plan(hosts, self.inventory.host, self.count)
        result = GroupResult()
        ended = 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        with Runner(hosts, self.job, carriers=plan.carriers, relays=plan.served) as runner:
            for event in runner.events():
                result.add(event)
                if self.on_event is not None:
                    self.on_event(runner, event)
                if isinstance(event, Exited):
                    ended += 1
                    if ended == len(hosts) and plan:
                        self.relay_cpu = sum(
                            proc_stats(runner.group[name]._rinfo().pid).get("cpu", 0.0)
                            for name in plan.served
                        )
        self.wall = time.perf_counter() - wall0
        self.cpu = time.process_time() - cpu0
        self.ok = result.count("ok")
        if self.ok != len(hosts):
            bad = {h: r.error for h, r in result.items() if not r.ok}
            raise SystemExit(f"bench_relays: not every host ok: {dict(list(bad.items())[:3])}")
        return self.wall


def popen_inventory(count: int) -> Inventory:
    return Inventory.from_text(
        f"groups:\n  w:\n    hosts: w[0001-{count:04d}]\n    vars: {{transport: popen}}\n"
    )


def compare(
    title: str, runs: Dict[str, Run], hosts: int, rounds: int, results: Results, case: str
) -> Dict[str, Dict[str, float]]:
    """Interleave the runs; print wall, controller CPU per host and relay CPU per host."""
    figures: Dict[str, Dict[str, List[float]]] = {n: {"cpu": [], "relay": []} for n in runs}

    def measured(name: str) -> Callable[[], float]:
        def once() -> float:
            wall = runs[name]()
            figures[name]["cpu"].append(runs[name].cpu)
            figures[name]["relay"].append(runs[name].relay_cpu)
            return wall

        return once

    timings = interleaved({name: measured(name) for name in runs}, rounds, warmup=1)
    rows, out = [], {}
    for name in runs:
        wall = median(timings[name])
        cpu = median(figures[name]["cpu"][-rounds:]) / hosts
        relay = median(figures[name]["relay"][-rounds:]) / hosts
        out[name] = {"wall": wall, "cpu": cpu, "relay": relay}
        rows.append(
            [
                name,
                f"{wall:.2f} s",
                spread(timings[name]),
                f"{cpu * 1e3:.2f} ms",
                f"{relay * 1e3:.2f} ms" if relay else "-",
            ]
        )
        results.add(case, name, "s", wall, controller_cpu_per_host=cpu, relay_cpu_per_host=relay)
    print_table(
        f"{title} (median of {rounds})",
        ["how", "wall", "spread", "controller CPU / host", "relays' CPU / host"],
        rows,
    )
    return out


def bench_popen(hosts: int, relay_count: int, rounds: int, results: Results) -> Dict[str, Any]:
    inventory = popen_inventory(hosts)
    runs = {
        "direct": Run(inventory, 0, "pass"),
        f"{relay_count} relays": Run(inventory, relay_count, "pass"),
    }
    return compare(f"A. {hosts} popen hosts run 'pass'", runs, hosts, rounds, results, "popen")


class Footprint:
    """Watches a run: this process's threads and descriptors, and relay ``relay``'s (if
    any) threads, descriptors and memory, before the first host runs and at the peak."""

    def __init__(self, relay: Optional[str]) -> None:
        self.relay = relay
        self.base: Dict[str, Dict[str, float]] = {}
        self.peak: Dict[str, Dict[str, float]] = {"own": {}, "relay": {}}

    def __call__(self, runner: Runner, event: Event) -> None:
        if not isinstance(event, Running):
            return
        now = {"own": proc_stats(os.getpid())}
        now["own"]["threads"] = threading.active_count()
        if self.relay is not None:
            now["relay"] = proc_stats(runner.group[self.relay]._rinfo().pid)
        if not self.base:
            self.base = now
        for who, stats in now.items():
            for key, value in stats.items():
                self.peak[who][key] = max(self.peak[who].get(key, 0.0), value)

    def per_host(self, who: str, hosts: int) -> Dict[str, float]:
        return {
            key: (self.peak[who][key] - self.base[who].get(key, 0.0)) / hosts
            for key in ("threads", "fds", "rss")
        }


def bench_footprint(hosts: int, results: Results) -> None:
    """What one relay, and the controller, hold per host while every host is open."""
    inventory = popen_inventory(hosts + 1)
    rows = []
    for label, count in (("direct", 0), ("1 relay", 1)):
        run = Run(inventory, count, "import time; time.sleep(1.5)")
        watch = Footprint("w0001" if count else None)
        run.on_event = watch
        run()
        per = watch.per_host("own", hosts)
        rows.append([f"controller, {label}", f"{per['threads']:.2f}", f"{per['fds']:.2f}", "-"])
        results.add("footprint", f"controller {label}", "per host", per["fds"], **per)
        if count:
            rel, peak = watch.per_host("relay", hosts), watch.peak["relay"]
            rows.append(
                [
                    "relay, per host it serves",
                    f"{rel['threads']:.2f}",
                    f"{rel['fds']:.2f}",
                    f"{rel['rss'] * 1024:.0f} KiB",
                ]
            )
            rows.append(
                [
                    f"relay, at the peak ({hosts} hosts)",
                    f"{peak['threads']:.0f}",
                    f"{peak['fds']:.0f}",
                    f"{peak['rss']:.1f} MiB",
                ]
            )
            results.add("footprint", "relay", "per host", rel["fds"], **rel)
    print_table(
        f"B. held while {hosts} hosts nap 1.5 s",
        ["what", "threads / host", "descriptors / host", "memory / host"],
        rows,
    )


def ssh_inventory(hosts: List[Any], relay_count: int) -> Inventory:
    """The sshd hosts as s001, ...; with relays, popen relays r1.. each serving a share."""
    import getpass

    lines = ["hosts:"] + [f"  r{k + 1}: {{transport: popen}}" for k in range(relay_count)]
    for index, host in enumerate(hosts):
        relay = f", relay: r{index % relay_count + 1}" if relay_count else ""
        lines.append(
            f"  s{index + 1:03d}: {{address: {host.address}, port: {host.port}, "
            f"user: {getpass.getuser()}, identity_file: {host.key}, "
            f"python: {REMOTE_PYTHON}{relay}}}"
        )
    return Inventory.from_text("\n".join(lines) + "\n")


def bench_ssh(count: int, rounds: int, results: Results, targets: Targets) -> None:
    sshd = find_sshd()
    if sshd is None:
        print("C. skipped: no sshd (apt-get install openssh-server)")
        return
    saved = os.environ.get("HOME")
    with SshdCluster(sshd) as cluster, tempfile.TemporaryDirectory() as home:
        hosts = cluster.start(count)
        (Path(home) / ".ssh").mkdir()
        (Path(home) / ".ssh" / "known_hosts").write_text(cluster.known_hosts.read_text())
        os.environ["HOME"] = home  # the known_hosts both paths read
        try:
            direct, relayed = "direct (paramiko here)", "2 relays (OpenSSH there)"
            runs = {
                direct: Run(ssh_inventory(hosts, 0), 0, "pass", "s*"),
                relayed: Run(ssh_inventory(hosts, 2), 0, "pass", "s*"),
            }
            out = compare(f"C. {count} sshd hosts run 'pass'", runs, count, rounds, results, "ssh")
        finally:
            if saved is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = saved
    mine, theirs = out[relayed]["cpu"], out[direct]["cpu"]
    targets.check(
        "controller CPU per ssh host, relayed / direct",
        mine / theirs,
        0.5,
        True,
        f"{mine * 1e3:.2f} / {theirs * 1e3:.2f} ms = {fmt_ratio(mine / theirs)}",
    )


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--hosts", type=int, default=0, help="popen hosts (256; 64 quick)")
    parser.add_argument("--relays", type=int, default=4, help="relays for A (4)")
    parser.add_argument("--rounds", type=int, default=0, help="rounds (3; 1 quick)")
    parser.add_argument("--ssh", type=int, default=-1, help="sshd hosts for C (16; 8 quick)")
    args = parser.parse_args(argv)
    hosts = args.hosts or (64 if args.quick else 256)
    rounds = args.rounds or (1 if args.quick else 3)
    ssh = args.ssh if args.ssh >= 0 else (8 if args.quick else 16)
    print(
        f"bench_relays: {hosts} popen hosts, {args.relays} relays, {ssh} sshd hosts; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = Results("relays", save=not args.no_save, quick=args.quick, hosts=hosts)
    targets = Targets()
    out = bench_popen(hosts, args.relays, rounds, results)
    direct, relayed = out["direct"]["cpu"], out[f"{args.relays} relays"]["cpu"]
    targets.check(
        f"controller CPU per popen host, {args.relays} relays / direct",
        relayed / direct,
        0.5,
        True,
        f"{relayed * 1e3:.2f} / {direct * 1e3:.2f} ms = {fmt_ratio(relayed / direct)}",
    )
    bench_footprint(32 if args.quick else 64, results)
    if ssh:
        bench_ssh(ssh, rounds, results, targets)
    results.add_targets(targets)
    print(f"load at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
