"""Rolling batches (``--batch``, ``--canary``, ``--max-fail``, ``--order``): the plan's rules,
and 12 real popen hosts of which 2 fail, run through ``xnet sh``."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from execnet_cli.cli import main
from execnet_cli.cli.exitcodes import EXIT_BUDGET, EXIT_FAILED, Tolerance, exit_status
from execnet_cli.fleet.batches import (
    BUDGET_SPENT,
    CANARY_FAILED,
    STOPPED,
    Amount,
    Rollout,
    order_hosts,
    plan,
)
from execnet_cli.fleet.events import FAILED, OK, UNREACHABLE
from execnet_cli.inventory import Host, Inventory

#: 12 popen hosts in two racks; n05 and n06 fail the job ``CHECK``.
TWELVE = """\
groups:
  rackA: {hosts: "n[01-06]"}
  rackB: {hosts: "n[07-12]"}
vars: {transport: popen}
hosts:
  n05: {env: {XNET_TEST_FAIL: "1"}}
  n06: {env: {XNET_TEST_FAIL: "1"}}
"""
CHECK = 'test -z "$XNET_TEST_FAIL"'


@pytest.fixture
def inv(env: Path) -> str:
    path = env / "twelve.yaml"
    path.write_text(TWELVE)
    return str(path)


def xnet(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def names(hosts: list[Host]) -> list[str]:
    return [h.name for h in hosts]


def last_run(state_home: Path) -> dict[str, list[str]]:
    data = json.loads((state_home / "xnet" / "last.json").read_text())
    hosts: dict[str, list[str]] = data["hosts"]
    return hosts


# -- the rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "total", "up", "down"),
    [("3", 12, 3, 3), ("25%", 12, 3, 3), ("25%", 10, 3, 2), ("10%", 12, 2, 1), ("1%", 12, 1, 0)],
)
def test_shares_round_up_for_batches_and_down_for_budgets(
    text: str, total: int, up: int, down: int
) -> None:
    amount = Amount.parse(text)
    assert (amount.rounded_up(total), amount.rounded_down(total)) == (up, down)


@pytest.mark.parametrize("text", ["", "x", "-1", "101%", "2.5", "%"])
def test_bad_amounts_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Amount.parse(text)


def test_batches_cover_the_selection_once_canary_first() -> None:
    hosts = Inventory.from_text(TWELVE).hosts()
    batches = plan(hosts, Amount(25, percent=True), canary=2)
    assert [b.label for b in batches] == ["canary", "batch 1", "batch 2", "batch 3", "batch 4"]
    assert [len(b.hosts) for b in batches] == [2, 3, 3, 3, 1]
    assert [n for b in batches for n in b.names] == names(hosts)


def test_orders() -> None:
    inventory = Inventory.from_text(
        "groups:\n  a: {hosts: 'h[1-2]'}\n  b: {hosts: 'h[9-10]'}\n  c: {hosts: h3}\n"
    )
    hosts = inventory.hosts()
    assert names(order_hosts(hosts, "inventory")) == ["h1", "h2", "h3", "h9", "h10"]
    assert names(order_hosts(hosts, "sorted")) == ["h1", "h10", "h2", "h3", "h9"]
    shuffled = names(order_hosts(hosts, "random", random.Random(5)))
    assert sorted(shuffled) == sorted(names(hosts))
    assert names(order_hosts(hosts, "group")) == ["h1", "h2", "h3", "h9", "h10"]
    by_group = plan(hosts, None, order="group")
    assert [b.names for b in by_group] == [["h1", "h2"], ["h3"], ["h9", "h10"]]
    two = plan(inventory.hosts("a,b"), Amount(3), order="group")
    assert [b.names for b in two] == [["h1", "h2"], ["h9", "h10"]]  # never two groups at once
    split = plan(inventory.hosts("a,b"), Amount(1), order="group")
    assert [b.names for b in split] == [["h1"], ["h2"], ["h9"], ["h10"]]
    canary = plan(hosts, None, canary=1)  # then the rest together
    assert [b.names for b in canary] == [["h1"], ["h2", "h3", "h9", "h10"]]


def test_the_budget_is_spent_when_more_hosts_fail_than_it_allows() -> None:
    hosts = Inventory.from_text(TWELVE).hosts()
    rollout = Rollout(plan(hosts, Amount(4)), Amount(1))
    first = rollout.next_batch()
    assert first is not None
    rollout.ended("n01", FAILED)  # 1 of 1 allowed: go on
    second = rollout.next_batch()
    assert second is not None
    rollout.ended("n05", UNREACHABLE)  # unreachable counts too
    assert rollout.next_batch() is None
    assert rollout.reason == BUDGET_SPENT and rollout.stopped_early
    assert rollout.not_run() == ["n09", "n10", "n11", "n12"]


def test_a_batch_where_every_host_fails_is_only_that_many_failures() -> None:
    hosts = Inventory.from_text(TWELVE).hosts()
    rollout = Rollout(plan(hosts, Amount(2)), None)  # no budget: every batch runs
    seen = 0
    while (batch := rollout.next_batch()) is not None:
        seen += 1
        for name in batch.names:
            rollout.ended(name, FAILED)
    assert seen == 6 and rollout.reason == "" and not rollout.stopped_early


def test_a_failed_canary_stops_whatever_the_budget() -> None:
    hosts = Inventory.from_text(TWELVE).hosts()
    rollout = Rollout(plan(hosts, None, canary=1), Amount(100, percent=True))
    assert rollout.next_batch() is not None
    rollout.ended("n01", FAILED)
    assert rollout.next_batch() is None and rollout.reason == CANARY_FAILED


def test_a_stop_starts_no_further_batch() -> None:
    hosts = Inventory.from_text(TWELVE).hosts()
    rollout = Rollout(plan(hosts, Amount(6)))
    assert rollout.next_batch() is not None
    rollout.stop()
    assert rollout.next_batch() is None and rollout.reason == STOPPED
    assert not rollout.stopped_early  # a signal's status, not the budget's


def test_the_budget_status_comes_after_a_bug_and_before_failures() -> None:
    assert exit_status({OK, FAILED}, 2, 12, budget_spent=True) == EXIT_BUDGET
    assert exit_status({OK, FAILED}, 2, 12) == EXIT_FAILED
    assert exit_status({OK, "error"}, 1, 12, budget_spent=True) == 70
    everything = Tolerance.parse("100%")
    assert exit_status({OK, FAILED}, 2, 12, everything, budget_spent=True) == EXIT_BUDGET


# -- 12 popen hosts, 2 failing -------------------------------------------------------------


def test_budget_not_reached_runs_every_batch(inv: str, state_home: Path) -> None:
    result = xnet("sh", "-i", inv, "--batch", "4", "--max-fail", "2", CHECK)
    assert result.exit_code == EXIT_FAILED, result.output
    assert "xnet: ran batch 1/3 n[01-04], batch 2/3 n[05-08], batch 3/3 n[09-12]" in result.stderr
    assert "stopped" not in result.stderr
    sets = last_run(state_home)
    assert sets["failed"] == ["n05", "n06"] and sets["not-run"] == []
    assert len(sets["ok"]) == 10


@pytest.mark.parametrize("budget", ["1", "10%"])  # 10% of 12 is 1.2 hosts: 1
def test_budget_reached_after_the_second_batch(inv: str, state_home: Path, budget: str) -> None:
    result = xnet("sh", "-i", inv, "--batch", "25%", "--max-fail", budget, CHECK)
    assert result.exit_code == EXIT_BUDGET, result.output
    assert "xnet: ran batch 1/4 n[01-03], batch 2/4 n[04-06]; stopped: failure budget spent" in (
        result.stderr
    )
    assert f"--max-fail {budget} allows 1" in result.stderr
    assert "xnet: to rerun: -H @failed = 'n[05-06]'; -H @not-run = 'n[07-12]'" in result.stderr
    assert last_run(state_home) == {
        "ok": ["n01", "n02", "n03", "n04"],
        "failed": ["n05", "n06"],
        "unreachable": [],
        "timed-out": [],
        "not-run": ["n07", "n08", "n09", "n10", "n11", "n12"],
    }


def test_a_share_rounded_down_can_leave_room(inv: str) -> None:
    result = xnet("sh", "-i", inv, "--batch", "3", "--max-fail", "17%", CHECK)  # 2.04: 2
    assert result.exit_code == EXIT_FAILED, result.output
    assert "batch 4/4 n[10-12]" in result.stderr


def test_a_failing_canary_stops_the_run(inv: str, state_home: Path) -> None:
    result = xnet("sh", "-i", inv, "-H", "n[05-12]", "--canary", "2", "--batch", "3", CHECK)
    assert result.exit_code == EXIT_BUDGET, result.output
    assert "xnet: ran canary n[05-06]; stopped: the canary did not succeed (n[05-06])" in (
        result.stderr
    )
    sets = last_run(state_home)
    assert sets["failed"] == ["n05", "n06"]
    assert sets["not-run"] == [f"n{i:02d}" for i in range(7, 13)]


def test_a_passing_canary_lets_the_rest_run(inv: str) -> None:
    result = xnet("sh", "-i", inv, "--canary", "1", "--json", CHECK)
    assert result.exit_code == EXIT_FAILED, result.output
    assert len(result.stdout.splitlines()) == 12


def test_one_rack_at_a_time(inv: str) -> None:
    result = xnet("sh", "-i", inv, "--order", "group", "--max-fail", "0", CHECK)
    assert result.exit_code == EXIT_BUDGET, result.output
    assert "xnet: ran batch 1/2 n[01-06]; stopped" in result.stderr


def test_bad_values_are_usage_errors(inv: str) -> None:
    for args in (["--batch", "0"], ["--batch", "150%"], ["--max-fail", "x"], ["--canary", "0"]):
        result = xnet("sh", "-i", inv, *args, "true")
        assert result.exit_code == 2, (args, result.output)


def test_rsync_rolls_out_too(env: Path, state_home: Path) -> None:
    """A push in batches of 2 stops on the budget when r3 and r4 cannot be reached."""
    inventory = env / "rs.yaml"
    inventory.write_text(
        "vars: {transport: popen}\ngroups:\n  r: {hosts: 'r[1-6]'}\n"
        "hosts:\n  r3: {python: /nonexistent/python}\n  r4: {python: /nonexistent/python}\n"
    )
    (env / "site").mkdir()
    (env / "site" / "a").write_text("a\n")
    dest = f"r:{env / 'dest'}/"
    one = ("-i", str(inventory), "--fanout", "1")  # one local directory: a host at a time
    result = xnet("rsync", *one, "--batch", "2", "--max-fail", "1", "site", dest)
    assert result.exit_code == EXIT_BUDGET, result.output
    assert "xnet: to rerun: @unreachable = 'r[3-4]'; @not-run = 'r[5-6]'" in result.stderr
    assert last_run(state_home)["ok"] == ["r1", "r2"]
    rest = xnet("rsync", *one, "site", "@not-run:" + str(env / "dest") + "/")
    assert rest.exit_code == 0, rest.output
    assert last_run(state_home)["ok"] == ["r5", "r6"]
