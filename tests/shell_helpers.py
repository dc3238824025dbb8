"""Running ``xnet shell`` in a pseudo-terminal (pexpect) for the tests/test_shell*.py modules.

``Target`` is what a test runs the shell on: its HOST argument and the environment that
makes it reachable (an inventory of popen workers, or an sshd fixture host reached
ad hoc as ``root@127.0.0.2:PORT`` with a ``~/.ssh/config`` naming the test key and
known_hosts). ``target_fixture`` is the ``target`` fixture, parametrized over both
(import it by that name).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pexpect
import pytest
from sshd_fixtures import descendants

REPO = Path(__file__).resolve().parent.parent
#: Bound on every wait for the shell's output.
EXPECT_TIMEOUT = 40
#: Popen hosts; web03 has ROLE=b, so statements can tell it from the others.
POPEN_INVENTORY = """\
groups:
  web:
    hosts: web[01-03]
    vars: {transport: popen}
hosts:
  web03: {env: {ROLE: b}}
"""
SSH_CONFIG = """\
Host 127.0.0.*
  IdentityFile {key}
  UserKnownHostsFile {known_hosts}
"""


@dataclass
class Target:
    """A HOST argument for ``xnet shell`` and the environment it needs."""

    host: str
    env: dict[str, str] = field(default_factory=dict)
    kind: str = "popen"

    @property
    def name(self) -> str:
        """The name the banner and the prompt give the host (ad-hoc ones: as written)."""
        return self.host

    def args(self, *more: str) -> list[str]:
        return [sys.executable, "-m", "execnet_cli", "shell", *more, self.host]


def base_env(tmp_path: Path) -> dict[str, str]:
    """Our worktree first on the path, history and config under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XNET_")}
    env.update(
        PYTHONPATH=str(REPO),
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        TERM="xterm",
        PS1="$ ",
    )
    return env


def popen_target(tmp_path: Path, host: str = "web01") -> Target:
    inventory = tmp_path / "xnet.yaml"
    inventory.write_text(POPEN_INVENTORY)
    env = base_env(tmp_path)
    env["XNET_INVENTORY"] = str(inventory)
    return Target(host, env)


def ssh_target(tmp_path: Path, sshd_host) -> Target:  # noqa: ANN001 (an SshdHost)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        SSH_CONFIG.format(key=sshd_host.key, known_hosts=sshd_host.known_hosts)
    )
    env = base_env(tmp_path)
    env["HOME"] = str(home)
    return Target(f"root@{sshd_host.address}:{sshd_host.port}", env, "ssh")


@pytest.fixture(name="target", params=["popen", "ssh"])
def target_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "popen":
        return popen_target(tmp_path)
    return ssh_target(tmp_path, request.getfixturevalue("sshd_host"))


#: A secret for ``xnet serve`` and its clients (through $XNET_SECRET).
SECRET = "shell-test-" + "ab" * 20


@contextmanager
def socket_server(env: dict[str, str]) -> Iterator[int]:
    """``xnet serve`` on a free loopback port (its secret in ``env``); stopped at the end."""
    env["XNET_SECRET"] = SECRET
    server = subprocess.Popen(
        [sys.executable, "-m", "execnet_cli", "serve", "--listen", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "listening on" in line, line
        yield int(line.rsplit(":", 1)[1])
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()


@contextmanager
def spawned(
    args: list[str], env: dict[str, str], rows: int = 24, cols: int = 80
) -> Iterator[pexpect.spawn]:
    """The command in a pseudo-terminal of ``rows`` x ``cols``; killed and reaped at the end."""
    child = pexpect.spawn(
        args[0],
        args[1:],
        env=env,
        encoding="utf-8",
        codec_errors="replace",
        timeout=EXPECT_TIMEOUT,
        dimensions=(rows, cols),
        cwd=str(REPO),
    )
    try:
        yield child
    finally:
        if child.isalive():
            child.close(force=True)
        else:
            child.close()


def wait_end(child: pexpect.spawn) -> int:
    """Wait for the command to end; its exit status."""
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus if child.exitstatus is not None else 128 + child.signalstatus


def banner_pid(child: pexpect.spawn) -> int:
    """The remote worker's pid, from a one-host banner."""
    child.expect(r"pid (\d+)\)")
    return int(child.match.group(1))


def parent_pid(pid: int) -> int:
    """The parent of ``pid`` (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


def processes_of(child: pexpect.spawn, worker: int) -> list[int]:
    """What a session runs: everything below ``xnet`` here, and the worker and its parent
    (over ssh, the sshd process of the connection) on the host."""
    return [child.pid, *descendants(child.pid), worker, parent_pid(worker)]


def prompt(child: pexpect.spawn, host: str = "") -> None:
    child.expect(re.escape(host) + ">>> ")


def leave(child: pexpect.spawn, host: str = "") -> int:
    """At the next prompt, Ctrl-D; the exit status."""
    prompt(child, host)
    child.sendcontrol("d")
    return wait_end(child)


def piped(target: Target, text: str, *more: str) -> subprocess.CompletedProcess:
    """``xnet shell`` with ``text`` on a pipe as its standard input."""
    return subprocess.run(
        target.args(*more),
        input=text,
        env=target.env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(REPO),
    )
