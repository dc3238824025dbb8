"""The fork server: a clean interpreter that forks popen workers on request.

Starting an interpreter costs most of a popen gateway's open time (site, ``.pth``
files, our modules); forking one that has done all of that costs about a millisecond.
A group starts one fork server per interpreter (see ``execnet_cli.transports.forkserver``)
through the normal bootstrap, so it holds exactly what a fresh worker holds before it
runs any user code, and it never runs user code itself. It stays single-threaded, which
makes ``fork`` safe.

It talks to its controller over an ``AF_UNIX`` ``SOCK_SEQPACKET`` socket (one message
per datagram, descriptors passed with ``SCM_RIGHTS``):

- to the controller, once: ``("ready", pid, problem)``, ``problem`` being '' or why the
  server must not be used (a preload failed, or something started a thread);
- from the controller: ``{"id", "config", "env", "cwd", "umask"}`` with three
  descriptors: the worker's stdin (read end), stdout (write end) and stderr;
- to the controller: ``("forked", id, pid)`` with a pidfd of the child (opened before
  the child can be reaped, so the controller never signals a recycled pid), or
  ``("failed", id, reason)``; ``id`` is the request's, so an answer to a request the
  controller gave up on (interrupted) is recognised and dropped;
- to the controller: ``("exited", pid, returncode)`` for every child it reaps
  (``returncode`` as ``subprocess`` gives it: negative for a signal); queued while the
  controller's socket is full, never dropped.

It ends when the controller's end of the socket closes (group terminated, or the
controller died): the workers it forked are not its to end; each of them ends on
the end of its own stream, as every worker does.
"""

from __future__ import annotations

import _signal
import _socket
import marshal
import os
import select
import sys
import time
from array import array
from collections import deque

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Deque, Dict, List, Sequence, Tuple

#: Descriptors a request carries: the worker's stdin, stdout and stderr.
REQUEST_FDS = 3
#: Largest request (settings and environment) the server takes in one datagram.
MAX_REQUEST = 1 << 20
#: Seconds the server waits for its last children when it is told to stop.
FINAL_REAP = 1.0


def serve(
    control_fd: int,
    preload: Sequence[Tuple[str, Any]],
    run_worker: Callable[[Dict[str, Any]], None],
) -> None:
    """Run the fork server on ``control_fd`` until the controller closes it.

    ``preload`` names modules to import before the first fork, each with the file the
    controller has it from (or None), so every worker starts with them imported. A
    forked child calls ``run_worker`` with its request's settings (``worker.main``:
    passed in, so this module needs nothing of the worker's).
    """
    _signal.signal(_signal.SIGINT, _no_op)  # a terminal's Ctrl-C is the controller's to handle
    control = _socket.socket(fileno=control_fd)
    problem = _preload(preload)  # in the controller's directory, where a worker would import
    _warm_up()
    os.chdir("/")  # hold no directory of the controller's busy
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    _signal.set_wakeup_fd(wake_w)
    _signal.signal(_signal.SIGCHLD, _no_op)
    if not problem and not _single_threaded():
        problem = "the fork server has threads of its own: forking is unsafe"
    _send(control, ("ready", os.getpid(), problem))
    unsent = deque()  # type: Deque[bytes]
    watched: List[Any] = [control, wake_r]
    while True:
        readable = select.select(watched, watched[:1] if unsent else [], [])[0]
        if wake_r in readable:
            _drain(wake_r)
            _reap(unsent)
        _flush(control, unsent)
        if control in readable and not _handle_request(control, run_worker, wake_r, wake_w):
            break
    deadline = time.monotonic() + FINAL_REAP  # no child left a zombie of this process
    while _reap(unsent) and time.monotonic() < deadline:
        time.sleep(0.01)
    os._exit(0)


def _no_op(signum: int, frame: Any) -> None:
    pass


