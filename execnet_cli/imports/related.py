"""Which modules a module will import next, so they can travel with it.

A worker importing a package of 50 modules would otherwise ask 50 times, one round trip
after another. The server sends along the modules of the same top-level package that a
module's source imports (``import pkg.a``, ``from . import b``, ``from .c import d``),
and theirs in turn, within bounds; the worker keeps them and uses one only when the
import system asks our finder for it, so its own modules still win. Names that are not
modules (``from . import CONSTANT``) are simply not found and cost nothing.

The list of a module is worked out once per process (``RelatedModules``): the workers of
a fan-out ask for the same modules, and looking each candidate up (several stats and a
``realpath``) is most of an answer's cost. A list is used again while the files it read
are unchanged; a file added since only misses the list (the worker asks for it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .cache import FileCache, ImportNode
from .policy import Found, ImportPolicy

__all__ = ["PREFETCH_BYTES", "PREFETCH_MODULES", "RELATED", "RelatedModules", "candidates"]

#: Bounds on the modules sent along with one answer.
PREFETCH_MODULES = 256
PREFETCH_BYTES = 8 * 1024 * 1024
#: Lists kept at most (the oldest go first past it): a process serves few packages.
MAX_LISTS = 4096

#: A file as it was read: (path, mtime_ns, size).
_Stamp = tuple[str, int, int]


@dataclass(frozen=True)
class _List:
    modules: tuple[Found, ...]
    stamps: tuple[_Stamp, ...]  # the files whose imports made it

    def fresh(self) -> bool:
        try:
            return all(_stamp(path) == (path, m, s) for path, m, s in self.stamps)
        except OSError:
            return False


class RelatedModules:
    """Per (cache, policy, module): the modules of its package it imports, and theirs, in
    the order they are met, up to ``PREFETCH_MODULES`` (``PREFETCH_BYTES`` of source)."""

    def __init__(self) -> None:
        self._lists: dict[tuple[FileCache, ImportPolicy, Found], _List] = {}
        #: One list is worked out at a time: a fan-out's workers asking for one module at
        #: once wait for the first to work it out, then use it.
        self._lock = threading.Lock()

    def of(self, cache: FileCache, policy: ImportPolicy, found: Found) -> tuple[Found, ...]:
        key = (cache, policy, found)
        with self._lock:
            known = self._lists.get(key)
            if known is None or not known.fresh():
                known = self._lists[key] = _walk(cache, policy, found)
                while len(self._lists) > MAX_LISTS:
                    del self._lists[next(iter(self._lists))]
            return known.modules


def _walk(cache: FileCache, policy: ImportPolicy, found: Found) -> _List:
    related: list[Found] = []
    stamps: list[_Stamp] = []
    size, todo, seen = 0, [found], {found.name}
    while todo and len(related) < PREFETCH_MODULES and size < PREFETCH_BYTES:
        module = todo.pop(0)
        try:
            stamp = _stamp(module.path)
            nodes = cache.imports(module.path)
        except OSError:
            continue
        stamps.append(stamp)
        for name in candidates(module.name, module.kind == "package", nodes):
            if len(related) >= PREFETCH_MODULES or size >= PREFETCH_BYTES:
                break
            if name in seen:
                continue
            seen.add(name)
            more = policy.find(name)
            if not isinstance(more, Found) or more.kind == "namespace":
                continue  # not a module (a name in one), or refused: asked when used
            try:
                size += os.stat(more.path).st_size
            except OSError:
                continue
            related.append(more)
            todo.append(more)
    return _List(tuple(related), tuple(stamps))


def _stamp(path: str) -> _Stamp:
    status = os.stat(path)
    return (path, status.st_mtime_ns, status.st_size)


#: The process-wide lists every import server uses.
RELATED = RelatedModules()


def candidates(name: str, is_package: bool, nodes: Iterable[ImportNode]) -> Iterator[str]:
    """Absolute names of modules ``name``'s import statements may load, in the same
    top-level package, in order (parents before children; repeats possible)."""
    top = name.partition(".")[0]
    package = name if is_package else name.rpartition(".")[0]
    for level, module, names in nodes:
        if level:
            base = package.split(".") if package else []
            if level - 1 >= len(base):
                continue  # beyond the top-level package: the import fails there anyway
            anchor = ".".join(base[: len(base) - (level - 1)])
            target = f"{anchor}.{module}" if module else anchor
        else:
            target = module
        if not target or target.partition(".")[0] != top:
            continue
        yield from _with_parents(target)
        for imported in names:
            if imported != "*":
                yield f"{target}.{imported}"


def _with_parents(target: str) -> Iterator[str]:
    parts = target.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])
