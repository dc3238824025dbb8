"""``xnet shell`` at a terminal, side by side with ``ssh -t host python3 -i``.

    python3 bench/bench_shell.py [--quick] [--rounds N] [--statements N]

Each contender runs in a pseudo-terminal (pexpect), as a person would use it: the time
from starting the command to its first prompt, then the time per statement (an
expression typed, its value and the next prompt back), median over the statements.
Contenders, interleaved round by round: ``xnet shell localhost`` (popen), ``xnet shell``
on one lab host and on 16 at once (the fan-out lab of bench_fanout.py, ``$LAB``), and
``ssh -t -F $LAB/ssh_config 127.0.0.2 python3 -i``. Without the lab only the popen one
runs. No targets: the issue asks for the comparison, not a bound.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from common import Results, add_common_args, fmt_ms, fmt_ratio, median, print_table, ratio, spread

LAB = Path(os.environ.get("LAB", "/tmp/flab"))
REPO = Path(__file__).resolve().parent.parent
#: Bound on every wait for a prompt or a value.
WAIT = 60


def lab_ready() -> bool:
    """Whether the fan-out lab's sshd are all running (its pids file lists them)."""
    try:
        pids = [int(p) for p in (LAB / "pids").read_text().split()]
    except (OSError, ValueError):
        return False
    return bool(pids) and all(Path(f"/proc/{pid}").exists() for pid in pids)


def contenders(lab: bool) -> Dict[str, Tuple[List[str], str]]:
    """name -> (argv, the prompt it shows)."""
    xnet = [sys.executable, "-m", "execnet_cli", "shell"]
    found = {"xnet shell localhost": ([*xnet, "localhost"], "localhost>>> ")}
    if lab:
        inventory = str(LAB / "inventory.yaml")
        found["xnet shell n01"] = ([*xnet, "-i", inventory, "n01"], "n01>>> ")
        found["xnet shell n[01-16]"] = ([*xnet, "-i", inventory, "n[01-16]"], "n[01-16]>>> ")
        ssh = ["ssh", "-t", "-F", str(LAB / "ssh_config"), "127.0.0.2", "python3", "-i"]
        found["ssh -t python3 -i"] = (ssh, ">>> ")
    return found


def session(
    argv: List[str], prompt: str, statements: int, env: Dict[str, str]
) -> Tuple[float, float]:
    """One session: (seconds to the first prompt, median seconds per statement)."""
    import pexpect

    t0 = time.perf_counter()
    child = pexpect.spawn(argv[0], argv[1:], env=env, encoding="utf-8", timeout=WAIT)
    child.delaybeforesend = None  # pexpect sleeps 50 ms before each send by default
    try:
        child.expect(re.escape(prompt))
        start = time.perf_counter() - t0
        times = []
        for i in range(statements):
            value = 1000 + i
            t0 = time.perf_counter()
            child.sendline(f"{value} + {value}")
            child.expect(rf"\b{2 * value}\r\n(?:.*\r\n)*?.*{re.escape(prompt)}")
            times.append(time.perf_counter() - t0)
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
        return start, statistics.median(times)
    finally:
        child.close(force=True)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--rounds", type=int, default=None, help="sessions per contender")
    parser.add_argument("--statements", type=int, default=None, help="statements per session")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    statements = args.statements or (10 if args.quick else 30)
    lab = lab_ready()
    tools = contenders(lab)
    print(
        f"bench_shell: {len(tools)} contenders, {rounds} rounds of {statements} statements; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
        + ("" if lab else f"; the lab is not running ({LAB}): popen only")
        + "; figures are noisy on a shared machine: medians and min/max spread",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-shell-") as state:
        env = dict(os.environ, XDG_STATE_HOME=state, TERM="xterm", PYTHONPATH=str(REPO))
        # Compiled modules cached, as an installed xnet has them (not in the source tree).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(state) / "pycache")
        starts: Dict[str, List[float]] = {name: [] for name in tools}
        lags: Dict[str, List[float]] = {name: [] for name in tools}
        names = list(tools)
        for name in names:  # untimed: fills the cache, warms the hosts' files
            session(*tools[name], 2, env)
        for r in range(rounds):  # interleaved: round r starts with contender r mod n
            for name in names[r % len(names) :] + names[: r % len(names)]:
                start, lag = session(*tools[name], statements, env)
                starts[name].append(start)
                lags[name].append(lag)
    results = Results("shell", save=not args.no_save, quick=args.quick, rounds=rounds)
    ssh = "ssh -t python3 -i"
    rows = []
    for name in names:
        first, each = median(starts[name]), median(lags[name])
        results.add("time to prompt", name, "s", first)
        results.add("per statement", name, "s", each)
        versus = ssh if ssh in tools and name != ssh else None
        rows.append(
            [
                name,
                fmt_ms(first),
                spread(starts[name]),
                fmt_ms(each),
                spread(lags[name]),
                fmt_ratio(ratio(first, median(starts[versus]))) if versus else "",
                fmt_ratio(ratio(each, median(lags[versus]))) if versus else "",
            ]
        )
    columns = ["contender", "to prompt", "spread", "per statement", "spread"]
    print_table("xnet shell at a terminal", [*columns, "prompt / ssh", "stmt / ssh"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
