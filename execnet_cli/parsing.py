"""``ast.parse`` under one process-wide lock.

CPython 3.11's parser is not safe from several threads at once ("AST constructor recursion
depth mismatch", seen with ``Group.remote_exec`` from a thread pool and with rsync pulls from
several hosts). One lock for every caller: two locks would not exclude each other.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    import ast
    from types import CodeType

_LOCK = threading.Lock()


def parse(source: Union[str, bytes]) -> ast.Module:
    """``ast.parse(source)``, one thread at a time (ast loads lazily: few callers parse)."""
    import ast

    with _LOCK:
        return ast.parse(source)


def compile_module(source: Union[bytes, ast.Module], filename: str) -> CodeType:
    """``compile(source, filename, "exec")`` without optimizations (it parses too),
    under the same lock."""
    with _LOCK:
        return compile(source, filename, "exec", dont_inherit=True, optimize=0)
