"""Cold and warm fan-out over ssh, side by side with the peers of issue #12.

    python3 bench/bench_fanout.py [--quick] [--sizes 8,32,64] [--rounds 3] [--tools a,b]
                                  [--baseline CHECKOUT]

Needs the lab: ``../shared/tools/fanout-lab start 64`` (64 sshd on 127.0.0.2..65, user
``fleet``; ``$LAB``, default /tmp/flab), and the peers in their own venv (``$XNET_BENCH_VENV``,
default ~/.cache/xnet-bench/fanout; make it with ``python3 bench/bench_fanout.py --make-venv``:
asyncssh, clustershell, parallel-ssh, fabric, execnet from PyPI, and our own dependencies, so
that xnet starts from the same clean interpreter as the peers). Without the lab it skips,
saying so; a missing peer is left out with a line saying why.

Cold: each tool is a fresh process running ``true`` (``xnet run``: ``pass``) on N hosts;
the tools take turns within each round (interleaved), figures are medians of the rounds.
For each: wall time, controller CPU per host (the tool's process and the children it
waited for, e.g. the ``ssh`` clients) and remote CPU per host (what the lab's sshd listeners
and everything they reaped used: sshd's sessions, shells, interpreters). Ratios are to the
fastest wall time at that N (``--baseline CHECKOUT`` adds ``xnet sh`` and ``run`` from
another checkout of the project, e.g. a worktree of main, as more contenders: before and
after a change, interleaved in the same rounds). Warm: over N open ssh gateways, one Python round
(``remote_exec("channel.send(1)")`` on each, every reply received), ours against execnet's.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from common import (
    Results,
    Targets,
    add_common_args,
    fmt_ms,
    fmt_ratio,
    median,
    print_table,
    ratio,
    spread,
)

REPO = Path(__file__).resolve().parent.parent
LAB = Path(os.environ.get("LAB", "/tmp/flab"))
VENV = Path(os.environ.get("XNET_BENCH_VENV", Path.home() / ".cache/xnet-bench/fanout"))
PEERS = ("asyncssh", "clustershell", "parallel-ssh", "fabric", "execnet")
REMOTE_PYTHON = "/usr/bin/python3"
XNET_PYTHON = sys.executable

ASYNCSSH = """
import asyncio, sys, asyncssh
lab, hosts = sys.argv[1], sys.argv[2:]
async def one(host):
    async with asyncssh.connect(host, username="fleet", client_keys=[lab + "/userkey"],
                                known_hosts=lab + "/known_hosts",
                                kex_algs=["curve25519-sha256"]) as conn:
        await conn.run("true", check=True)
async def main():
    await asyncio.gather(*(one(h) for h in hosts))
asyncio.run(main())
"""
FABRIC = """
import sys
from fabric import ThreadingGroup
lab, hosts = sys.argv[1], sys.argv[2:]
group = ThreadingGroup(*hosts, user="fleet", connect_kwargs={
    "key_filename": lab + "/userkey", "look_for_keys": False, "allow_agent": False})
group.run("true", hide=True)
"""
PSSH = """
import sys
from pssh.clients import ParallelSSHClient
lab, hosts = sys.argv[1], sys.argv[2:]
client = ParallelSSHClient(hosts, user="fleet", pkey=lab + "/userkey", pool_size=len(hosts))
output = client.run_command("true")
client.join(output)
assert all(o.exit_code == 0 for o in output), [o.exit_code for o in output]
"""
EXECNET_COLD = """
import sys, threading, execnet
lab, hosts = sys.argv[1], sys.argv[2:]
group = execnet.Group()
def open_one(host):
    group.makegateway("ssh=-F %s/ssh_config %s//python=%s" % (lab, host, PYTHON))
threads = [threading.Thread(target=open_one, args=(h,)) for h in hosts]
for t in threads: t.start()
for t in threads: t.join()
assert len(group) == len(hosts)
group.remote_exec("channel.send(1)").receive_each()
group.terminate()
""".replace("PYTHON", repr(REMOTE_PYTHON))


# -- the lab -------------------------------------------------------------------------------


def lab_hosts() -> List[str]:
    """The lab's addresses if all its sshd are running, else [] (the bench skips)."""
    try:
        pids = [int(p) for p in (LAB / "pids").read_text().split()]
        hosts = (LAB / "hosts").read_text().split()
    except (OSError, ValueError):
        return []
    if not pids or not all(Path(f"/proc/{pid}").exists() for pid in pids):
        return []
    return hosts


