"""Cold ``xnet run --json pass`` on N ssh hosts and popen workers: its cost beyond ``true``.

    python3 bench/bench_run_cold.py [--quick] [--sizes 8,64] [--rounds 3] [--baseline TREE]
                                    [--instructions]

Three parts, each interleaved and reported as medians (the machine is shared):

1. Cold wall on the lab (``fanout-lab start 64``; skipped without it), side by side with
   OpenSSH × N and asyncssh (``bench_fanout``'s venv) and, with ``--baseline TREE`` (a
   checkout of another commit, e.g. /work/main), the same xnet from that tree: wall,
   controller CPU per host, ratio to the fastest peer.
2. Cold ``xnet run --json pass`` on N popen workers (no ssh), ours against the baseline.
3. The worker's own CPU (what the remote pays beyond its sshd session): the bootstrap,
   ``xnet run``'s job for ``pass`` and the terminate piped into ``python -c STAGE1`` (the
   bootstrap's size is shown) under each interpreter, against
   ``python -c pass``. ``bench_fanout``'s "remote CPU" sums what the sshd listeners reaped,
   which leaves out the session's command (its CPU is not passed up to the listener: a
   ``python3 -c pass`` session measures the same as ``true``); this part measures it.
   ``--instructions`` runs this part alone, counting instructions with valgrind
   (callgrind, every thread), which load does not move.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from bench_fanout import (
    ASYNCSSH,
    LAB,
    lab_hosts,
    openssh,
    peer_missing,
    peer_script,
    settle,
    sshd_pids,
    xnet_python,
)
from common import Results, Targets, add_common_args, fmt_ms, fmt_ratio, median, print_table, ratio

REPO = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"

WORKER_CPU = """
import os, resource, subprocess, sys, tempfile
from execnet_cli import bootstrap
from execnet_cli._remote.framing import FrameDecoder, encode_frame
from execnet_cli._remote.protocol import MessageType
from execnet_cli._remote.serializer import dumps_parts
from execnet_cli.fleet.jobs import python_job
from execnet_cli.source import prepare_request
python, rounds = sys.argv[1], int(sys.argv[2])
counting = sys.argv[3:] == ["instructions"]  # valgrind's count instead of CPU time
config = {"id": "w", "execmodel": "thread", "env": {}}
def frame(kind, channel, parts):
    return b"".join(bytes(x) for x in encode_frame(kind, channel, [b"".join(parts)]))
