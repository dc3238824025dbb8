"""What the fault suite (``tests/test_faults_*.py``, marker ``faults``) shares.

- ``figures``: a fixture through which a case records what it measured and the bound it
  asserts; ``make faults`` prints them as one table (``pytest_terminal_summary``, hooked
  into ``conftest.py``) and, with ``XNET_FAULTS_TABLE=PATH``, writes it there as Markdown:
  the table of the README's "Reliability" section.
- ``xnet`` in a subprocess on an inventory of real hosts (popen or the sshd fixtures),
  with a HOME of its own whose known_hosts knows the sshd hosts.
- Finding the processes a run left: below a pid, or anywhere by a marker in the command
  line (the ssh hosts' sshd runs here, so "remotely" is /proc too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import pytest
from proc_helpers import pid_alive, wait_until
from sshd_fixtures import SshdHost

#: Where remote interpreters are found: the system's, started without the pyenv shim.
REMOTE_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"


@dataclass
class Figures:
    """What one case measured: ``(label, value, bound)`` rows, formatted for the table."""

    case: str
    rows: List[str] = field(default_factory=list)
    wall: float = 0.0

    def seconds(self, label: str, value: float, bound: Optional[float] = None) -> None:
        text = f"{label} {_seconds(value)}"
        if bound is not None:
            text += f" (asserted < {_seconds(bound)})"
        self.rows.append(text)

    def note(self, text: str) -> None:
        self.rows.append(text)


def _seconds(value: float) -> str:
    if value < 0.001:
        return "< 1 ms"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


#: Every case's figures, in the order the cases ran (read by the terminal summary).
RECORDED: Dict[str, Figures] = {}


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """Record what this case measured; its wall time is added at the end."""
    doc = (request.function.__doc__ or request.node.name).strip().splitlines()[0]
    found = Figures(doc.rstrip("."))
    started = time.monotonic()
    yield found
    found.wall = time.monotonic() - started
    RECORDED[request.node.nodeid] = found


def fault_table() -> str:
    """The recorded cases as a Markdown table."""
    lines = ["| case | measured | test time |", "|---|---|---|"]
    for figures in RECORDED.values():
        measured = "; ".join(figures.rows) or "-"
        lines.append(f"| {figures.case} | {measured} | {_seconds(figures.wall)} |")
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """Under ``-m faults`` (``make faults``), print each case with what it measured."""
    if not RECORDED or "faults" not in (config.option.markexpr or ""):
        return
    table = fault_table()
    terminalreporter.section("fault suite: what each case measured")
    terminalreporter.write(table)
    target = os.environ.get("XNET_FAULTS_TABLE")
    if target:
        Path(target).write_text(table)
        terminalreporter.write_line(f"(written to {target})")


# -- processes --------------------------------------------------------------------------------


def descendants(pid: int) -> List[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    found: List[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(c for c in children if pid_alive(c))
            todo.extend(children)
    return found


def pids_with(marker: str) -> List[int]:
    """Live processes whose command line holds ``marker`` (not this one)."""
    needle = marker.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def kill_all(pids: Sequence[int]) -> None:
    """SIGKILL what a failed case left (and SIGCONT it, in case it was stopped)."""
    for pid in pids:
        for sig in (signal.SIGKILL, signal.SIGCONT):
            try:
                os.kill(pid, sig)
            except OSError:
                pass


def wait_no_pids_with(marker: str, timeout: float) -> float:
    """Seconds until no process holds ``marker``; fails (after killing them) past ``timeout``."""
    started = time.monotonic()
    if not wait_until(lambda: not pids_with(marker), timeout):
        left = pids_with(marker)
        kill_all(left)
        pytest.fail(f"processes with {marker!r} outlived the run by {timeout:g} s: {left}")
    return time.monotonic() - started


# -- xnet on real hosts -----------------------------------------------------------------------


def ssh_inventory(hosts: Sequence[SshdHost], names: Optional[Sequence[str]] = None) -> str:
    """Our inventory format: each sshd host as ``nNN`` (or ``names``), logged in as us."""
    import getpass

    lines = ["vars:", f"  user: {getpass.getuser()}", f"  python: {REMOTE_PYTHON}", "hosts:"]
    for index, host in enumerate(hosts):
        name = names[index] if names else f"n{index + 1:02d}"
        lines.append(
            f"  {name}: {{address: {host.address}, port: {host.port}, "
            f"identity_file: {host.key}, connect_timeout: 10}}"
        )
    return "\n".join(lines) + "\n"


def popen_inventory(count: int) -> str:
    return f"groups:\n  local:\n    hosts: p[01-{count:02d}]\n    vars: {{transport: popen}}\n"


def xnet_env(home: Path, hosts: Sequence[SshdHost] = ()) -> Dict[str, str]:
    """Our environment with HOME at ``home``, whose known_hosts knows ``hosts``."""
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    (ssh / "known_hosts").write_text("".join(h.known_hosts_line() + "\n" for h in hosts))
    env = {k: v for k, v in os.environ.items() if not k.startswith("XNET_")}
    env["HOME"] = str(home)
    return env


def start_xnet(
    args: Sequence[str], env: Dict[str, str], stdin: int = subprocess.DEVNULL
) -> subprocess.Popen:
    """``xnet ARGS`` in a process group of its own (as a shell job), output to pipes."""
    return subprocess.Popen(
        [sys.executable, "-m", "execnet_cli", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )


def run_xnet(
    args: Sequence[str], env: Dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    """``xnet ARGS`` to its end; a hang fails the case (and kills the process group)."""
    proc = start_xnet(args, env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"xnet {' '.join(args)} still ran after {timeout:g} s")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
