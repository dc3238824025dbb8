"""RSync against execnet 2.1.2, ``rsync -a`` over ssh and ``cp -a``, side by side in one run.

    python3 bench/bench_rsync.py [--quick] [--rounds N] [--only small,big,same,append,insert,fan]

(small)  5,000 x 1 KiB in 50 directories, fresh destination: popen and ssh.
(big)    one 300 MB file, fresh destination: popen and ssh, with the controller's and the
         worker's peak memory.
(same)   re-sync with nothing changed (5,000 files): popen (ours, execnet) and ssh (rsync).
(append) 1 MB appended to the 300 MB file, over ssh: time and bytes on the wire.
(insert) 3 MiB inserted in the middle of the 300 MB file, over ssh: the same (the rest of
         the file must still travel as matched blocks).
(fan)    one push to 16 popen workers (1,000 small files and a 37 MB file): bytes the
         controller read, per byte of the tree.

Ours and execnet are timed once their gateway is open; ``rsync -a`` includes its ssh
handshake (it has no other way). The ssh host is a loopback sshd started here with the
test fixtures' code (``tests/sshd_fixtures.py``), stopped at the end. Contenders are
interleaved round by round (``common.interleaved``); figures are medians. ``--quick``:
1,000 small files and a 64 MB file, fewer rounds. The trees go to ``--dir`` (default
/dev/shm).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import execnet
from common import (
    Results,
    Targets,
    add_common_args,
    fmt_ratio,
    interleaved,
    median,
    print_table,
    ratio,
    spread,
)

import execnet_cli
from execnet_cli.rsync import RSync

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from sshd_fixtures import SshdCluster, SshdHost, find_sshd  # noqa: E402

MB = 1000 * 1000
OURS, EXECNET, RSYNC, CP = "ours", "execnet 2.1.2", "rsync -a over ssh", "cp -a"


class Lab:
    """The scratch directory, the trees, the ssh host and the gateways of one run."""

    def __init__(self, root: Path, host: Optional[SshdHost], files: int, big_mb: int) -> None:
        self.root = root
        self.host = host
        self.small = root / "small"
        self.big = root / "big"
        make_small_tree(self.small, files)
        make_big_file(self.big / "big.bin", big_mb)
        self.gateways: Dict[str, Any] = {}
        self.files, self.big_mb = files, big_mb

    def gateway(self, name: str) -> Any:
        if name not in self.gateways:
            if name.endswith("ssh"):
                assert self.host is not None
                if name.startswith(OURS):
                    spec = self.host.spec()
                else:
                    extra = "-o StrictHostKeyChecking=yes"
                    spec = f"ssh={self.host.ssh_value(extra=extra)}//python=python3"
            else:
                spec = "popen"
            library = execnet_cli if name.startswith(OURS) else execnet
            self.gateways[name] = library.makegateway(spec)
        return self.gateways[name]

    def close(self) -> None:
        for name, gateway in self.gateways.items():
            gateway.exit()
            if not name.startswith(OURS):
                gateway.join()

    def rsync_command(self, source: Path, dest: Path, *extra: str) -> List[str]:
        assert self.host is not None
        host = self.host
        ssh = (
            f"ssh -p {host.port} -i {host.key} -o UserKnownHostsFile={host.known_hosts} "
            "-o StrictHostKeyChecking=yes -o BatchMode=yes"
        )
        return ["rsync", "-a", *extra, "-e", ssh, f"{source}/", f"root@{host.address}:{dest}/"]


def make_small_tree(root: Path, files: int) -> None:
    per_dir = max(1, files // 50)
    for index in range(files):
        directory = root / f"d{index // per_dir:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{index:05d}").write_bytes(os.urandom(1024))


def make_big_file(path: Path, size_mb: int) -> None:
    path.parent.mkdir(parents=True)
    block = os.urandom(MB)
    with path.open("wb") as out:
        for i in range(size_mb):
            out.write(block[i % 997 :] + block[: i % 997])  # no two blocks alike


def fresh(dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)


def library_sync(lab: Lab, name: str, source: Path, dest: Path, clear: bool) -> Callable[[], float]:
    """A contender: one send of ``source`` to ``dest`` through the named gateway, timed."""
    gateway = lab.gateway(name)

    def run() -> float:
        if clear:
            fresh(dest)
        if name.startswith(OURS):
            rsync: Any = RSync(source, verbose=False)
        else:
            rsync = execnet.RSync(source, verbose=False)
        rsync.add_target(gateway, dest)
        t0 = time.perf_counter()
        rsync.send()
        return time.perf_counter() - t0

    return run


def command(args: List[str], dest: Optional[Path] = None) -> Callable[[], float]:
    def run() -> float:
        if dest is not None:
            fresh(dest)
        t0 = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0

    return run


def report(title: str, timings: Dict[str, List[float]], results: Results, case: str) -> None:
    base = median(timings[OURS]) if OURS in timings else None
    rows = []
    for name, values in timings.items():
        mid = median(values)
        results.add(case, name, "s", mid, runs=values)
        rows.append([name, f"{mid:.3f} s", spread(values), fmt_ratio(ratio(base or mid, mid))])
    print_table(title, ["contender", "median", "spread", "ours ÷ it"], rows)


# -- the cases -------------------------------------------------------------------------------


def bench_small(lab: Lab, rounds: int, results: Results, targets: Targets) -> None:
    src, out = lab.small, lab.root / "out-small"
    files = sum(1 for _ in src.rglob("f*"))
    popen = {
        OURS: library_sync(lab, OURS, src, out / "ours", True),
        EXECNET: library_sync(lab, EXECNET, src, out / "execnet", True),
        CP: command(["cp", "-a", str(src), str(out / "cp")], out / "cp"),
    }
    report(f"{files:,} x 1 KiB, fresh, popen", interleaved(popen, rounds), results, "small popen")
    if lab.host is None:
        return
    ours = library_sync(lab, OURS + " ssh", src, out / "ours-ssh", True)
    title = f"{files:,} x 1 KiB, fresh, over ssh"
    versus_rsync(lab, src, out, ours, title, "small files", rounds, results, targets)


def versus_rsync(
    lab: Lab,
    src: Path,
    out: Path,
    ours: Callable[[], float],
    title: str,
    case: str,
    rounds: int,
    results: Results,
    targets: Targets,
) -> None:
    """Ours, execnet and ``rsync -a`` over ssh, fresh destinations; the target ours ≤ rsync."""
    ssh = {
        OURS: ours,
        EXECNET: library_sync(lab, EXECNET + " ssh", src, out / "execnet-ssh", True),
        RSYNC: command(lab.rsync_command(src, out / "rsync"), out / "rsync"),
    }
    timings = interleaved(ssh, rounds)
    report(title, timings, results, f"{case} ssh")
    value = ratio(median(timings[OURS]), median(timings[RSYNC]))
    targets.check(f"{case} over ssh, ours ÷ rsync", value, 1.0, True, fmt_ratio(value))


class PeakRss:
    """The largest resident size of this process while it runs (sampled every 5 ms)."""

    def __init__(self) -> None:
        self.peak = self.base = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker_peak(gateway: Any) -> int:
    """The worker's peak resident size (VmHWM), bytes."""
    source = (
        "import re\n"
        "status = open('/proc/self/status').read()\n"
        "channel.send(re.search(r'VmHWM:\\s+(\\d+)', status).group(1))"
    )
    return int(gateway.remote_exec(source).receive()) * 1024


