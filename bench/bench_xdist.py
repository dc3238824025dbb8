"""pytest-xdist on execnet_cli (through the alias) vs on execnet, side by side in one run.

    python3 bench/bench_xdist.py [--quick] [--tests N] [--workers N] [--rounds N]
                                 [--no-autoload] [--taskset]

Generates a suite of ``--tests`` quick tests (default 400) in a temporary directory and
times ``python -m pytest -n 4 -q -p no:cacheprovider`` on it, once with the alias
directory (``xnet compat-path``) first on PYTHONPATH and once without (the real execnet),
interleaved A B B A ... (see ``common.interleaved``), median of ``--rounds`` (default 5).

Figures per run: wall time of the whole pytest process; startup = from launching pytest
until the first test starts on any worker (a conftest in the suite stamps it); the rest =
wall - startup (running the tests, reporting, tearing the workers down); CPU = user +
system seconds of pytest and all its workers (far steadier than wall time on a loaded
machine). ``--taskset`` pins pytest and its workers to CPU 0 (``taskset -c 0``).

Bytecode: every run uses one private ``PYTHONPYCACHEPREFIX`` (filled by the warmup round)
and may write to it, whatever PYTHONDONTWRITEBYTECODE says. Otherwise an editable
checkout without ``__pycache__`` would recompile execnet_cli in every process (~60 ms here)
while the installed execnet has its .pyc files: an installed wheel has them too.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from common import (
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from execnet_cli.compat import alias_dir  # noqa: E402

OURS, EXECNET = "ours (alias)", "execnet"

CONFTEST = '''\
import os
import time

_stamped = False


def pytest_runtest_setup(item):
    """Stamp the first test this process runs (one file per worker)."""
    global _stamped
    if not _stamped:
        _stamped = True
        directory = os.environ["XNET_BENCH_STAMPS"]
        with open(os.path.join(directory, str(os.getpid())), "w") as out:
            out.write(repr(time.time()))
'''

TEST_MODULE = """\
import pytest


@pytest.mark.parametrize("n", range({count}))
def test_quick(n):
    assert n + 1 > n
