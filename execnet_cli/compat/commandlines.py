"""execnet's ``gateway_io``: the command lines that start a worker, and their IO.

Ours start a worker with ``python -c STAGE1`` (``bootstrap.STAGE1``, no quotes, never
``eval``), then send it our modules on its stdin. ``popen_args``/``ssh_args`` give the
command line our popen and OpenSSH would run for a spec (ours reaches ssh hosts through
paramiko, not an ``ssh`` process, but this command works with OpenSSH as it is);
``create_io`` starts one as a ``Popen2IOMaster`` that still waits for its bootstrap
(``bootstrap.bootstrap_bytes``). Gateways never use these: they open through
``transports/``.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from typing import Any, List, Optional

from ..bootstrap import STAGE1, worker_environ
from .wire import Popen2IO

#: What a worker runs first (execnet's name for its bootstrap line).
popen_bootstrapline = STAGE1


class Popen2IOMaster(Popen2IO):
    """A started worker command, its stdin and stdout as message IO."""

    #: For ssh specs: the host reached.
    remoteaddress: str

    def __init__(self, args: List[str], execmodel: Any) -> None:
        self.popen = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=worker_environ()
        )
        super().__init__(self.popen.stdin, self.popen.stdout, execmodel)

    def wait(self) -> Optional[int]:
        try:
            return self.popen.wait()
        except OSError:
            return None

    def kill(self) -> None:
        try:
            self.popen.kill()
        except OSError as exc:
            sys.stderr.write(f"ERROR killing: {exc}\n")


def shell_split_path(path: str) -> List[str]:
    """Split a ``python=`` value into words as a shell would (backslashes kept on Windows)."""
    if sys.platform.startswith("win"):
        path = path.replace("\\", "/")
    return shlex.split(path)


def popen_args(spec: Any) -> List[str]:
    """The command line of a popen worker for ``spec``."""
    python = shell_split_path(spec.python) if spec.python else [sys.executable]
    return [*python, "-c", popen_bootstrapline]


def _remote_command(spec: Any) -> str:
    # STAGE1 has no quote, dollar, backquote or backslash: safe in double quotes.
    return f'{spec.python or "python3"} -c "{popen_bootstrapline}"'


def ssh_args(spec: Any) -> List[str]:
    """The OpenSSH command line that starts a worker on ``spec``'s host (no ``-C``: ssh
    compression caps a stream at ~40 MB/s here)."""
    args = ["ssh"]
    if spec.ssh_config is not None:
        args += ["-F", str(spec.ssh_config)]
    return [*args, *str(spec.ssh).split(), _remote_command(spec)]


def vagrant_ssh_args(spec: Any) -> List[str]:
    """``vagrant ssh`` to the machine of ``spec.vagrant_ssh``, then as ``ssh_args``."""
    args = ["vagrant", "ssh", str(spec.vagrant_ssh), "--"]
    if spec.ssh_config is not None:
        args += ["-F", str(spec.ssh_config)]
    return [*args, _remote_command(spec)]


def create_io(spec: Any, execmodel: Any) -> Popen2IOMaster:
    """Start the worker command of a popen, ssh or vagrant_ssh spec."""
    if spec.popen:
        return Popen2IOMaster(popen_args(spec), execmodel)
    for key, make_args in (("ssh", ssh_args), ("vagrant_ssh", vagrant_ssh_args)):
        if getattr(spec, key):
            io = Popen2IOMaster(make_args(spec), execmodel)
            io.remoteaddress = str(getattr(spec, key))
            return io
    raise ValueError(f"no popen, ssh or vagrant_ssh in {spec!r}")
