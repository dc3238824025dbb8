"""Popen workers forked from a fork server instead of started from nothing.

A ``ForkServer`` is a clean interpreter of our own Python, bootstrapped like any
worker, that forks workers on request (``_remote/forkserver.py``). A popen gateway
then costs a fork and a ready message (a few milliseconds) instead of an interpreter
start (15-100 ms, most of it site and ``.pth`` files). A ``Group`` owns its fork
servers (``ForkServers``) and ends them when it terminates.

What a forked worker gets is what a started one would: our current environment, working
directory, umask and stderr (sent with each request, so a later ``os.environ`` change or a
redirected fd 2 is honoured), the spec's settings, and fresh protocol pipes. What it
shares with its siblings is what the interpreter fixed at start: the hash seed and what
``site`` did. So only requests whose start-up environment (``PYTHON*``, ``LC_*``,
``LD_*``, ``LANG``, ``HOME``, ``TZ``...) equals the server's are forked; others, and specs
with ``spawn`` or another ``python=``, start a new interpreter as before.
``XNET_POPEN_FORK=0`` turns forking off.

The fork server is an optimisation: it never fails an open. ``ForkServers.fork`` returns
None wherever forking does not apply (the opener then starts an interpreter), so no
``ForkUnavailable`` reaches a caller, even one holding another copy of this module (pytest's
``pytester`` drops and re-imports modules between runs). A group keeps at most
``MAX_SERVERS`` servers: a program that changes its environment for every gateway (tests
that set ``HOME`` each) starts interpreters for one-off environments; an environment seen
again replaces the least recently used server that has no worker left.
"""

from __future__ import annotations

import functools
import itertools
import logging
import marshal
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .. import bootstrap
from .._remote.fdio import FdIO, enlarge_pipe
from .base import TransportBase

log = logging.getLogger("execnet_cli.forkserver")

#: Seconds a new fork server may take to report ready before we give up on it.
READY_TIMEOUT = 10.0
#: Seconds to wait for the server's answer to a fork request. It answers in about a
#: millisecond; past this it is hung, and retired: the open starts an interpreter instead.
REPLY_TIMEOUT = 2.0
#: Seconds between looks at whether a server we wait for is stopped (SIGSTOP, a
#: debugger): a stopped server never answers, so it is retired at once.
STOPPED_CHECK = 0.05
#: Seconds to wait for a reaped child's exit status once its pidfd says it ended.
STATUS_TIMEOUT = 2.0
#: Seconds a stopping server gets before it is killed.
STOP_TIMEOUT = 3.0
#: Fork servers one group keeps at most (one per distinct start-up environment).
MAX_SERVERS = 4
#: Start-up environments remembered as asked for while the servers were all taken: one
#: asked for again earns a server in place of the least recently used idle one.
REMEMBERED_KEYS = 64
#: Environment variables read when an interpreter starts, which a fork cannot change.
STARTUP_PREFIXES = ("PYTHON", "LC_", "LD_", "MALLOC_")
STARTUP_NAMES = frozenset({"LANG", "LANGUAGE", "HOME", "TZ", "GLIBC_TUNABLES"})


class ForkUnavailable(Exception):
    """This request cannot be forked (the caller starts an interpreter instead)."""


def forking_supported() -> bool:
    """Linux with pidfds (5.3+; Python 3.9+), and not turned off by the user."""
    return os.environ.get("XNET_POPEN_FORK", "1") != "0" and _kernel_has_pidfds()


@functools.cache
def _kernel_has_pidfds() -> bool:
    if sys.platform != "linux" or not hasattr(signal, "pidfd_send_signal"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):  # an older kernel, or a sandbox that refuses it
        return False
    return True


def read_at_startup(name: str) -> bool:
    """Whether the environment variable ``name`` shapes an interpreter's start."""
    return name in STARTUP_NAMES or name.startswith(STARTUP_PREFIXES)


