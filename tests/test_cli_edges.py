"""Rough edges a new user hit with ``xnet run``/``sh``/``hosts`` (issue #11), each reproduced.

Pipes, signals and closed outputs need a real ``xnet`` process: those tests start
``python -m execnet_cli`` with real pipes; the rest go through click's CliRunner.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from proc_helpers import wait_until

from execnet_cli.cli import main

XNET = [sys.executable, "-m", "execnet_cli"]
LONG = "a-host-name-long-enough-to-make-a-folded-header-wider-than-eighty-"
#: Twelve popen hosts with long names (the odd ones have PARITY=odd), and three short ones.
INVENTORY = f"""\
groups:
  many:
    hosts: {LONG}[01-12]
    vars: {{transport: popen}}
  odd:
    hosts: {LONG}[01-11/2]
    vars: {{env: {{PARITY: odd}}}}
  three:
    hosts: t[1-3]
    vars: {{transport: popen}}
"""


def xnet(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


@pytest.fixture
def inv(env: Path) -> str:
    path = env / "edges.yaml"
    path.write_text(INVENTORY)
    return str(path)


def test_headers_in_a_pipe_are_never_cut(inv: str) -> None:
    result = xnet("run", "-i", inv, "-H", "many", "import os; print(os.environ.get('PARITY'))")
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    headers = [line for line in result.stdout.splitlines() if line.startswith(LONG)]
    assert headers == [
        f"{LONG}[01,03,05,07,09,11] (6) ---",
        f"{LONG}[02,04,06,08,10,12] (6) ---",
    ]


def test_json_with_no_gather_is_refused(inv: str) -> None:
    result = xnet("run", "-i", inv, "-H", "t1", "--json", "--no-gather", "print(1)")
    assert result.exit_code == 2
    assert "--json" in result.stderr and "--no-gather" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("pattern", ["t1,,t2", "t1,", ",t1", "t1:,t2"])
def test_an_empty_term_in_a_pattern_is_refused(inv: str, pattern: str) -> None:
    result = xnet("run", "-i", inv, "-H", pattern, "print(1)")
    assert result.exit_code == 2, result.output
    assert "empty" in result.stderr and result.stdout == ""
    assert xnet("hosts", "-i", inv, pattern).exit_code == 2


ANSI = r"printf '\033[31mred\033[0m \033]0;title\007plain\a\n'"


def test_remote_escape_sequences_are_stripped_or_escaped(inv: str) -> None:
    gathered = xnet("sh", "-i", inv, "-H", "t1", ANSI)
    assert gathered.stdout.splitlines()[1:] == ["red plain\\x07"]
    streamed = xnet("sh", "-i", inv, "-H", "t1", "--no-gather", ANSI)
    assert streamed.stdout == "t1: red plain\\x07\n"
    raw = xnet("sh", "-i", inv, "-H", "t1", "--raw", ANSI)
    assert raw.stdout.splitlines()[1:] == ["\x1b[31mred\x1b[0m \x1b]0;title\x07plain\x07"]
    as_json = json.loads(xnet("sh", "-i", inv, "-H", "t1", "--json", ANSI).stdout)
    assert as_json["stdout"] == "\x1b[31mred\x1b[0m \x1b]0;title\x07plain\x07\n"  # data, kept


@pytest.mark.parametrize(
    ("code", "error", "exit_code"),
    [
        ("import os; os._exit(3)", "the worker exited with status 3", 3),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "killed by signal 9", 137),
    ],
)
def test_a_dead_worker_says_how_it_ended(inv: str, code: str, error: str, exit_code: int) -> None:
    result = xnet("run", "-i", inv, "-H", "t1", "--json", code)
    assert result.exit_code == 1, result.output
    record = json.loads(result.stdout)
    assert record["status"] == "failed"
    assert error in record["error"] and record["exit_code"] == exit_code


# -- real processes: pipes and signals ---------------------------------------------------


def spawn(args: list[str], cwd: Path, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*XNET, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


@pytest.mark.parametrize(
    "args",
    [
        ["run", "-H", "t1", "for i in range(200000): print(i)"],
        ["sh", "-H", "t1", "seq 200000"],
        ["run", "-H", "t1", "--no-gather", "for i in range(200000): print(i)"],
        ["hosts", "big"],
    ],
)
def test_a_closed_stdout_ends_quietly(env: Path, args: list[str]) -> None:
    inventory = env / "pipe.yaml"
    inventory.write_text(INVENTORY + "  big: {hosts: 'h[00001-20000]'}\n")
    command = [*XNET, args[0], "-i", str(inventory), *args[1:]]
    quoted = " ".join(f"'{a}'" for a in command)
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {quoted} | head -1"],
        cwd=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert len(done.stdout.splitlines()) == 1
    assert done.stderr == ""  # no traceback, no "Broken pipe", no summary
    assert done.returncode == 141  # as for SIGPIPE: not 1, which says "some host failed"


#: Prints, then says so with a file once the line is in the worker's pipe, then sleeps.
SLEEPER = (
    "import os, time; print('partial', flush=True)\n"
    "open(os.path.join({marks!r}, str(os.getpid())), 'w').close(); time.sleep(60)"
)


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
)
@pytest.mark.parametrize("mode", ["--gather", "--json", "--no-gather"])
def test_signals_keep_every_hosts_output(
    inv: str, env: Path, signum: int, status: int, mode: str
) -> None:
    marks = env / "marks"
    marks.mkdir()
    args = ["run", "-i", inv, "-H", "three", mode]
    proc = spawn([*args, SLEEPER.format(marks=str(marks))], env)
    try:
        assert wait_until(lambda: len(os.listdir(marks)) == 3, 60)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == status, err
    if mode == "--no-gather":
        assert sorted(out.splitlines()) == ["t1: partial", "t2: partial", "t3: partial"]
        lines = err.splitlines()
        assert sorted(lines[:3]) == ["t1: interrupted", "t2: interrupted", "t3: interrupted"]
        assert lines[3].startswith("0 ok, 0 failed, 0 unreachable, 3 interrupted (t[1-3]) in ")
    elif mode == "--json":
        records = {r["name"]: r for r in map(json.loads, out.splitlines())}
        assert sorted(records) == ["t1", "t2", "t3"]
        for record in records.values():
            assert record["status"] == "interrupted"
            assert record["stdout"] == "partial\n"
        assert err == ""
    else:
        lines = out.splitlines()
        assert lines[0].startswith("t[1-3] (3): interrupted ---"), out
        assert lines[1] == "partial"
        assert "3 interrupted (t[1-3])" in err.splitlines()[-3]
        assert err.splitlines()[-2] == "xnet: to rerun: -H @not-run = 't[1-3]'"
        assert "Traceback" not in err
