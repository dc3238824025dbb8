"""Gateway core against execnet, side by side in one run: start, round trips, throughput.

    python3 bench/bench_gateway.py [--quick] [--size MIB] [--only a,b,c] [--taskset]

(a) popen gateway open + ``channel.send(1)``/receive + exit, until the worker is reaped,
    with (d) the floor: ``subprocess.run([sys.executable, "-c", "pass"])``.
(b) round trips per second: 10,000 small-int echoes, remote ``for x in channel: channel.send(x)``,
    with the floor: two Python processes echoing as many bytes over a pipe.
(c) throughput of ``--size`` MiB in 64 KiB and 1 MiB ``bytes`` chunks, both directions,
    with a raw pipe between two processes as the reference.

Both libraries run in this one process, interleaved (see ``common.interleaved``); figures
are medians of wall-clock time. CPU time (controller + worker, user + system) is shown
beside it: on a loaded machine it moves far less than wall time. ``--taskset`` afterwards
re-runs everything in a child pinned to CPU 0 (``taskset -c 0``; the workers inherit the
pinning), as a second opinion.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

import execnet
from common import (
    ECHO,
    SINK,
    SOURCE,
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

KIB = 1024
MIB = 1024 * KIB
F_SETPIPE_SZ = 1031  # Linux fcntl
PIPE_SIZE = 1 * MIB  # what execnet_cli sets on its pipes; the raw pipe gets the same
CLOCK_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

OURS, EXECNET = "ours", "execnet"
OURS_SPAWN = "ours, spawn (info)"
OURS_COLD = "ours, new group (info)"
FLOOR, FLOOR_S = "floor: python -c pass", "python -S -c pass (info)"
RAW, RAW_1M = "raw pipe, 128K reads", "raw, 1M reads (info)"
RAW_PING = "floor: raw pipe ping-pong"
#: Reader buffer sizes of the raw pipe. Its buffer is page-aligned (an anonymous mmap): a
#: ``bytearray`` lands wherever malloc puts it, and 1-31 bytes past a page boundary the
#: kernel's copy out of the pipe runs at a quarter of the speed on this VM's AMD EPYC, so
#: the reference itself swung 1.6-3 GB/s with the interpreter's start-up allocations.
RAW_READ_SIZES = {RAW: 128 * KIB, RAW_1M: 1 * MIB}
LIBS: Dict[str, Any] = {OURS: execnet_cli, EXECNET: execnet}


RAW_READER = """\
import mmap, os, sys
buf = mmap.mmap(-1, int(sys.argv[1]))
os.write(1, b"r")
total = 0
readv = os.readv
while True:
    n = readv(0, [buf])
    if not n:
        break
    total += n
os.write(1, str(total).encode())
"""


# -- CPU time ------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc; nan elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def children_cpu() -> float:
    """User + system CPU seconds of all reaped children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Cpu:
    """CPU seconds per contender and round: (controller, worker)."""

    def __init__(self) -> None:
        self.samples: Dict[str, List[Tuple[float, float]]] = {}

    def add(self, name: str, controller: float, worker: float) -> None:
        self.samples.setdefault(name, []).append((controller, worker))

    def mean(self, name: str) -> Tuple[float, float]:
        """For samples below the 10 ms tick of /proc CPU counts: their sum is unbiased."""
        pairs = self.samples.get(name, [])
        return (sum(c for c, _ in pairs) / len(pairs), sum(w for _, w in pairs) / len(pairs))

    def median(self, name: str, per: float = 1.0) -> Tuple[float, float]:
        pairs = self.samples.get(name, [])
        return (median([c / per for c, _ in pairs]), median([w / per for _, w in pairs]))


# -- gateways -------------------------------------------------------------------------------


def open_gateway(lib: Any) -> Any:
    return lib.makegateway("popen")


def worker_pid(gw: Any) -> int:
    channel = gw.remote_exec("import os\nchannel.send(os.getpid())")
    pid = channel.receive()
    channel.waitclose(30)
    return pid


def close_gateway(name: str, gw: Any) -> None:
    """Exit ``gw`` and wait until its worker process is reaped."""
    if name == EXECNET:
        # execnet's exit() only sends the request and unregisters the gateway, so a later
        # default_group.terminate() skips it; this is what Group.terminate() does per gateway.
        gw.exit()
        gw.join()
        gw._io.wait()
        assert gw._io.popen.returncode is not None, f"{name}: worker not reaped"
    else:
        gw.exit()  # waits for the worker's end (reaped by us or its fork server), receiver too
        assert gw.transport.returncode is not None, f"{name}: worker not reaped"


