"""pytest-xdist on execnet_cli: the sample project, through our alias and through execnet.

Each case runs ``python -m pytest`` on a copy of ``xdist_sample/`` twice: with the alias
directory (``xnet compat-path``) first on PYTHONPATH, and without it (the real execnet
installed beside us). The outcome of every test (from junitxml), the summary counts and
the exit status must be identical; the sample's engine records prove which execnet the
controller and every worker ran.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import pytest
from sshd_fixtures import SshdHost

from execnet_cli.compat import alias_dir

pytest.importorskip("xdist")
real_execnet = pytest.importorskip("execnet")

SAMPLE = Path(__file__).parent / "xdist_sample"
ALIAS = str(alias_dir())
RUN_TIMEOUT = 120
#: Tests that record the worker's engine (test_engine.py, parametrized).
ENGINE_TESTS = 4
SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+) in [\d.]+s")
REAL_EXECNET_FILE = real_execnet.__file__


@dataclass
class Run:
    engine: str
    returncode: int
    outcomes: Dict[str, str]
    summary: Dict[str, int]
    records: List[dict]
    output: str

    def workers(self) -> List[dict]:
        return [r for r in self.records if r["worker"] is not None]

    def controller(self) -> dict:
        found = [r for r in self.records if r["worker"] is None]
        assert len(found) == 1, self.records
        return found[0]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the sample project (runs never write into the source tree)."""
    target = tmp_path_factory.mktemp("xdist") / "sample"
    shutil.copytree(SAMPLE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def child_env(engine: str, record: Path, autoload: bool = True) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    if not autoload:  # only xdist (given with -p): pytest starts in half the time
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != ALIAS]
    if engine == "xnet":
        paths.insert(0, ALIAS)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["XNET_SAMPLE_RECORD"] = str(record)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_sample(
    project: Path, workdir: Path, engine: str, args: List[str], autoload: bool = False
) -> Run:
    """Run the sample under ``engine`` ("xnet": our alias, "execnet": the real one).

    Without ``autoload`` only xdist's plugin is loaded, not every installed one.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    record = workdir / f"records-{engine}.jsonl"
    junit = workdir / f"junit-{engine}.xml"
    # A bounded number of restarts: a worker that crashes at start must not loop forever.
    cmd = [sys.executable, "-m", "pytest", *args, "--max-worker-restart=4"]
    cmd += [f"--junitxml={junit}", "-rA"]
    if not autoload:
        cmd[3:3] = ["-p", "xdist.plugin"]
    done = subprocess.run(
        cmd,
        cwd=project,
        env=child_env(engine, record, autoload),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    output = done.stdout + done.stderr
    assert junit.exists(), f"{engine}: no junitxml written\n{output}"
    records = []
    if record.exists():
        records = [json.loads(line) for line in record.read_text().splitlines() if line]
    return Run(
        engine, done.returncode, junit_outcomes(junit), summary_counts(done.stdout), records, output
    )


def junit_outcomes(path: Path) -> Dict[str, str]:
    """``classname::name`` -> passed / failed / error / skipped / xfailed, per test case."""
    outcomes: Dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag == "failure":
                outcome = "failed"
            elif child.tag == "error":
                outcome = "error"
            elif child.tag == "skipped":
                outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
        assert key not in outcomes, f"{key} reported twice in {path}"
        outcomes[key] = outcome
    return outcomes


def summary_counts(stdout: str) -> Dict[str, int]:
    """The final ``5 failed, 37 passed, ... in 3.1s`` line as a mapping."""
    for line in reversed(stdout.splitlines()):
        match = SUMMARY.match(line.strip())
        if match:
            counts = {}
            for part in match.group(1).split(", "):
                number, word = part.split(" ")
                counts[word.rstrip("s")] = int(number)
            return counts
    raise AssertionError(f"no summary line in:\n{stdout[-3000:]}")


def compare(ours: Run, theirs: Run, engine_tests: int = ENGINE_TESTS, whole: bool = True) -> None:
    """Identical outcomes and counts; each run's records name the engine it should use.

    ``whole``: our workers can import the controller's execnet_cli (popen of the same
    interpreter), so their ``execnet`` is the whole alias; else the engine-only module."""
    assert ours.outcomes == theirs.outcomes, diff(ours.outcomes, theirs.outcomes)
    assert ours.summary == theirs.summary, (ours.summary, theirs.summary)
    assert ours.returncode == theirs.returncode, (ours.output[-3000:], theirs.output[-3000:])
    assert len(ours.outcomes) >= 40
    # The controller: xdist imported our alias package, or the real execnet.
    assert ours.controller()["xnet_alias"], ours.records
    assert ours.controller()["execnet_file"].startswith(ALIAS), ours.records
    assert not theirs.controller()["xnet_alias"], theirs.records
    assert theirs.controller()["execnet_file"] == REAL_EXECNET_FILE, theirs.records
    # Every worker: execnet_cli's worker engine, or execnet's own.
    assert len(ours.workers()) == engine_tests, ours.records
    assert len(theirs.workers()) == engine_tests, theirs.records
    for record in ours.workers():
        assert record["xnet_alias"] and record["xnet_remote_loaded"], record
        # issue 13: the whole alias package, over the worker's own engine
        assert record["execnet_file"].startswith(ALIAS) == whole, record
        assert record["has_group"] == whole and record["engine_channel"], record
    for record in theirs.workers():
        assert not record["xnet_alias"] and not record["xnet_remote_loaded"], record
        assert record["execnet_file"] == REAL_EXECNET_FILE, record


def diff(ours: Dict[str, str], theirs: Dict[str, str]) -> str:
    keys = sorted(set(ours) | set(theirs))
    lines = [f"{k}: ours={ours.get(k)} execnet={theirs.get(k)}" for k in keys]
    return "\n".join(line for line, k in zip(lines, keys) if ours.get(k) != theirs.get(k))


def run_both(project: Path, workdir: Path, args: List[str], autoload: bool) -> tuple:
    """Both engines at once (the runs share nothing but the read-only project)."""
    with ThreadPoolExecutor(2) as pool:
        ours = pool.submit(run_sample, project, workdir, "xnet", args, autoload)
        theirs = pool.submit(run_sample, project, workdir, "execnet", args, autoload)
        return ours.result(), theirs.result()


EXPECTED = {
    "test_fail::test_assert_fails": "failed",
    "test_fail::test_error_in_setup": "error",
    "test_skip_xfail::test_skip_marker": "skipped",
    "test_skip_xfail::test_xfail": "xfailed",
    "test_skip_xfail::test_xpass": "passed",
    "test_output::test_prints": "passed",
    "test_pass::TestMethods::test_two": "passed",
}
EXPECTED_JUNIT = {k.replace("::TestMethods", ".TestMethods"): v for k, v in EXPECTED.items()}

NO_CRASH = ["-k", "not crashes_worker"]
#: name -> (arguments, load every installed plugin?). The crash (and the worker restart
#: it costs) is in some cases only, to keep the time down; all plugins in the first.
CASES = {
    "n2": (["-n", "2"], True),
    "n4": (["-n", "4", *NO_CRASH], False),
    "tx-2popen-dist-load": (["--tx", "2*popen", "--dist", "load"], False),
    # xdist's loadfile scheduler hangs after a worker crash, under either engine.
    "dist-loadfile": (["-n", "2", "--dist", "loadfile", *NO_CRASH], False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_outcomes_as_execnet(case: str, project: Path, tmp_path: Path) -> None:
    args, autoload = CASES[case]
    ours, theirs = run_both(project, tmp_path, args, autoload)
    compare(ours, theirs)
    for key, outcome in EXPECTED_JUNIT.items():
        assert ours.outcomes.get(key) == outcome, (key, ours.outcomes.get(key))
    crash = "test_crash::test_crashes_worker"
    if "not crashes_worker" not in args:
        # The crash is reported (junit: as an error, outside the call) and replaced.
        assert ours.outcomes[crash] == "error"
        assert "crashed while running" in ours.output
        assert "replacing crashed worker" in ours.output
        assert ours.outcomes["test_crash::test_after_crash"] == "passed"
    assert "hello from the sample test" in ours.output  # -rA shows captured output


def test_rare_specs(project: Path, tmp_path: Path) -> None:
    """Proxy gateways (--px), via=, socket with installvia=, chdir= with --rsyncdir,
    python= and id=: xdist's spec handling end to end, with the same outcomes."""
    args = [
        "--px", "id=p1//popen",
        "--px", "id=p2//popen",
        "--tx", "popen//via=p1//id=viaworker",
        "--tx", f"socket//installvia=p2//chdir={tmp_path / 'socket-ENGINE'}",
        "--tx", f"popen//python={sys.executable}//id=pyworker//chdir={tmp_path / 'popen-ENGINE'}",
        "--rsyncdir", str(project),
        "--dist", "load",
        *NO_CRASH,
        str(project),
    ]  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        xnet_args = [a.replace("ENGINE", "xnet") for a in args]
        real_args = [a.replace("ENGINE", "real") for a in args]
        ours_f = pool.submit(run_sample, project, tmp_path, "xnet", xnet_args)
        theirs_f = pool.submit(run_sample, project, tmp_path, "execnet", real_args)
        ours, theirs = ours_f.result(), theirs_f.result()
    compare(ours, theirs)
    # --rsyncdir copied the project (and pytest itself) into the chdir= targets.
    for engine in ("xnet", "real"):
        for kind in ("socket", "popen"):
            synced = tmp_path / f"{kind}-{engine}" / project.name / "test_pass.py"
            assert synced.read_text() == (project / "test_pass.py").read_text()


