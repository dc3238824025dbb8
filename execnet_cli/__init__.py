"""execnet_cli: execnet's programming model (gateways, channels, groups), fast and safe.

The public API matches execnet's: ``import execnet_cli as execnet`` and execnet code runs.
Errors load with the package; everything else on first use (``_LAZY``), so importing one
part of the package (the CLI's renderers, the inventory) does not load gateways.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    AuthenticationFailed,
    BootstrapError,
    ChannelClosed,
    ConnectFailed,
    DataFormatError,
    DumpError,
    GatewayError,
    HostKeyError,
    HostNotFound,
    InterpreterNotFound,
    LoadError,
    RemoteError,
    SpecError,
    TimeoutError,
    UnknownHostKey,
    XnetError,
)

if TYPE_CHECKING:
    from ._remote.channel import Channel
    from ._remote.serializer import dump, dumps
    from ._remote.serializer import load_public as load
    from ._remote.serializer import loads_public as loads
    from .gateway import Gateway
    from .group import Group, MultiChannel, default_group, makegateway, set_execmodel
    from .spec import XSpec

#: Public name -> (module, attribute), imported when the name is first used.
_LAZY = {
    "Channel": ("._remote.channel", "Channel"),
    "dump": ("._remote.serializer", "dump"),
    "dumps": ("._remote.serializer", "dumps"),
    "load": ("._remote.serializer", "load_public"),
    "loads": ("._remote.serializer", "loads_public"),
    "Gateway": (".gateway", "Gateway"),
    "Group": (".group", "Group"),
    "MultiChannel": (".group", "MultiChannel"),
    "default_group": (".group", "default_group"),
    "makegateway": (".group", "makegateway"),
    "set_execmodel": (".group", "set_execmodel"),
    "XSpec": (".spec", "XSpec"),
    "RSync": (".rsync", "RSync"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), attribute)
    globals()[name] = value  # later uses find it directly
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AuthenticationFailed",
    "BootstrapError",
    "Channel",
    "ChannelClosed",
    "ConnectFailed",
    "DataFormatError",
    "DumpError",
    "Gateway",
    "GatewayError",
    "Group",
    "HostKeyError",
    "HostNotFound",
    "InterpreterNotFound",
    "LoadError",
    "MultiChannel",
    "RSync",
    "RemoteError",
    "SpecError",
    "TimeoutError",
    "UnknownHostKey",
    "XSpec",
    "XnetError",
    "__version__",
    "default_group",
    "dump",
    "dumps",
    "load",
    "loads",
    "makegateway",
    "set_execmodel",
]
