"""Benchmark execnet_cli's serializer against execnet's: µs per dumps / loads.

Run: python3 bench/bench_serializer.py [--repeats N]

Each figure is the median over several repeats of the mean time per call in a timed loop
(the loop length is calibrated to ~10 ms), measured with time.perf_counter. The samples
of both libraries alternate, so that noise from other processes hits both alike. The
"parts" row is our dumps_parts (segments for os.writev) against execnet's dumps.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable, List, Tuple

import execnet

from execnet_cli._remote import serializer

CASES: List[Tuple[str, Any]] = [
    ("small int", 42),
    ("short str", "hello world"),
    ("tuple ('x', 1, None, 2.5)", ("x", 1, None, 2.5)),
    ("dict 100 str->int", {f"key{i}": i for i in range(100)}),
    ("list 1000 ints", list(range(1000))),
    ("1 MiB bytes", bytes(1 << 20)),
]


def calibrate(func: Callable[[Any], Any], arg: Any) -> int:
    """How many calls of func(arg) take about 10 ms."""
    loops = 1
    while True:
        if time_loop(func, arg, loops) >= 0.01:
            return loops
        loops *= 10 if loops < 1000 else 2


def time_loop(func: Callable[[Any], Any], arg: Any, loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        func(arg)
    return time.perf_counter() - start


def compare_us(
    ours: Tuple[Callable[[Any], Any], Any], theirs: Tuple[Callable[[Any], Any], Any], repeats: int
) -> Tuple[float, float]:
    """Median µs per call of each; samples alternate so that machine noise hits both alike."""
    loops = [calibrate(*ours), calibrate(*theirs)]
    samples: Tuple[List[float], List[float]] = ([], [])
    for _ in range(repeats):
        for i, (func, arg) in enumerate((ours, theirs)):
            samples[i].append(time_loop(func, arg, loops[i]) / loops[i] * 1e6)
    return statistics.median(samples[0]), statistics.median(samples[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    header = f"{'case':<28} {'op':<6} {'ours µs':>10} {'execnet µs':>11} {'speedup':>8}"
    print(header)
    print("-" * len(header))
    for name, value in CASES:
        ours_data = serializer.dumps(value)
        theirs_data = execnet.dumps(value)
        assert serializer.loads(ours_data) == value
        assert execnet.loads(theirs_data) == value
        rows = [
            ("dumps", serializer.dumps, value, execnet.dumps, value),
            ("loads", serializer.loads, ours_data, execnet.loads, theirs_data),
        ]
        if isinstance(value, bytes):  # what the frame writer uses: segments, no copy
            rows.append(("parts", serializer.dumps_parts, value, execnet.dumps, value))
        for op, ours, ours_arg, theirs, theirs_arg in rows:
            ours_us, theirs_us = compare_us((ours, ours_arg), (theirs, theirs_arg), args.repeats)
            print(
                f"{name:<28} {op:<6} {ours_us:>10.2f} {theirs_us:>11.2f} "
                f"{theirs_us / ours_us:>7.2f}x"
            )


if __name__ == "__main__":
    main()
