"""Shared fixtures: every test is checked for leaked threads, child processes and gateways."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Iterator, Set

import pytest
from proc_helpers import wait_until
from sshd_fixtures import *  # noqa: F403

import execnet_cli

LEAK_GRACE = 3.0

#: A project of its own, run under pytest-xdist by test_xdist_compat.py.
collect_ignore = ["xdist_sample"]


def child_pids() -> Set[int]:
    """Direct children of this process (Linux /proc)."""
    pids: Set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        pids.update(int(p) for p in text.split())
    return pids


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a gateway, a thread or a child process behind."""
    threads_before = set(threading.enumerate())
    children_before = child_pids()
    yield
    if request.node.get_closest_marker("allow_leaks"):
        return
    problems = []
    leftover_gateways = list(execnet_cli.default_group)
    if leftover_gateways:
        problems.append(f"gateways not exited: {leftover_gateways}")
        execnet_cli.default_group.terminate(timeout=2)

    def new_threads() -> Set[threading.Thread]:
        return {t for t in threading.enumerate() if t not in threads_before and t.is_alive()}

    def new_children() -> Set[int]:
        return child_pids() - children_before

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
