"""The one table from a run's outcomes to xnet's exit status."""

from __future__ import annotations

import pytest

from execnet_cli.cli.exitcodes import (
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    exit_status,
)
from execnet_cli.fleet.events import ERROR, FAILED, OK, UNREACHABLE


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [
        (set(), EXIT_OK),
        ({OK}, EXIT_OK),
        ({OK, UNREACHABLE}, EXIT_UNREACHABLE),
        ({OK, FAILED, UNREACHABLE}, EXIT_FAILED),  # a failure is what to look at first
        ({OK, FAILED, UNREACHABLE, ERROR}, EXIT_ERROR),  # unless we have a bug
        ({ERROR}, EXIT_ERROR),
    ],
)
def test_exit_status(outcomes: set[str], status: int) -> None:
    assert exit_status(frozenset(outcomes)) == status


def test_the_statuses_are_distinct() -> None:
    assert (EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_ERROR) == (0, 1, 3, 70)
