"""Starting a worker from nothing but a Python interpreter.

Stage 1 is a one-line program passed as ``python -c STAGE1``: it reads an 8-digit
length and that many bytes from fd 0 and executes them. It contains no quotes, so it
survives any shell unchanged. Stage 2 (``STAGE2``, a few lines) reads two marshalled
blobs, each after a 12-digit length: the bundle of ``_remote`` modules (the same for
every worker, so marshalled once per process) and the worker's settings, and runs the
bundle's ``START`` (compiled where the worker's magic is ours, as the modules). It installs
an importer that serves the modules as the package ``xnet_remote`` and calls
``xnet_remote.worker.main``. Nothing is written to the remote's disk.

The modules travel as code objects when the worker is this very interpreter (no
compile on the far side: faster start), else as our code objects with our interpreter's
magic number: a worker whose interpreter has the same magic (any 3.11.x for a 3.11
controller, as with .pyc files) runs them. Any other asks for the sources (any Python
>= 3.8): its ``START`` writes a ``SOURCES`` frame, the controller's gateway answers with
one carrying them zlib-compressed (``packed_sources``), and the worker compiles those of
the modules it imports. The sources were ~19 % of every worker's bootstrap that a worker
of our magic never read; the ask costs a round trip only where the magic differs. Frames
that came before the answer (a job sent behind the bootstrap) are kept for the worker's
reader. A worker of our magic has no sources: the controller puts our modules' lines
into its tracebacks (``with_source_lines``).
Both stages read with ``os.read`` on fd 0, never through a buffered file, so no byte of
the protocol that follows is swallowed.
"""

from __future__ import annotations

import functools
import importlib.util
import marshal
import os
import sys
import threading
import types
import zlib
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from . import parsing

REMOTE_PACKAGE = "execnet_cli._remote"
REMOTE_MODULES = (
    "errors",
    "logs",
    "threads",
    "wireformat",
    "loadguards",
    "serializer",
    "framing",
    "protocol",
    "execmodel",
    "reading",
    "sending",
    "channel",
    "channelfiles",
    "engine",
    "fdio",
    "descendants",
    "worker",
    "forkserver",
    "compat",
    "compat_format",
    "jobs",
)
#: Modules a worker of another interpreter gets only where its settings use them, ~21 % of
#: its bundle: the fork server's (a fork server runs this interpreter) and execnet's
#: compatibility layer (``execnet_alias``). ``Gateway.remote_modules`` ships them where
#: wanted (a relay imports ``forkserver``); a worker that asks for the sources gets all.
ON_DEMAND = ("forkserver", "compat", "compat_format")
#: Version 4 of marshal is read by every Python 3.4+, for the source form of the bundle.
MARSHAL_VERSION = 4
#: The bytecode version of our code objects: a worker whose interpreter has it runs them.
CODE_MAGIC = importlib.util.MAGIC_NUMBER

STAGE1 = (
    "import os;r=lambda n,b=bytes():b if len(b)>=n else "
    "r(n,b+(os.read(0,n-len(b)) or os._exit(3)));exec(r(int(r(8))))"
)

STAGE2 = """\
import marshal, os, sys
def _xnet_read(n):
    parts = []
    while n:
        part = os.read(0, n)
        if not part:
            os._exit(3)
        parts.append(part)
        n -= len(part)
    return b"".join(parts)
_xnet_bundle = marshal.loads(_xnet_read(int(_xnet_read(12))))
_xnet_bundle["config"] = marshal.loads(_xnet_read(int(_xnet_read(12))))
_xnet_magic = getattr(sys.modules.get("_frozen_importlib_external"), "MAGIC_NUMBER", None)
if _xnet_magic and _xnet_bundle.get("magic") == _xnet_magic and "start" in _xnet_bundle:
    exec(marshal.loads(_xnet_bundle["start"]))
else:
    exec(_xnet_bundle["start_source"])
"""