def bench_big(lab: Lab, rounds: int, results: Results, targets: Targets) -> None:
    src, out = lab.big, lab.root / "out-big"
    size = (src / "big.bin").stat().st_size
    memory: Dict[str, int] = {}

    def measured(name: str, dest: Path) -> Callable[[], float]:
        inner = library_sync(lab, name, src, dest, True)

        def run() -> float:
            with PeakRss() as peak:
                seconds = inner()
            memory[name] = max(memory.get(name, 0), peak.peak - peak.base)
            return seconds

        return run

    popen = {
        OURS: measured(OURS, out / "ours"),
        EXECNET: measured(EXECNET, out / "execnet"),
        CP: command(["cp", "-a", str(src), str(out / "cp")], out / "cp"),
    }
    title = f"one {size / MB:.0f} MB file, fresh, popen"
    report(title, interleaved(popen, rounds), results, "big popen")
    for name in (OURS, EXECNET):
        print(
            f"  memory, {name}: controller +{memory[name] / MB:.0f} MB, "
            f"worker peak {worker_peak(lab.gateway(name)) / MB:.0f} MB"
        )
        results.add("big popen memory", name, "bytes", memory[name])
    if lab.host is None:
        return
    ours = measured(OURS + " ssh", out / "ours-ssh")
    title = f"one {size / MB:.0f} MB file, fresh, over ssh"
    versus_rsync(lab, src, out, ours, title, "big file", rounds, results, targets)
    grown = memory[OURS + " ssh"] / MB
    targets.check("big file over ssh, controller memory (MB)", grown, 64, True, f"+{grown:.0f} MB")


