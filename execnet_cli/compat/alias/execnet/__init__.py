"""execnet_cli's engine under execnet's name (opt-in: see ``xnet compat-path``).

Only importable when the directory holding this package is on ``sys.path``; then
``import execnet`` gives execnet_cli, and workers started from here offer the same
alias to code they run (``__xnet_alias__`` tells them). execnet 2.1.2's modules are
here by their names (``gateway``, ``gateway_base``, ``multi``, ``rsync``, ``xspec``,
``gateway_io``); what they hold is listed, with every difference, in docs/execnet.md.

Importing it is cheap: channels, errors and the serializer load with the package (a
pytest-xdist worker needs no more); gateways, groups and the rest on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from execnet_cli._remote.channel import Channel
from execnet_cli._remote.compat_format import dump, dumps, load, loads
from execnet_cli.compat import ALIAS_VERSION
from execnet_cli.errors import (
    DataFormatError,
    DumpError,
    HostNotFound,
    LoadError,
    RemoteError,
    TimeoutError,
)

if TYPE_CHECKING:
    from execnet_cli.gateway import Gateway
    from execnet_cli.group import MultiChannel, default_group, makegateway, set_execmodel
    from execnet_cli.rsync import RSync
    from execnet_cli.spec import XSpec

    from .multi import Group

__version__ = ALIAS_VERSION
#: Marks this module as the alias: gateways opened from here give workers one too.
__xnet_alias__ = True

#: Name -> (module of this package, attribute), imported on first use.
_LAZY = {
    "Gateway": ("gateway", "Gateway"),
    "Group": ("multi", "Group"),
    "MultiChannel": ("multi", "MultiChannel"),
    "default_group": ("multi", "default_group"),
    "makegateway": ("multi", "makegateway"),
    "set_execmodel": ("multi", "set_execmodel"),
    "RSync": ("rsync", "RSync"),
    "XSpec": ("xspec", "XSpec"),
}
_SUBMODULES = ("gateway", "gateway_base", "gateway_io", "multi", "rsync", "xspec")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})


__all__ = [
    "Channel",
    "DataFormatError",
    "DumpError",
    "Gateway",
    "Group",
    "HostNotFound",
    "LoadError",
    "MultiChannel",
    "RSync",
    "RemoteError",
    "TimeoutError",
    "XSpec",
    "__version__",
    "default_group",
    "dump",
    "dumps",
    "load",
    "loads",
    "makegateway",
    "set_execmodel",
]