#: The rest of stage 2, in the bundle (``start_source``; ``start``: compiled, run where the
#: magic is ours): a worker parses and compiles stage 2's text, ~3 M instructions for
#: this part, more than unmarshalling it.
START = """\
from _frozen_importlib import ModuleSpec
class _XnetImporter(object):
    def __init__(self, bundle):
        self.package = bundle["package"]
        # name -> source text, a marshalled code object, or None: in the packed sources
        self.modules = bundle.get("modules") or dict.fromkeys(bundle.get("names", ()))
        self.packed = bundle.get("packed")
        magic = getattr(sys.modules.get("_frozen_importlib_external"), "MAGIC_NUMBER", None)
        self.code = bundle.get("code", {}) if magic and bundle.get("magic") == magic else {}
        if not self.code and self.packed is None and bundle.get("ask_sources"):
            self.packed, bundle["config"]["pending_frames"] = self._ask_sources()
    @staticmethod
    def _ask_sources():
        # A SOURCES frame (type 9, channel 0, empty); the answer is one carrying them.
        # Frames before it (a job sent behind the bootstrap) are kept for the reader.
        os.write(1, b"\x09" + bytes(8))
        pending = []
        while True:
            head = _xnet_read(9)
            size = int.from_bytes(head[5:9], "big")
            payload = _xnet_read(size) if size else b""
            if head[0] == 9:
                return payload, pending
            pending.append((head[0], int.from_bytes(head[1:5], "big"), payload))
    def _data(self, short):
        data = self.modules.get(short)
        if data is None and self.packed is not None:
            import zlib
            for name, text in marshal.loads(zlib.decompress(self.packed)).items():
                if self.modules.get(name) is None:
                    self.modules[name] = text
            self.packed = None
            data = self.modules.get(short)
        return data
    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.package:
            return ModuleSpec(fullname, self, is_package=True)
        parent, _, short = fullname.rpartition(".")
        if parent == self.package and short in self.modules:
            return ModuleSpec(fullname, self)
        return None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        name = module.__name__
        if name == self.package:
            module.__path__ = []
            return
        short = name.rpartition(".")[2]
        data = self.code.get(short) or self._data(short)
        if isinstance(data, str):
            code = compile(data, name.replace(".", "/") + ".py", "exec")
        else:
            code = marshal.loads(data)
        exec(code, module.__dict__)
    def get_source(self, fullname):
        if fullname == self.package or fullname.rpartition(".")[0] != self.package:
            return None
        data = self._data(fullname.rpartition(".")[2])
        return data if isinstance(data, str) else None
sys.meta_path.insert(0, _XnetImporter(_xnet_bundle))
__import__(_xnet_bundle["package"] + ".worker")
sys.modules[_xnet_bundle["package"] + ".worker"].main(_xnet_bundle["config"])
"""

WORKER_PACKAGE = "xnet_remote"
#: Variables no local worker inherits: with the socket servers' shared secret, any code
#: a worker runs (or any ``xnet sh`` command) could open gateways as us. The same list
#: as ``_remote.sockets.PRIVATE_ENV``, which its workers do not inherit either.
PRIVATE_ENV = ("XNET_SECRET", "XNET_SUDO_PASSWORD")


def stage1_argv(python: str) -> List[str]:
    """The command line that starts a worker under ``python``."""
    return [python, "-c", STAGE1]