def bench_same(lab: Lab, rounds: int, results: Results, targets: Targets) -> None:
    src, out = lab.small, lab.root / "out-same"
    contenders: Dict[str, Callable[[], float]] = {
        OURS: library_sync(lab, OURS, src, out / "ours", False),
        EXECNET: library_sync(lab, EXECNET, src, out / "execnet", False),
    }
    if lab.host is not None:
        contenders[RSYNC] = command(lab.rsync_command(src, out / "rsync"))
    for run in contenders.values():
        run()  # the first sync copies; every timed one finds nothing to do
    timings = interleaved(contenders, rounds)
    report("re-sync, nothing changed (ours, execnet: popen)", timings, results, "same")
    if RSYNC in timings:
        value = ratio(median(timings[OURS]), median(timings[RSYNC]))
        targets.check("nothing changed, ours ÷ rsync over ssh", value, 0.3, True, fmt_ratio(value))


def bench_update(lab: Lab, rounds: int, results: Results, targets: Targets, case: str) -> None:
    """An old version of the big file at the destination, a new one at the source: 1 MB
    appended ("append") or 3 MiB inserted in its middle ("insert")."""
    if lab.host is None:
        return
    old = lab.big / "big.bin"
    src, out = lab.root / case, lab.root / f"out-{case}"
    src.mkdir()
    added = MB if case == "append" else 3 << 20
    at = old.stat().st_size if case == "append" else old.stat().st_size // 2 + 12345
    with old.open("rb") as before, (src / "big.bin").open("wb") as after:
        while after.tell() < at:
            after.write(before.read(min(MB, at - after.tell())))
        after.write(os.urandom(added))
        shutil.copyfileobj(before, after)
    size = (src / "big.bin").stat().st_size
    wire: Dict[str, List[int]] = {OURS: [], RSYNC: []}

    def prepare(dest: Path) -> None:
        fresh(dest)
        dest.mkdir(parents=True)
        shutil.copy2(old, dest / "big.bin")  # the old version, its own mtime

    def ours() -> float:
        prepare(out / "ours")
        rsync = RSync(src, verbose=False)
        rsync.add_target(lab.gateway(OURS + " ssh"), out / "ours")
        t0 = time.perf_counter()
        (result,) = rsync.send()
        seconds = time.perf_counter() - t0
        wire[OURS].append(result.wire_bytes)
        return seconds

    def theirs() -> float:
        prepare(out / "rsync")
        t0 = time.perf_counter()
        args = lab.rsync_command(src, out / "rsync", "--stats")
        done = subprocess.run(args, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        sent = re.search(r"Total bytes sent: ([\d,]+)", done.stdout)
        got = re.search(r"Total bytes received: ([\d,]+)", done.stdout)
        if sent and got:
            wire[RSYNC].append(int(sent[1].replace(",", "")) + int(got[1].replace(",", "")))
        return seconds

    timings = interleaved({OURS: ours, RSYNC: theirs}, rounds)
    what = "1 MB appended to" if case == "append" else "3 MiB inserted in the middle of"
    report(f"{what} the {size / MB:.0f} MB file, over ssh", timings, results, case)
    for name, values in wire.items():
        if values:
            print(f"  on the wire, {name}: {median(values) / MB:.2f} MB")
            results.add(f"{case} wire", name, "bytes", median(values))
    value = ratio(median(timings[OURS]), median(timings[RSYNC]))
    if case == "append":
        share = median(wire[OURS]) / size * 100
        targets.check("append: wire ÷ file size (%)", share, 2.0, True, f"{share:.2f} %")
        targets.check("append, ours ÷ rsync", value, 1.0, True, fmt_ratio(value))
        return
    share = median(wire[OURS]) / added
    targets.check("insert: wire ÷ bytes inserted", share, 1.2, True, f"{share:.2f}x")
    print(f"  insert, ours ÷ rsync: {fmt_ratio(value)} (info)")


def bench_fan(lab: Lab, results: Results, targets: Targets, hosts: int = 16) -> None:
    src = lab.root / "fan-src"
    make_small_tree(src / "small", lab.files // 5)
    make_big_file(src / "big" / "big.bin", lab.big_mb // 8)
    total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    group = execnet_cli.Group(["popen"] * hosts)
    try:
        rsync = RSync(src, verbose=False)
        for index, gateway in enumerate(group):
            rsync.add_target(gateway, lab.root / "fan-out" / f"host{index}")
        before = read_bytes()
        t0 = time.perf_counter()
        rsync.send()
        seconds = time.perf_counter() - t0
        read = read_bytes() - before
    finally:
        group.terminate(10)
    share = read / total
    print(
        f"\npush to {hosts} popen workers: {total / MB:.0f} MB tree in {seconds:.2f} s; "
        f"the controller read {read / MB:.0f} MB ({share:.2f}x the tree)"
    )
    results.add("fan", OURS, "read/tree", share, hosts=hosts, seconds=seconds)
    targets.check(f"push to {hosts} hosts, bytes read ÷ tree", share, 1.1, True, f"{share:.2f}x")


def read_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--rounds", type=int, default=None, help="override every round count")
    parser.add_argument(
        "--only", default="small,big,same,append,insert,fan", help="comma-separated cases"
    )
    parser.add_argument(
        "--dir",
        default="/dev/shm" if os.access("/dev/shm", os.W_OK) else None,
        help="where the trees go (default: /dev/shm, a tmpfs: on a shared VM, disk contention "
        "would swamp what is measured; every contender writes to the same place)",
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    files, big_mb = (1000, 64) if args.quick else (5000, 300)
    rounds = args.rounds or (2 if args.quick else 5)
    print(
        f"bench_rsync: execnet_cli {execnet_cli.__version__} vs execnet {execnet.__version__}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = Results("rsync", save=not args.no_save, quick=args.quick, files=files, big_mb=big_mb)
    targets = Targets()
    sshd = find_sshd()
    if sshd is None or shutil.which("rsync") is None:
        print("bench_rsync: no sshd or no rsync: the ssh cases are skipped")
    with (
        tempfile.TemporaryDirectory(prefix="xnet-bench-rsync-") as scratch,
        SshdCluster(sshd or "/usr/sbin/sshd") as cluster,
    ):
        host = cluster.start(1)[0] if sshd and shutil.which("rsync") else None
        lab = Lab(Path(scratch), host, files, big_mb)
        try:
            if "small" in only:
                bench_small(lab, rounds, results, targets)
            if "big" in only:
                bench_big(lab, max(1, rounds - 1), results, targets)
            if "same" in only:
                bench_same(lab, rounds * 2, results, targets)
            for case in ("append", "insert"):
                if case in only:
                    bench_update(lab, max(1, rounds - 1), results, targets, case)
        finally:
            lab.close()
        if "fan" in only:
            bench_fan(lab, results, targets)
    results.add_targets(targets)
    print(f"load at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
