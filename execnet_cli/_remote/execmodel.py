"""Execution models: how a worker runs ``remote_exec`` code, and the primitives it uses.

``thread``: the first request runs on the worker's main thread, concurrent ones on
new threads. ``main_thread_only``: every request runs on the main thread, one at a
time; a request arriving while one runs is refused (it could deadlock waiting for the
first). The object mirrors execnet's ``ExecModel`` because clients (pytest-xdist) build
their locks and events from ``channel.gateway.execmodel``.
"""

from __future__ import annotations

import time
from _thread import RLock, allocate_lock, get_ident

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    import threading
    from typing import Any, Callable, Tuple

EXECMODELS = ("thread", "main_thread_only")


class ExecModel:
    """Threading primitives for one execution model (all are the standard ones)."""

    Lock = staticmethod(allocate_lock)  # what threading.Lock and RLock are
    RLock = staticmethod(RLock)
    sleep = staticmethod(time.sleep)
    get_ident = staticmethod(get_ident)

    def __init__(self, backend: str) -> None:
        if backend not in EXECMODELS:
            raise ValueError(
                f"unknown execmodel {backend!r}: choose one of {', '.join(EXECMODELS)}"
            )
        self.backend = backend

    def __repr__(self) -> str:
        return f"<ExecModel {self.backend!r}>"

    @property
    def queue(self) -> Any:
        """The ``queue`` module (imported on first use: workers rarely need it)."""
        import queue

        return queue

    @property
    def subprocess(self) -> Any:
        """The ``subprocess`` module (execnet's models offer green variants here)."""
        import subprocess

        return subprocess

    @property
    def socket(self) -> Any:
        """The ``socket`` module."""
        import socket

        return socket

    def fdopen(self, fd: int, mode: str, bufsize: int = 1, closefd: bool = True) -> Any:
        """``os.fdopen``; text in UTF-8 (execnet's signature)."""
        import os

        encoding = None if "b" in mode else "utf-8"
        return os.fdopen(fd, mode, bufsize, encoding=encoding, closefd=closefd)

    @staticmethod
    def Event() -> threading.Event:
        """A ``threading.Event`` (``threading`` is imported on first use: ``threads``)."""
        import threading

        return threading.Event()

    def start(self, func: Callable[..., Any], args: Tuple[Any, ...] = ()) -> threading.Thread:
        import threading

        thread = threading.Thread(target=func, args=args, daemon=True)
        thread.start()
        return thread


def get_execmodel(backend: str | ExecModel) -> ExecModel:
    """The ExecModel for a name (or the object itself)."""
    if isinstance(backend, ExecModel):
        return backend
    return ExecModel(backend)
