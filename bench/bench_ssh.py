"""ssh gateways against execnet's, side by side against one real sshd on 127.0.0.2.

    python3 bench/bench_ssh.py [--quick] [--size MIB] [--only a,b,c] [--rounds N]

(a) open + ``channel.send(1)``/receive + exit, until the ssh side is gone; median of 10.
(b) round trips per second: 2,000 small-int echoes.
(c) throughput of ``--size`` MiB (default 256) in 1 MiB ``bytes`` chunks, both directions.

execnet runs the OpenSSH client (``ssh -C ...``: execnet always asks for compression) with
``-o StrictHostKeyChecking=yes`` and ``//python=python3`` (the test host has no ``python``);
ours uses paramiko in this process. The sshd is started here with the test fixture's
functions (``tests/sshd_fixtures.py``) and stopped at the end. Contenders are interleaved
(see ``common.interleaved``); figures are medians.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from sshd_fixtures import SshdCluster, SshdHost, find_sshd  # noqa: E402

MIB = 1024 * 1024
OURS, EXECNET = "execnet_cli", "execnet"
LIBS = {OURS: execnet_cli, EXECNET: execnet}


def specs(host: SshdHost) -> Dict[str, str]:
    return {
        OURS: host.spec(),
        EXECNET: f"ssh={host.ssh_value(extra='-o StrictHostKeyChecking=yes')}//python=python3",
    }


def close_gateway(name: str, gw: Any) -> None:
    """Exit ``gw`` and wait until its ssh side is gone (execnet: the ssh client reaped)."""
    gw.exit()
    if name == EXECNET:
        gw.join()
        gw._io.wait()


# -- (a) open + exec + exit -----------------------------------------------------------------


def bench_open(spec: Dict[str, str], rounds: int, results: Results, targets: Targets) -> None:
    def contender(name: str) -> Callable[[], float]:
        def run() -> float:
            t0 = time.perf_counter()
            gw = LIBS[name].makegateway(spec[name])
            channel = gw.remote_exec("channel.send(1)")
            assert channel.receive() == 1
            close_gateway(name, gw)
            return time.perf_counter() - t0

        return run

    timings = interleaved({name: contender(name) for name in LIBS}, rounds)
    med = {name: median(t) for name, t in timings.items()}
    rows = [
        [name, fmt_ms(med[name]), spread(t), fmt_ratio(ratio(med[name], med[EXECNET]))]
        for name, t in timings.items()
    ]
    for name, t in timings.items():
        results.add("open_exec_exit", name, "s", med[name], samples=t)
    print_table(
        f"(a) ssh open + exec + exit; wall time, median of {rounds}",
        ["contender", "median", "min/max", "/ execnet"],
        rows,
    )
    value = ratio(med[OURS], med[EXECNET])
    targets.check(
        "(a) ssh open+exec+exit ours/execnet",
        value,
        1.0,
        at_most=True,
        shown=f"{fmt_ms(med[OURS])} vs {fmt_ms(med[EXECNET])} = {fmt_ratio(value)}",
    )


# -- (b) round trips --------------------------------------------------------------------------


def bench_roundtrips(
    gateways: Dict[str, Any], rounds: int, pairs: int, results: Results, targets: Targets
) -> None:
    channels = {name: gw.remote_exec(ECHO) for name, gw in gateways.items()}

    def contender(channel: Any) -> Callable[[], float]:
        def run() -> float:
            send, receive = channel.send, channel.receive
            t0 = time.perf_counter()
            for _ in range(pairs):
                send(42)
                if receive() != 42:
                    raise AssertionError("echo returned something else")
            return time.perf_counter() - t0

        return run

    timings = interleaved({name: contender(ch) for name, ch in channels.items()}, rounds)
    for channel in channels.values():
        channel.close()
    rate = {name: pairs / median(t) for name, t in timings.items()}
    rows = [
        [
            name,
            f"{rate[name]:,.0f}",
            f"{median(t) / pairs * 1e6:.0f} µs",
            spread(t),
            fmt_ratio(ratio(rate[name], rate[EXECNET])),
        ]
        for name, t in timings.items()
    ]
    for name, t in timings.items():
        results.add("roundtrips", name, "rt/s", rate[name], samples=t, pairs=pairs)
    print_table(
        f"(b) small-int echo over ssh, {pairs:,} round trips; median of {rounds}",
        ["contender", "round trips/s", "wall/trip", "min/max", "vs execnet"],
        rows,
    )
    value = ratio(rate[OURS], rate[EXECNET])
    print(f"(b) round trips ours/execnet: {fmt_ratio(value)} (no target)")


# -- (c) throughput -----------------------------------------------------------------------------


def to_remote(gw: Any, chunk: bytes, count: int) -> Callable[[], float]:
    def run() -> float:
        channel = gw.remote_exec(SINK)
        if channel.receive() != "ready":
            raise AssertionError("sink did not start")
        send = channel.send
        t0 = time.perf_counter()
        for _ in range(count):
            send(chunk)
        send(None)
        total = channel.receive()
        elapsed = time.perf_counter() - t0
        channel.waitclose(60)
        if total != len(chunk) * count:
            raise AssertionError(f"remote counted {total} bytes")
        return elapsed

    return run


def from_remote(gw: Any, size: int, count: int) -> Callable[[], float]:
    def run() -> float:
        channel = gw.remote_exec(SOURCE)
        channel.send(size)
        if channel.receive() != "ready":
            raise AssertionError("source did not start")
        receive = channel.receive
        got = 0
        t0 = time.perf_counter()
        channel.send(count)
        for _ in range(count):
            got += len(receive())
        end = receive()
        elapsed = time.perf_counter() - t0
        channel.waitclose(60)
        if got != size * count or end is not None:
            raise AssertionError(f"received {got} bytes")
        return elapsed

    return run


def bench_throughput(
    gateways: Dict[str, Any], rounds: int, size_mib: int, results: Results, targets: Targets
) -> None:
    chunk = bytes(MIB)
    total = size_mib * MIB
    rows: List[List[str]] = []
    for direction in ("local→remote", "remote→local"):
        contenders: Dict[str, Callable[[], float]] = {}
        for name, gw in gateways.items():
            if direction == "local→remote":
                contenders[name] = to_remote(gw, chunk, size_mib)
            else:
                contenders[name] = from_remote(gw, MIB, size_mib)
        timings = interleaved(contenders, rounds, warmup=0)
        mbs = {name: total / median(t) / 1e6 for name, t in timings.items()}
        for name, t in timings.items():
            rows.append(
                [
                    direction,
                    name,
                    f"{mbs[name]:,.0f}",
                    spread(t),
                    fmt_ratio(ratio(mbs[name], mbs[EXECNET])),
                ]
            )
            results.add(
                f"throughput 1 MiB {direction}", name, "MB/s", mbs[name], samples=t, bytes=total
            )
        value = ratio(mbs[OURS], mbs[EXECNET])
        targets.check(
            f"(c) 1 MiB {direction} ours/execnet",
            value,
            2.0,
            at_most=False,
            shown=f"{mbs[OURS]:,.0f} vs {mbs[EXECNET]:,.0f} MB/s = {fmt_ratio(value)}",
        )
    print_table(
        f"(c) throughput over ssh, {size_mib} MiB in 1 MiB chunks, MB/s = 10^6 B/s; "
        f"median of {rounds}",
        ["direction", "contender", "MB/s", "min/max", "vs execnet"],
        rows,
    )


# -- main ----------------------------------------------------------------------------------------


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--size", type=int, default=None, help="MiB per run (default 256)")
    parser.add_argument("--only", default="a,b,c", help="comma-separated subset of a,b,c")
    parser.add_argument("--rounds", type=int, default=None, help="override every round count")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    size = args.size or (64 if args.quick else 256)
    rounds_a = args.rounds or (4 if args.quick else 10)
    rounds_b = args.rounds or (2 if args.quick else 5)
    rounds_c = args.rounds or (1 if args.quick else 3)
    sshd = find_sshd()
    if sshd is None:
        print("bench_ssh: no sshd (apt-get install openssh-server); skipped")
        return 0
    print(
        f"bench_ssh: execnet_cli {execnet_cli.__version__} vs execnet {execnet.__version__}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = Results("ssh", save=not args.no_save, quick=args.quick, size_mib=size)
    targets = Targets()
    with SshdCluster(sshd) as cluster:
        host = cluster.start(1)[0]
        spec = specs(host)
        if "a" in only:
            bench_open(spec, rounds_a, results, targets)
        if only & {"b", "c"}:
            gateways = {name: LIBS[name].makegateway(spec[name]) for name in LIBS}
            try:
                if "b" in only:
                    bench_roundtrips(gateways, rounds_b, 2000, results, targets)
                if "c" in only:
                    bench_throughput(gateways, rounds_c, size, results, targets)
            finally:
                for name, gw in gateways.items():
                    close_gateway(name, gw)
    results.add_targets(targets)
    print(f"load at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
