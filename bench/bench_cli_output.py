"""Bench: ``xnet run`` printing a lot, gathered and streamed, against ``--json`` (issue #11).

One popen host prints 500,000 lines of 100 bytes (50 MB); the same command runs three
ways, interleaved (json, gather, no-gather, then the next round starting elsewhere),
each a fresh ``xnet`` process with its stdout to a file. Reported per mode: the median
wall time, its ratio to ``--json``, the CPU time of the ``xnet`` process and its peak memory
(its own ``ru_utime + ru_stime`` and ``ru_maxrss``, from ``wait4``; a second opinion on a
shared machine, where wall time includes waiting for a CPU), and, gathered, the time the
summary line claims against the wall time (the summary's time is the command's time,
printing included).

Targets: gathered and streamed within 1.5 × of ``--json``; memory bounded for any output
size (four hosts printing 50 MB each, ``--json``: the peak stays within 64 MB of one host
printing a fifth as much); the summary's time at least 90 % of the wall time (the rest is
the interpreter starting before the command's clock does).

    python3 bench/bench_cli_output.py [--quick] [--lines N] [--rounds N] [--no-save]

``--quick``: 100,000 lines, two rounds (under a minute here).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Results,
    Targets,
    add_common_args,
    fmt_ratio,
    interleaved,
    median,
    print_table,
    spread,
)

ROOT = Path(__file__).resolve().parent.parent
LINE_BYTES = 100
#: Python code printing ``lines`` lines of 100 bytes (99 characters and a newline).
CODE = (
    "import sys\nline = 'x' * 99 + '\\n'\nwrite = sys.stdout.write\n"
    "for _ in range({lines}):\n    write(line)\n"
)
INVENTORY = """\
groups:
  big:
    hosts: big[1-{hosts}]
    vars: {{transport: popen}}
"""
MODES = {"json": ["--json"], "gather": [], "no-gather": ["--no-gather"]}
SUMMARY_TIME = re.compile(r" in ([0-9.]+) s$")


def xnet(inventory: Path, lines: int, mode: list[str], sink: Path) -> dict[str, float]:
    """One ``xnet run`` to completion: wall seconds, peak RSS (MiB), the summary's seconds."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "execnet_cli", "run", "-i", str(inventory), *mode]
    with sink.open("wb") as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([*argv, CODE.format(lines=lines)], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        messages = err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise SystemExit(f"xnet {' '.join(mode)} failed ({proc.returncode}): {messages[-2000:]}")
    found = SUMMARY_TIME.search(messages.strip().splitlines()[-1]) if messages.strip() else None
    claimed = float(found.group(1)) if found else float("nan")
    cpu = usage.ru_utime + usage.ru_stime  # xnet's own (and its reaped children's)
    return {"wall": wall, "rss": usage.ru_maxrss / 1024, "claimed": claimed, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--lines", type=int, default=None, help="lines per host (500,000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per mode (3)")
    args = parser.parse_args()
    lines = args.lines or (100_000 if args.quick else 500_000)
    rounds = args.rounds or (2 if args.quick else 3)
    results = Results("bench_cli_output", save=not args.no_save, lines=lines, rounds=rounds)
    targets = Targets()
    with tempfile.TemporaryDirectory(prefix="xnet-bench-") as tmp:
        work = Path(tmp)
        one, four = work / "one.yaml", work / "four.yaml"
        one.write_text(INVENTORY.format(hosts=1))
        four.write_text(INVENTORY.format(hosts=4))
        sink = work / "out"
        runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}

        def contender(mode: str) -> object:
            def run() -> float:
                figures = xnet(one, lines, MODES[mode], sink)
                runs[mode].append(figures)
                return figures["wall"]

            return run

        timings = interleaved({mode: contender(mode) for mode in MODES}, rounds, warmup=0)
        small = xnet(four, lines // 5, MODES["json"], sink)
        large = xnet(four, lines, MODES["json"], sink)

    base = median(timings["json"])
    rows = []
    for mode, walls in timings.items():
        rss = max(r["rss"] for r in runs[mode])
        claimed = median([r["claimed"] for r in runs[mode]])
        cpu = median([r["cpu"] for r in runs[mode]])
        rows.append(
            [
                mode,
                f"{median(walls):.2f} s",
                spread(walls),
                fmt_ratio(median(walls) / base),
                f"{cpu:.2f} s",
                f"{rss:.0f} MiB",
                "-" if claimed != claimed else f"{claimed:.2f} s",
            ]
        )
        results.add("one host", mode, "s", median(walls), rss_mib=rss, claimed=claimed, cpu=cpu)
    mb = lines * LINE_BYTES / 1e6
    print_table(
        f"xnet run: one popen host printing {lines:,} lines ({mb:.0f} MB), {rounds} rounds",
        ["mode", "median", "spread", "vs --json", "CPU", "peak RSS", "summary says"],
        rows,
    )
    print_table(
        "xnet run --json: four popen hosts (peak RSS of xnet)",
        ["output per host", "peak RSS"],
        [
            [f"{mb / 5:.0f} MB", f"{small['rss']:.0f} MiB"],
            [f"{mb:.0f} MB", f"{large['rss']:.0f} MiB"],
        ],
    )
    results.add("four hosts", "json", "MiB", large["rss"], small_rss_mib=small["rss"])
    for mode in ("gather", "no-gather"):
        ratio = median(timings[mode]) / base
        targets.check(f"{mode} vs --json", ratio, 1.5, True, fmt_ratio(ratio))
    growth = large["rss"] - small["rss"]
    targets.check("memory growth, 5x the output", growth, 64, True, f"{growth:+.0f} MiB")
    gathered = runs["gather"]
    share = median([r["claimed"] / r["wall"] for r in gathered])
    targets.check("summary time / command time", share, 0.9, False, f"{share:.0%}")
    results.add_targets(targets)


if __name__ == "__main__":
    main()
