"""GroupResult: host results built from events, hosts by outcome, and the gathered view."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterable

import pytest

from execnet_cli.fleet.events import (
    OUTCOMES,
    Event,
    Exited,
    Failed,
    Output,
    Returned,
    Running,
    Started,
)
from execnet_cli.fleet.results import GroupResult, HostResult
from execnet_cli.inventory import HostSet

OK, FAILED, TIMED_OUT, UNREACHABLE, INTERRUPTED, ERROR = OUTCOMES  # the words --json prints


def fed(events: Iterable[Event]) -> GroupResult:
    result = GroupResult()
    for event in events:
        result.add(event)
    return result


def printed(name: str, text: str, exit_code: int = 0) -> list[Event]:
    """A host that printed ``text`` and exited with ``exit_code``."""
    return [Started(name), Output(name, "out", text), Exited(name, exit_code, 0.1)]


def test_outcomes_are_the_json_words() -> None:
    assert OUTCOMES == ("ok", "failed", "timed out", "unreachable", "interrupted", "error")


def test_events_are_frozen_values_of_their_own_type() -> None:
    """Equal and hashing alike only within a type, frozen, with a repr that lists fields
    by name, defaults, and a round trip through pickle and copy."""
    assert Started("a") == Started("a") and hash(Started("a")) == hash(Started("a"))
    assert Started("a") != Running("a") and Started("a") != Started("b")
    assert len({Started("a"), Running("a"), Started("a")}) == 2
    exited = Exited("a", 1, 0.5, returned=Returned.of([1], None))
    assert exited == Exited("a", 1, 0.5, None, Returned([1], "[1]"))
    assert repr(exited) == (
        "Exited(host='a', exit_code=1, duration=0.5, error=None, "
        "returned=Returned(value=[1], text='[1]'))"
    )
    failed = Failed("a", FAILED, "boom", 1.0, exit_code=3)
    assert (failed.detail, failed.exit_code) == (None, 3)
    with pytest.raises(AttributeError):
        failed.error = "other"
    with pytest.raises(AttributeError):
        del failed.host
    for event in (exited, failed, Output("a", "out", "x\n")):
        assert pickle.loads(pickle.dumps(event)) == event == copy.deepcopy(event)


def test_events_build_host_results() -> None:
    result = GroupResult()
    assert result.add(Started("a")) is None
    assert result.add(Output("a", "out", "x\n")) is None
    result.add(Started("b"))
    done = result.add(Exited("a", 2, 0.5, None))
    assert done == HostResult("a", FAILED, 2, (("out", "x\n"),), None, None, 0.5)
    assert dict(result) == {"a": done} and len(result) == 1 and "b" not in result
    assert result.unfinished == HostSet(["b"])
    assert done.as_dict() == {
        "name": "a",
        "status": "failed",
        "exit_code": 2,
        "stdout": "x\n",
        "stderr": "",
        "error": None,
        "traceback": None,
        "duration": 0.5,
        "log": "",
        "attempts": 1,
    }


def test_hosts_by_outcome_are_host_sets() -> None:
    result = fed(
        [
            *printed("web1", "a\n"),
            *printed("web2", "a\n"),
            *printed("web3", "a\n", exit_code=1),
            Failed("db1", UNREACHABLE, "ConnectFailed: refused", 0.1),
            Failed("db2", ERROR, "TypeError: x", 0.1),
        ]
    )
    assert result.ok == HostSet("web[1-2]") and str(result.ok) == "web[1-2]"
    assert (result.failed, result.unreachable, result.errored) == (
        HostSet("web3"),
        HostSet("db1"),
        HostSet("db2"),
    )
    assert result.outcomes == {OK, FAILED, UNREACHABLE, ERROR}
    assert result.count(OK) == 2 and result.count(ERROR) == 1
    assert list(result) == ["web1", "web2", "web3", "db1", "db2"]  # in the order they ended
    assert repr(result) == "<GroupResult 2 ok, 1 failed, 1 unreachable, 1 error>"


def test_an_empty_result() -> None:
    result = GroupResult()
    assert result.outcomes == frozenset() and not result.ok and not result.unfinished
    assert repr(result) == "<GroupResult empty>"


def test_identical_output_is_stored_once() -> None:
    result = fed([*printed("n1", "same\n"), *printed("n2", "same\n"), *printed("n3", "other\n")])
    assert result["n1"].output == result["n2"].output
    assert result["n1"].output is result["n2"].output
    assert result["n3"].output == (("out", "other\n"),)


def test_gathered_groups_by_output_and_outcome() -> None:
    result = fed(
        [
            *printed("n10", "a\n"),
            *printed("n2", "a\n"),
            *printed("n3", "b\n"),
            *printed("n1", "a\n", exit_code=1),  # same output, other outcome
        ]
    )
    assert [(str(names), r.stdout, r.status) for names, r in result.gathered()] == [
        ("n[2,10]", "a\n", OK),
        ("n3", "b\n", OK),
        ("n1", "a\n", FAILED),
    ]


def test_gathered_compares_errors_by_line_unless_full() -> None:
    traceback = "Traceback (most recent call last):\n  File {}\nValueError: boom\n"
    result = fed(
        [
            Failed("a", FAILED, "ValueError: boom", 0.1, traceback.format('"x.py"'), 1),
            Failed("b", FAILED, "ValueError: boom", 0.1, traceback.format('"y.py"'), 1),
            Failed("c", UNREACHABLE, "ConnectFailed: refused", 0.1),
            Failed("d", ERROR, "TypeError: x", 0.1),
        ]
    )
    short = result.gathered()
    assert [str(names) for names, _ in short] == ["a,b", "c", "d"]  # problems in rank order
    assert short[0][1].error_lines() == ["ValueError: boom"]
    full = result.gathered(full=True)
    assert [str(names) for names, _ in full] == ["a", "b", "c", "d"]
    assert full[0][1].error_lines(full=True)[-1] == "ValueError: boom"
