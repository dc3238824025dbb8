"""The one table from a run's outcomes to xnet's exit status, and every row of it produced.

Signals (128+N) and a closed stdout (141) need a real process: test_cli_edges.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from execnet_cli.cli import main
from execnet_cli.cli.exitcodes import (
    EXIT_CLOSED_OUTPUT,
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NO_HOST,
    EXIT_OK,
    EXIT_TIMED_OUT,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Tolerance,
    exit_status,
    signal_status,
)
from execnet_cli.fleet.events import ERROR, FAILED, INTERRUPTED, OK, TIMED_OUT, UNREACHABLE


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [
        (set(), EXIT_OK),
        ({OK}, EXIT_OK),
        ({OK, UNREACHABLE}, EXIT_UNREACHABLE),
        ({OK, TIMED_OUT, UNREACHABLE}, EXIT_TIMED_OUT),  # a timeout before unreachability
        ({OK, FAILED, TIMED_OUT, UNREACHABLE}, EXIT_FAILED),  # a failure is looked at first
        ({OK, FAILED, UNREACHABLE, ERROR}, EXIT_ERROR),  # unless we have a bug
        ({ERROR}, EXIT_ERROR),
    ],
)
def test_exit_status(outcomes: set[str], status: int) -> None:
    assert exit_status(frozenset(outcomes)) == status


def test_the_statuses_are_distinct() -> None:
    table = (
        EXIT_OK,
        EXIT_FAILED,
        EXIT_USAGE,
        EXIT_UNREACHABLE,
        EXIT_TIMED_OUT,
        EXIT_NO_HOST,
        EXIT_ERROR,
        EXIT_INTERRUPTED,
        EXIT_CLOSED_OUTPUT,
    )
    assert table == (0, 1, 2, 3, 4, 5, 70, 130, 141)
    assert (signal_status(15), signal_status(1)) == (143, 129)


@pytest.mark.parametrize(
    ("text", "bad", "total", "allowed"),
    [
        ("0", 0, 10, True),
        ("0", 1, 10, False),
        ("2", 2, 10, True),
        ("2", 3, 10, False),
        ("20%", 2, 10, True),
        ("20%", 3, 10, False),
        ("50%", 1, 3, True),  # 1.5 hosts: one may fail, not two
        ("50%", 2, 3, False),
        ("100%", 3, 3, True),
    ],
)
def test_tolerance(text: str, bad: int, total: int, allowed: bool) -> None:
    assert Tolerance.parse(text).allows(bad, total) is allowed


@pytest.mark.parametrize("text", ["-1", "x", "1.5", "101%", "%", ""])
def test_bad_tolerance(text: str) -> None:
    with pytest.raises(ValueError):
        Tolerance.parse(text)


def test_tolerance_never_hides_a_bug_or_an_interruption() -> None:
    everyone = Tolerance(100, percent=True)
    assert exit_status({OK, FAILED, TIMED_OUT, UNREACHABLE}, 3, 4, everyone) == EXIT_OK
    assert exit_status({OK, ERROR}, 1, 2, everyone) == EXIT_ERROR
    assert exit_status({OK, INTERRUPTED}, 1, 2, everyone) != EXIT_OK


# -- every status, produced by a real run ----------------------------------------------

INVENTORY = """\
groups:
  local:
    hosts: local[1-3]
    vars: {transport: popen}
hosts:
  local2: {env: {XNET_TEST_ROLE: bad}}
  local3: {env: {XNET_TEST_ROLE: slow}}
  gone: {transport: popen, python: /nonexistent/python}
"""
#: local1 succeeds, local2 fails, local3 sleeps (past any timeout below).
JOB = """\
import os, sys, time
role = os.environ.get("XNET_TEST_ROLE")
if role == "bad":
    sys.exit(2)
if role == "slow":
    time.sleep(30)
"""


@pytest.fixture
def inv(env: Path) -> str:
    path = env / "statuses.yaml"
    path.write_text(INVENTORY)
    return str(path)


def xnet(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["-H", "local1"], EXIT_OK),
        (["-H", "local1,local2"], EXIT_FAILED),
        (["-H", "local1,local2", "--bogus"], EXIT_USAGE),
        (["-H", "local1,gone"], EXIT_UNREACHABLE),
        (["-H", "local1,local3", "-t", "0.5"], EXIT_TIMED_OUT),
        (["-H", "local1,local3,gone", "-t", "0.5"], EXIT_TIMED_OUT),
        (["-H", "local*,!local*"], EXIT_NO_HOST),
        (["-H", "~nothing"], EXIT_NO_HOST),
        (["-H", "local2,gone", "--tolerate", "2"], EXIT_OK),
        (["-H", "local2,gone", "--tolerate", "1"], EXIT_FAILED),
        (["-H", "local", "--tolerate", "34%", "-t", "0.5"], EXIT_FAILED),  # 2 of 3 > 1.02
        (["-H", "local", "--tolerate", "67%", "-t", "0.5"], EXIT_OK),
        (["-H", "local1", "--tolerate", "many"], EXIT_USAGE),
    ],
)
def test_every_status_from_a_run(inv: str, args: list[str], status: int) -> None:
    result = xnet("run", "-i", inv, *args, JOB)
    assert result.exit_code == status, result.output


def test_tolerated_failures_are_said(inv: str) -> None:
    result = xnet("run", "-i", inv, "-H", "local1,local2", "--tolerate", "1", JOB)
    assert result.exit_code == EXIT_OK
    assert result.stderr.splitlines()[-1] == "xnet: 1 of 2 hosts not ok, tolerated (--tolerate 1)"
    assert "local2 (1): exit 2" in result.stdout


def test_a_timeout_is_its_own_outcome(inv: str) -> None:
    result = xnet("run", "-i", inv, "-H", "local3", "-t", "0.5", "--json", JOB)
    assert result.exit_code == EXIT_TIMED_OUT
    record = json.loads(result.stdout)
    assert (record["status"], record["error"]) == ("timed out", "timed out after 0.5 s")


def test_hosts_and_ping_say_no_host_the_same_way(inv: str) -> None:
    for command in ("hosts", "ping"):
        result = xnet(command, "-i", inv, "local*,!local*")
        assert result.exit_code == EXIT_NO_HOST, result.output
        assert result.stderr.strip() == "xnet: error: in pattern 'local*,!local*': selects no hosts"