def _preload(modules: Sequence[Tuple[str, Any]]) -> str:
    """Import ``modules``; '' when all came from where the controller has them, else why not."""
    for name, expected in modules:
        try:
            __import__(name)
        except Exception as exc:
            return f"preloading {name} failed: {type(exc).__name__}: {exc}"
        found = getattr(sys.modules[name], "__file__", None)
        if expected is not None and found != expected:
            return f"preloading {name} found {found}, not the controller's {expected}"
    return ""


def _warm_up() -> None:
    """Pay once what a worker would pay on its first remote code (``worker``): importing
    ``threading`` (no thread starts: forking stays safe; a child's main thread is this
    one) and the first ``compile()``, which builds the ``ast`` types."""
    import threading  # noqa: F401

    compile("", "<fork server>", "exec")


def _single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _send(control: Any, message: Tuple[Any, ...], fds: Tuple[int, ...] = ()) -> bool:
    """Send one message; False when the controller is gone."""
    data = marshal.dumps(message)
    ancillary = []
    if fds:
        ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array("i", fds).tobytes())]
    try:
        control.sendmsg([data], ancillary)
        return True
    except OSError:
        return False


def _flush(control: Any, unsent: Deque[bytes]) -> None:
    """Send the exit reports the controller has room for; never block on a controller that
    is not reading (the rest go when its socket drains: a thousand workers ending at once
    overflow it, and a dropped report would leave their gateways waiting for it)."""
    while unsent:
        try:
            control.send(unsent[0], _socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:  # the controller is gone: nobody will ask
            unsent.clear()
            return
        unsent.popleft()


def _handle_request(
    control: Any, run_worker: Callable[[Dict[str, Any]], None], wake_r: int, wake_w: int
) -> bool:
    """Fork one worker; False when the controller closed the socket."""
    try:
        data, ancillary, flags, _ = control.recvmsg(
            MAX_REQUEST, _socket.CMSG_SPACE(REQUEST_FDS * 4)
        )
    except InterruptedError:  # pragma: no cover - PEP 475 retries
        return True
    except OSError:
        return False
    fds = _received_fds(ancillary)
    if not data:
        _close_all(fds)
        return False
    request_id = None
    try:
        if flags & _socket.MSG_TRUNC:
            raise ValueError(f"request over {MAX_REQUEST} bytes")
        request = marshal.loads(data)
        request_id = request["id"]
        if len(fds) != REQUEST_FDS:
            raise ValueError(f"expected {REQUEST_FDS} descriptors, got {len(fds)}")
        pid = os.fork()
    except Exception as exc:
        _close_all(fds)
        return _send(control, ("failed", request_id, f"{type(exc).__name__}: {exc}"))
    if pid == 0:
        _become_worker(request, fds, run_worker, control, wake_r, wake_w)  # never returns
    _close_all(fds)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError as exc:  # pragma: no cover - Linux < 5.3 is refused by the controller
        return _send(control, ("failed", request_id, f"pidfd_open: {exc}"))
    try:
        return _send(control, ("forked", request_id, pid), (pidfd,))
    finally:
        os.close(pidfd)


def _received_fds(ancillary: List[Tuple[int, int, bytes]]) -> List[int]:
    fds = array("i")
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return list(fds)


def _close_all(fds: List[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _become_worker(
    request: Dict[str, Any],
    fds: List[int],
    run_worker: Callable[[Dict[str, Any]], None],
    control: Any,
    *wake: int,
) -> None:
    """In the child: take the worker's descriptors and settings, then run the worker."""
    try:
        _signal.set_wakeup_fd(-1)
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        control.close()
        _close_all(list(wake))
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        _close_all([fd for fd in fds if fd > 2])
        os.environ.clear()
        os.environ.update(request["env"])
        os.umask(request["umask"])
        os.chdir(request["cwd"])
        run_worker(request["config"])
    except BaseException:
        try:
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(70)
    os._exit(0)  # pragma: no cover - worker.main leaves through os._exit


def _reap(unsent: Deque[bytes]) -> bool:
    """Collect ended children and queue their exit reports; True while some still run."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True
        unsent.append(marshal.dumps(("exited", pid, os.waitstatus_to_exitcode(status))))


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass
