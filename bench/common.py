"""Shared helpers for the benchmarks: interleaved timing, medians, tables, targets, results.

Process-to-process speed on these machines swings several-fold between runs, so contenders
are never timed in separate blocks: ``interleaved`` runs one round of every contender, then
the next round, ... and the figures are medians. A benchmark prints a table, one ``MET`` or
``MISSED`` line per target, and appends its figures as JSON lines to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import hashlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

#: A contender: a callable run once per round. If it returns a float, that is its timing
#: in seconds (for callables that keep setup out of the measurement); otherwise the wall
#: time of the whole call is used.
Contender = Callable[[], Any]


def interleaved(
    contenders: Dict[str, Contender], rounds: int, warmup: int = 1
) -> Dict[str, List[float]]:
    """Run the contenders in turn, ``rounds`` times, and return each one's timings (s).

    Round ``r`` starts with contender ``r mod n`` (A B, B A, A B, ...), so no contender
    always follows the same one. ``warmup`` untimed rounds come first. A garbage
    collection runs before each call, outside the timing, so one contender's garbage is
    not collected on the other's clock.
    """
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    timings: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        start = r % len(names)
        for name in names[start:] + names[:start]:
            gc.collect()
            t0 = time.perf_counter()
            result = contenders[name]()
            elapsed = time.perf_counter() - t0
            timings[name].append(result if isinstance(result, float) else elapsed)
    return timings


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (nan when empty)."""
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """``min–max`` of ``values`` relative to their median, e.g. ``-12%/+30%``."""
    if len(values) < 2:
        return ""
    mid = median(values)
    if not mid:
        return ""
    return f"{(min(values) / mid - 1) * 100:+.0f}%/{(max(values) / mid - 1) * 100:+.0f}%"


def ratio(ours: float, theirs: float) -> float:
    """``ours / theirs`` (nan when ``theirs`` is zero)."""
    return ours / theirs if theirs else float("nan")


def fmt_ratio(value: float) -> str:
    """A ratio as ``0.42×``."""
    return f"{value:.2f}×"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Options every benchmark takes: ``--quick`` and ``--no-save``."""
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds and less data: a smoke run"
    )
    parser.add_argument(
        "--no-save", action="store_true", help="do not append results to bench/results/"
    )


# -- output -----------------------------------------------------------------------------


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a table with rich when it is importable, else as aligned plain text."""
    cells = [[str(c) for c in row] for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max([len(col)] + [len(row[i]) for row in cells]) for i, col in enumerate(columns)]
        print(f"\n{title}")
        print(
            "  ".join(
                col.ljust(w) if i == 0 else col.rjust(w)
                for i, (col, w) in enumerate(zip(columns, widths))
            )
        )
        print("  ".join("-" * w for w in widths))
        for row in cells:
            print(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths))
                )
            )
        sys.stdout.flush()
        return
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=True)
    for row in cells:
        table.add_row(*row)
    Console(width=max(140, _terminal_width()), soft_wrap=False).print(table)
    sys.stdout.flush()


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 120


class Targets:
    """Collects target checks; each prints one ``MET``/``MISSED`` line."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.checks: List[Dict[str, Any]] = []

    def check(self, name: str, value: float, limit: float, at_most: bool, shown: str) -> bool:
        """Record ``value`` against ``limit`` (``at_most``: value ≤ limit, else ≥)."""
        met = value <= limit if at_most else value >= limit
        sign = "≤" if at_most else "≥"
        where = f" [{self.label}]" if self.label else ""
        print(f"{'MET   ' if met else 'MISSED'} {name}{where}: {shown} (target {sign} {limit:g})")
        sys.stdout.flush()
        self.checks.append(
            {"target": name, "value": value, "limit": limit, "at_most": at_most, "met": met}
        )
        return met


# -- results ----------------------------------------------------------------------------


def machine_info() -> Dict[str, Any]:
    """What the figures depend on: CPUs, interpreter, kernel, affinity, load."""
    info: Dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["affinity"] = sorted(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=BENCH_DIR,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        info["commit"] = commit or None
    except (OSError, subprocess.SubprocessError):
        info["commit"] = None
    info["source_digest"] = source_digest("execnet_cli")
    return info


def source_digest(package: str) -> Optional[str]:
    """A short hash of the importable package's .py files: what was measured, commit or not."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    digest = hashlib.sha1(str(root).encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


class Results:
    """Appends one JSON object per figure to ``bench/results/<bench>.jsonl``."""

    def __init__(self, bench: str, save: bool = True, **run: Any) -> None:
        self.bench = bench
        self.save = save
        self.header = {
            "bench": bench,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "run": run,
        }
        self.path: Optional[Path] = RESULTS_DIR / f"{bench}.jsonl" if save else None

    def add(self, case: str, contender: str, unit: str, value: float, **extra: Any) -> None:
        """One figure: ``value`` in ``unit`` for ``contender`` in ``case``."""
        self._write({"case": case, "contender": contender, "unit": unit, "value": value, **extra})

    def add_targets(self, targets: Targets) -> None:
        for check in targets.checks:
            self._write({"case": "target", "label": targets.label, **check})

    def _write(self, record: Dict[str, Any]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({**self.header, **record}, sort_keys=True) + "\n")


# -- remote programs shared by the gateway and ssh benchmarks ------------------------------

#: Echo every item back.
ECHO = "for x in channel:\n    channel.send(x)\n"
#: Count the bytes of every chunk until None, then send the total.
SINK = """\
channel.send("ready")
total = 0
for chunk in channel:
    if chunk is None:
        break
    total += len(chunk)
channel.send(total)
"""
#: Send the bytes it is given N times, then None.
SOURCE = """\
data = bytes(channel.receive())
channel.send("ready")
for _ in range(channel.receive()):
    channel.send(data)
channel.send(None)
"""