"""


def make_suite(root: Path, tests: int, per_module: int = 50) -> None:
    """``tests`` quick tests in modules of ``per_module``, plus the stamping conftest."""
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "conftest.py").write_text(CONFTEST)
    index = 0
    while tests > 0:
        count = min(per_module, tests)
        (root / f"test_quick_{index:03d}.py").write_text(TEST_MODULE.format(count=count))
        tests -= count
        index += 1


class Runner:
    """Runs pytest on the suite under one engine; remembers startup and CPU times."""

    def __init__(
        self, suite: Path, engine: str, workers: int, autoload: bool, taskset: bool, pycache: Path
    ) -> None:
        self.suite = suite
        self.engine = engine
        self.stamps = suite.parent / f"stamps-{engine.split()[0]}"
        self.args = [sys.executable, "-m", "pytest", "-n", str(workers), "-q"]
        self.args += ["-p", "no:cacheprovider"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        paths = [p for p in paths if p != str(alias_dir())]
        if engine == OURS:
            paths.insert(0, str(alias_dir()))
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["XNET_BENCH_STAMPS"] = str(self.stamps)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
        if not autoload:
            env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
            self.args[3:3] = ["-p", "xdist.plugin"]
        if taskset:
            self.args[:0] = ["taskset", "-c", "0"]
        self.env = env
        self.startups: List[float] = []
        self.cpu: List[float] = []
        self.expected = ""

    def __call__(self) -> float:
        shutil.rmtree(self.stamps, ignore_errors=True)
        self.stamps.mkdir()
        cpu0 = children_cpu()
        t0 = time.time()
        start = time.perf_counter()
        done = subprocess.run(
            self.args, cwd=self.suite, env=self.env, capture_output=True, text=True, timeout=600
        )
        elapsed = time.perf_counter() - start
        self.cpu.append(children_cpu() - cpu0)
        if done.returncode != 0 or self.expected not in done.stdout:
            raise SystemExit(f"{self.engine}: pytest failed\n{done.stdout}\n{done.stderr}")
        first = min(float(p.read_text()) for p in self.stamps.iterdir())
        self.startups.append(first - t0)
        return elapsed


def children_cpu() -> float:
    """User + system seconds of all reaped descendants (pytest reaps its workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--tests", type=int, default=400, help="tests in the suite")
    parser.add_argument("--workers", type=int, default=4, help="pytest -n value")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5, quick 2)")
    parser.add_argument(
        "--no-autoload",
        action="store_true",
        help="load only xdist's plugin (PYTEST_DISABLE_PLUGIN_AUTOLOAD=1), not every installed one",
    )
    parser.add_argument("--taskset", action="store_true", help="pin everything to CPU 0")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    autoload = not args.no_autoload
    import execnet

    print(
        f"bench_xdist: pytest -n {args.workers} on {args.tests} quick tests, execnet_cli alias "
        f"vs execnet {execnet.__version__}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs{', pinned to CPU 0' if args.taskset else ''}, "
        f"plugins {'all installed' if autoload else 'xdist only'}, "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = Results(
        "xdist",
        save=not args.no_save,
        tests=args.tests,
        workers=args.workers,
        rounds=rounds,
        autoload=autoload,
        taskset=args.taskset,
    )
    workdir = Path(tempfile.mkdtemp(prefix="xnet-bench-xdist-"))
    try:
        suite = workdir / "suite"
        suite.mkdir()
        make_suite(suite, args.tests)
        runners = {
            name: Runner(suite, name, args.workers, autoload, args.taskset, workdir / "pycache")
            for name in (OURS, EXECNET)
        }
        for runner in runners.values():
            runner.expected = f"{args.tests} passed"
        walls = interleaved(dict(runners), rounds=rounds, warmup=1)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    flags = (("quick", args.quick), ("xdist-only", not autoload), ("cpu0", args.taskset))
    report(runners, walls, results, ",".join(name for name, on in flags if on))
    print(f"load at the end: {os.getloadavg()[0]:.2f}")
    return 0


def report(
    runners: Dict[str, Runner], walls: Dict[str, List[float]], results: Results, label: str
) -> None:
    # interleaved's warmup round ran each runner once more: keep the timed rounds only.
    count = {name: len(walls[name]) for name in walls}
    startups = {name: runner.startups[-count[name] :] for name, runner in runners.items()}
    cpus = {name: runner.cpu[-count[name] :] for name, runner in runners.items()}
    rows = []
    medians: Dict[str, Dict[str, float]] = {}
    for name in (OURS, EXECNET):
        rest = [w - s for w, s in zip(walls[name], startups[name])]
        figures = {
            "wall": median(walls[name]),
            "startup": median(startups[name]),
            "rest": median(rest),
            "cpu": median(cpus[name]),
        }
        medians[name] = figures
        rows.append(
            [
                name,
                fmt_ms(figures["wall"]),
                spread(walls[name]),
                fmt_ms(figures["startup"]),
                spread(startups[name]),
                fmt_ms(figures["rest"]),
                fmt_ms(figures["cpu"]),
                spread(cpus[name]),
            ]  # fmt: skip
        )
        for figure, value in figures.items():
            results.add(figure, name, "s", value)
    ours, theirs = medians[OURS], medians[EXECNET]
    ratios = {key: ratio(ours[key], theirs[key]) for key in ours}
    rows.append(
        [
            "ours / execnet",
            fmt_ratio(ratios["wall"]),
            "",
            fmt_ratio(ratios["startup"]),
            "",
            fmt_ratio(ratios["rest"]),
            fmt_ratio(ratios["cpu"]),
            "",
        ]  # fmt: skip
    )
    print_table(
        "pytest -n: wall time, startup (launch to first test), rest, CPU of all processes "
        "(medians)",
        ["engine", "wall", "spread", "startup", "spread", "rest", "CPU", "spread"],
        rows,
    )
    targets = Targets(label)
    targets.check("xdist wall time ours/execnet", ratios["wall"], 1.0, True,
                  fmt_ratio(ratios["wall"]))  # fmt: skip
    targets.check("xdist startup ours/execnet", ratios["startup"], 0.9, True,
                  fmt_ratio(ratios["startup"]))  # fmt: skip
    results.add_targets(targets)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
