"""``import execnet`` inside a worker, when the controller runs our execnet alias.

Code that runs remotely and imports execnet (pytest-xdist's worker does) must get the
classes this worker really uses, not a second copy from disk. ``install`` registers
``execnet`` and ``execnet.gateway_base`` modules built from the shipped modules.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any, Dict

from . import channel, engine, errors, execmodel, serializer

#: Names ``execnet`` itself offers from this engine (its package and ``gateway_base`` both).
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


def gateway_base_exports() -> Dict[str, Any]:
    """``execnet.gateway_base`` as this engine provides it: the one table both the
    controller's alias and a worker's alias are built from, so the two cannot drift."""
    return {
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
        "dumps": serializer.dumps,
        "loads": serializer.loads_public,
        "dump": serializer.dump,
        "load": serializer.load_public,
    }


def install(version: str) -> None:
    """Make ``import execnet`` (and ``execnet.gateway_base``) give this worker's engine."""
    package = types.ModuleType("execnet", "execnet_cli's engine, seen from a worker")
    package.__path__ = []  # type: ignore[attr-defined]
    package.__version__ = version  # type: ignore[attr-defined]
    package.__xnet_alias__ = True  # type: ignore[attr-defined]
    # Where this engine came from (the controller's file, or the name it was compiled as).
    package.__file__ = install.__code__.co_filename
    gateway_base = types.ModuleType("execnet.gateway_base")
    exports = gateway_base_exports()
    for name, value in exports.items():
        setattr(gateway_base, name, value)
    for name in PACKAGE_NAMES:
        setattr(package, name, exports[name])
    package.gateway_base = gateway_base  # type: ignore[attr-defined]
    sys.modules["execnet"] = package
    sys.modules["execnet.gateway_base"] = gateway_base
    _stdout_to_devnull()


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
