"""The far half of import forwarding: modules the worker lacks, asked of the controller.

``install(channel)`` appends a finder to ``sys.meta_path``, after the interpreter's own
finders, so the standard library and whatever is installed here always win: the
controller only fills gaps. A name is asked for when nothing here has it, and only if it
is a top-level name or a submodule of a package that came from the controller (a local
package is never completed from the controller's copy). Requests and answers (the
controller's half is ``execnet_cli.imports``):

    ("find", name)            -> None (not there), ("refused", why), or
                                 ("module" | "package" | "namespace", path, source,
                                  code, related)
    ("stat", package, path)   -> "file", "dir" or None      package data, for
    ("list", package, path)   -> [names] or None              importlib.resources
    ("read", package, path)   -> bytes, None or ("refused", why)
    ("modules", package)      -> [(name, is_package)], None or ("refused", why)

A package's ``__path__`` is one entry, ``PATH_PREFIX`` + its name, that a path hook of
ours (first on ``sys.path_hooks``, taking only such entries) turns into a ``PathEntry``:
it finds nothing itself (this finder does) but lists the package's modules for
``pkgutil.iter_modules`` and ``walk_packages`` with a "modules" request. A namespace
package (PEP 420, its portions in the controller's roots) is a package without code or
``__file__``.

``code`` is a marshalled code object when this interpreter's bytecode is the
controller's (``install`` tells it our magic number), else None: we compile the source.
``related`` are modules of the same package that the module imports, sent along as
``(name, kind, path, source, code)`` so that a package costs one round trip; they are
kept and used only when the import system asks this finder for them.

Every answer is kept: each module and each file crosses the wire once per worker, and a
name the controller does not have is asked for once. A refusal (a compiled extension
module, a path outside what the controller allows) raises ``ImportError`` saying why;
a name nobody has ends as the usual ``ModuleNotFoundError``.
"""

from __future__ import annotations

import io
import marshal
import sys
import threading
from importlib.machinery import ModuleSpec
from importlib.util import MAGIC_NUMBER

from .errors import RemoteError

#: Seconds to wait for the controller's answer; past it the module counts as missing.
ANSWER_TIMEOUT = 60.0
#: How a package from the controller's ``__path__`` entry starts (then its name).
PATH_PREFIX = "<xnet controller>/"


def install(channel) -> bytes:  # type: ignore[no-untyped-def]
    """Put a finder asking over ``channel`` last on ``sys.meta_path`` (once per worker);
    return this interpreter's bytecode magic number (b"" under ``-O``: the controller's
    code objects keep their asserts, so we compile ourselves)."""
    for finder in sys.meta_path:
        if isinstance(finder, ControllerImporter):
            finder.channel = channel
            break
    else:
        finder = ControllerImporter(channel)
        sys.meta_path.append(finder)
        sys.path_hooks.insert(0, finder.path_hook)
    return MAGIC_NUMBER if not sys.flags.optimize else b""


class ControllerImporter:
    """Finder and loader of the modules the controller sends (see the module docstring)."""

    def __init__(self, channel) -> None:  # type: ignore[no-untyped-def]
        self.channel = channel
        self.lock = threading.Lock()  # one request and its answer at a time
        self.missing = set()  # type: ignore[var-annotated]
        self.modules = {}  # type: ignore[var-annotated]  # name -> (kind, path, source, code)
        self.answers = {}  # type: ignore[var-annotated]  # (verb, package, path) -> answer

    def ask(self, request):  # type: ignore[no-untyped-def]
        """The controller's answer to ``request``; None when it cannot answer any more."""
        with self.lock:
            try:
                self.channel.send(request)
                return self.channel.receive(ANSWER_TIMEOUT)
            except (OSError, EOFError, RemoteError):  # closed, lost, timed out: nobody to ask
                return None

    # -- finding -------------------------------------------------------------------------

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname in self.missing:
            return None
        parent = fullname.rpartition(".")[0]
        if parent:
            spec = getattr(sys.modules.get(parent), "__spec__", None)
            if spec is None or spec.loader is not self:
                return None  # a package of this interpreter's own: never mixed
        answer = self.modules.get(fullname)
        if answer is None:
            if not self.channel.can_wait_here():
                raise ModuleNotFoundError(
                    "cannot ask the controller for " + fullname + " in the thread that "
                    "reads the gateway (a channel callback): import it beforehand",
                    name=fullname,
                )
            answer = self.ask(("find", fullname))
            if not isinstance(answer, tuple) or not answer:
                self.missing.add(fullname)
                return None
            if answer[0] == "refused":
                raise ImportError(str(answer[1]), name=fullname)
            for related in answer[4]:
                self.modules.setdefault(related[0], tuple(related[1:]))
            answer = self.modules[fullname] = answer[:4]
        kind, origin = answer[0], answer[1]
        if kind == "namespace":
            spec = ModuleSpec(fullname, self, is_package=True)
        else:
            spec = ModuleSpec(fullname, self, origin=origin, is_package=kind == "package")
            spec.has_location = True  # __file__: code that only builds paths from it runs
        if spec.submodule_search_locations is not None:
            spec.submodule_search_locations.append(PATH_PREFIX + fullname)
        return spec

    def path_hook(self, entry):  # type: ignore[no-untyped-def]
        """``sys.path_hooks``: a ``PathEntry`` for our packages' ``__path__`` entries."""
        if not isinstance(entry, str) or not entry.startswith(PATH_PREFIX):
            raise ImportError("not a package from the controller", path=entry)
        return PathEntry(self, entry[len(PATH_PREFIX) :])

    # -- loading -------------------------------------------------------------------------

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return None

    def exec_module(self, module) -> None:  # type: ignore[no-untyped-def]
        exec(self.get_code(module.__name__), module.__dict__)

    def get_code(self, fullname):  # type: ignore[no-untyped-def]
        _, origin, source, code = self._known(fullname)
        if code is not None:
            return marshal.loads(code)
        return compile(source, origin, "exec", dont_inherit=True)

    def get_source(self, fullname):  # type: ignore[no-untyped-def]
        from importlib.util import decode_source

        return decode_source(self._known(fullname)[2])

    def is_package(self, fullname) -> bool:  # type: ignore[no-untyped-def]
        return self._known(fullname)[0] != "module"

    def get_filename(self, fullname):  # type: ignore[no-untyped-def]
        return self._known(fullname)[1]

    def _known(self, fullname):  # type: ignore[no-untyped-def]
        answer = self.modules.get(fullname)
        if answer is None:
            raise ImportError("not a module from the controller: " + fullname, name=fullname)
        return answer

    def get_resource_reader(self, fullname):  # type: ignore[no-untyped-def]
        answer = self.modules.get(fullname)
        if answer is None or answer[0] != "package":
            return None
        return Resources(self, fullname)

    def asked(self, *key):  # type: ignore[no-untyped-def]
        """The controller's (kept) answer about ``package``'s data or modules: ``key`` is
        (verb, package, path) or ("modules", package)."""
        if key not in self.answers and not self.channel.can_wait_here():
            raise OSError("cannot ask the controller about a package in a channel callback")
        if key not in self.answers:
            self.answers[key] = self.ask(key)
        return self.answers[key]