request = prepare_request(python_job("pass").source, {})
job = frame(MessageType.CHANNEL_EXEC, 1, dumps_parts(request))
end = frame(MessageType.GATEWAY_TERMINATE, 0, [])
same = bootstrap.same_interpreter(python)
CLOSES = (MessageType.CHANNEL_CLOSE, MessageType.CHANNEL_CLOSE_ERROR)
SOURCES = getattr(MessageType, "SOURCES", None)  # None: a tree whose bundle holds them
def cost(argv, run):  # run(argv) runs the process to its end
    if counting:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "callgrind.out")
            run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, *argv])
            with open(out) as lines:
                return next(int(l.split()[1]) for l in lines if l.startswith("totals:"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run(argv)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
def worker(argv, data):  # the job behind the bootstrap; terminate once it closed its channel
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
    child.stdin.write(data + job)
    child.stdin.flush()
    decoder, closed = FrameDecoder(), None
    while closed is None:
        chunk = child.stdout.read1(65536)
        if not chunk:
            raise SystemExit("the worker ended before the job did")
        for kind, channel, payload in decoder.feed(chunk):
            if channel == 1 and kind in CLOSES:
                closed = kind
            elif kind == SOURCES:  # a worker of another magic asks for them
                child.stdin.write(frame(SOURCES, 0, [bootstrap.packed_sources()]))
                child.stdin.flush()
    assert closed == MessageType.CHANNEL_CLOSE, "the job failed"
    child.stdin.write(end)
    child.stdin.close()
    child.stdout.read()
    child.wait()
for _ in range(rounds):
    data = bootstrap.bootstrap_bytes(config, same)
    spent = cost([python, "-c", bootstrap.STAGE1], lambda argv: worker(argv, data))
    plain = cost([python, "-c", "pass"], lambda argv: subprocess.run(argv, check=True))
    print(spent, plain, len(data))
"""


def run_cold(argv: List[str], env: Dict[str, str], n: int) -> tuple[float, float, bool]:
    """(wall, controller CPU per host, ok) of one cold run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # cwd: the tree itself (``-m`` puts the working directory first on sys.path)
    cwd = env.get("PYTHONPATH", str(REPO))
    done = subprocess.run(argv, env=env, capture_output=True, cwd=cwd, timeout=180)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    local = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if done.returncode != 0:
        print(f"  ! {' '.join(argv[:4])}...: exit {done.returncode}: {done.stderr[-300:]!r}")
    return wall, local / n, done.returncode == 0


def env_for(tree: Path) -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def cold_table(
    title: str,
    contenders: Dict[str, tuple[List[str], Dict[str, str]]],
    n: int,
    rounds: int,
    results: Results,
    case: str,
) -> Dict[str, float]:
    pids = sshd_pids() if lab_hosts() else []
    samples: Dict[str, List[tuple[float, float, bool]]] = {name: [] for name in contenders}
    names = list(contenders)
    for name in names:  # page cache, .pyc files: not counted
        run_cold(*contenders[name], n)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            settle(pids)
            samples[name].append(run_cold(*contenders[name], n))
    walls = {name: median([s[0] for s in got]) for name, got in samples.items()}
    peers = [w for name, w in walls.items() if not name.startswith("xnet")]
    best = min(peers) if peers else min(walls.values())
    rows = []
    for name, got in samples.items():
        local = median([s[1] for s in got])
        ok = "" if all(s[2] for s in got) else " (FAILED)"
        shown = [f"{walls[name]:.2f} s", fmt_ratio(ratio(walls[name], best)), fmt_ms(local)]
        rows.append([name + ok, *shown])
        results.add(case, name, "s", walls[name], samples=[s[0] for s in got], local=local)
    print_table(title, ["contender", "wall", "/ fastest peer", "controller CPU/host"], rows)
    return walls


def xnet_argv(python: str, inventory: str, pattern: str) -> List[str]:
    return [python, "-m", "execnet_cli", "run", "--json", "pass", "-i", inventory, "-H", pattern]


def bench_ssh(
    sizes: List[int], rounds: int, baseline: Optional[Path], results: Results, targets: Targets
) -> None:
    hosts = lab_hosts()
    if not hosts:
        print(f"ssh part skipped: the lab is not running ({LAB}/pids)")
        return
    python = xnet_python()
    inventory = str(LAB / "inventory.yaml")
    for n in [n for n in sizes if n <= len(hosts)]:
        pattern = f"n[01-{n:02d}]"
        contenders = {
            "xnet run --json pass": (xnet_argv(python, inventory, pattern), env_for(REPO))
        }
        if baseline is not None:
            argv = xnet_argv(python, inventory, pattern)
            contenders["xnet run (baseline)"] = (argv, env_for(baseline))
        contenders["OpenSSH × N true"] = (openssh(hosts[:n]), dict(os.environ))
        if peer_missing("asyncssh") is None:
            contenders["asyncssh true"] = (peer_script(ASYNCSSH)(hosts[:n]), dict(os.environ))
        title = f"cold run over ssh, N = {n}: medians of {rounds}, interleaved"
        walls = cold_table(title, contenders, n, rounds, results, f"ssh_n{n}")
        peers = [w for name, w in walls.items() if not name.startswith("xnet")]
        if n >= 64 and peers:
            ours, best = walls["xnet run --json pass"], min(peers)
            shown = f"{ours:.2f} s vs {best:.2f} s = {fmt_ratio(ratio(ours, best))}"
            targets.check(f"cold xnet run pass N={n} / fastest peer", ours / best, 1.3, True, shown)


def bench_popen(n: int, rounds: int, baseline: Optional[Path], results: Results) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "popen.yaml"
        inventory.write_text(f"hosts:\n  p[001-{n:03d}]: {{transport: popen}}\n")
        argv = xnet_argv(sys.executable, str(inventory), "all")
        contenders = {"xnet run --json pass": (argv, env_for(REPO))}
        if baseline is not None:
            contenders["xnet run (baseline)"] = (argv, env_for(baseline))
        title = f"cold run on {n} popen workers: medians of {rounds}, interleaved"
        cold_table(title, contenders, n, rounds, results, f"popen_n{n}")


def bench_worker(
    rounds: int, baseline: Optional[Path], results: Results, instructions: bool = False
) -> None:
    """Part 3; ``instructions``: counted by valgrind (the same on a loaded machine)."""
    trees = {"ours": REPO} if baseline is None else {"ours": REPO, "baseline": baseline}
    pythons = [p for p in dict.fromkeys([SYSTEM_PYTHON, sys.executable]) if os.path.exists(p)]
    rows = []
    show = (lambda n: f"{n / 1e6:.1f} M") if instructions else fmt_ms
    for python in pythons:
        got: Dict[str, List[float]] = {name: [] for name in trees}
        bare: List[float] = []
        size: Dict[str, int] = {}
        for _ in range(rounds):  # interleaved: one sample of each tree per turn
            for name, tree in trees.items():
                argv = [sys.executable, "-c", WORKER_CPU, python, "1"]
                argv += ["instructions"] if instructions else []
                env, cwd = env_for(tree), str(tree)  # ``-c`` puts the cwd first on sys.path
                out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
                worker, plain, length = out.stdout.split()
                got[name].append(float(worker))
                size[name] = int(length)
                bare.append(float(plain))
        for name, values in got.items():
            shown = [show(median(values)), show(median(bare)), f"{size[name] / 1e3:.0f} kB"]
            rows.append([python, name, *shown])
            unit = "instructions" if instructions else "s"
            results.add("worker_cpu", f"{name} {python}", unit, median(values))
    what = "instructions" if instructions else "CPU"
    print_table(
        f"a worker's own {what} (bootstrap + 'pass' + terminate), medians of {rounds}",
        ["interpreter", "tree", f"worker {what}", "python -c pass", "bytes in"],
        rows,
    )


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--sizes", default=None, help="ssh host counts, e.g. 8,64")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per figure")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument(
        "--instructions", action="store_true", help="part 3 alone, in instructions (valgrind)"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in (args.sizes or ("8" if args.quick else "8,64")).split(",")]
    rounds = args.rounds or (2 if args.quick else 5)
    print(f"bench_run_cold: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    results = Results("run_cold", save=not args.no_save, quick=args.quick, sizes=sizes)
    targets = Targets()
    if args.instructions:
        bench_worker(args.rounds or 3, args.baseline, results, instructions=True)
        return 0
    bench_worker(rounds * 4, args.baseline, results)
    bench_popen(16 if args.quick else 64, rounds, args.baseline, results)
    bench_ssh(sizes, rounds, args.baseline, results, targets)
    results.add_targets(targets)
    print(f"load at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