def startup_signature(env: Mapping[str, str]) -> Tuple[Tuple[str, str], ...]:
    """The part of an environment that shapes an interpreter's start."""
    return tuple(sorted((name, value) for name, value in env.items() if read_at_startup(name)))


def current_umask() -> int:
    """This process's umask, read without changing it (Linux 4.7+ reports it in /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    raise ForkUnavailable("no Umask line in /proc/self/status")


def preload_plan(names: Tuple[str, ...]) -> List[Tuple[str, Optional[str]]]:
    """Each module to preload, with the file we have it from (the server must match it)."""
    plan = []
    for name in names:
        module = sys.modules.get(name)
        plan.append((name, getattr(module, "__file__", None) if module is not None else None))
    return plan


class ForkServer:
    """One fork server process and the control socket to it."""

    def __init__(self, python: str, preload: Tuple[str, ...] = ()) -> None:
        self.python = python
        self._lock = threading.Lock()
        self._exits: Dict[int, int] = {}
        self._request_ids = itertools.count(1)
        self._usable = False
        #: Forked workers whose transport is not closed yet (a server with none is idle).
        self.open_workers = 0
        self._count_lock = threading.Lock()  # not _lock: a fork holds that while it waits
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control = ours
        config = {"forkserver_fd": theirs.fileno(), "preload": preload_plan(preload)}
        try:
            self.process = subprocess.Popen(
                bootstrap.stage1_argv(python),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                bufsize=0,
                env=bootstrap.worker_environ(),  # its children inherit its initial block
            )
        except OSError as exc:
            ours.close()
            raise ForkUnavailable(f"cannot start {python!r}: {exc}") from exc
        finally:
            theirs.close()
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(bootstrap.bootstrap_bytes(config, same_python=True))
            self.process.stdin.close()
            got = self._next(READY_TIMEOUT)
            if got is None:
                raise ValueError("an exit report before the ready message")
            _close_all(got[1])
            kind, pid, problem = got[0]
        except (OSError, ForkUnavailable, ValueError) as exc:
            self.stop()
            raise ForkUnavailable(f"the fork server did not start: {exc}") from None
        if kind != "ready" or problem:
            self.stop()
            raise ForkUnavailable(problem or f"unexpected first message {kind!r}")
        self._usable = True
        log.debug("fork server pid %d for %s", pid, python)

    @property
    def usable(self) -> bool:
        return self._usable and self.process.poll() is None

    def fork(self, config: Dict[str, Any], env: Dict[str, str]) -> ForkedTransport:
        """A new worker with ``config``, environment ``env`` and our cwd, umask, stderr."""
        try:
            cwd = os.getcwd()
        except OSError as exc:  # our directory was removed: only a new process can start there
            raise ForkUnavailable(f"no working directory: {exc}") from None
        request_id = next(self._request_ids)
        request = marshal.dumps(
            {"id": request_id, "config": config, "env": env, "cwd": cwd, "umask": current_umask()}
        )
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        try:
            with self._lock:
                if not self.usable:
                    raise ForkUnavailable("the fork server has ended")
                try:
                    socket.send_fds(self._control, [request], [child_in, child_out, 2])
                    message, fds = self._reply(request_id)
                except (OSError, ValueError) as exc:
                    self.retire(str(exc))
                    raise ForkUnavailable(f"the fork server failed: {exc}") from None
            if message[0] != "forked" or len(fds) != 1:
                _close_all(fds)
                raise ForkUnavailable(f"the fork server refused: {message[2]!r}")
        except BaseException:
            os.close(to_child)
            os.close(from_child)
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        with self._count_lock:
            self.open_workers += 1
        return ForkedTransport(self, message[2], fds[0], from_child, to_child)

    def release(self) -> None:
        """A forked worker's transport was closed (the worker has ended or is killed)."""
        with self._count_lock:
            self.open_workers -= 1

    @property
    def idle(self) -> bool:
        """No forked worker depends on this server for its exit status."""
        return self.open_workers <= 0

    def _reply(self, request_id: int) -> Tuple[Tuple[Any, ...], List[int]]:
        """The answer to request ``request_id``; stale answers on the way (to a request
        whose caller was interrupted: its child ends on its closed pipes) are dropped."""
        while True:
            got = self._next(REPLY_TIMEOUT)
            if got is None:
                continue
            message, fds = got
            if message[1] == request_id or message[1] is None:
                return message, fds
            _close_all(fds)

    def exit_status(self, pid: int, timeout: float) -> Optional[int]:
        """The return code of ``pid``, a child that has ended (None if it never comes)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while pid not in self._exits:
                try:
                    got = self._next(max(0.0, deadline - time.monotonic()))
                except (OSError, ValueError):
                    return None
                if got is not None:  # a stale answer
                    _close_all(got[1])
            return self._exits.pop(pid)

    def _next(self, timeout: float) -> Optional[Tuple[Tuple[Any, ...], List[int]]]:
        """One message and its descriptors; an exit report is recorded and gives None.
        ValueError on timeout, a closed socket or a stopped server."""
        deadline = time.monotonic() + timeout
        left = timeout
        while not _readable(self._control.fileno(), min(STOPPED_CHECK, left)):
            if self.stopped():
                raise ValueError("the fork server is stopped")
            left = deadline - time.monotonic()
            if left <= 0:
                raise ValueError(f"no answer in {timeout:g} s")
        data, fds, _flags, _address = socket.recv_fds(self._control, 4096, 1)
        if not data:
            raise ValueError("the fork server closed its socket")
        message = marshal.loads(data)
        if not isinstance(message, tuple) or len(message) < 2:
            _close_all(fds)
            raise ValueError(f"unexpected message {message!r}")
        if message[0] == "exited":
            self._exits[message[1]] = message[2]
            return None
        return message, fds

    def stopped(self) -> bool:
        """Whether the server is stopped (by a signal or a tracer): it cannot answer."""
        try:
            with open(f"/proc/{self.process.pid}/stat", "rb") as stat:
                return stat.read().rsplit(b") ", 1)[1][:1] in (b"T", b"t")
        except (OSError, IndexError):
            return False  # it has ended: the closed socket says so

    def stop(self) -> None:
        """End the server (its workers are not its to end: each ends with its gateway)."""
        self._usable = False
        self._control.close()
        if self.stopped():
            self.process.kill()  # it would never see the closed socket
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def retire(self, reason: str) -> None:
        """Kill and reap a server that failed to answer; its workers go on, but their exit
        statuses are lost with it."""
        log.debug("fork server pid %d retired: %s", self.process.pid, reason)
        self._usable = False
        self._control.close()
        self.process.kill()
        self.process.wait()


def _readable(fd: int, timeout: Optional[float]) -> bool:
    """Whether ``fd`` becomes readable within ``timeout`` seconds (None: no limit).

    ``poll``, not ``select``: a controller with a thousand gateways holds descriptors
    past select's 1,024."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000 + 0.999))))