# -- (a) start + exec + exit, (d) floor -----------------------------------------------------


def start_exec_exit(name: str, cpu: Cpu, spec: str = "popen") -> Callable[[], float]:
    """Open, exec, exit in the default group: for us, forked from the group's fork server
    (started by the warm-up round) unless ``spec`` says ``spawn``."""
    lib = LIBS[EXECNET if name == EXECNET else OURS]

    def run() -> float:
        c0, w0, t0 = time.process_time(), children_cpu(), time.perf_counter()
        server = forkserver_pid()
        s0 = proc_cpu(server) if server else 0.0
        gw = lib.makegateway(spec)
        channel = gw.remote_exec("channel.send(1)")
        assert channel.receive() == 1
        forked = name != EXECNET and getattr(gw.transport, "server", None) is not None
        worker = proc_cpu(gw.transport.pid) if forked else 0.0  # before its exit: not ours to reap
        close_gateway(name, gw)
        elapsed = time.perf_counter() - t0
        if forked:  # the worker is the fork server's child: count it and the fork's cost
            worker += proc_cpu(gw.transport.server.process.pid) - s0
        cpu.add(name, time.process_time() - c0, children_cpu() - w0 + worker)
        return elapsed

    return run


def forkserver_pid() -> int:
    servers = execnet_cli.default_group._context._fork_servers
    live = [server for server in servers._servers.values() if server.usable] if servers else []
    return live[0].process.pid if live else 0


def cold_group_exec_exit(name: str, cpu: Cpu) -> Callable[[], float]:
    """A new group each time: the first gateway also starts (and terminate ends) the server."""

    def run() -> float:
        c0, w0, t0 = time.process_time(), children_cpu(), time.perf_counter()
        group = execnet_cli.Group()
        gw = group.makegateway("popen")
        assert gw.remote_exec("channel.send(1)").receive() == 1
        group.terminate()
        elapsed = time.perf_counter() - t0
        cpu.add(name, time.process_time() - c0, children_cpu() - w0)
        return elapsed

    return run


def floor(name: str, cpu: Cpu, *flags: str) -> Callable[[], float]:
    def run() -> float:
        c0, w0, t0 = time.process_time(), children_cpu(), time.perf_counter()
        subprocess.run([sys.executable, *flags, "-c", "pass"], check=True)
        elapsed = time.perf_counter() - t0
        cpu.add(name, time.process_time() - c0, children_cpu() - w0)
        return elapsed

    return run


def bench_start(rounds: int, results: Results, targets: Targets) -> None:
    cpu = Cpu()
    contenders = {
        OURS: start_exec_exit(OURS, cpu),
        OURS_SPAWN: start_exec_exit(OURS_SPAWN, cpu, "popen//spawn"),
        OURS_COLD: cold_group_exec_exit(OURS_COLD, cpu),
        EXECNET: start_exec_exit(EXECNET, cpu),
        FLOOR: floor(FLOOR, cpu),
        FLOOR_S: floor(FLOOR_S, cpu, "-S"),
    }
    timings = interleaved(contenders, rounds)
    med = {name: median(t) for name, t in timings.items()}
    base = med[FLOOR]
    rows = []
    for name, t in timings.items():
        # a forked worker's CPU comes from /proc in 10 ms ticks: the mean, not the median
        ctl, wrk = cpu.mean(name) if name == OURS else cpu.median(name)
        rows.append(
            [
                name,
                fmt_ms(med[name]),
                spread(t),
                f"{(med[name] - base) * 1e3:+.1f} ms",
                fmt_ratio(ratio(med[name], med[EXECNET])),
                fmt_ratio(ratio(med[name], base)),
                f"{ctl * 1e3:.1f} + {wrk * 1e3:.1f} ms" + (" (mean)" if name == OURS else ""),
            ]
        )
        results.add("start_exec_exit", name, "s", med[name], samples=t, cpu=[ctl, wrk])
    print_table(
        f"(a) popen open + exec + exit until reaped; wall time, median of {rounds}",
        ["contender", "median", "min/max", "over floor", "/ execnet", "/ floor", "CPU ctl + child"],
        rows,
    )
    print(
        f"ours forks each worker from the default group's fork server (started by the "
        f"warm-up); a new interpreter each time (spawn): "
        f"{fmt_ratio(ratio(med[OURS_SPAWN], med[EXECNET]))} of execnet; the first gateway of a "
        f"new group (server start + fork + terminate): "
        f"{fmt_ratio(ratio(med[OURS_COLD], med[EXECNET]))}; floor / execnet: "
        f"{fmt_ratio(ratio(base, med[EXECNET]))}"
    )
    value = ratio(med[OURS], med[EXECNET])
    targets.check(
        "(a) start+exec+exit ours/execnet",
        value,
        0.5,
        at_most=True,
        shown=f"{fmt_ms(med[OURS])} vs {fmt_ms(med[EXECNET])} = {fmt_ratio(value)}",
    )
    value = ratio(med[OURS], base)
    targets.check(
        "(a) start+exec+exit ours/floor",
        value,
        2.0,
        at_most=True,
        shown=f"{fmt_ms(med[OURS])} vs {fmt_ms(base)} = {fmt_ratio(value)}",
    )


