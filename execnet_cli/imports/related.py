"""Which modules a module will import next, so they can travel with it.

A worker importing a package of 50 modules would otherwise ask 50 times, one round trip
after another. The server sends along the modules of the same top-level package that a
module's source imports (``import pkg.a``, ``from . import b``, ``from .c import d``),
and theirs in turn, within bounds; the worker keeps them and uses one only when the
import system asks our finder for it, so its own modules still win. Names that are not
modules (``from . import CONSTANT``) are simply not found and cost nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .cache import ImportNode

__all__ = ["candidates"]


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
