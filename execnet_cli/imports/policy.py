"""What the controller may serve to a worker's imports: allowed roots, nothing else.

Deny by default: a policy with no root serves nothing. A root is a directory searched
like a ``sys.path`` entry, optionally limited to one top-level name (the package of an
``xnet run -m`` target). Everything a worker asks is checked here before any file is
opened, because a worker may be compromised and ask anything:

- a module name is dotted identifiers (at most ``MAX_NAME`` characters): no ``..``, no
  slash, no absolute path can be expressed;
- the file found, after following symbolic links, must lie inside its root (inside the
  package itself for a single-package root): a link out of a root is refused;
- submodules come from the root their top-level package came from; a namespace package
  (PEP 420: a directory without ``__init__.py``) is made of its portions in every root,
  searched in order, and a regular package or module of that name in any root wins over
  it, as for ``sys.path``;
- package data paths are relative, ``/``-separated names; a part that is empty, ``.``,
  ``..``, hidden (a leading dot: ``.git``, ``.env``) or ``__pycache__`` is refused, and
  the resolved file must lie inside the package's directory;
- compiled extension modules and source-less ``.pyc`` files are refused with a message
  saying so (they cannot run on another interpreter or platform).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.machinery import PathFinder
from typing import Optional, Union

__all__ = [
    "MAX_NAME",
    "Found",
    "ImportPolicy",
    "Refused",
    "Root",
    "check_data_path",
    "check_name",
    "module_root",
]

#: Longest module name served (CPython has no limit; real names are far shorter).
MAX_NAME = 400
#: File name endings of compiled extension modules, on any platform a worker may have.
EXTENSION_ENDINGS = (".so", ".pyd", ".dylib", ".dll")


@dataclass(frozen=True)
class Found:
    """A module's source file: ``kind`` is "module", "package" (``path``: its
    ``__init__.py``) or "namespace" (``path``: its first portion's directory)."""

    name: str
    kind: str
    path: str


@dataclass(frozen=True)
class Refused:
    """A request the policy turns down, and why (the worker's ``ImportError`` says it)."""

    why: str


@dataclass(frozen=True)
class Root:
    """A directory to serve modules from, like a ``sys.path`` entry (``only``: just that
    top-level module or package from it)."""

    directory: str
    only: Optional[str] = None

    @functools.cached_property
    def area(self) -> str:
        """The real path everything served from this root must lie in (resolved once)."""
        base = os.path.realpath(self.directory)
        if self.only is None:
            return base
        package = os.path.join(base, self.only)
        return os.path.realpath(package if os.path.isdir(package) else package + ".py")

    def describe(self) -> str:
        return self.directory if self.only is None else f"{self.only} in {self.directory}"


def check_name(name: object) -> Optional[str]:
    """Why ``name`` is not a module name we look up (None: it is one)."""
    if not isinstance(name, str) or not name:
        return f"{name!r} is not a module name"
    if len(name) > MAX_NAME:
        return f"module name of {len(name)} characters (at most {MAX_NAME})"
    if not all(part.isidentifier() for part in name.split(".")):
        return f"{name!r} is not a module name (dotted identifiers only)"
    return None


def check_data_path(path: object) -> Optional[str]:
    """Why ``path`` is not a package data path we look up (None: it is one; "" is the
    package's own directory)."""
    if not isinstance(path, str) or "\0" in path or "\\" in path or len(path) > 4096:
        return f"{path!r} is not a package data path"
    if path.startswith("/"):
        return f"{path!r}: package data paths are relative"
    for part in path.split("/") if path else ():
        if part in ("", ".", "..") or part.startswith(".") or part == "__pycache__":
            return f"{path!r}: {part!r} is not allowed in a package data path"
    return None


def _inside(path: str, area: str) -> bool:
    real = os.path.realpath(path)
    return real == area or real.startswith(area.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class ImportPolicy:
    """The roots the controller serves from, in order (the first with a name wins)."""

    roots: tuple[Root, ...] = ()

    @classmethod
    def from_directories(cls, directories: Iterable[str]) -> ImportPolicy:
        """Roots from directory names; ValueError naming one that is not a directory."""
        roots = []
        for directory in directories:
            absolute = os.path.abspath(os.path.expanduser(directory))
            if not os.path.isdir(absolute):
                raise ValueError(f"{directory}: not a directory")
            roots.append(Root(absolute))
        return cls(tuple(roots))

    def merged(self, other: ImportPolicy) -> ImportPolicy:
        """This policy's roots, then ``other``'s that are new."""
        return ImportPolicy(self.roots + tuple(r for r in other.roots if r not in self.roots))

    def describe(self) -> str:
        return ", ".join(root.describe() for root in self.roots) or "none"

    # -- modules -------------------------------------------------------------------------

    def find(self, name: object) -> Union[Found, Refused, None]:
        """The source file of module ``name``, a refusal, or None (not served: not found)."""
        why = check_name(name)
        if why is not None:
            return Refused(why)
        assert isinstance(name, str)
        parts = name.split(".")
        portion: Optional[Found] = None
        for root in self._roots_of(parts[0]):
            found = self._find_in(root, parts)
            if found is not None and (not isinstance(found, Found) or found.kind != "namespace"):
                return found  # a module, a regular package, or a refusal: this root's
            portion = portion or found
            if not self._namespace_top(root, parts[0]):
                break  # a regular package or a module is served from its first root only
        return portion

    def _roots_of(self, top: str) -> Iterable[Root]:
        """The roots that have something named ``top``, in order."""
        for root in self.roots:
            if (root.only is None or top == root.only) and _entry(root.directory, top):
                yield root

    @staticmethod
    def _namespace_top(root: Root, top: str) -> bool:
        base = os.path.join(root.directory, top)
        return os.path.isdir(base) and not os.path.isfile(os.path.join(base, "__init__.py"))

    def _find_in(self, root: Root, parts: list[str]) -> Union[Found, Refused, None]:
        directory = root.directory
        for package in parts[:-1]:  # each parent: a package or a namespace portion here
            directory = os.path.join(directory, package)
            if not os.path.isdir(directory) or package == "__pycache__":
                return None
        name, last = ".".join(parts), parts[-1]
        package_init = os.path.join(directory, last, "__init__.py")
        module_file = os.path.join(directory, last + ".py")
        if os.path.isfile(package_init):
            found = Found(name, "package", package_init)
        elif os.path.isfile(module_file):
            found = Found(name, "module", module_file)
        else:
            refused = _not_source(name, directory, last)
            if refused is not None or not os.path.isdir(os.path.join(directory, last)):
                return refused
            if last == "__pycache__":
                return None
            found = Found(name, "namespace", os.path.join(directory, last))
        if not _inside(found.path, root.area):
            return Refused(
                f"{name}: {found.path} leads outside the directories the controller "
                f"serves ({root.describe()})"
            )
        return found

    def modules(self, package: object) -> Union[list[tuple[str, bool]], Refused, None]:
        """``package``'s modules as ``pkgutil.iter_modules`` lists a directory: (name, is a
        package), for the ``.py`` files and the directories with an ``__init__.py`` of
        each of its directories (every portion of a namespace package) that this policy
        would serve."""
        found = self.find(package)
        if not isinstance(found, Found):
            return found
        if found.kind == "module":
            return Refused(f"{found.name} is a module, not a package: it has no modules")
        assert isinstance(package, str)
        listed: dict[str, bool] = {}
        parts = found.name.split(".")
        for root in self._roots_of(parts[0]):
            portion = self._find_in(root, parts)
            if not isinstance(portion, Found) or portion.kind != found.kind:
                continue
            if found.kind == "package" and portion != found:
                continue
            directory = portion.path
            if portion.kind == "package":
                directory = os.path.dirname(directory)
            for name, is_package in _listing(directory):
                child = self._find_in(root, [*parts, name])
                if isinstance(child, Found) and child.kind != "namespace":
                    listed.setdefault(name, is_package)
            if found.kind == "package":
                break
        return sorted(listed.items())

    # -- package data ----------------------------------------------------------------------

    def data_path(self, package: object, path: object) -> Union[str, Refused, None]:
        """The file or directory ``path`` of ``package``'s data (None: no such package)."""
        found = self.find(package)
        if not isinstance(found, Found):
            return found
        if found.kind != "package":
            what = "a namespace package" if found.kind == "namespace" else "a module, not a package"
            return Refused(f"{found.name} is {what}: it has no data files")
        why = check_data_path(path)
        if why is not None:
            return Refused(why)
        assert isinstance(path, str)
        base = os.path.dirname(found.path)
        target = os.path.join(base, *path.split("/")) if path else base
        if not _inside(target, os.path.realpath(base)):
            return Refused(f"{found.name}: {path!r} leads outside the package's directory")
        return target


def _entry(directory: str, top: str) -> bool:
    """Whether a root holds something importable as ``top``: a directory (a package), a
    ``.py`` file, or a form we refuse to send (an extension module, a ``.pyc``)."""
    base = os.path.join(directory, top)
    if os.path.isdir(base) or os.path.isfile(base + ".py"):
        return True
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    endings = (".pyc", *EXTENSION_ENDINGS)
    return any(n.partition(".")[0] == top and n.endswith(endings) for n in names)


def _listing(directory: str) -> list[tuple[str, bool]]:
    """The ``.py`` modules and the regular packages in ``directory`` (names, sorted)."""
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return []
    found = []
    for entry in entries:
        stem, py = entry[:-3], entry.endswith(".py")
        path = os.path.join(directory, entry)
        if py and stem.isidentifier() and stem != "__init__" and os.path.isfile(path):
            found.append((stem, False))
        elif entry.isidentifier() and os.path.isfile(os.path.join(path, "__init__.py")):
            found.append((entry, True))
    return found


def _not_source(name: str, directory: str, last: str) -> Optional[Refused]:
    """A refusal when ``directory`` holds ``last`` in a form we cannot send, else None."""
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    for entry in sorted(names):
        if entry.partition(".")[0] != last:
            continue
        if entry.endswith(EXTENSION_ENDINGS):
            return Refused(
                f"{name} is a compiled extension module ({os.path.join(directory, entry)}): "
                "only pure-Python modules are forwarded; install it on the remote host"
            )
        if entry.endswith(".pyc"):
            return Refused(
                f"{name} has no source on the controller, only {entry}: it cannot be forwarded"
            )
    return None


def module_root(top: str, search: Sequence[str]) -> Union[Root, str]:
    """The root serving just the top-level module or package ``top``, found in the
    directories ``search`` as ``import`` would (nothing is imported); else why not. For a
    namespace package, the directory of its first portion."""
    why = check_name(top)
    if why is not None or "." in top:
        return why or f"{top!r} is not a top-level module name"
    spec = PathFinder.find_spec(top, list(search))
    if spec is None:  # an import hook's (a setuptools editable install): ask them all
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
    if spec is None:
        return f"no module named {top!r} here"
    if spec.submodule_search_locations is not None and spec.origin in (None, "namespace"):
        # A namespace package: its first portion (--forward-path directories add others).
        portions = list(spec.submodule_search_locations)
        return Root(os.path.dirname(portions[0]), only=top)
    origin = spec.origin or ""
    if not origin.endswith(".py"):
        return f"{top} is not a pure-Python module ({origin}): it cannot be forwarded"
    directory = os.path.dirname(origin)
    if spec.submodule_search_locations is not None:  # a package: origin is its __init__.py
        directory = os.path.dirname(directory)
    return Root(directory, only=top)
