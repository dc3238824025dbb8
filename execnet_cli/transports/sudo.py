"""popen workers as another user: ``sudo -n -u USER -- PYTHON -c STAGE1`` (``sudo=USER``).

A worker that must run as someone else is never forked from the fork server (which runs
as us): it is a new interpreter under sudo, as over ssh (``transports.ssh.transport``).
Before it starts, one probe under the same sudo answers three questions at once (a
shell, ~20 ms): does sudo let us switch without a password, which interpreter can that
user run (the spec's ``python=``, else ours, else ``python3`` on sudo's PATH: ours may
live where the user cannot reach it, e.g. under /root), and can the user use our working
directory (sudo keeps it; else the worker starts in the user's home, else ``/``).
Everything else reaches the worker over its stdin, so it needs to read none of our files.

sudo stays the worker's parent and passes SIGTERM on to it, so ``kill`` signals sudo; a
worker whose pid we know (from its ready message) and may signal is SIGKILLed directly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from .. import bootstrap
from ..errors import AuthenticationFailed, ConnectFailed, InterpreterNotFound
from .opening import SpecFields, WorkerConfig, send_bootstrap
from .popen import PopenTransport, popen_environment

#: The probe: prints the interpreter the user can run and the directory to start in,
#: or exits 127 (no interpreter). sudo's own refusals exit 1 with ``sudo:`` on stderr.
PROBE = (
    "cwd=.; if ! { test -r . && test -x .; }; then cwd=/; "
    'if test -d "$HOME" && test -r "$HOME" && test -x "$HOME"; then cwd=$HOME; fi; fi; '
    'for python in "$@"; do found=$(command -v "$python") && test -x "$found" '
    '&& { printf "%s\\n%s\\n" "$found" "$cwd"; exit 0; }; done; exit 127'
)
NO_INTERPRETER = 127


def sudo_argv(user: str) -> List[str]:
    """The words that run a command as ``user``, never asking for a password."""
    return ["sudo", "-n", "-u", user, "--"]


@dataclass(frozen=True)
class SudoTarget:
    """What the probe found: the interpreter to run and where to start (None: our cwd)."""

    user: str
    python: str
    start_dir: Optional[str]


def probe(user: str, pythons: Sequence[str], timeout: float, where: str) -> SudoTarget:
    """Check that sudo switches to ``user`` and find what the worker needs; errors name
    the user and carry sudo's own message."""
    argv = [*sudo_argv(user), "/bin/sh", "-c", PROBE, "xnet-sudo-probe", *pythons]
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError as exc:
        raise InterpreterNotFound(
            f"{where}: sudo to {user} is not possible: sudo is not installed here"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ConnectFailed(f"{where}: sudo to {user} did not answer in {timeout:g} s") from exc
    errors = done.stderr.strip()
    if done.returncode == NO_INTERPRETER and not errors:
        raise InterpreterNotFound(
            f"{where}: user {user} cannot run {' or '.join(map(repr, pythons))}; "
            "name one it can with python="
        )
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) != 2:
        detail = errors or f"exit status {done.returncode}"
        raise AuthenticationFailed(
            f"{where}: sudo to {user} refused: {detail} (popen workers use sudo -n: "
            "it must not need a password)"
        )
    python, start_dir = lines
    return SudoTarget(user, python, None if start_dir == "." else start_dir)


def worker_chdir(chdir: Optional[str], target: SudoTarget) -> Optional[str]:
    """The worker's ``chdir`` setting: a relative one still means from our directory,
    wherever the worker starts."""
    if chdir is None:
        return target.start_dir
    if chdir.startswith("~"):
        return chdir
    return os.path.join(os.getcwd(), chdir)


def open_sudo(fields: SpecFields, config: WorkerConfig) -> SudoPopenTransport:
    """A new interpreter run as ``fields.sudo`` through sudo, given ``config``."""
    assert fields.sudo is not None
    pythons = [fields.python] if fields.python else [sys.executable, "python3"]
    target = probe(fields.sudo, pythons, fields.timeout(), fields.where)
    transport = SudoPopenTransport(target, popen_environment(dict(fields.env)))
    config = {**config, "chdir": worker_chdir(config["chdir"], target)}
    return send_bootstrap(transport, config, bootstrap.same_interpreter(target.python))


class SudoPopenTransport(PopenTransport):
    """A worker started through sudo; sudo is our child and the worker its child."""

    def __init__(self, target: SudoTarget, env: Optional[Dict[str, str]] = None) -> None:
        super().__init__([*sudo_argv(target.user), *bootstrap.stage1_argv(target.python)], env)
        self.target = target
        #: The worker's pid (from its ready message): ``kill`` SIGKILLs it where we may.
        self.remote_pid: Optional[int] = None
        self._kills = 0

    def worker_ready(self, pid: Optional[int]) -> None:
        self.remote_pid = pid

    def kill(self) -> None:
        """SIGTERM to sudo (passed on to the worker) and SIGKILL to the worker; a second
        call SIGKILLs sudo too."""
        if self.process.returncode is not None or self.process.poll() is not None:
            return
        self._kills += 1
        pid = self.remote_pid
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass  # not ours to signal (sudo to root from a user): sudo passes SIGTERM on
        try:
            self.process.send_signal(signal.SIGTERM if self._kills == 1 else signal.SIGKILL)
        except OSError:
            pass

    def describe(self) -> str:
        return f"popen pid {self.process.pid} (sudo -u {self.target.user} {self.target.python})"
