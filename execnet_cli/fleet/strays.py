"""Text that is not a job's output but belongs to a host: log records and an ssh worker's stderr.

Left alone, both reach our stderr with no host name on them (``gateway 'db2': corrupt
stream ...``, a remote shell's complaint), in the middle of a live display or of what a
script reads. While a run goes on, ``capture`` takes them:

- log records of ``execnet_cli`` and ``paramiko`` at WARNING and up, from a thread that
  works for a host (a pool thread serving it, its gateway's receiver thread);
- what ssh transports copy from a worker's stderr to ``sys.stderr`` (from a thread named
  ``xnet-ssh-stderr-<address>``): ``sys.stderr`` is swapped for a writer that looks at
  the writing thread.

``owner(thread)`` says which host a thread works for; ``report(host, text)`` hands the
text on (the runner makes it an ``Output(host, "log", ...)`` event) and says whether it
was taken. Everything else goes where it went before: records nobody else handles to
stderr as ``xnet: <message>``, other writes to the real stderr unchanged.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional, TextIO

__all__ = ["LOGGERS", "capture"]

#: The loggers whose records are attributed (and their children).
LOGGERS = ("execnet_cli", "paramiko")

Owner = Callable[[threading.Thread], Optional[str]]
Report = Callable[[str, str], bool]


class _HostLogHandler(logging.Handler):
    """Records from a host's threads go to that host; the rest as the last resort would."""

    def __init__(self, owner: Owner, report: Report, fallback: TextIO) -> None:
        super().__init__(logging.WARNING)
        self.owner, self.report, self.fallback = owner, report, fallback

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            thread = threading.current_thread()
            name = self.owner(thread) if record.thread == thread.ident else None
            if name is not None and self.report(name, message + "\n"):
                return
            if not _handled_elsewhere(record, self):
                self.fallback.write(f"xnet: {message}\n")
                self.fallback.flush()
        except Exception:
            self.handleError(record)


def _handled_elsewhere(record: logging.LogRecord, mine: logging.Handler) -> bool:
    """Whether a handler other than ours sees ``record`` (as ``Logger.callHandlers`` walks)."""
    logger: Optional[logging.Logger] = logging.getLogger(record.name)
    while logger is not None:
        if any(h is not mine and record.levelno >= h.level for h in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent  # type: ignore[assignment]
    return False


class _StderrRouter:
    """``sys.stderr`` while a run goes on: a host's stray stderr to that host."""

    def __init__(self, owner: Owner, report: Report, real: TextIO) -> None:
        self.owner, self.report, self.real = owner, report, real

    def write(self, text: str) -> int:
        thread = threading.current_thread()
        name = self.owner(thread) if thread.name.startswith("xnet-ssh-stderr-") else None
        if name is None or not self.report(name, text):
            return self.real.write(text)
        return len(text)

    def flush(self) -> None:
        self.real.flush()

    def __getattr__(self, attribute: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self.real, attribute)


@contextmanager
def capture(owner: Owner, report: Report) -> Iterator[None]:
    """Attribute log records and ssh stderr to hosts while the block runs."""
    real = sys.stderr
    handler = _HostLogHandler(owner, report, real)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    router = _StderrRouter(owner, report, real)
    sys.stderr = router  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.stderr is router:  # else someone replaced it since: leave theirs
            sys.stderr = real
        for logger in loggers:
            logger.removeHandler(handler)