def sshd_pids() -> List[int]:
    return [int(p) for p in (LAB / "pids").read_text().split()]


def remote_cpu(pids: List[int]) -> float:
    """CPU seconds the lab's sshd listeners used, with every process they reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / tick


def settle(pids: List[int], limit: float = 3.0) -> None:
    """Wait until no listener has a session left (their CPU is then counted)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        busy = False
        for pid in pids:
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            if children:
                busy = True
                break
        if not busy:
            return
        time.sleep(0.02)


# -- the contenders ---------------------------------------------------------------------------

Command = Callable[[List[str]], List[str]]


def venv_python() -> Optional[str]:
    path = VENV / "bin" / "python"
    return str(path) if path.exists() else None


def peer_missing(module: str) -> Optional[str]:
    """Why a peer cannot run (None: it can)."""
    python = venv_python()
    if python is None:
        return f"no bench venv at {VENV} (python3 bench/bench_fanout.py --make-venv)"
    done = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
    return None if done.returncode == 0 else f"{module} not installed in {VENV}"


#: The project's own dependencies, installed in the bench venv too.
PROJECT_DEPS = ("click", "rich", "paramiko", "pyyaml")


def xnet_python() -> str:
    """The interpreter xnet runs under: the bench venv's when it has our dependencies,
    so that every tool starts from the same clean interpreter (this machine's own adds
    start-up hooks of its environment), else this one."""
    python = venv_python()
    if python is not None:
        check = "import click, rich, paramiko, yaml"
        if subprocess.run([python, "-c", check], capture_output=True).returncode == 0:
            return python
    return sys.executable


def xnet(*args: str, checkout: Path = REPO) -> Command:
    """xnet from ``checkout`` (this one by default; ``run_once`` puts it on PYTHONPATH)."""

    def command(hosts: List[str]) -> List[str]:
        pattern = f"n[01-{len(hosts):02d}]"
        inventory = str(LAB / "inventory.yaml")
        return [XNET_PYTHON, "-m", "execnet_cli", *args, "-i", inventory, "-H", pattern]

    command.checkout = checkout  # type: ignore[attr-defined]
    return command


def peer_script(source: str) -> Command:
    def command(hosts: List[str]) -> List[str]:
        return [str(venv_python()), "-c", source, str(LAB), *hosts]

    return command


def openssh(hosts: List[str]) -> List[str]:
    config = LAB / "ssh_config"
    line = " ".join(f"ssh -F {config} {h} true &" for h in hosts)
    return ["bash", "-c", f"{line} wait"]


def clush(hosts: List[str]) -> List[str]:
    last = hosts[-1].rpartition(".")[2]
    first = hosts[0].rpartition(".")[2]
    nodes = f"127.0.0.[{first}-{last}]"
    binary = str(VENV / "bin" / "clush")
    options = f"-F {LAB / 'ssh_config'}"
    return [binary, "-b", "-f", str(len(hosts)), "-o", options, "-w", nodes, "true"]


#: name -> (command builder, the module it needs from the venv or None)
TOOLS: Dict[str, Tuple[Command, Optional[str]]] = {
    "xnet sh --json true": (xnet("sh", "--json", "true"), None),
    "xnet run --json pass": (xnet("run", "--json", "pass"), None),
    "OpenSSH × N (ssh h true &)": (openssh, None),
    "asyncssh gather": (peer_script(ASYNCSSH), "asyncssh"),
    "Fabric ThreadingGroup.run": (peer_script(FABRIC), "fabric"),
    "ClusterShell clush -b": (clush, "ClusterShell"),
    "parallel-ssh run_command": (peer_script(PSSH), "pssh"),
    "execnet Group (N threads)": (peer_script(EXECNET_COLD), "execnet"),
}
#: The name of ``--baseline``'s contender starts so: it is no peer.
BASELINE = "(baseline)"
QUICK_TOOLS = ("xnet sh --json true", "xnet run --json pass", "OpenSSH × N (ssh h true &)")
QUICK_TOOLS += ("asyncssh gather", "execnet Group (N threads)")


class Sample:
    def __init__(self, wall: float, local: float, remote: float, ok: bool) -> None:
        self.wall, self.local, self.remote, self.ok = wall, local, remote, ok


