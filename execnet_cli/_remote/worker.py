"""The worker: the far side of a gateway, running code sent with ``remote_exec``.

Started by the bootstrap (see ``execnet_cli.bootstrap``) with the protocol on its
original stdin/stdout. Its first act moves the protocol to private descriptors and
points fd 0 at /dev/null and fd 1 at fd 2, so ``print()`` in remote code goes to the
worker's stderr and can never corrupt the stream.

Ending: a terminate message or the end of the stream ends every channel; the main
thread then finishes its current task (which sees EOFError on its channel), runs the
atexit handlers, flushes stdout/stderr and leaves with ``os._exit`` (see
``finish_process``). A task that does not finish within ``EXIT_GRACE`` seconds is not waited
for: the worker exits anyway, so a lost controller never leaves a worker behind.
"""

from __future__ import annotations

import os
import sys
from _queue import SimpleQueue
from _thread import allocate_lock

from .channel import Channel
from .engine import BaseGateway
from .fdio import FdIO, enlarge_pipe
from .protocol import MessageType, check_exec_request
from .serializer import dumps_parts, loads
from .threads import Condition, Event, start_daemon

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict, Optional, Sequence, Tuple

    from .framing import Buffer, FrameTuple
    from .protocol import ExecRequest

EXIT_GRACE = 2.0
#: With main_thread_only, how long a request waits for the main thread before refusal.
MAIN_THREAD_WAIT = 1.0
MAIN_THREAD_BUSY = "concurrent remote_exec would cause deadlock for main_thread_only execmodel"

_STOP = object()


class WorkerGateway(BaseGateway):
    """The worker side: runs exec requests, answers status requests."""

    _is_controller = False

    def __init__(self, io: Any, id: str, execmodel: str) -> None:
        super().__init__(io, id, execmodel)
        self._main_queue: SimpleQueue = SimpleQueue()
        self._state_lock = allocate_lock()
        self._main_busy = False
        self._executing = 0
        self._idle = Condition(self._state_lock)
        self._main_done = Event()
        #: Why this worker cannot serve (``apply_config``): exec requests are refused. A
        #: request sent behind the bootstrap (before the ready message) must never run in
        #: the wrong directory.
        self.refusal: Optional[str] = None
        self._receiving = False

    def serve(self, info: Dict[str, Any], early: Sequence[FrameTuple] = ()) -> None:
        """Announce readiness, then run tasks on this (the main) thread until the end.
        ``early``: frames the bootstrap read before us (``bootstrap.START``)."""
        self._send(MessageType.WORKER_READY, 0, dumps_parts(info))
        if early:
            self._reader.dispatch_early(early)
        self._start_receiver()
        try:
            while True:
                task = self._main_queue.get()
                if task is _STOP:
                    break
                channel, request = task
                if "threading" not in sys.modules and not _own_job(request[0]):
                    import threading  # noqa: F401  (``_own_job`` says why)
                error = self._execute(channel, request)
                with self._state_lock:
                    self._main_busy = False  # before the close: the next request may come
                    self._task_done()  # notifies _idle waiters
                channel.close(error)
        finally:
            self._main_done.set()
        self._wait_for_tasks(EXIT_GRACE)

    def _start_receiver(self) -> None:
        """The receiver as a bare thread: ``threading`` is for the jobs that import it
        (``threads`` says why); ``_receiver_done`` tells when it has ended."""
        self._receiving = True
        start_daemon(self._reader.background_loop)

    def hasreceiver(self) -> bool:
        return self._receiving and not self._receiver_done.is_set()

    # -- requests (receiver thread) ----------------------------------------------------

    def _handle_exec(self, channel_id: int, payload: Buffer) -> None:
        channel = self._channels.new(channel_id)
        if self.refusal is not None:
            channel.close(f"the worker cannot serve: {self.refusal}")
            return
        try:
            request = check_exec_request(loads(payload))
        except Exception as exc:
            channel.close(f"malformed exec request: {exc}")
            return
        with self._state_lock:
            self._executing += 1
            if not self._main_busy:
                self._main_busy = True
                self._main_queue.put((channel, request))
                return
        # The main thread is busy. With main_thread_only, give it a moment: the task
        # before may have sent its last item but not yet returned. Never block the
        # receiver thread for that: the waiting happens in a short-lived thread.
        target = (
            self._wait_for_main_thread
            if self.execmodel.backend == "main_thread_only"
            else self._run_in_thread
        )
        start_daemon(target, (channel, request))

    def _wait_for_main_thread(self, channel: Channel, request: ExecRequest) -> None:
        with self._state_lock:
            if self._idle.wait_for(lambda: not self._main_busy, MAIN_THREAD_WAIT):
                self._main_busy = True
                self._main_queue.put((channel, request))
                return
            self._task_done()
        channel.close(MAIN_THREAD_BUSY)

    def _run_in_thread(self, channel: Channel, request: ExecRequest) -> None:
        error = self._execute(channel, request)
        with self._state_lock:
            self._task_done()
        channel.close(error)

    def _task_done(self) -> None:
        self._executing -= 1
        self._idle.notify_all()

    def _execute(self, channel: Channel, request: ExecRequest) -> Optional[str]:
        """Run one request; return the formatted error, or None on success."""
        source, filename, call_name, kwargs = request
        filename = filename or f"<remote exec {channel.id}>"
        namespace: Dict[str, Any] = {"channel": channel, "__name__": "__channelexec__"}
        self._channels.set_executing(channel, True)
        try:
            _remember_source(filename, source)
            if _own_job(source):
                # The first compile() in a process builds the ast module's ~120 types (it
                # checks whether its argument is an AST): ~7 M instructions, a sixth of a
                # worker's own CPU. exec of text skips that check; a job's two lines are
                # ours (named <string>) and run_python gets its code compiled.
                exec(source, namespace)
            else:
                exec(compile(source, filename, "exec"), namespace)
            if call_name:
                namespace[call_name](channel, **kwargs)
        except BaseException as exc:  # everything, SystemExit included, goes back
            return _format_error(exc)
        finally:
            self._channels.set_executing(channel, False)
        return None

    def _handle_status(self, channel_id: int) -> None:
        channel = self._channels.new(channel_id)
        with self._state_lock:
            status = {
                "numexecuting": self._executing,
                "numchannels": self._channels.count(),
                "execqsize": self._main_queue.qsize(),
            }
        channel.send(status)
        channel.close()

    # -- ending ---------------------------------------------------------------------

    def _on_connection_lost(self, reason: BaseException) -> None:
        self._main_queue.put(_STOP)
        if _run_interrupt_hooks():
            # An xnet run job was cut short (timeout, Ctrl-C): its processes have been
            # ended; nobody waits for the rest of it.
            _flush_std_streams()
            os._exit(1)
        if not self._main_done.wait(EXIT_GRACE):
            # The main thread is stuck in user code: nobody is left to talk to.
            _flush_std_streams()
            os._exit(1)

    def _wait_for_tasks(self, timeout: float) -> None:
        with self._state_lock:
            self._idle.wait_for(lambda: self._executing <= 0, timeout)


def _own_job(source: str) -> bool:
    """Whether ``source`` is a job of ``jobs`` (``xnet run``/``sh``), the one kind of task
    the main thread runs without ``threading`` imported first.

    ``threading`` imported first off the main thread takes that thread for the main one
    (Python < 3.13). Our receiver and a concurrent task's thread are bare threads
    (``threads``), so before other code runs on the main thread, where a concurrent task
    may come next, the main thread imports it, as it did at start before. A job runs
    alone on its worker, and imports it where its code needs it.
    """
    return source.startswith("from " + __name__.rpartition(".")[0] + ".jobs import ")


_SOURCES: Dict[str, str] = {}


def _remember_source(filename: str, source: str) -> None:
    """Keep the source of remote code, so its traceback can show the lines."""
    _SOURCES[filename] = source
    if len(_SOURCES) > 256:  # a long-lived worker must not grow without bound
        del _SOURCES[next(iter(_SOURCES))]


def _format_error(exc: BaseException) -> str:
    """The traceback text, starting at the remote code: its first entry, the frame that
    caught ``exc`` (``WorkerGateway._execute``, the only caller), is ours and left out."""
    try:
        import linecache
        import traceback

        for filename, source in _SOURCES.items():
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        tb = exc.__traceback__
        if tb is not None:
            tb = tb.tb_next
        return "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:
        return f"{type(exc).__name__}: {exc}"


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def ignore_terminal_interrupt() -> None:
    """A Ctrl-C at the controller's terminal is the controller's to handle.

    A Python-level no-op handler, not SIG_IGN: programs the worker starts get the
    default disposition back when they exec. ``_signal`` spares importing enum.
    """
    try:
        import _signal

        _signal.signal(_signal.SIGINT, _no_interrupt)
    except (ImportError, AttributeError, ValueError, OSError):
        pass