# -- (b) round trips ----------------------------------------------------------------------


def echo_loop(name: str, channel: Any, pid: int, pairs: int, cpu: Cpu) -> Callable[[], float]:
    def run() -> float:
        send, receive = channel.send, channel.receive
        c0, w0, t0 = time.process_time(), proc_cpu(pid), time.perf_counter()
        for _ in range(pairs):
            send(42)
            if receive() != 42:
                raise AssertionError("echo returned something else")
        elapsed = time.perf_counter() - t0
        cpu.add(name, time.process_time() - c0, proc_cpu(pid) - w0)
        return elapsed

    return run


#: The floor of a round trip: a Python child echoing what it reads on a pipe, one small
#: read and one write a trip on each side, nothing else.
PING_ECHO = """\
import os
read, write = os.read, os.write
while True:
    data = read(0, 65536)
    if not data:
        break
    write(1, data)
"""
#: As big as our frame of one small int.
PING = b"\x04\x00\x00\x00\x01\x00\x00\x00\x02\x01\xaa"


def raw_ping_pong(child: subprocess.Popen, pairs: int, cpu: Cpu) -> Callable[[], float]:
    assert child.stdin is not None and child.stdout is not None
    wfd, rfd = child.stdin.fileno(), child.stdout.fileno()

    def run() -> float:
        write, read = os.write, os.read
        c0, w0, t0 = time.process_time(), proc_cpu(child.pid), time.perf_counter()
        for _ in range(pairs):
            write(wfd, PING)
            if read(rfd, 65536) != PING:  # one read: the child writes what it read at once
                raise AssertionError("raw echo returned something else")
        elapsed = time.perf_counter() - t0
        cpu.add(RAW_PING, time.process_time() - c0, proc_cpu(child.pid) - w0)
        return elapsed

    return run


