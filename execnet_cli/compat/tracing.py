"""execnet's ``EXECNET_DEBUG`` tracing: ``trace(*msg)``, on where the variable asks for it.

``EXECNET_DEBUG=2`` writes traces to stderr, any other value to
``$TMPDIR/execnet-debug-PID``; unset, ``trace`` is ``notrace`` and writes nothing (as in
execnet). Our engine does not call ``trace``: it logs to the ``execnet_cli`` loggers. So
that the variable still shows what the gateways do, it also sends those loggers' debug
records to the same place.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from typing import IO, Optional

DEBUG = os.environ.get("EXECNET_DEBUG")
pid = os.getpid()


def notrace(*msg: object) -> None:
    """Tracing is off (``EXECNET_DEBUG`` unset): a trace goes nowhere."""


def _trace_stream() -> Optional[IO[str]]:
    if not DEBUG:
        return None
    if DEBUG == "2":
        return sys.stderr
    path = os.path.join(tempfile.gettempdir(), f"execnet-debug-{pid}")
    return open(path, "w", encoding="utf-8")  # open for the process's life


_stream = _trace_stream()


def _trace(*msg: object) -> None:
    """Write one trace line (``[pid] words``) where ``EXECNET_DEBUG`` says."""
    try:
        assert _stream is not None
        _stream.write(f"[{pid}] {' '.join(map(str, msg))}\n")
        _stream.flush()
    except Exception:  # tracing must never break what it traces (interpreter shutdown)
        pass


trace = _trace if _stream is not None else notrace

if _stream is not None:
    _handler = logging.StreamHandler(_stream)
    _handler.setFormatter(logging.Formatter(f"[{pid}] %(name)s: %(message)s"))
    _logger = logging.getLogger("execnet_cli")
    _logger.addHandler(_handler)
    _logger.setLevel(logging.DEBUG)