def _no_interrupt(signum: int, frame: Any) -> None:
    pass


def take_stdio() -> Tuple[int, int]:
    """Move the protocol off fds 0/1; point 0 at /dev/null and 1 at stderr."""
    read_fd = os.dup(0)
    write_fd = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    try:
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        pass
    for fd in (read_fd, write_fd):
        enlarge_pipe(fd)
    return read_fd, write_fd


def apply_config(config: Dict[str, Any]) -> Optional[str]:
    """Apply the spec's settings for the worker process itself; return why the worker
    cannot serve (an impossible ``chdir`` or ``nice``), to be sent in its ready message."""
    if config.get("dont_write_bytecode"):
        sys.dont_write_bytecode = True
    for name, value in (config.get("env") or {}).items():
        os.environ[name] = value
    chdir = config.get("chdir")
    if chdir:
        problem = change_directory(chdir)
        if problem:
            return problem
    nice = config.get("nice")
    if nice:
        try:
            os.nice(int(nice))
        except (OSError, OverflowError, ValueError) as exc:  # e.g. lowering it unprivileged
            return f"nice {nice}: {exc}"
    for path in reversed(config.get("sys_path") or []):
        sys.path.insert(0, path)
    alias = config.get("execnet_alias")
    if alias:
        from . import compat

        compat.install(alias)
    return None


def change_directory(chdir: str) -> Optional[str]:
    """Enter ``chdir`` (``~`` expanded), creating it and its missing parents first as
    ``mkdir -p`` does; return why that is impossible, naming the directory, else None."""
    path = os.path.expanduser(chdir)
    try:
        os.makedirs(path, exist_ok=True)
        os.chdir(path)
    except OSError as exc:
        return f"chdir {chdir}: {_why_not(os.path.abspath(path), exc)}"
    return None


def _why_not(path: str, exc: OSError) -> str:
    """Why ``path`` cannot be made or entered: a part of it that is a file, or the OS's
    reason with the directory it concerns."""
    probe = path
    while probe and not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if probe and os.path.lexists(probe) and not os.path.isdir(probe):
        return f"{probe} exists and is not a directory"
    where = exc.filename if isinstance(exc.filename, str) else path
    verb = "enter" if os.path.isdir(path) else "create"
    return f"cannot {verb} {where}: {exc.strerror or exc}"


def interpreter_info() -> Dict[str, Any]:
    """The facts ``Gateway._rinfo()`` reports, sent once in the ready message."""
    return {
        "executable": sys.executable,
        "version_info": tuple(sys.version_info),
        "platform": sys.platform,
        "cwd": os.getcwd(),
        "pid": os.getpid(),
    }


def main(config: Dict[str, Any]) -> None:
    """Entry point called by the bootstrap (and by the fork server in a forked child)."""
    control_fd = config.get("forkserver_fd")
    if control_fd is not None:
        from .forkserver import serve

        serve(control_fd, config.get("preload") or [], main)
    read_fd, write_fd = take_stdio()
    ignore_terminal_interrupt()
    problem = apply_config(config)
    gateway = WorkerGateway(
        FdIO(read_fd, write_fd), config.get("id") or "worker", config.get("execmodel") or "thread"
    )
    info = interpreter_info()
    if problem:
        info["startup_error"] = problem  # the controller reports it and ends this worker
        gateway.refusal = problem
    gateway.serve(info, config.get("pending_frames") or ())
    finish_process()


def _run_interrupt_hooks() -> bool:
    """Run what jobs cut short left to do (``descendants``); whether there was any. Only a
    job that registered a hook has imported that module: other workers never load it."""
    hooks = sys.modules.get(__name__.rpartition(".")[0] + ".descendants")
    return hooks is not None and hooks.run_interrupt_hooks()


def finish_process() -> None:
    """End the worker quickly: atexit handlers and flushed streams, no module teardown.

    Interpreter teardown costs 5-10 ms per worker and can hang on threads that user code
    left running; atexit handlers (coverage, logging) still run, in order.
    """
    import atexit

    _run_interrupt_hooks()  # a job cut short: what it started ends with it
    try:
        atexit._run_exitfuncs()  # type: ignore[attr-defined]
    except BaseException:
        pass
    _flush_std_streams()
    os._exit(0)