def _close_all(fds: List[int]) -> None:
    for fd in fds:
        os.close(fd)


class ForkedTransport(FdIO, TransportBase):
    """A worker forked by a ``ForkServer``; waited for and signalled through a pidfd."""

    def __init__(
        self, server: ForkServer, pid: int, pidfd: int, read_fd: int, write_fd: int
    ) -> None:
        super().__init__(read_fd, write_fd)
        enlarge_pipe(read_fd)
        enlarge_pipe(write_fd)
        self.server = server
        self.pid = pid
        self._pidfd: Optional[int] = pidfd
        self._pidfd_lock = threading.Lock()  # kill and close may come from two threads
        self._ended = False
        self.returncode: Optional[int] = None

    def wait(self, timeout: Optional[float]) -> Optional[int]:
        """The return code once the worker has ended (-1 if lost), None on timeout."""
        if not self._ended:
            pidfd = self._pidfd
            if pidfd is None or not _readable(pidfd, timeout):
                return None
            self._ended = True
            self.returncode = self.server.exit_status(self.pid, STATUS_TIMEOUT)
        return -1 if self.returncode is None else self.returncode

    def kill(self) -> None:
        with self._pidfd_lock:
            if self._pidfd is not None and not self._ended:
                try:
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
                except OSError:
                    pass  # already ended

    def close(self) -> None:
        super().close()
        with self._pidfd_lock:
            pidfd, self._pidfd = self._pidfd, None
        if pidfd is not None:
            os.close(pidfd)
            self.server.release()

    def describe(self) -> str:
        return f"popen pid {self.pid} (forked from {self.server.python})"

    def exit_description(self) -> str:
        if self.wait(0) is None:
            return "still running"
        code = self.returncode
        if code is None:
            return "ended (its exit status was lost with the fork server)"
        if code < 0:
            return f"killed by signal {-code}"
        return f"exited with status {code}"