def bench_roundtrips(rounds: int, pairs: int, results: Results, targets: Targets) -> None:
    cpu = Cpu()
    gateways = {name: open_gateway(lib) for name, lib in LIBS.items()}
    echo = subprocess.Popen(
        [sys.executable, "-c", PING_ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
    )
    try:
        pids = {name: worker_pid(gw) for name, gw in gateways.items()}
        channels = {name: gw.remote_exec(ECHO) for name, gw in gateways.items()}
        contenders = {
            name: echo_loop(name, ch, pids[name], pairs, cpu) for name, ch in channels.items()
        }
        contenders[RAW_PING] = raw_ping_pong(echo, pairs, cpu)
        timings = interleaved(contenders, rounds)
        for channel in channels.values():
            channel.close()
    finally:
        for name, gw in gateways.items():
            close_gateway(name, gw)
        assert echo.stdin is not None and echo.stdout is not None
        echo.stdin.close()
        echo.wait()
        echo.stdout.close()
    rate = {name: pairs / median(t) for name, t in timings.items()}
    rows = []
    for name, t in timings.items():
        ctl, wrk = cpu.median(name, per=pairs)
        rows.append(
            [
                name,
                f"{rate[name]:,.0f}",
                f"{median(t) / pairs * 1e6:.1f} µs",
                spread(t),
                fmt_ratio(ratio(rate[name], rate[EXECNET])),
                f"{ctl * 1e6:.0f} + {wrk * 1e6:.0f} µs",
            ]
        )
        results.add("roundtrips", name, "rt/s", rate[name], samples=t, pairs=pairs, cpu=[ctl, wrk])
    print_table(
        f"(b) small-int echo, {pairs:,} round trips; median of {rounds}",
        ["contender", "round trips/s", "wall/trip", "min/max", "vs execnet", "CPU/trip ctl + wrk"],
        rows,
    )
    print(
        f"the floor is two Python processes echoing {len(PING)} bytes over a pipe (one read, "
        f"one write a trip on each side); ours runs at "
        f"{ratio(rate[OURS], rate[RAW_PING]) * 100:.0f}% of it"
    )
    value = ratio(rate[OURS], rate[EXECNET])
    targets.check(
        "(b) round trips/s ours/execnet",
        value,
        2.0,
        at_most=False,
        shown=f"{rate[OURS]:,.0f} vs {rate[EXECNET]:,.0f}/s = {fmt_ratio(value)}",
    )


# -- (c) throughput -----------------------------------------------------------------------


def to_remote(
    name: str, gw: Any, pid: int, chunk: bytes, count: int, cpu: Cpu
) -> Callable[[], float]:
    """Send ``count`` chunks; the remote counts them and sends back the total."""

    def run() -> float:
        channel = gw.remote_exec(SINK)
        if channel.receive() != "ready":
            raise AssertionError("sink did not start")
        send = channel.send
        c0, w0, t0 = time.process_time(), proc_cpu(pid), time.perf_counter()
        for _ in range(count):
            send(chunk)
        send(None)
        total = channel.receive()
        elapsed = time.perf_counter() - t0
        cpu.add(name, time.process_time() - c0, proc_cpu(pid) - w0)
        channel.waitclose(60)
        if total != len(chunk) * count:
            raise AssertionError(f"remote counted {total} bytes")
        return elapsed

    return run


def from_remote(
    name: str, gw: Any, pid: int, size: int, count: int, cpu: Cpu
) -> Callable[[], float]:
    """The remote sends ``count`` chunks of a pre-built bytes object."""

    def run() -> float:
        channel = gw.remote_exec(SOURCE)
        channel.send(size)
        if channel.receive() != "ready":
            raise AssertionError("source did not start")
        receive = channel.receive
        got = 0
        c0, w0, t0 = time.process_time(), proc_cpu(pid), time.perf_counter()
        channel.send(count)
        for _ in range(count):
            got += len(receive())
        end = receive()
        elapsed = time.perf_counter() - t0
        cpu.add(name, time.process_time() - c0, proc_cpu(pid) - w0)
        channel.waitclose(60)
        if got != size * count or end is not None:
            raise AssertionError(f"received {got} bytes")
        return elapsed

    return run


def enlarge_pipe(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, OSError):
        pass


def raw_pipe(name: str, chunk: bytes, count: int, cpu: Cpu) -> Callable[[], float]:
    """Write ``count`` chunks into a pipe; a Python child ``os.readv``s them into a buffer."""

    def run() -> float:
        child = subprocess.Popen(
            [sys.executable, "-c", RAW_READER, str(RAW_READ_SIZES[name])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert child.stdin is not None and child.stdout is not None
        wfd = child.stdin.fileno()
        enlarge_pipe(wfd)
        if child.stdout.read(1) != b"r":
            raise AssertionError("raw reader did not start")
        view = memoryview(chunk)
        write = os.write
        c0, w0, t0 = time.process_time(), proc_cpu(child.pid), time.perf_counter()
        for _ in range(count):
            done = write(wfd, view)
            while done < len(view):
                done += write(wfd, view[done:])
        child.stdin.close()
        total = int(child.stdout.read())
        elapsed = time.perf_counter() - t0
        cpu.add(name, time.process_time() - c0, proc_cpu(child.pid) - w0)
        child.wait()
        child.stdout.close()
        if total != len(chunk) * count:
            raise AssertionError(f"raw reader counted {total} bytes")
        return elapsed

    return run


def bench_throughput(rounds: int, size_mib: int, results: Results, targets: Targets) -> None:
    total = size_mib * MIB
    gateways = {name: open_gateway(lib) for name, lib in LIBS.items()}
    rows: List[List[str]] = []
    rates: Dict[Tuple[str, str, str], float] = {}
    try:
        pids = {name: worker_pid(gw) for name, gw in gateways.items()}
        for chunk_size in (64 * KIB, 1 * MIB):
            chunk = bytes(chunk_size)
            count = total // chunk_size
            label = f"{chunk_size // KIB} KiB" if chunk_size < MIB else "1 MiB"
            for direction in ("local→remote", "remote→local"):
                cpu = Cpu()
                contenders: Dict[str, Callable[[], float]] = {}
                for name, gw in gateways.items():
                    if direction == "local→remote":
                        contenders[name] = to_remote(name, gw, pids[name], chunk, count, cpu)
                    else:
                        contenders[name] = from_remote(name, gw, pids[name], chunk_size, count, cpu)
                for name in RAW_READ_SIZES:
                    contenders[name] = raw_pipe(name, chunk, count, cpu)
                timings = interleaved(contenders, rounds, warmup=0)
                mbs = {name: total / median(t) / 1e6 for name, t in timings.items()}
                for name, t in timings.items():
                    rates[(label, direction, name)] = mbs[name]
                    ctl, wrk = cpu.median(name, per=total / 1e9)
                    rows.append(
                        [
                            f"{label} {direction}",
                            name,
                            f"{mbs[name]:,.0f}",
                            spread(t),
                            fmt_ratio(ratio(mbs[name], mbs[EXECNET])),
                            f"{ratio(mbs[name], mbs[RAW]) * 100:.0f}%",
                            f"{ctl:.2f} + {wrk:.2f} s",
                        ]
                    )
                    results.add(
                        f"throughput {label} {direction}",
                        name,
                        "MB/s",
                        mbs[name],
                        samples=t,
                        bytes=total,
                        chunk=chunk_size,
                        cpu_per_gb=[ctl, wrk],
                    )
    finally:
        for name, gw in gateways.items():
            close_gateway(name, gw)
    print_table(
        f"(c) throughput, {size_mib} MiB per run, MB/s = 10^6 B/s; median of {rounds}",
        [
            "chunks, direction",
            "contender",
            "MB/s",
            "min/max",
            "vs execnet",
            "of raw pipe",
            "CPU s/GB ctl + wrk",
        ],
        rows,
    )
    print(
        "CPU s/GB: controller + worker, user + system (raw pipe: writer + reader); "
        "local→remote the controller sends, remote→local the worker does."
    )
    for (label, direction, name), mbs in sorted(rates.items()):
        if name != OURS:
            continue
        theirs = rates[(label, direction, EXECNET)]
        value = ratio(mbs, theirs)
        targets.check(
            f"(c) {label} {direction} ours/execnet",
            value,
            2.0,
            at_most=False,
            shown=f"{mbs:,.0f} vs {theirs:,.0f} MB/s = {fmt_ratio(value)}",
        )
        if label == "1 MiB":
            raw = rates[(label, direction, RAW)]
            value = ratio(mbs, raw)
            targets.check(
                f"(c) {label} {direction} ours/raw pipe",
                value,
                0.5,
                at_most=False,
                shown=f"{mbs:,.0f} vs {raw:,.0f} MB/s = {value * 100:.1f}%",
            )


# -- main -----------------------------------------------------------------------------------


def rerun_pinned(argv: List[str]) -> None:
    """Run this script again under ``taskset -c 0`` (without ``--taskset``)."""
    taskset = shutil.which("taskset")
    if taskset is None:
        print("--taskset: no taskset on this machine; skipping the pinned run")
        return
    args = [a for a in argv if a != "--taskset"]
    print("\n=== second opinion: everything pinned to CPU 0 (taskset -c 0) ===", flush=True)
    script = os.path.abspath(__file__)
    command = [taskset, "-c", "0", sys.executable, script, *args, "--label", "taskset -c 0"]
    subprocess.run(command, check=False)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument(
        "--size", type=int, default=None, help="MiB per throughput run (default 1024, quick 256)"
    )
    parser.add_argument("--only", default="a,b,c", help="comma-separated subset of a,b,c")
    parser.add_argument("--rounds", type=int, default=None, help="override every round count")
    parser.add_argument(
        "--taskset", action="store_true", help="afterwards, re-run pinned with taskset -c 0"
    )
    parser.add_argument("--label", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    size = args.size or (256 if args.quick else 1024)
    rounds_a = args.rounds or (5 if args.quick else 20)
    rounds_b = args.rounds or (3 if args.quick else 7)
    rounds_c = args.rounds or (2 if args.quick else 5)
    pairs = 10_000

    label = args.label or "unpinned"
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(
        f"bench_gateway [{label}]: execnet_cli {execnet_cli.__version__} vs execnet "
        f"{execnet.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
        f"{f', affinity {affinity}' if affinity else ''}, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = Results(
        "gateway", save=not args.no_save, label=label, quick=args.quick, size_mib=size
    )
    machine = results.header["machine"]
    print(f"commit {machine['commit']}, execnet_cli sources {machine['source_digest']}")
    targets = Targets(args.label)
    if "a" in only:
        bench_start(rounds_a, results, targets)
    if "b" in only:
        bench_roundtrips(rounds_b, pairs, results, targets)
    if "c" in only:
        bench_throughput(rounds_c, size, results, targets)
    results.add_targets(targets)
    print(f"load at the end: {os.getloadavg()[0]:.2f}")
    if args.taskset:
        rerun_pinned(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
