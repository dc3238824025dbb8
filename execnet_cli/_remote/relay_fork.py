"""A relay's fork server: its hosts' workers forked, not started as new interpreters.

A relay starts workers of its own interpreter for its popen hosts. An interpreter start
costs 15-100 ms of CPU (site, ``.pth`` files, our modules); a fork of a clean interpreter
that has done all that costs about a millisecond, as it does for the controller's popen
gateways. So the relay starts one fork server (``forkserver.serve``, the same far half the
controller's ``transports/forkserver.py`` talks to), through the bootstrap it holds, and
asks it for each worker over an ``AF_UNIX`` ``SOCK_SEQPACKET`` socket: the request with
the worker's stdin, stdout and stderr, the answer with the child's pid and a pidfd, and
later the child's exit report (``forkserver``'s docstring has the messages).

This client is the relay's own, smaller than the controller's: one server, no retiring or
restarting. ``ForkServer.fork`` raises ``OSError`` whenever forking does not work (no
pidfds, the server gone); the relay then starts an interpreter instead.
"""

from __future__ import annotations

import marshal
import os
import select
import signal
import socket
import subprocess
import threading
from array import array

from . import forkserver

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, List, Optional, Tuple

#: Seconds the server may take to report ready, and to answer a fork request.
READY_TIMEOUT = 10.0
REPLY_TIMEOUT = 2.0
#: Largest message from the server.
MAX_MESSAGE = 1 << 16


def supported() -> bool:
    """Forking needs pidfds (Python 3.9+, Linux 5.3+)."""
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


class ForkedProcess:
    """A forked worker, as much of ``subprocess.Popen`` as the relay uses."""

    stderr = None

    def __init__(self, server: ForkServer, pid: int, pidfd: int) -> None:
        self.server = server
        self.pid = pid
        self.pidfd = pidfd
        self.returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            self.returncode = self.server.exit_status(self.pid, self.pidfd, 0)
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        if self.returncode is None:
            self.returncode = self.server.exit_status(self.pid, self.pidfd, timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(["forked worker"], timeout or 0)
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None and self.pidfd >= 0:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)  # type: ignore[attr-defined]
            except OSError:
                pass


class ForkServer:
    """One fork server process, the socket to it, and a thread reading its answers."""

    def __init__(
        self,
        argv: List[str],
        env: Dict[str, str],
        bootstrap: Callable[[Dict[str, Any]], bytes],
    ) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control = ours
        self.cond = threading.Condition()
        self.answers: Dict[int, Tuple[Tuple[Any, ...], List[int]]] = {}
        self.exits: Dict[int, int] = {}
        self.ended = False
        self.next_id = 0
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
                env=env,
            )
            stdin = self.process.stdin
            assert stdin is not None  # a pipe (PIPE above)
            stdin.write(bootstrap({"forkserver_fd": theirs.fileno(), "preload": []}))
            stdin.close()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(READY_TIMEOUT)
        try:
            message, fds = self._receive()
        except OSError:
            self.stop()
            raise
        forkserver._close_all(fds)
        if message[0] != "ready" or message[2]:
            self.stop()
            raise OSError(f"the fork server did not start: {message!r}")
        ours.settimeout(None)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def fork(self, env: Dict[str, str], config: Dict[str, Any]) -> Tuple[ForkedProcess, int, int]:
        """A worker forked with ``config`` and ``env``: (process, its stdout, its stdin)."""
        with self.cond:
            if self.ended:
                raise OSError("the fork server has ended")
            self.next_id += 1
            request_id = self.next_id
        request = marshal.dumps(
            {"id": request_id, "config": config, "env": env, "cwd": os.getcwd(), "umask": _umask()}
        )
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        try:
            fds = array("i", [child_in, child_out, 2]).tobytes()
            self.control.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
            message, received = self._answer(request_id)
            if message[0] != "forked" or len(received) != 1:
                forkserver._close_all(received)
                raise OSError(f"the fork server refused: {message[-1]!r}")
        except BaseException:
            forkserver._close_all([to_child, from_child])
            raise
        finally:
            forkserver._close_all([child_in, child_out])
        return ForkedProcess(self, message[2], received[0]), from_child, to_child

    def exit_status(self, pid: int, pidfd: int, timeout: Optional[float]) -> Optional[int]:
        """The worker's exit status once reported (-1 if it ended unreported), or None."""
        with self.cond:
            self.cond.wait_for(lambda: pid in self.exits or self.ended, timeout)
            if pid in self.exits:
                return self.exits.pop(pid)
        ended, _, _ = select.select([pidfd], [], [], 0 if timeout is None else timeout)
        return -1 if ended else None

    def stop(self) -> None:
        """Close the socket (the server then ends) and reap the server."""
        try:
            self.control.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.control.close()

    # -- the reading thread ----------------------------------------------------------------

    def _answer(self, request_id: int) -> Tuple[Tuple[Any, ...], List[int]]:
        with self.cond:
            if not self.cond.wait_for(
                lambda: request_id in self.answers or self.ended, REPLY_TIMEOUT
            ):
                raise OSError("the fork server did not answer")
            if request_id not in self.answers:
                raise OSError("the fork server has ended")
            return self.answers.pop(request_id)

    def _read(self) -> None:
        while True:
            try:
                message, fds = self._receive()
            except (OSError, EOFError, ValueError):
                break
            with self.cond:
                if message[0] == "exited":
                    self.exits[message[1]] = message[2]
                else:
                    self.answers[message[1]] = (message, fds)
                self.cond.notify_all()
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def _receive(self) -> Tuple[Tuple[Any, ...], List[int]]:
        data, ancillary, _, _ = self.control.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(4))
        fds = forkserver._received_fds(ancillary)
        if not data:
            forkserver._close_all(fds)
            raise EOFError("the fork server closed its socket")
        return marshal.loads(data), fds


def _umask() -> int:
    """This process's umask, read without changing it (from /proc where it is shown)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o22)
    os.umask(mask)
    return mask