def worker_environ(extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment a local worker starts with: ours without ``PRIVATE_ENV``, plus
    ``extra`` (the spec's ``env:``, which may set anything on purpose)."""
    env = {name: value for name, value in os.environ.items() if name not in PRIVATE_ENV}
    env.update(extra or {})
    return env


def same_interpreter(python: str) -> bool:
    """True when ``python`` is this interpreter, so code objects can travel as they are."""
    try:
        return os.path.samefile(python, sys.executable)
    except OSError:
        return False


@functools.cache
def module_payload(name: str, kind: str) -> Any:
    """One ``_remote`` module as its worker importer takes it: source text, or (``kind``
    "code", for a worker that is this very interpreter) a marshalled code object."""
    if kind == "code":
        return marshal.dumps(_code_of(name))
    spec = importlib.util.find_spec(f"{REMOTE_PACKAGE}.{name}")
    assert spec is not None and spec.origin is not None
    with open(spec.origin, encoding="utf-8") as source:
        return source.read()


def _code_of(name: str) -> types.CodeType:
    """Our code object of ``_remote`` module ``name`` (from its ``.pyc`` where fresh)."""
    spec = importlib.util.find_spec(f"{REMOTE_PACKAGE}.{name}")
    assert spec is not None and spec.loader is not None
    return spec.loader.get_code(spec.name)  # type: ignore[attr-defined,no-any-return]


@functools.cache
def _sibling_imports(name: str) -> Tuple[str, ...]:
    """The ``_remote`` modules that module ``name`` imports (relative imports)."""
    import ast

    tree = parsing.parse(module_payload(name, "source"))
    found: List[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            targets = [node.module] if node.module else [a.name for a in node.names]
            found += [target.partition(".")[0] for target in targets]
    return tuple(found)


def with_siblings(names: Iterable[str]) -> List[str]:
    """``names`` and every ``_remote`` module they import, at any depth, in import order
    (what a worker needs to import them: ``Gateway.remote_modules``)."""
    order: List[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for sibling in _sibling_imports(name):
            visit(sibling)
        order.append(name)

    for name in names:
        visit(name)
    return order


@functools.lru_cache(maxsize=2)
def _module_payloads(kind: str) -> Dict[str, Any]:
    return {name: module_payload(name, kind) for name in REMOTE_MODULES}


@functools.cache
def _worker_code() -> Dict[str, bytes]:
    """Our code objects of the modules, named as a worker compiling their source names
    them (``xnet_remote/worker.py``): for a worker whose interpreter has our magic."""
    return {
        name: marshal.dumps(_renamed(_code_of(name), f"{WORKER_PACKAGE}/{name}.py"))
        for name in REMOTE_MODULES
    }


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    consts = tuple(
        _renamed(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


#: Gateways opened together (64 pool threads) all ask for the modules at once: the caches
#: above do not make the others wait, so each would read and compile them all again.
_payloads_lock = threading.Lock()


def bootstrap_bytes(config: Dict[str, Any], same_python: bool) -> bytes:
    """Everything to write to a fresh worker's stdin before the protocol starts: stage 2,
    the modules (the same for every worker: marshalled once) and the worker's settings."""
    names: Tuple[str, ...] = REMOTE_MODULES
    if not same_python and not config.get("execnet_alias"):
        names = tuple(name for name in names if name not in ON_DEMAND)
    with _payloads_lock:
        modules = _modules_bytes(same_python, names)
    settings = marshal.dumps(config, MARSHAL_VERSION)
    stage2 = STAGE2.encode()
    return b"".join(
        [
            b"%08d" % len(stage2),
            stage2,
            b"%012d" % len(modules),
            modules,
            b"%012d" % len(settings),
            settings,
        ]
    )


@functools.cache
def _start_code() -> bytes:
    """``START`` compiled here (for workers of our magic: ``STAGE2``)."""
    return marshal.dumps(compile(START, "<xnet bootstrap>", "exec", dont_inherit=True))


@functools.lru_cache(maxsize=4)
def _modules_bytes(same_python: bool, names: Tuple[str, ...] = REMOTE_MODULES) -> bytes:
    """The bundle of modules ``names``: this interpreter's code objects; else ours (run by
    a worker with our magic), and a worker of another magic asks for the sources
    (``packed_sources``)."""
    if same_python:
        code = _module_payloads("code")
        bundle: Dict[str, Any] = {"package": WORKER_PACKAGE}
        bundle["modules"] = {name: code[name] for name in names}
        bundle["magic"] = CODE_MAGIC
    else:
        code = _worker_code()
        bundle = {
            "package": WORKER_PACKAGE,
            "names": list(names),
            "code": {name: code[name] for name in names},
            "magic": CODE_MAGIC,
            "ask_sources": True,
        }
    bundle.update(start=_start_code(), start_source=START)
    return marshal.dumps(bundle, MARSHAL_VERSION)


@functools.cache
def packed_sources() -> bytes:
    """The sources of the modules, as a worker of another magic asks for them (the
    ``SOURCES`` answer): marshalled and zlib-compressed, once per process."""
    with _payloads_lock:
        sources = marshal.dumps(_module_payloads("source"), MARSHAL_VERSION)
    return zlib.compress(sources, 1)  # 2 ms once; 9 would take 15 ms for 18% less


#: A traceback entry in one of our modules, as a worker without their sources prints it.
_ENTRY = rf'( *)File "{WORKER_PACKAGE}/(\w+)\.py", line (\d+), in '


def with_source_lines(text: str) -> str:
    """``text`` (a worker's traceback) with the source line under each entry in one of our
    modules that has none: a worker of our magic runs our code objects without the
    sources, which it was not sent. Our files are those it runs."""
    import re  # only for a traceback

    lines = text.split("\n")
    out: List[str] = []
    for index, line in enumerate(lines):
        out.append(line)
        entry = re.match(_ENTRY, line)
        if entry is None or entry.group(2) not in REMOTE_MODULES:
            continue
        indent = entry.group(1) + "  "  # as traceback prints a line under its entry
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if following.startswith(indent):
            continue  # the worker had the line
        source = str(module_payload(entry.group(2), "source")).splitlines()
        number = int(entry.group(3))
        if 0 < number <= len(source) and source[number - 1].strip():
            out.append(indent + source[number - 1].strip())
    return "\n".join(out)