class ForkServers:
    """A group's fork servers, started on first use and stopped with the group.

    At most ``MAX_SERVERS``, one per start-up environment, least recently used first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: OrderedDict[Tuple[Any, ...], ForkServer] = OrderedDict()
        self._failed: set = set()
        #: Keys asked for while every server was taken, oldest first (``REMEMBERED_KEYS``).
        self._asked: OrderedDict[Tuple[Any, ...], None] = OrderedDict()
        #: Modules a new server imports before it forks (``Group.set_forkserver_preload``).
        self.preload: Tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self._servers)

    def fork(
        self, python: str, config: Dict[str, Any], extra_env: Dict[str, str]
    ) -> Optional[ForkedTransport]:
        """Fork a worker of ``python`` with our environment plus ``extra_env`` (the spec's
        ``env:``); None where forking does not apply (the caller starts an interpreter)."""
        try:
            server = self._server_for(python, extra_env)
            return server.fork(config, bootstrap.worker_environ(extra_env))
        except ForkUnavailable as exc:
            log.debug("gateway %s: starting an interpreter, not forking: %s", config.get("id"), exc)
            return None

    def _server_for(self, python: str, extra_env: Dict[str, str]) -> ForkServer:
        changed = [k for k, v in extra_env.items() if read_at_startup(k) and os.environ.get(k) != v]
        if changed:
            raise ForkUnavailable(f"the spec sets {', '.join(changed)}, read at start-up")
        key = (python, startup_signature(os.environ), self.preload)
        with self._lock:
            if key in self._failed:
                raise ForkUnavailable("forking failed before for this interpreter")
            server = self._servers.get(key)
            if server is not None and server.usable:
                self._servers.move_to_end(key)
                return server
            if server is not None:
                del self._servers[key]
                server.stop()
            if len(self._servers) >= MAX_SERVERS:
                self._retire_one_for(key)
            try:
                server = self._servers[key] = ForkServer(python, self.preload)
            except ForkUnavailable:
                self._failed.add(key)
                raise
            return server

    def _retire_one_for(self, key: Tuple[Any, ...]) -> None:
        """Make room for ``key``'s server: stop the least recently used idle server, if
        ``key`` was asked for before (a one-off environment is not worth a server); else
        ForkUnavailable."""
        if key not in self._asked:
            self._asked[key] = None
            while len(self._asked) > REMEMBERED_KEYS:
                self._asked.popitem(last=False)
            raise ForkUnavailable("every fork server this group keeps is taken")
        for old_key, server in self._servers.items():
            if server.idle:
                del self._servers[old_key]
                del self._asked[key]
                log.debug("retiring the fork server for %s, unused the longest", server.python)
                server.stop()
                return
        raise ForkUnavailable("every fork server this group keeps has workers")

    def stop(self) -> None:
        """Stop every server (more start on the next fork: the group may be used again)."""
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for server in servers:
            server.stop()
