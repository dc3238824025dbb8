"""Run every benchmark (``make bench``): bench_gateway.py first, then the other bench_*.py.

    python3 bench/run_all.py [--quick] [--taskset] [--size MIB]

Each script runs as its own subprocess with this interpreter; ``--quick`` (and
``--taskset``/``--size``) are passed to the scripts whose ``--help`` lists the option.
The figures stream through as they come; a summary of every ``MET``/``MISSED`` target
line follows. Missed targets never fail the run: the exit status is 0 unless a script
crashed (a Python traceback on its stderr), which is a bug, not a slow figure.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, List, Tuple

BENCH_DIR = Path(__file__).resolve().parent
FIRST = "bench_gateway.py"
TARGET_LINE = re.compile(r"^\s*(MET|MISSED)\b")


def scripts() -> List[Path]:
    """bench_gateway.py first, then the other bench_*.py by name."""
    found = sorted(BENCH_DIR.glob("bench_*.py"), key=lambda p: (p.name != FIRST, p.name))
    return [p for p in found if p.is_file()]


def options(script: Path) -> str:
    """The ``--help`` text of ``script`` (empty if it has none): which options it takes."""
    try:
        done = subprocess.run(
            [sys.executable, str(script), "--help"],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def pump(stream: IO[str], sink: IO[str], lines: List[str]) -> None:
    for line in stream:
        sink.write(line)
        sink.flush()
        lines.append(line)


def run(script: Path, args: List[str]) -> Tuple[int, List[str], bool, float]:
    """Run one script, echoing its output; return (status, stdout lines, crashed, seconds)."""
    command = [sys.executable, str(script), *args]
    print(f"\n##### {script.name} {' '.join(args)}".rstrip(), flush=True)
    out: List[str] = []
    err: List[str] = []
    t0 = time.perf_counter()
    child = subprocess.Popen(
        command,
        cwd=BENCH_DIR.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    )
    assert child.stdout is not None and child.stderr is not None
    readers = [
        threading.Thread(target=pump, args=(child.stdout, sys.stdout, out)),
        threading.Thread(target=pump, args=(child.stderr, sys.stderr, err)),
    ]
    for reader in readers:
        reader.start()
    status = child.wait()
    for reader in readers:
        reader.join()
    crashed = any("Traceback (most recent call last)" in line for line in err)
    return status, out, crashed, time.perf_counter() - t0


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer rounds")
    parser.add_argument(
        "--taskset", action="store_true", help="also re-run pinned to CPU 0 where supported"
    )
    parser.add_argument("--size", help="MiB per throughput run, where supported")
    args = parser.parse_args(argv)

    summary: List[str] = []
    problems: List[str] = []
    crashed_any = False
    for script in scripts():
        takes = options(script) if args.quick or args.taskset or args.size else ""
        passed: List[str] = []
        for flag, wanted in (("--quick", args.quick), ("--taskset", args.taskset)):
            if wanted and flag in takes:
                passed.append(flag)
        if args.size and "--size" in takes:
            passed += ["--size", args.size]
        status, lines, crashed, seconds = run(script, passed)
        summary += [f"{script.name}: {line.strip()}" for line in lines if TARGET_LINE.match(line)]
        if crashed:
            crashed_any = True
            problems.append(f"{script.name}: CRASHED (exit status {status}, traceback above)")
        elif status != 0:
            problems.append(f"{script.name}: exit status {status} (not counted as a failure)")
        print(f"##### {script.name}: {seconds:.0f} s", flush=True)

    print("\n##### targets")
    for line in summary or ["(no MET/MISSED lines printed)"]:
        print(line)
    met = sum(1 for line in summary if ": MET" in line)
    print(f"{met} met, {len(summary) - met} missed")
    for line in problems:
        print(line)
    return 1 if crashed_any else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