class PathEntry:
    """A ``__path__`` entry of a package from the controller (see the module docstring)."""

    def __init__(self, importer: ControllerImporter, package: str) -> None:
        self.importer = importer
        self.package = package

    def find_spec(self, fullname, target=None):  # type: ignore[no-untyped-def]
        return None  # the finder on sys.meta_path finds them (after local ones)

    def invalidate_caches(self) -> None:
        pass

    def iter_modules(self, prefix=""):  # type: ignore[no-untyped-def]
        """(name, is_package) of the package's modules, as pkgutil wants them."""
        listed = self.importer.asked("modules", self.package)
        if isinstance(listed, (list, tuple)):
            for entry in listed:
                yield prefix + entry[0], bool(entry[1])


class Resources:
    """``importlib.resources`` for a package from the controller: ``files()`` (3.9+) and
    the older ``ResourceReader`` methods (3.8)."""

    def __init__(self, importer: ControllerImporter, package: str) -> None:
        self.importer = importer
        self.package = package

    def files(self) -> ControllerFile:
        return ControllerFile(self.importer, self.package, "")

    def open_resource(self, resource):  # type: ignore[no-untyped-def]
        return self.files().joinpath(resource).open("rb")

    def resource_path(self, resource):  # type: ignore[no-untyped-def]
        raise FileNotFoundError(resource)  # no file on this side: read it instead

    def is_resource(self, name) -> bool:  # type: ignore[no-untyped-def]
        return self.files().joinpath(name).is_file()

    def contents(self):  # type: ignore[no-untyped-def]
        return [entry.name for entry in self.files().iterdir()]


class ControllerFile:
    """A file or directory of a package's data on the controller (a ``Traversable``)."""

    def __init__(self, importer: ControllerImporter, package: str, path: str) -> None:
        self.importer = importer
        self.package = package
        self.path = path  # "/"-separated, relative to the package's directory

    def __repr__(self) -> str:
        return "<ControllerFile {}:{}>".format(self.package, self.path or ".")

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2] or self.package.rpartition(".")[2]

    def _ask(self, verb):  # type: ignore[no-untyped-def]
        answer = self.importer.asked(verb, self.package, self.path)
        if isinstance(answer, tuple) and answer and answer[0] == "refused":
            raise PermissionError(str(answer[1]))
        return answer

    def is_file(self) -> bool:
        return self._ask("stat") == "file"

    def is_dir(self) -> bool:
        return self._ask("stat") == "dir"

    def iterdir(self):  # type: ignore[no-untyped-def]
        names = self._ask("list")
        if names is None:
            raise NotADirectoryError(repr(self))
        return iter([self.joinpath(name) for name in names])

    def joinpath(self, *descendants):  # type: ignore[no-untyped-def]
        parts = [p for p in self.path.split("/") if p]
        for descendant in descendants:
            parts += [p for p in str(descendant).replace("\\", "/").split("/") if p]
        return ControllerFile(self.importer, self.package, "/".join(parts))

    def __truediv__(self, child):  # type: ignore[no-untyped-def]
        return self.joinpath(child)

    def read_bytes(self) -> bytes:
        data = self._ask("read")
        if not isinstance(data, bytes):
            raise FileNotFoundError(repr(self))
        return data

    def read_text(self, encoding=None, errors=None) -> str:  # type: ignore[no-untyped-def]
        return self.read_bytes().decode(encoding or "utf-8", errors or "strict")

    def open(self, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if mode not in ("r", "rb"):
            raise ValueError("package data from the controller is read-only: mode " + repr(mode))
        stream = io.BytesIO(self.read_bytes())
        if mode == "rb":
            return stream
        kwargs.setdefault("encoding", "utf-8")
        return io.TextIOWrapper(stream, *args, **kwargs)