def run_once(argv: List[str], hosts: int, pids: List[int], checkout: Path = REPO) -> Sample:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # our package gets .pyc files, as installed ones have
    settle(pids)
    before_remote = remote_cpu(pids)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # cwd: `python -m` puts it first on sys.path, so it must be the checkout measured
    done = subprocess.run(argv, env=env, capture_output=True, cwd=checkout, timeout=120)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    settle(pids)
    remote = remote_cpu(pids) - before_remote
    local = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).decode(errors="replace").strip()[-300:]
        print(f"  ! {argv[0]}... exited {done.returncode}: {tail}", flush=True)
    return Sample(wall, local / hosts, remote / hosts, done.returncode == 0)


def bench_cold(
    tools: Dict[str, Command], hosts: List[str], rounds: int, results: Results, targets: Targets
) -> Dict[str, float]:
    pids = sshd_pids()
    n = len(hosts)
    samples: Dict[str, List[Sample]] = {name: [] for name in tools}
    names = list(tools)
    checkouts = {name: getattr(tool, "checkout", REPO) for name, tool in tools.items()}
    for name in names:  # warm the page cache and the venv's imports; not counted
        run_once(tools[name](hosts[: min(4, n)]), min(4, n), pids, checkouts[name])
    for r in range(rounds):
        start = r % len(names)
        for name in names[start:] + names[:start]:
            samples[name].append(run_once(tools[name](hosts), n, pids, checkouts[name]))
    walls = {name: median([s.wall for s in got]) for name, got in samples.items()}
    fastest = min(
        (w for name, w in walls.items() if all(s.ok for s in samples[name])), default=float("nan")
    )
    rows = []
    for name, got in samples.items():
        wall = [s.wall for s in got]
        local = median([s.local for s in got])
        remote = median([s.remote for s in got])
        ok = "" if all(s.ok for s in got) else " (FAILED)"
        rows.append(
            [
                name + ok,
                f"{walls[name]:.2f} s",
                spread(wall),
                fmt_ratio(ratio(walls[name], fastest)),
                fmt_ms(local),
                fmt_ms(remote),
            ]
        )
        results.add(f"cold_n{n}", name, "s", walls[name], samples=wall, local_cpu_per_host=local)
        results.add(f"cold_n{n}_remote_cpu", name, "s/host", remote)
    print_table(
        f"cold, N = {n}: wall median of {rounds} (interleaved), CPU per host medians",
        ["tool", "wall", "min/max", "/ fastest", "controller CPU/host", "remote CPU/host"],
        rows,
    )
    return walls


def cold_targets(walls: Dict[str, float], n: int, targets: Targets) -> None:
    sh, run = walls.get("xnet sh --json true"), walls.get("xnet run --json pass")
    others = [w for name, w in walls.items() if not name.startswith(("xnet", BASELINE))]
    if not others:
        return
    best = min(others)
    if sh is not None:
        limit = 1.0 if n >= 64 else 1.25
        value = ratio(sh, best)
        shown = f"{sh:.2f} s vs {best:.2f} s = {fmt_ratio(value)}"
        targets.check(f"cold xnet sh true N={n} / fastest peer", value, limit, True, shown)
    if run is not None and n >= 64:
        value = ratio(run, best)
        shown = f"{run:.2f} s vs {best:.2f} s = {fmt_ratio(value)}"
        targets.check(f"cold xnet run pass N={n} / fastest peer", value, 1.3, True, shown)


# -- warm --------------------------------------------------------------------------------------