def test_ssh_with_rsyncdir(project: Path, tmp_path: Path, sshd_host: SshdHost) -> None:
    """``--tx ssh=...`` to a loopback sshd with ``--rsyncdir``: same outcomes."""
    host = sshd_host
    record = tmp_path / "ssh-records-ENGINE.jsonl"

    def args(engine: str) -> List[str]:
        # ssh does not carry our environment: the worker's settings travel in the spec
        # (without the autoload setting, xdist.plugin would be registered twice there).
        spec = (
            host.spec(python=sys.executable)
            + f"//chdir={tmp_path / ('remote-' + engine)}"
            + f"//env:XNET_SAMPLE_RECORD={str(record).replace('ENGINE', engine)}"
            + "//env:PYTEST_DISABLE_PLUGIN_AUTOLOAD=1"
        )
        return ["--tx", spec, "--tx", spec, "--dist", "load", "--rsyncdir", str(project),
                str(project)]  # fmt: skip

    with ThreadPoolExecutor(2) as pool:
        ours_f = pool.submit(run_sample, project, tmp_path, "xnet", args("xnet"))
        theirs_f = pool.submit(run_sample, project, tmp_path, "execnet", args("execnet"))
        ours, theirs = ours_f.result(), theirs_f.result()
    ours.records += read_records(Path(str(record).replace("ENGINE", "xnet")))
    theirs.records += read_records(Path(str(record).replace("ENGINE", "execnet")))
    compare(ours, theirs, whole=False)  # an ssh worker's engine came as source
    assert "replacing crashed worker" in ours.output
    synced = tmp_path / "remote-xnet" / project.name / "conftest.py"
    assert synced.read_text() == (project / "conftest.py").read_text()


