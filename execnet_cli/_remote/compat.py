"""``import execnet`` inside a worker, when the controller runs our execnet alias.

Code that runs remotely and imports execnet (pytest-xdist's worker does) must get the
classes this worker really uses, not a second copy from disk. ``install`` puts a finder
first on ``sys.meta_path`` that answers ``import execnet`` in one of two ways:

- **whole**: where this worker can import the controller's own ``execnet_cli`` (a popen
  worker of the same interpreter: its engine came as code objects compiled from files
  that exist here), ``execnet`` is the alias package from disk, with every name. Before
  ``execnet_cli`` runs, ``execnet_cli._remote.<module>`` are made the modules this worker
  already runs (``_share_engine``), so ``execnet.Channel`` is the class of the channels
  the engine hands to remote code, and gateways the worker opens itself use this engine.
- **engine only**: elsewhere (another interpreter, ssh, sudo), ``execnet`` and
  ``execnet.gateway_base`` offer what this engine has (channels, errors, serializers,
  execution models); every other name raises an ImportError that says why.

The alias's ``dumps``/``loads``/``dump``/``load`` speak execnet's own format on both
sides (``compat_format``).
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import SourceFileLoader  # loaded already: the bootstrap uses it

from . import channel, compat_format, engine, errors, execmodel

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from types import ModuleType
    from typing import Any, Dict, Optional, Sequence

#: The package this engine was loaded as (``xnet_remote`` in a worker).
ENGINE_PACKAGE = __name__.rpartition(".")[0]
#: Names the ``execnet`` package offers from this engine wherever it runs.
PACKAGE_NAMES = (
    "Channel",
    "RemoteError",
    "TimeoutError",
    "DataFormatError",
    "DumpError",
    "LoadError",
    "dumps",
    "loads",
    "dump",
    "load",
)
#: What else ``execnet`` has (needs the controller's package); other names are no API.
PACKAGE_ONLY_WHOLE = (
    "Gateway",
    "Group",
    "HostNotFound",
    "MultiChannel",
    "RSync",
    "XSpec",
    "default_group",
    "makegateway",
    "set_execmodel",
    "gateway",
    "gateway_io",
    "multi",
    "rsync",
    "xspec",
)
#: What else the alias's ``execnet.gateway_base`` has (``execnet_cli/compat/``).
GATEWAY_BASE_ONLY_WHOLE = (
    "ChannelFactory",
    "ChannelFile",
    "ChannelFileRead",
    "ChannelFileWrite",
    "DEBUG",
    "Event",
    "GatewayReceivedTerminate",
    "IO",
    "MAIN_THREAD_ONLY_DEADLOCK_TEXT",
    "Message",
    "Popen2IO",
    "ReadIO",
    "Reply",
    "Unserializer",
    "WorkerGateway",
    "WorkerPool",
    "WriteIO",
    "geterrortext",
    "init_popen_io",
    "notrace",
    "pid",
    "sysex",
    "trace",
)
#: The names of execnet's format module that ``execnet.gateway_base`` has.
FORMAT_NAMES = (
    "dumps",
    "loads",
    "dump",
    "load",
    "dumps_internal",
    "loads_internal",
    "opcode",
    "bchr",
    "DUMPFORMAT_VERSION",
    "FOUR_BYTE_INT_MAX",
    "FLOAT_FORMAT",
    "FLOAT_FORMAT_SIZE",
    "COMPLEX_FORMAT",
    "COMPLEX_FORMAT_SIZE",
)


def gateway_base_exports() -> Dict[str, Any]:
    """``execnet.gateway_base`` as this engine provides it: the one table both the
    controller's alias and a worker's alias are built from, so the two cannot drift."""
    exports = {
        "Channel": channel.Channel,
        "NO_ENDMARKER_WANTED": channel.NO_ENDMARKER_WANTED,
        "BaseGateway": engine.BaseGateway,
        "ExecModel": execmodel.ExecModel,
        "get_execmodel": execmodel.get_execmodel,
        "RemoteError": errors.RemoteError,
        "TimeoutError": errors.TimeoutError,
        "DataFormatError": errors.DataFormatError,
        "DumpError": errors.DumpError,
        "LoadError": errors.LoadError,
    }
    for name in FORMAT_NAMES:
        exports[name] = getattr(compat_format, name)
    return exports


def install(version: str) -> None:
    """Make ``import execnet`` in this worker give the alias (whole, or the engine only)."""
    sys.meta_path.insert(0, AliasFinder(version))
    _stdout_to_devnull()


class AliasFinder:
    """Finds ``execnet`` (and, when whole, ``execnet_cli``) for this worker."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.home, self.why_not = _controller_package()

    def find_spec(
        self, fullname: str, path: Optional[Sequence[str]] = None, target: Any = None
    ) -> Any:
        top = fullname.partition(".")[0]
        if top not in ("execnet", "execnet_cli") or (top == "execnet_cli" and fullname != top):
            return None
        from importlib.machinery import ModuleSpec
        from importlib.util import spec_from_file_location

        if self.home is None:
            if fullname == "execnet" or fullname == "execnet.gateway_base":
                return ModuleSpec(fullname, self, is_package=fullname == "execnet")  # type: ignore[arg-type]
            if top == "execnet":
                raise ImportError(self.missing(fullname), name=fullname)
            return None  # execnet_cli itself: wherever sys.path has it, if anywhere
        if fullname == "execnet_cli":
            init = os.path.join(self.home, "__init__.py")
            loader = _SharedEngineLoader(fullname, init)
            return spec_from_file_location(
                fullname, init, loader=loader, submodule_search_locations=[self.home]
            )
        if fullname != "execnet":
            return None  # the alias's modules: found on its package path
        __import__("execnet_cli")  # through this finder: with the engine shared
        alias = os.path.join(self.home, "compat", "alias", "execnet")
        init = os.path.join(alias, "__init__.py")
        return spec_from_file_location(fullname, init, submodule_search_locations=[alias])

    # -- the engine-only modules (a loader for them) ---------------------------------------

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        exports = gateway_base_exports()
        if module.__name__ == "execnet":
            module.__path__ = []  # type: ignore[attr-defined]
            module.__version__ = self.version  # type: ignore[attr-defined]
            module.__xnet_alias__ = True  # type: ignore[attr-defined]
            module.__file__ = install.__code__.co_filename
            for name in PACKAGE_NAMES:
                setattr(module, name, exports[name])
        else:
            module.__dict__.update(exports)
        missing = self.missing
        api = PACKAGE_ONLY_WHOLE if module.__name__ == "execnet" else GATEWAY_BASE_ONLY_WHOLE

        def __getattr__(name: str) -> Any:
            if name not in api:  # no execnet name: what introspection expects to hear
                raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
            raise ImportError(missing(f"{module.__name__}.{name}"), name=module.__name__)

        setattr(module, "__getattr__", __getattr__)  # noqa: B010 - a module's hook

    def missing(self, what: str) -> str:
        """Why ``what`` cannot be had in this worker."""
        return (
            f"{what} is not available in this worker: {self.why_not}. Here execnet offers "
            f"what the worker's own engine has: {', '.join(PACKAGE_NAMES)} and "
            "execnet.gateway_base (channels, errors, serializers, execution models)"
        )


