"""What the ``xnet`` process leaves out of its start: optional modules no command needs yet.

paramiko's ``config`` module imports ``invoke`` when it is installed (Fabric brings it), only
to run ``Match exec`` commands of an ssh_config. Importing it loads asyncio, unittest.mock and
a YAML parser: ~25 % of the CPU ``xnet sh`` spends before its first connection. ``defer``
puts a stand-in module under the name ``invoke`` that imports the real one on first use
(the first attribute asked of it), so ``Match exec`` still works, later and at the same cost.

paramiko's ``__init__`` asks ``importlib.metadata.version("paramiko")`` for its own version
(its ssh banner says it). Importing ``importlib.metadata`` loads email, zipfile, csv and
more: ~15 % of ``xnet sh``'s start, for one string. Its stand-in answers ``version`` itself
(``installed_version``: the same search of ``sys.path``, reading one file) and imports the
real module for anything else, or when the answer is not plain (a zip on the path, another
finder of distributions, several candidates, no ``Version`` header).

Why this cannot break anyone's use of the library: only the command line's entry point
calls ``defer`` (``cli.LazyGroup.main`` with no arguments given: a process of its own, where
no code but ours runs); importing ``execnet_cli`` leaves ``sys.modules`` alone. In that
process, an ``import invoke`` gets the stand-in, and any attribute (``invoke.run``, a
submodule's ``__path__``) swaps in the real module, so it behaves as an eager import did. It
is installed only when the module is installed and not yet imported: otherwise its
importers' own handling (paramiko's recorded ``ImportError``) is unchanged.

``settle`` keeps the cyclic garbage collector off the objects made so far (modules,
classes, functions: they live as long as the process), which it would otherwise walk
again and again while the command's own imports (paramiko's ~120 modules) run: ~4 % of
``xnet sh``'s instructions.
"""

from __future__ import annotations

import gc
import importlib
import importlib.machinery
import importlib.util
import os
import re
import sys
import threading
import types
from typing import Any, Optional

__all__ = ["DEFERRED", "defer", "installed_version", "settle"]

#: Optional modules the command line loads on first use only.
DEFERRED = ("invoke", "importlib.metadata")

_lock = threading.Lock()


class _Deferred(types.ModuleType):
    """Stands in for a module not imported yet; the first attribute asked imports it."""

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._load(), attribute)

    def _load(self) -> types.ModuleType:
        with _lock:  # one import, whichever thread asks first
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            return importlib.import_module(self.__name__)


class _Metadata(_Deferred):
    """``importlib.metadata`` whose ``version`` needs no import of it when the answer is plain."""

    def version(self, distribution_name: str) -> str:
        found = installed_version(distribution_name)
        if found is not None:
            return found
        real: Any = self._load()
        return str(real.version(distribution_name))


def defer(names: tuple[str, ...] = DEFERRED) -> None:
    """Put a stand-in in ``sys.modules`` for each of ``names`` that is installed but not
    imported yet (the command line's start calls this; a library never should)."""
    for name in names:
        if name in sys.modules:
            continue
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            found = None
        if found is None:
            continue
        parent, _, child = name.rpartition(".")
        stand_in = (_Metadata if name == "importlib.metadata" else _Deferred)(name)
        sys.modules[name] = stand_in
        if parent:  # ``import a.b; a.b.f()`` reads the attribute the real import would set
            setattr(sys.modules[parent], child, stand_in)


def settle() -> None:
    """Move every object tracked so far out of the collector's reach for good (``gc.freeze``)
    and turn the collector on (``python -m execnet_cli`` turned it off before importing).
    For the command line's own process only, like ``defer``."""
    gc.freeze()
    gc.enable()


def installed_version(name: str) -> Optional[str]:
    """The ``Version`` of distribution ``name`` as ``importlib.metadata.version`` finds it
    (the first ``NAME-*.dist-info`` or ``.egg-info`` directory along ``sys.path``), or
    None when the search is not that plain and the real module should answer."""
    others = (f for f in sys.meta_path if f is not importlib.machinery.PathFinder)
    if not name or any(hasattr(finder, "find_distributions") for finder in others):
        return None
    wanted = re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")
    for entry in sys.path:
        try:
            children = os.listdir(entry or ".")
        except OSError:
            if os.path.exists(entry):
                return None  # a zip or an unreadable directory: the real search reads it
            continue
        matches = [c for c in children if _distribution_of(c) == wanted]
        if matches:
            return _version_header(os.path.join(entry, matches[0])) if len(matches) == 1 else None
    return None


def _distribution_of(child: str) -> Optional[str]:
    low = child.lower()
    if not low.endswith((".dist-info", ".egg-info")):
        return None
    return re.sub(r"[-_.]+", "-", low.rpartition(".")[0].partition("-")[0]).replace("-", "_")


def _version_header(directory: str) -> Optional[str]:
    """The first ``Version:`` header of a metadata directory's METADATA (or PKG-INFO)."""
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(directory, filename), encoding="utf-8") as metadata:
                for line in metadata:
                    if not line.strip():
                        return None  # the headers ended without one
                    key, colon, value = line.partition(":")
                    if colon and key.lower() == "version" and value.strip():
                        return value.strip()
            return None
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (OSError, UnicodeDecodeError):
            return None
    return None