def read_records(path: Path) -> List[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_alias_is_not_importable_by_default() -> None:
    """Without the alias directory on sys.path, ``import execnet`` is the real one."""
    assert not getattr(real_execnet, "__xnet_alias__", False)
    assert ALIAS not in sys.path


def test_alias_modules_reexport_execnet_cli(tmp_path: Path) -> None:
    """In a fresh interpreter with the alias first on PYTHONPATH: every module imports."""
    code = (
        "import execnet, execnet.gateway, execnet.gateway_base, execnet.multi, "
        "execnet.rsync, execnet.xspec, execnet_cli, execnet_cli.rsync\n"
        "assert execnet.__xnet_alias__ and execnet.__version__ == '2.1.2'\n"
        "assert execnet.Group is execnet.multi.Group\n"
        "assert issubclass(execnet.Group, execnet_cli.Group)\n"
        "assert execnet.RSync is execnet_cli.rsync.RSync is execnet.rsync.RSync\n"
        "assert execnet.XSpec is execnet.xspec.XSpec is execnet_cli.XSpec\n"
        "assert execnet.gateway.Gateway is execnet_cli.Gateway\n"
        "assert execnet.gateway_base.Channel is execnet_cli.Channel\n"
        "print(execnet.__file__)\n"
    )
    env = child_env("xnet", tmp_path / "unused")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == os.path.join(ALIAS, "execnet", "__init__.py")


def test_compat_path_command() -> None:
    """``xnet compat-path`` and ``python -m execnet_cli.compat`` print the alias directory."""
    from click.testing import CliRunner

    from execnet_cli.cli import main

    result = CliRunner().invoke(main, ["compat-path"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == ALIAS
    assert (Path(ALIAS) / "execnet" / "__init__.py").is_file()
    done = subprocess.run(
        [sys.executable, "-m", "execnet_cli.compat"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == ALIAS


def test_controller_and_worker_gateway_base_agree(tmp_path: Path) -> None:
    """``execnet.gateway_base`` offers the same names, and the same execnet-style ``loads``
    (with its string flags), in the controller's alias and inside an alias worker."""
    code = (
        "import execnet, execnet.gateway_base as local\n"
        "gw = execnet.makegateway()\n"
        "ch = gw.remote_exec('import execnet.gateway_base as gb; "
        "channel.send((sorted(gb.__all__), "
        'gb.loads(gb.dumps([1, "x"]), py2str_as_py3str=True)))\')\n'
        "names, value = ch.receive()\n"
        "gw.exit()\n"
        "assert names == sorted(local.__all__), (names, local.__all__)\n"
        "assert value == [1, 'x'] == local.loads(local.dumps([1, 'x']), py2str_as_py3str=True)\n"
    )
    env = child_env("xnet", tmp_path / "unused")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
