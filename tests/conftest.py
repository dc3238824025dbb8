"""Shared fixtures: every test is checked for leaked threads, child processes and gateways."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Iterator, Set

import pytest
from faults_helpers import figures, pytest_terminal_summary  # noqa: F401  (make faults)
from proc_helpers import wait_until
from sshd_fixtures import *  # noqa: F403

import execnet_cli

LEAK_GRACE = 3.0

#: A project of its own, run under pytest-xdist by test_xdist_compat.py.
collect_ignore = ["xdist_sample"]


def child_pids(pid: int = 0) -> Set[int]:
    """Direct children of ``pid`` (default: this process), from Linux /proc."""
    pids: Set[int] = set()
    try:
        tasks = list(Path(f"/proc/{pid or os.getpid()}/task").iterdir())
    except OSError:
        return pids  # it has ended
    for task in tasks:
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        pids.update(int(p) for p in text.split())
    return pids


def descendant_pids() -> Set[int]:
    """Every process below this one: forked workers are children of a fork server."""
    found: Set[int] = set()
    todo = list(child_pids())
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(child_pids(pid))
    return found


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a gateway, a thread or a process behind.

    The default group lives as long as this process; its gateways must be exited by
    the test, and the group is then terminated, as at interpreter exit, which ends the
    fork server it may have started. Processes are counted at any depth below us.
    """
    threads_before = set(threading.enumerate())
    children_before = descendant_pids()
    yield
    problems = []
    leftover_gateways = list(execnet_cli.default_group)
    if leftover_gateways:
        problems.append(f"gateways not exited: {leftover_gateways}")
    execnet_cli.default_group.terminate(timeout=2)

    def new_threads() -> Set[threading.Thread]:
        return {t for t in threading.enumerate() if t not in threads_before and t.is_alive()}

    def new_children() -> Set[int]:
        return descendant_pids() - children_before

    if not wait_until(lambda: not new_threads(), LEAK_GRACE):
        problems.append(f"threads left running: {sorted(t.name for t in new_threads())}")
    if not wait_until(lambda: not new_children(), LEAK_GRACE):
        leaked = new_children()
        problems.append(f"child processes left running: {sorted(leaked)}")
        for pid in leaked:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where runs record their outcome sets (``-H @failed``): a directory of the test's own,
    never the user's ``~/.local/state``; processes a test starts inherit it."""
    path = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(path))
    return path


@pytest.fixture
def gw() -> Iterator[execnet_cli.Gateway]:
    """A popen gateway to this interpreter, exited after the test."""
    gateway = execnet_cli.makegateway("popen")
    yield gateway
    gateway.exit()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory, and no inventory from the environment or the user's config."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XNET_INVENTORY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path
