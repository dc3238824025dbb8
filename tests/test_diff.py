"""``--diff``: three output classes on 12 popen hosts, each shown against the most common;
``--json``'s ``group`` field names each host's class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_rolling import TWELVE

from execnet_cli.cli import main
from execnet_cli.fleet.diffing import OutputClasses
from execnet_cli.fleet.results import HostResult

#: n05, n06 print "failing"; n11, n12 print "odd" instead of "two"; the other 8 agree.
THREE = TWELVE + '  n11: {env: {XNET_TEST_ODD: "1"}}\n  n12: {env: {XNET_TEST_ODD: "1"}}\n'
COMMAND = (
    'echo one; if [ -n "$XNET_TEST_ODD" ]; then echo odd; else echo two; fi; '
    '[ -n "$XNET_TEST_FAIL" ] && echo failing; echo three; echo four; echo five; echo six'
)


@pytest.fixture
def inv(env: Path) -> str:
    path = env / "three.yaml"
    path.write_text(THREE + "  gone: {transport: popen, python: /nonexistent/python}\n")
    return str(path)


def xnet(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_three_classes_diffed_against_the_most_common(inv: str) -> None:
    result = xnet("sh", "-i", inv, "--diff", COMMAND)
    assert result.exit_code == 3, result.output  # gone is unreachable
    lines = result.stdout.splitlines()
    assert lines[0].startswith("n[01-04,07-10] (8): the most common output, 2 differ ---")
    assert lines[1:7] == ["one", "two", "three", "four", "five", "six"]
    assert lines[7:25] == [
        "--- n[01-04,07-10] (8)",
        "+++ n[05-06] (2)",
        "@@ -1,5 +1,6 @@",
        " one",
        " two",
        "+failing",
        " three",
        " four",
        " five",
        "--- n[01-04,07-10] (8)",
        "+++ n[11-12] (2)",
        "@@ -1,5 +1,5 @@",
        " one",
        "-two",
        "+odd",
        " three",
        " four",
        " five",
    ]
    assert lines[25].startswith("gone (1): unreachable ---")
    assert lines[26].startswith("InterpreterNotFound: cannot start '/nonexistent/python'")
    assert len(lines) == 27


def test_json_group_numbers_the_classes(inv: str) -> None:
    result = xnet("sh", "-i", inv, "--json", "-H", "n*", COMMAND)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    group: dict[str, int] = {r["name"]: r["group"] for r in records}
    assert len(set(group.values())) == 3
    assert group["n05"] == group["n06"] != group["n01"]
    assert group["n11"] == group["n12"] != group["n01"]
    assert {group[f"n{i:02d}"] for i in (1, 2, 3, 4, 7, 8, 9, 10)} == {group["n01"]}
    every = xnet("sh", "-i", inv, "--json", "-H", "gone", "true")
    assert json.loads(every.stdout)["group"] is None  # printed nothing of the job's


def test_diff_is_for_the_gathered_view(inv: str) -> None:
    for other in ("--json", "--no-gather"):
        result = xnet("sh", "-i", inv, "--diff", other, "true")
        assert result.exit_code == 2


def test_ties_go_to_the_first_host() -> None:
    classes = OutputClasses()
    for name in ("b", "a"):
        classes.add(HostResult(name, "ok"))
    ranked = classes.ranked()
    assert len(ranked) == 1 and str(ranked[0][0]) == "a,b"
