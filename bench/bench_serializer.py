"""Benchmark execnet_cli's serializer against execnet's: µs per dumps / loads.

Run: python3 bench/bench_serializer.py [--repeats N] [--attacks]

Each figure is the median over several repeats of the mean time per call in a timed loop
(the loop length is calibrated to ~10 ms), measured with time.perf_counter. The samples
of both libraries alternate, so that noise from other processes hits both alike. The
"parts" row is our dumps_parts (segments for os.writev) against execnet's dumps.

``--attacks`` instead loads the hostile inputs of issue #16, each in a child process (a
crash shows as its exit status), and prints the child's CPU time, its peak RSS growth and
the outcome. Run it with PYTHONPATH set to another tree to compare versions. Crafting the
probe-clustering dict (keys with distinct hashes, see ``clustering_keys``) takes ~15 s.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import struct
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

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


# -- hostile inputs (issue #16) -----------------------------------------------------------------

HASH_MODULUS = 2**61 - 1  # an int hashes to itself modulo this prime


def _container(op: int, count: int, body: bytes) -> bytes:
    """Version byte, a long-form container header (op: the u32 opcode) and its items."""
    return bytes((1, op)) + struct.pack("<I", count) + body


def _bigint(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) >> 3, "little", signed=True)
    return bytes((0x0C, len(raw))) + raw


def clustering_keys(walkers: int, seed: int = 1) -> List[int]:
    """Ints with distinct hashes that crowd CPython 3.8+ dict probing (a 2**18 table).

    87,381 keys fill a run of slots along the probe sequence's last phase (i -> 5i + 1),
    in the order the dict's resize to 2**18 places them; then each walker's hash is chosen
    5 bits at a time (each step of the perturbed phase feeds 5 more bits) so that every
    probe lands on a full slot, until it joins the run and walks it to its end.
    """
    bits, run = 18, 87_381
    size = 1 << bits
    mask = size - 1
    cycle, index = [0] * size, [0] * size
    slot = 0
    for i in range(size):
        cycle[i], index[slot] = slot, i
        slot = (5 * slot + 1) & mask
    full = bytearray(size)
    for i in range(run):
        full[cycle[i]] = 1
    rng = random.Random(seed)
    keys, end = cycle[:run], run
    for _ in range(walkers):
        best = None
        for _attempt in range(20):
            first = cycle[rng.randrange(0, min(end, 5000))]
            stack, found, nodes = [(0, 0, first, 1)], None, 0
            while stack and nodes < 20_000:
                m, known, i, step = stack.pop()
                nodes += 1
                if step > 13:  # the perturbation is spent: plain i -> 5i + 1 from here
                    found = (first + (m << bits), i)
                    break
                need = min(5 * step, 43)  # first + m << 18 must stay below 2**61
                options = (
                    [m] if need <= known else [m | x << known for x in range(1 << (need - known))]
                )
                rng.shuffle(options)
                for option in options:
                    h = first + (option << bits)
                    j = (5 * i + (h >> (5 * step)) + 1) & mask
                    if full[j]:
                        stack.append((option, max(known, need), j, step + 1))
            if found and index[found[1]] < end and (best is None or index[found[1]] < best[1]):
                best = (found[0], index[found[1]])
            if best and best[1] < end // 4:
                break
        if best is not None:
            keys.append(best[0])
            full[cycle[end]] = 1
            end += 1
    return keys


def attacks() -> Dict[str, Callable[[], bytes]]:
    """Each hostile input of issue #16 (and kin), by name, as a function making its data."""

    def colliding(count: int, residue: int = 12345) -> bytes:
        return b"".join(_bigint(k * HASH_MODULUS + residue) for k in range(1, count + 1))

    def clustering() -> bytes:
        keys = clustering_keys(17_476)
        return _container(
            0x13, len(keys), b"".join(struct.pack("<Bq", 3, k) + b"\x80" for k in keys)
        )

    return {
        "deep tuple in a set (293 KiB)": lambda: b"\x01\x14\x01" + b"\x0e\x01" * 150_000 + b"\x00",
        "colliding set (374 KiB)": lambda: _container(0x15, 34_800, colliding(34_800)),
        "colliding dict (374 KiB)": lambda: _container(
            0x13,
            31_900,
            b"".join(_bigint(k * HASH_MODULUS + 7) + b"\x80" for k in range(1, 31_901)),
        ),
        "colliding set (1 MiB)": lambda: _container(0x15, 95_325, colliding(95_325)),
        "colliding tuple keys (1 MiB)": lambda: _container(
            0x15,
            1_148,
            b"".join(
                b"\x0e\x65"
                + b"".join(struct.pack("<Bq", 3, 10**12 + i) for i in range(100))
                + _bigint(k * HASH_MODULUS + 5)
                for k in range(1, 1_149)
            ),
        ),
        "probe clustering dict (1 MiB)": clustering,
        "ordinary set (374 KiB)": lambda: _container(
            0x15, 34_800, b"".join(_bigint(k * 1000003 + 2**64) for k in range(1, 34_801))
        ),
        "empty sets (4 MB)": lambda: _container(0x11, 2_000_000, b"\x14\x00" * 2_000_000),
        "empty dicts (4 MiB)": lambda: _container(0x11, 2_097_152, b"\x12\x00" * 2_097_152),
        "{0: 0} dicts (4 MiB)": lambda: _container(
            0x11, 1_048_576, b"\x12\x01\x80\x80" * 1_048_576
        ),
        "one-char strs U+0100 (4 MiB)": lambda: _container(
            0x11, 1_398_101, b"\x42\xc4\x80" * 1_398_101
        ),
    }


def run_attack(name: str) -> None:
    """In the child: load one attack's data, print CPU s, RSS growth MiB, size and outcome."""
    from execnet_cli._remote.errors import LoadError

    data = attacks()[name]()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.thread_time()
    try:
        outcome = f"loaded a {type(serializer.loads(data)).__name__}"
    except LoadError as exc:
        outcome = f"LoadError: {str(exc)[:60]}..."
    cpu = time.thread_time() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    print(f"{cpu:.3f}|{grown:.0f}|{len(data)}|{outcome}")


def main_attacks() -> None:
    print(f"{'attack':<32} {'CPU s':>7} {'RSS MiB':>8} {'x size':>7}  outcome")
    for name in attacks():
        child = subprocess.run(
            [sys.executable, __file__, "--attack", name], capture_output=True, text=True
        )
        if child.returncode:
            print(f"{name:<32} {'':>7} {'':>8} {'':>7}  crashed: exit status {child.returncode}")
            continue
        cpu, grown, size, outcome = child.stdout.strip().rsplit("\n", 1)[-1].split("|", 3)
        ratio = float(grown) * 2**20 / int(size)
        print(f"{name:<32} {float(cpu):>7.3f} {grown:>8} {ratio:>6.0f}x  {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--attacks", action="store_true", help="load the hostile inputs")
    parser.add_argument("--attack", help=argparse.SUPPRESS)  # one, in a child process
    args = parser.parse_args()
    if args.attack:
        return run_attack(args.attack)
    if args.attacks:
        return main_attacks()
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