def _controller_package() -> Any:
    """(the directory of the controller's ``execnet_cli``, None) where this worker can
    import it, else (None, why not)."""
    if ENGINE_PACKAGE == "execnet_cli._remote":  # loaded from disk: this is the package
        return os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ""
    importer = _engine_importer()
    # code objects (bytes) travel only to a worker that is the controller's interpreter
    if importer is None or not isinstance(importer.modules.get("compat"), bytes):
        return None, (
            f"its engine ({sys.executable}, Python {sys.version.split()[0]}) was sent as "
            "source, not loaded from the controller's files (an ssh, socket or sudo worker, "
            "or another interpreter than the controller's), so it cannot import the "
            "controller's execnet_cli"
        )
    home = os.path.dirname(os.path.dirname(install.__code__.co_filename))
    needed = [os.path.join(home, "__init__.py"), os.path.join(home, "compat", "alias")]
    if not all(os.path.exists(path) for path in needed):
        return None, f"the controller's execnet_cli ({home}) is not on this worker's file system"
    return home, ""


def _engine_importer() -> Any:
    """The bootstrap's importer that serves this engine's modules (see bootstrap.STAGE2)."""
    for finder in sys.meta_path:
        if getattr(finder, "package", None) == ENGINE_PACKAGE and hasattr(finder, "modules"):
            return finder
    return None


def _share_engine(home: str) -> None:
    """Make ``execnet_cli._remote`` and its modules this worker's engine.

    Each engine module is registered under its disk name, with the disk module's spec
    (so the bootstrap of a gateway opened from here finds its source) and package (so
    its relative imports find the same modules under either name). Modules the worker
    was not sent (ssh, sockets, rsync halves) load from disk as usual.
    """
    from importlib.util import module_from_spec, spec_from_file_location

    remote_dir = os.path.join(home, "_remote")
    spec = spec_from_file_location(
        "execnet_cli._remote",
        os.path.join(remote_dir, "__init__.py"),
        submodule_search_locations=[remote_dir],
    )
    assert spec is not None and spec.loader is not None
    package = module_from_spec(spec)
    sys.modules[spec.name] = package
    spec.loader.exec_module(package)
    setattr(sys.modules["execnet_cli"], "_remote", package)  # noqa: B010 - as an import binds it
    importer = _engine_importer()
    for name in sorted(importer.modules if importer is not None else ()):
        module = __import__(f"{ENGINE_PACKAGE}.{name}", fromlist=["_"])
        disk_name = f"execnet_cli._remote.{name}"
        module.__spec__ = spec_from_file_location(disk_name, os.path.join(remote_dir, f"{name}.py"))
        module.__package__ = "execnet_cli._remote"
        sys.modules[disk_name] = module
        setattr(package, name, module)


class _SharedEngineLoader(SourceFileLoader):
    """Loads ``execnet_cli`` from the controller's directory, with this worker's engine."""

    def exec_module(self, module: ModuleType) -> None:
        _share_engine(os.path.dirname(self.path))
        super().exec_module(module)


def _stdout_to_devnull() -> None:
    """Send fd 1 to /dev/null, as execnet's workers do.

    Our workers normally point fd 1 at stderr so a remote ``print()`` is seen; execnet
    clients expect it to vanish (pytest-xdist's workers run a terminal reporter whose
    output the controller must not show).
    """
    try:
        sys.stdout.flush()
    except Exception:
        pass
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
