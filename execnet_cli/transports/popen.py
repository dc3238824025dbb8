"""Workers as local subprocesses, talking over their stdin/stdout pipes; the popen opener."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING, Dict, List, Optional

from .. import bootstrap
from .._remote.fdio import FdIO, enlarge_pipe
from ..bootstrap import worker_environ
from ..errors import InterpreterNotFound
from .base import Transport, TransportBase
from .opening import OpenContext, SpecFields, WorkerConfig, send_bootstrap

if TYPE_CHECKING:
    from .forkserver import ForkedTransport

log = logging.getLogger("execnet_cli.connect")


class PopenTransport(FdIO, TransportBase):
    """A child interpreter; the protocol runs over its stdin and stdout pipes.

    A Ctrl-C at the terminal reaches the whole process group; the worker ignores it
    (``worker.ignore_terminal_interrupt``) and the controller ends its workers in order.
    (A session of its own would do the same, but ``setsid`` keeps CPython from using
    vfork: 4 ms more per start.) Its stderr is ours: ``print()`` in remote code
    appears on the controller's stderr.
    """

    def __init__(self, argv: List[str], env: Optional[Dict[str, str]] = None) -> None:
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                env=env,
            )
        except OSError as exc:
            raise InterpreterNotFound(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
        assert self.process.stdin is not None and self.process.stdout is not None
        self._stdin = self.process.stdin
        self._stdout = self.process.stdout
        super().__init__(self._stdout.fileno(), self._stdin.fileno())
        enlarge_pipe(self.write_fd)
        enlarge_pipe(self.read_fd)
        self.argv = argv

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> Optional[int]:
        """As ``subprocess`` gives it: None while running, negative for a signal."""
        return self.process.returncode

    def close_write(self) -> None:
        if self._write_open:
            self._write_open = False
            self.write_fd = -1
            try:
                self._stdin.close()
            except OSError:
                pass

    def close_read(self) -> None:
        if self._read_open:
            self._read_open = False
            self.read_fd = -1
            self._stdout.close()

    def wait(self, timeout: Optional[float]) -> Optional[int]:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.process.returncode is None:
            try:
                self.process.kill()
            except OSError:
                pass

    def describe(self) -> str:
        return f"popen pid {self.process.pid} ({self.argv[0]})"

    def exit_description(self) -> str:
        code = self.process.poll()
        if code is None:
            return "still running"
        if code < 0:
            return f"killed by signal {-code}"
        return f"exited with status {code}"


def popen_environment(extra: Dict[str, str]) -> Optional[Dict[str, str]]:
    """The child's environment: ours without our secrets, plus the spec's ``env:``."""
    return worker_environ(extra)


def open_popen(fields: SpecFields, config: WorkerConfig, context: OpenContext) -> Transport:
    """A local worker: forked from the context's fork server where it can be, else a new
    interpreter (``transports.forkserver`` says when forking applies). With ``via=``, on
    the via gateway's host (``transports.via``); with ``sudo=``, as another user
    (``transports.sudo``)."""
    if fields.via:
        from .via import open_popen_via

        return open_popen_via(fields, config, context)
    if fields.sudo:
        from .sudo import open_sudo

        return open_sudo(fields, config)
    python = fields.python or sys.executable
    resolved = shutil.which(python) or python
    same = bootstrap.same_interpreter(resolved)
    if same and not fields.spawn:
        forked = _fork(fields, config, context, resolved)
        if forked is not None:
            return forked
    transport = PopenTransport(bootstrap.stage1_argv(resolved), popen_environment(dict(fields.env)))
    return send_bootstrap(transport, config, same)


def _fork(
    fields: SpecFields, config: WorkerConfig, context: OpenContext, python: str
) -> Optional[ForkedTransport]:
    """A worker forked from the context's fork server, or None where forking does not apply."""
    from . import forkserver

    if not forkserver.forking_supported():
        return None
    try:
        return context.fork_servers().fork(python, config, dict(fields.env))
    except forkserver.ForkUnavailable as exc:
        log.debug("gateway %s: starting an interpreter, not forking: %s", fields.id, exc)
        return None
