"""execnet's ``WorkerPool``: run functions in threads, get their results from replies.

Our engine runs its workers' requests itself (``_remote/worker.py``) and has no use for a
pool, but execnet exposes this one (``execnet.gateway_base.WorkerPool``; its
``multi.safe_terminate`` is built on it) and code built on execnet uses it. Same
behaviour: unlimited threads; ``spawn`` returns a ``Reply``; with ``hasprimary`` one
thread that calls ``integrate_as_primary_thread`` runs spawned functions in preference
to new threads (all of them, one after another, under ``main_thread_only``) until
``trigger_shutdown``.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional, Sequence, Set, Tuple

from .._remote.execmodel import ExecModel, get_execmodel

Task = Tuple[Callable[..., Any], Tuple[Any, ...], dict]


class Reply:
    """The outcome of one spawned call: ``get`` returns its result or raises its error."""

    def __init__(self, task: Task, execmodel: ExecModel) -> None:
        self.task = task
        self.running = True
        self._done = execmodel.Event()
        self._result: Any = None
        self._error: Optional[BaseException] = None

    def get(self, timeout: Optional[float] = None) -> Any:
        """The call's result; its exception is raised again (each time ``get`` is called)."""
        self.waitfinish(timeout)
        if self._error is not None:
            raise self._error
        return self._result

    def waitfinish(self, timeout: Optional[float] = None) -> None:
        """Wait for the call to end; OSError after ``timeout`` seconds (execnet's error)."""
        if not self._done.wait(timeout):
            raise OSError(f"timeout waiting for {self.task!r}")

    def run(self) -> None:
        func, args, kwargs = self.task
        try:
            self._result = func(*args, **kwargs)
        except BaseException as exc:  # handed to whoever calls get()
            self._error = exc
        finally:
            self.running = False
            self._done.set()


class WorkerPool:
    """Spawns calls in threads (or on a primary thread) and tracks the running ones."""

    def __init__(self, execmodel: Any, hasprimary: bool = False) -> None:
        self.execmodel = get_execmodel(execmodel)
        self._lock = threading.Lock()
        self._running: Set[Reply] = set()
        self._idle = threading.Condition(self._lock)
        self._shuttingdown = False
        self._hasprimary = hasprimary
        #: Calls handed to the primary thread, not yet started by it.
        self._primary_queue: List[Reply] = []
        self._primary_busy = False
        self._primary_wakeup = threading.Condition(self._lock)

    def spawn(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Reply:
        """Run ``func(*args, **kwargs)`` asynchronously; ValueError once shutting down."""
        reply = Reply((func, args, kwargs), self.execmodel)
        with self._lock:
            if self._shuttingdown:
                raise ValueError("pool is shutting down")
            self._running.add(reply)
            if self._hasprimary and (
                not self._primary_busy or self.execmodel.backend == "main_thread_only"
            ):
                self._primary_busy = True
                self._primary_queue.append(reply)
                self._primary_wakeup.notify()
                return reply
        self.execmodel.start(self._perform, (reply,))
        return reply

    def _perform(self, reply: Reply) -> None:
        reply.run()
        with self._lock:
            self._running.discard(reply)
            self._idle.notify_all()

    def integrate_as_primary_thread(self) -> None:
        """Run calls handed to this pool's primary thread, in the calling thread, until
        ``trigger_shutdown`` (the call running then is finished first)."""
        if not self._hasprimary:
            raise ValueError("this pool was made without hasprimary=True")
        while True:
            with self._lock:
                while not self._primary_queue and not self._shuttingdown:
                    self._primary_busy = False
                    self._primary_wakeup.wait()
                if not self._primary_queue:
                    self._primary_busy = False
                    return
                reply = self._primary_queue.pop(0)
                self._primary_busy = True
            self._perform(reply)

    def trigger_shutdown(self) -> None:
        """Refuse further spawns; the primary thread returns once its queue is done."""
        with self._lock:
            self._shuttingdown = True
            self._primary_wakeup.notify_all()

    def active_count(self) -> int:
        """How many spawned calls have not ended."""
        return len(self._running)

    def terminate(self, timeout: Optional[float] = None) -> bool:
        """``trigger_shutdown``, then ``waitall``."""
        self.trigger_shutdown()
        return self.waitall(timeout)

    def waitall(self, timeout: Optional[float] = None) -> bool:
        """Wait until no spawned call runs; False if ``timeout`` seconds passed first."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._running, timeout)


def safe_terminate(
    execmodel: Any,
    timeout: Optional[float],
    list_of_paired_functions: Sequence[Tuple[Callable[[], Any], Callable[[], Any]]],
) -> None:
    """Call every ``terminate`` function concurrently; where one has not returned within
    ``timeout`` seconds, call its ``kill`` partner. Returns when all have ended."""
    pool = WorkerPool(execmodel)

    def terminate_or_kill(terminate: Callable[[], Any], kill: Callable[[], Any]) -> None:
        try:
            pool.spawn(terminate).get(timeout)
        except OSError:  # timed out (or terminate raised an OSError): kill it
            kill()

    replies = [pool.spawn(terminate_or_kill, *pair) for pair in list_of_paired_functions]
    for reply in replies:
        reply.get()
    pool.waitall(timeout)
