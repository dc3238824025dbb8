"""Process and polling helpers shared by the tests (Linux /proc)."""

from __future__ import annotations

import time
from typing import Callable


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Wait for ``pid`` to end (or become a zombie)."""
    return wait_until(lambda: not pid_alive(pid), timeout)
