"""The files served to workers' imports, read (and compiled, and scanned) once per process.

Keyed by path and checked against the file's modification time and size on every use,
so an edited file is read again and an unchanged one never is. When many workers ask
for the same file at once, one reads it and the others wait for that read (a lock per
path), so 32 hosts importing a package at once cost one read of each file. What is
derived from a module's source is kept beside it: its code object, marshalled for
workers of this very Python (they then compile nothing), and the imports it makes (what
the server sends along with it).
"""

from __future__ import annotations

import ast
import errno
import marshal
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

from ..parsing import compile_module, parse

__all__ = ["CACHE", "FileCache", "ImportNode"]

#: Largest file served (a module or a data file); a frame holds at most 256 MiB.
MAX_FILE = 64 * 1024 * 1024
#: What the cache keeps at most in all; the oldest entries go first past it.
MAX_TOTAL = 256 * 1024 * 1024

#: An import statement of a module: (level, module or "", names imported from it).
ImportNode = tuple[int, str, tuple[str, ...]]


@dataclass
class _Entry:
    mtime_ns: int
    size: int
    data: bytes
    code: Optional[bytes] = None  #: the marshalled code object, once compiled
    compiled: bool = False  #: compiling was tried (a syntax error leaves ``code`` None)
    imports: Optional[tuple[ImportNode, ...]] = None


class FileCache:
    """Path -> bytes (and what derives from them), valid while mtime and size are unchanged."""

    def __init__(self, max_file: int = MAX_FILE, max_total: int = MAX_TOTAL) -> None:
        self.max_file = max_file
        self.max_total = max_total
        self._total = 0
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.reads = 0  #: files read from disk (a hit costs a stat only)
        self.hits = 0
        self.compiles = 0

    def read(self, path: str) -> bytes:
        """The file's bytes; OSError if it cannot be read or is over ``max_file``."""
        return self._current(path, derived=False).data

    def code(self, path: str) -> Optional[bytes]:
        """The module's code object, marshalled (None if its source does not compile:
        the worker then compiles it and raises the error where the import is)."""
        return self._current(path, derived=True).code

    def module(self, path: str, with_code: bool) -> tuple[bytes, Optional[bytes]]:
        """``read`` and (``with_code``) ``code`` of one module for one stat."""
        entry = self._current(path, derived=with_code)
        return entry.data, entry.code if with_code else None

    def imports(self, path: str) -> tuple[ImportNode, ...]:
        """The import statements of a module's source, at any depth of its statements
        (none if it does not parse)."""
        return self._current(path, derived=True).imports or ()

    def _current(self, path: str, derived: bool) -> _Entry:
        """The fresh entry for ``path``: a hit costs a stat and no lock (the workers of a
        fan-out ask for the same files in the same order; locks would convoy them)."""
        status = os.stat(path)
        entry = self._entries.get(path)
        if _fresh(entry, status) and (entry.compiled or not derived):  # type: ignore[union-attr]
            self.hits += 1
            return entry  # type: ignore[return-value]
        with self._lock(path):
            entry = self._entry(path)
            if derived and not entry.compiled:
                self._derive(path, entry)
            return entry

    def _derive(self, path: str, entry: _Entry) -> None:
        """Parse once; from the tree its imports and its code object."""
        entry.compiled = True
        entry.imports = ()
        try:
            tree = parse(entry.data)
            entry.imports = tuple(_import_nodes(tree.body))
            entry.code = marshal.dumps(compile_module(tree, path))
        except (SyntaxError, ValueError):
            return
        self.compiles += 1

    def _lock(self, path: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(path, threading.Lock())

    def _entry(self, path: str) -> _Entry:
        """The current entry for ``path`` (read now if missing or stale); under its lock."""
        status = os.stat(path)
        entry = self._entries.get(path)
        if entry is not None and _fresh(entry, status):
            self.hits += 1  # read meanwhile by the thread this one waited for
            return entry
        if status.st_size > self.max_file:
            raise OSError(errno.EFBIG, f"{status.st_size} bytes, over {self.max_file}", path)
        with open(path, "rb") as file:
            data = file.read(self.max_file + 1)
        if len(data) > self.max_file:
            raise OSError(errno.EFBIG, f"over {self.max_file} bytes", path)
        self.reads += 1
        entry = _Entry(status.st_mtime_ns, status.st_size, data)
        self._keep(path, entry)
        return entry

    def _keep(self, path: str, entry: _Entry) -> None:
        with self._guard:
            old = self._entries.pop(path, None)
            self._total += len(entry.data) - (len(old.data) if old is not None else 0)
            self._entries[path] = entry
            while self._total > self.max_total and len(self._entries) > 1:
                oldest = next(iter(self._entries))
                self._total -= len(self._entries.pop(oldest).data)

    def clear(self) -> None:
        with self._guard:
            self._entries.clear()
            self._total = self.reads = self.hits = self.compiles = 0


def _fresh(entry: Optional[_Entry], status: os.stat_result) -> bool:
    return entry is not None and (entry.mtime_ns, entry.size) == (
        status.st_mtime_ns,
        status.st_size,
    )


#: The fields of a statement that hold statements (or handlers and cases, which do).
_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")


def _import_nodes(statements: list[ast.stmt]) -> Iterator[ImportNode]:
    """The import statements among ``statements`` and the statements they contain
    (function bodies, branches, handlers); expressions are not walked: no import there."""
    for node in statements:
        if isinstance(node, ast.Import):
            yield from ((0, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield (node.level, node.module or "", tuple(a.name for a in node.names))
        for block in _BLOCKS:
            for child in getattr(node, block, None) or ():
                yield from _import_nodes([child] if isinstance(child, ast.stmt) else child.body)


#: The process-wide cache every gateway's import server reads through.
CACHE = FileCache()
