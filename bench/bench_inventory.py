"""Bench: load + expand + select on an inventory of 10,000 hosts in 100 groups.

Target (issue 5): under 0.2 s. Two shapes of the same inventory are timed:

- ``ranges``: each group written as a range (``g042-n[001-100]``), as people write inventories;
- ``listed``: every host written out as its own mapping key, the worst case for the YAML parser
  (10,000 lines: ``inventory/fast_reader.py`` takes it, not PyYAML's ``compose``).

Each run loads the file from scratch, resolves the group memberships, selects a few patterns
(a group, a union, an intersection with a difference, a glob, a regex) and folds the results for
display; the median of several runs is reported. Wall-clock time decides the verdict; our CPU
time is printed too, a second opinion on a shared machine (it leaves out time spent waiting for
a CPU). Folding speed is compared with ClusterShell's ``NodeSet`` when ClusterShell happens to
be importable.

    python3 bench/bench_inventory.py [--quick] [--runs N] [--check]

``--check`` exits with status 1 when either shape misses the target (off by default: these VMs
swing several-fold between runs). Each line says which reader took the file: ``compose`` for
the ``listed`` shape would mean the fast reader gave up on it, and the time went with it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from execnet_cli.inventory import HostSet, Inventory, expand_list, fold  # noqa: E402
from execnet_cli.inventory.fast_reader import compose as fast_compose  # noqa: E402

GROUPS = 100
PER_GROUP = 100
TARGET = 0.2
PATTERNS = (
    "g007",
    "g001,g002,g050",
    "even&rack1,!g010",
    "g09*",
    "~g0[0-4]\\d-n00[1-5]",
    "all,!odd",
)


def write_inventory(directory: Path, listed: bool) -> Path:
    """100 groups of 100 hosts, every other group in ``even``/``odd``, ten racks of ten."""
    lines = ["vars:", "  user: bench", "  connect_timeout: 5", "groups:"]
    for g in range(GROUPS):
        lines.append(f"  g{g:03d}:")
        if listed:
            lines.append("    hosts:")
            lines += [f"      g{g:03d}-n{n:03d}:" for n in range(1, PER_GROUP + 1)]
        else:
            lines.append(f"    hosts: g{g:03d}-n[001-{PER_GROUP:03d}]")
        lines.append(f"    vars: {{python: /opt/py{g % 7}/bin/python3}}")
    for name, members in (
        ("even", [f"g{g:03d}" for g in range(0, GROUPS, 2)]),
        ("odd", [f"g{g:03d}" for g in range(1, GROUPS, 2)]),
        *((f"rack{r}", [f"g{g:03d}" for g in range(r * 10, r * 10 + 10)]) for r in range(10)),
    ):
        lines += [f"  {name}:", f"    children: [{', '.join(members)}]"]
    lines += ["hosts:", "  g000-n001: {port: 2222}"]
    path = directory / f"inventory-{'listed' if listed else 'ranges'}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def one_run(path: Path) -> dict[str, float]:
    c0 = time.process_time()
    t0 = time.perf_counter()
    inventory = Inventory.from_files([path])
    t1 = time.perf_counter()
    sizes = [len(inventory.select(p)) for p in PATTERNS]
    t2 = time.perf_counter()
    texts = [inventory.select(p).fold() for p in PATTERNS]
    t3 = time.perf_counter()
    c3 = time.process_time()
    assert len(inventory.all) == GROUPS * PER_GROUP, len(inventory.all)
    assert sizes[0] == PER_GROUP and texts[0] == "g007-n[001-100]", (sizes, texts)
    return {"load": t1 - t0, "select": t2 - t1, "fold": t3 - t2, "total": t3 - t0, "cpu": c3 - c0}


def bench_shape(path: Path, runs: int) -> dict[str, float]:
    results = [one_run(path) for _ in range(runs)]
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def bench_fold(runs: int) -> None:
    names = expand_list(f"g[000-{GROUPS - 1:03d}]-n[001-{PER_GROUP:03d}]")
    ours = statistics.median(_timed(lambda: fold(names)) for _ in range(runs))
    print(f"fold 10,000 names:            ours {ours * 1000:7.1f} ms  -> {fold(names)}")
    try:
        from ClusterShell.NodeSet import NodeSet  # type: ignore[import-not-found]
    except ImportError:
        print("ClusterShell not importable: no NodeSet comparison")
        return
    theirs = statistics.median(_timed(lambda: str(NodeSet.fromlist(names))) for _ in range(runs))
    ratio = ours / theirs
    print(f"fold 10,000 names: ClusterShell {theirs * 1000:7.1f} ms  (ours/theirs {ratio:.2f})")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=None, help="runs per shape (default 7, quick 3)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument("--check", action="store_true", help="exit 1 if over the target")
    args = parser.parse_args()
    args.runs = args.runs or (3 if args.quick else 7)
    ok = True
    resolved: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for listed in (False, True):
            path = write_inventory(Path(tmp), listed)
            m = bench_shape(path, args.runs)
            verdict = "under" if m["total"] < TARGET else "OVER"
            ok = ok and m["total"] < TARGET
            shape = "listed" if listed else "ranges"
            reader = "fast reader" if fast_compose(path.read_text()) is not None else "compose"
            print(
                f"{shape}: 10,000 hosts / {GROUPS} groups, median of {args.runs}: "
                f"load {m['load'] * 1000:6.1f} ms, select {len(PATTERNS)} patterns "
                f"{m['select'] * 1000:6.1f} ms, fold {m['fold'] * 1000:6.1f} ms, "
                f"total {m['total'] * 1000:6.1f} ms ({verdict} the {TARGET * 1000:.0f} ms target; "
                f"CPU time {m['cpu'] * 1000:.1f} ms; {reader})"
            )
            resolve = statistics.median(
                _timed(Inventory.from_files([path]).hosts) for _ in range(max(1, args.runs // 2))
            )
            resolved.append(f"{shape} {resolve * 1000:.1f} ms")
    bench_fold(args.runs)
    hs = HostSet(expand_list("n[00001-10000]"))
    algebra = _timed(lambda: (hs - "n[00001-05000]") | hs)
    print(f"HostSet algebra on 10,000 names: {algebra * 1000:.2f} ms")
    print(f"resolve all 10,000 hosts to Host objects (not in the target): {', '.join(resolved)}")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
