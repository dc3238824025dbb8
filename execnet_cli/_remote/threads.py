"""The thread primitives the gateway engine uses, built on ``_thread`` alone.

Why not ``threading``: importing it (with ``functools`` and ``collections``, which it
pulls in) is about a sixth of a fresh worker's CPU, some 10 M instructions, more than
all of our own modules; a job that needs it (``subprocess`` does) still imports it. The
engine needs only locks, a condition, an event and a daemon thread, which are small on
top of ``_thread``'s lock. Threads started here are not ``threading.Thread`` objects
(``threading.enumerate`` shows them, once asked, as dummy threads), and like daemon
threads nobody waits for them at exit.
"""

from __future__ import annotations

from _collections import deque
from _thread import allocate_lock, start_new_thread
from time import monotonic

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Deque, Optional, Tuple

__all__ = ["Condition", "Event", "start_daemon"]


class Condition:
    """A condition variable over a lock (``threading.Condition``'s interface, less
    ``notify(n)``): each waiter sleeps on a lock of its own, which a notify releases."""

    def __init__(self, lock: Any = None) -> None:
        self._lock = allocate_lock() if lock is None else lock
        self.acquire = self._lock.acquire
        self.release = self._lock.release
        self._waiters: Deque[Any] = deque()

    def __enter__(self) -> bool:
        return self._lock.__enter__()  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Release the lock, sleep until notified or ``timeout``, take the lock again;
        whether notified. The caller holds the lock."""
        waiter = allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)
        self._lock.release()
        notified = False
        try:
            if timeout is None:
                notified = waiter.acquire()
            else:
                notified = waiter.acquire(True, timeout) if timeout > 0 else waiter.acquire(False)
            return notified
        finally:
            self._lock.acquire()
            if not notified:
                try:
                    self._waiters.remove(waiter)
                except ValueError:  # notified between the timeout and the lock
                    pass

    def wait_for(self, predicate: Callable[[], Any], timeout: Optional[float] = None) -> Any:
        """Wait until ``predicate()`` is true or ``timeout`` passes; its last value."""
        deadline = None if timeout is None else monotonic() + timeout
        result = predicate()
        while not result:
            if deadline is None:
                self.wait()
            else:
                left = deadline - monotonic()
                if left <= 0:
                    break
                self.wait(left)
            result = predicate()
        return result

    def notify_all(self) -> None:
        """Wake every waiter (the caller holds the lock)."""
        waiters = self._waiters
        while waiters:
            waiters.popleft().release()

    def notify(self) -> None:
        """Wake one waiter, if any (the caller holds the lock)."""
        if self._waiters:
            self._waiters.popleft().release()


class Event:
    """A flag threads wait for (``threading.Event``'s interface)."""

    def __init__(self) -> None:
        self._cond = Condition()
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._cond:
            self._flag = True
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._flag = False

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until the flag is set or ``timeout`` passes; the flag."""
        if self._flag:
            return True
        with self._cond:
            if not self._flag:
                self._cond.wait(timeout)
            return self._flag


def start_daemon(target: Callable[..., Any], args: Tuple[Any, ...] = ()) -> int:
    """Run ``target(*args)`` in a new thread nobody joins; its ident."""
    return start_new_thread(target, args)  # type: ignore[no-any-return]
