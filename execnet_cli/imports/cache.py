"""The bytes of files served to workers' imports, read once for the whole process.

Keyed by path and checked against the file's modification time and size on every use,
so an edited file is read again and an unchanged one never is. When many workers ask
for the same file at once, one reads it and the others wait for that read (a lock per
path), so 32 hosts importing a package at once cost one read of each file.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

__all__ = ["CACHE", "FileCache", "TooLarge"]

#: Largest file served (a module or a data file); a frame holds at most 256 MiB.
MAX_FILE = 64 * 1024 * 1024
#: What the cache keeps at most in all; the oldest entries go first past it.
MAX_TOTAL = 256 * 1024 * 1024


class TooLarge(OSError):
    """A file over ``MAX_FILE``: refused rather than sent."""


@dataclass
class _Entry:
    mtime_ns: int
    size: int
    data: bytes


class FileCache:
    """Path -> bytes, valid while the file's mtime and size are unchanged."""

    def __init__(self, max_file: int = MAX_FILE, max_total: int = MAX_TOTAL) -> None:
        self.max_file = max_file
        self.max_total = max_total
        self._total = 0
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.reads = 0  #: files read from disk (a hit costs a stat only)
        self.hits = 0

    def read(self, path: str) -> bytes:
        """The file's bytes; OSError if it cannot be read, ``TooLarge`` past the bound."""
        with self._guard:
            lock = self._locks.setdefault(path, threading.Lock())
        with lock:
            status = os.stat(path)
            entry = self._entries.get(path)
            if entry is not None and (entry.mtime_ns, entry.size) == (
                status.st_mtime_ns,
                status.st_size,
            ):
                self.hits += 1
                return entry.data
            if status.st_size > self.max_file:
                raise TooLarge(f"{path}: {status.st_size} bytes, over {self.max_file}")
            with open(path, "rb") as file:
                data = file.read(self.max_file + 1)
            if len(data) > self.max_file:
                raise TooLarge(f"{path}: over {self.max_file} bytes")
            self.reads += 1
            self._keep(path, _Entry(status.st_mtime_ns, status.st_size, data))
            return data

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
            self._total = self.reads = self.hits = 0


#: The process-wide cache every gateway's import server reads through.
CACHE = FileCache()
