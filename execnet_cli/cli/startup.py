"""What the ``xnet`` process leaves out of its start: optional modules no command needs yet.

paramiko's ``config`` module imports ``invoke`` when it is installed (Fabric brings it), only
to run ``Match exec`` commands of an ssh_config. Importing it loads asyncio, unittest.mock and
a YAML parser: ~25 % of the CPU ``xnet sh`` spends before its first connection. ``defer``
puts a stand-in module under the name ``invoke`` that imports the real one on first use
(the first attribute asked of it), so ``Match exec`` still works, later and at the same cost.

Why this cannot break anyone's use of the library: only the command line's entry point
calls ``defer`` (``cli.LazyGroup.main`` with no arguments given: a process of its own, where
no code but ours runs); importing ``execnet_cli`` leaves ``sys.modules`` alone. In that
process, an ``import invoke`` gets the stand-in, and any attribute (``invoke.run``, a
submodule's ``__path__``) swaps in the real module, so it behaves as an eager import did. It
is installed only when ``invoke`` is installed and not yet imported: otherwise paramiko's
own handling (its recorded ``ImportError``) is unchanged.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

__all__ = ["DEFERRED", "defer"]

#: Optional modules the command line loads on first use only.
DEFERRED = ("invoke",)

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
        if found is not None:
            sys.modules[name] = _Deferred(name)
