"""``ast.parse`` under one process-wide lock.

CPython 3.11's parser is not safe from several threads at once ("AST constructor recursion
depth mismatch", seen with ``Group.remote_exec`` from a thread pool and with rsync pulls from
several hosts). One lock for every caller: two locks would not exclude each other.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ast

_LOCK = threading.Lock()


def parse(source: str) -> ast.Module:
    """``ast.parse(source)``, one thread at a time (ast loads lazily: few callers parse)."""
    import ast

    with _LOCK:
        return ast.parse(source)
