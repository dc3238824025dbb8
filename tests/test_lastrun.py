"""Rerunning what failed: every run records its outcome sets; ``-H @failed`` (``@ok``,
``@unreachable``, ``@timed-out``, ``@not-run``, ``@NAME:STATE``) selects from them, also
after a Ctrl-C of a real ``xnet`` process."""

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
from test_rolling import CHECK, TWELVE

from execnet_cli.cli import main
from execnet_cli.fleet.lastrun import (
    LastRunError,
    load_state,
    outcome_sets,
    parse_reference,
    record,
)

XNET = [sys.executable, "-m", "execnet_cli"]
#: Unreachable beside the twelve: its interpreter does not exist.
WITH_BAD = TWELVE + "  bad: {python: /nonexistent/python}\n"


@pytest.fixture
def inv(env: Path) -> str:
    path = env / "twelve.yaml"
    path.write_text(WITH_BAD)
    return str(path)


def xnet(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def selected(inv: str, value: str) -> list[str]:
    result = xnet("hosts", "-i", inv, value)
    assert result.exit_code == 0, result.output
    return [line.split()[0] for line in result.stdout.splitlines()]


def test_references() -> None:
    assert parse_reference("@failed") == (None, "failed")
    assert parse_reference("@not-run") == (None, "not-run")
    assert parse_reference("@nightly:timed-out") == ("nightly", "timed-out")
    for value in ("failed", "@hosts.txt", "@./failed", "@a/b:failed", "@x:broken"):
        assert parse_reference(value) is None


def test_sets_cover_the_selection_once() -> None:
    outcomes = {"a": "ok", "b": "failed", "c": "error", "d": "timed out", "e": "interrupted"}
    sets = outcome_sets(["a", "b", "c", "d", "e", "f"], outcomes)
    assert sets == {
        "ok": ["a"],
        "failed": ["b", "c"],
        "unreachable": [],
        "timed-out": ["d"],
        "not-run": ["e", "f"],
    }


def test_a_record_replaces_the_last_whole(tmp_path: Path) -> None:
    record({"ok": ["a"]}, "sh", "all", directory=tmp_path)
    record({"failed": ["b"]}, "sh", "all", save_as="one", directory=tmp_path)
    assert load_state(None, "failed", tmp_path) == ["b"]
    assert load_state(None, "ok", tmp_path) == []
    assert load_state("one", "failed", tmp_path) == ["b"]
    assert sorted(os.listdir(tmp_path)) == ["last.json", "runs"]  # no temporary left
    with pytest.raises(LastRunError, match="did you mean 'one'"):
        load_state("onr", "failed", tmp_path)


def test_failed_selects_exactly_the_failed_set(inv: str) -> None:
    first = xnet("sh", "-i", inv, "--json", CHECK)
    assert first.exit_code == 1, first.output  # n05, n06 failed; bad unreachable: 1 wins
    assert "xnet: to rerun" not in first.stderr  # --json: nothing but the records
    assert selected(inv, "@failed") == ["n05", "n06"]
    assert selected(inv, "@unreachable") == ["bad"]
    assert selected(inv, "@ok") == [f"n{i:02d}" for i in range(1, 13) if i not in (5, 6)]
    again = xnet("sh", "-i", inv, "-H", "@failed", "--json", "echo again")
    assert again.exit_code == 0, again.output
    assert sorted(json.loads(line)["name"] for line in again.stdout.splitlines()) == [
        "n05",
        "n06",
    ]
    nothing = xnet("sh", "-i", inv, "-H", "@failed", "true")  # that run had no failure
    assert nothing.exit_code == 5
    assert "the last run has no host in 'failed'" in nothing.stderr


def test_a_saved_run_outlives_the_next(inv: str) -> None:
    assert xnet("sh", "-i", inv, "--save-run", "first", CHECK).exit_code == 1
    assert xnet("sh", "-i", inv, "-H", "n01", "true").exit_code == 0
    assert selected(inv, "@first:failed") == ["n05", "n06"]
    assert selected(inv, "@ok") == ["n01"]  # the last run is the second
    missing = xnet("hosts", "-i", inv, "@second:failed")
    assert missing.exit_code == 2 and "no record of the run saved as 'second'" in missing.stderr
    bad_name = xnet("sh", "-i", inv, "--save-run", "../x", "true")
    assert bad_name.exit_code == 2


def test_a_host_gone_from_the_inventory_is_a_usage_error(inv: str) -> None:
    assert xnet("sh", "-i", inv, CHECK).exit_code == 1
    Path(inv).write_text(TWELVE.replace("n[01-06]", "n[01-04]").replace("  n05:", "  n13:"))
    result = xnet("sh", "-i", inv, "-H", "@failed", "true")
    assert result.exit_code == 2
    assert "@failed: not in the inventory now: n05" in result.stderr


def test_a_misspelt_set_is_named_right(inv: str) -> None:
    result = xnet("hosts", "-i", inv, "@faild")
    assert result.exit_code == 2
    assert "@faild: no such set of a recorded run (did you mean '@failed'?)" in result.stderr
    saved = xnet("hosts", "-i", inv, "@night:notrun")
    assert "(did you mean '@night:not-run'?)" in saved.stderr


def test_no_run_recorded_yet_is_a_usage_error(inv: str) -> None:
    result = xnet("sh", "-i", inv, "-H", "@failed", "true")
    assert result.exit_code == 2
    assert "no record of the last run" in result.stderr


def test_after_ctrl_c_the_unfinished_hosts_are_not_run(inv: str, env: Path) -> None:
    """A real ``xnet`` process: n01-n06 end (n05, n06 failing), n07-n12 sleep, then SIGINT."""
    marks = env / "marks"
    marks.mkdir()
    command = f'case "$XNET_HOST_NAME" in n0[7-9]|n1*) touch {marks}/$$; sleep 60;; esac; {CHECK}'
    inventory = Path(inv)
    inventory.write_text(
        TWELVE
        + "".join(f"  n{i:02d}: {{env: {{XNET_HOST_NAME: n{i:02d}}}}}\n" for i in range(7, 13))
    )
    proc = subprocess.Popen(
        [*XNET, "sh", "-i", inv, "--batch", "6", command],
        cwd=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: len(os.listdir(marks)) == 6, 60)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert "-H @not-run = 'n[07-12]'" in err
    assert selected(inv, "@not-run") == [f"n{i:02d}" for i in range(7, 13)]
    assert selected(inv, "@failed") == ["n05", "n06"]
    assert selected(inv, "@ok") == ["n01", "n02", "n03", "n04"]