def bench_warm(hosts: List[str], rounds: int, results: Results, targets: Targets) -> None:
    """One Python round over N open ssh gateways, ours against execnet's, interleaved."""
    site = next(iter((VENV / "lib").glob("python3*/site-packages")), None)
    if site is not None:
        sys.path.append(str(site))  # execnet from the bench venv; our own packages stay first
    try:
        import execnet
    except ImportError:
        print("warm: execnet not importable (no bench venv); skipped")
        return
    sys.path.insert(0, str(REPO))
    import execnet_cli

    key = LAB / "userkey"
    ours = execnet_cli.Group()
    theirs = execnet.Group()
    specs = {
        "ours": [f"ssh=-i {key} -l fleet {h}//python={REMOTE_PYTHON}" for h in hosts],
        "execnet": [f"ssh=-F {LAB}/ssh_config {h}//python={REMOTE_PYTHON}" for h in hosts],
    }

    def open_all(group: Any, spec_list: List[str]) -> None:
        threads = [threading.Thread(target=group.makegateway, args=(s,)) for s in spec_list]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    try:
        open_all(ours, specs["ours"])
        open_all(theirs, specs["execnet"])
        groups = {"ours": ours, "execnet": theirs}
        for name, group in groups.items():
            if len(group) != len(hosts):
                print(f"warm: only {len(group)} of {len(hosts)} {name} gateways opened; skipped")
                return
        timings: Dict[str, List[float]] = {name: [] for name in groups}
        names = list(groups)
        for r in range(rounds + 1):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                t0 = time.perf_counter()
                groups[name].remote_exec("channel.send(1)").receive_each()
                if r:  # the first round warms up
                    timings[name].append(time.perf_counter() - t0)
    finally:
        ours.terminate(5.0)
        theirs.terminate(5.0)
    med = {name: median(t) for name, t in timings.items()}
    rows = [
        [name, fmt_ms(med[name]), spread(t), fmt_ratio(ratio(med[name], med["execnet"]))]
        for name, t in timings.items()
    ]
    for name, t in timings.items():
        results.add(f"warm_round_n{len(hosts)}", name, "s", med[name], samples=t)
    print_table(
        f"warm: a Python round over {len(hosts)} open ssh gateways, median of {rounds}",
        ["library", "round", "min/max", "/ execnet"],
        rows,
    )
    value = ratio(med["ours"], med["execnet"])
    shown = f"{fmt_ms(med['ours'])} vs {fmt_ms(med['execnet'])} = {fmt_ratio(value)}"
    targets.check(f"warm round N={len(hosts)} ours/execnet", value, 1.0, True, shown)


# -- main --------------------------------------------------------------------------------------


def make_venv() -> int:
    python = shutil.which("python3") or sys.executable
    real = subprocess.run(
        [python, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True
    ).stdout.strip()
    subprocess.run([real or sys.executable, "-m", "venv", str(VENV)], check=True)
    packages = [*PEERS, *PROJECT_DEPS]
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *packages], check=True)
    print(f"bench venv ready: {VENV}")
    return 0


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--sizes", default=None, help="host counts, e.g. 8,32,64")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (median)")
    parser.add_argument("--tools", default=None, help="substrings of tool names to run")
    parser.add_argument("--no-warm", action="store_true", help="leave out the warm round")
    parser.add_argument("--make-venv", action="store_true", help="make the peers' venv and exit")
    parser.add_argument(
        "--baseline", default=None, help="another checkout whose xnet sh/run (if chosen) run too"
    )
    args = parser.parse_args(argv)
    if args.make_venv:
        return make_venv()
    hosts = lab_hosts()
    if not hosts:
        print(
            f"bench_fanout: skipped: the lab is not running (no live sshd listed in {LAB}/pids); "
            "start it with ../shared/tools/fanout-lab start 64 (and stop it after)"
        )
        return 0
    global XNET_PYTHON
    XNET_PYTHON = xnet_python()
    sizes = [int(s) for s in (args.sizes or ("8" if args.quick else "8,32,64")).split(",")]
    sizes = [n for n in sizes if n <= len(hosts)]
    tools: Dict[str, Command] = {}
    for name, (command, module) in TOOLS.items():
        if args.quick and name not in QUICK_TOOLS:
            continue
        if args.tools and not any(part in name for part in args.tools.split(",")):
            continue
        why = peer_missing(module) if module else None
        if why:
            print(f"  left out {name}: {why}")
            continue
        tools[name] = command
    if args.baseline:
        checkout = Path(args.baseline).resolve()
        for words in (("sh", "--json", "true"), ("run", "--json", "pass")):
            if any(name.startswith("xnet " + words[0]) for name in tools):
                tools[f"{BASELINE} xnet {' '.join(words)}"] = xnet(*words, checkout=checkout)
    print(
        f"bench_fanout: xnet under {XNET_PYTHON}; "
        f"{len(hosts)} lab hosts, sizes {sizes}, {len(tools)} tools, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; figures are noisy on a "
        "shared machine: medians and min/max spread",
        flush=True,
    )
    results = Results("fanout", save=not args.no_save, quick=args.quick, sizes=sizes)
    targets = Targets()
    for n in sizes if tools else []:
        walls = bench_cold(tools, hosts[:n], args.rounds, results, targets)
        cold_targets(walls, n, targets)
    if not args.no_warm:
        bench_warm(hosts[: max(sizes)], 5 if args.quick else 10, results, targets)
    results.add_targets(targets)
    print(f"load at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
