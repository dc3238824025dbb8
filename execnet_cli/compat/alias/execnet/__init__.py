"""execnet_cli's engine under execnet's name (opt-in: see ``xnet compat-path``).

Only importable when the directory holding this package is on ``sys.path``; then
``import execnet`` gives execnet_cli, and workers started from here offer the same
alias to code they run (``__xnet_alias__`` tells them).
"""

from __future__ import annotations

from execnet_cli import (
    Channel,
    DataFormatError,
    DumpError,
    Gateway,
    HostNotFound,
    LoadError,
    MultiChannel,
    RemoteError,
    TimeoutError,
    XSpec,
    default_group,
    dump,
    dumps,
    load,
    loads,
    makegateway,
    set_execmodel,
)
from execnet_cli.compat import ALIAS_VERSION
from execnet_cli.rsync import RSync

from . import gateway, gateway_base, multi, rsync, xspec
from .multi import Group

__version__ = ALIAS_VERSION
#: Marks this module as the alias: gateways opened from here give workers one too.
__xnet_alias__ = True

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
    "gateway",
    "gateway_base",
    "load",
    "loads",
    "makegateway",
    "multi",
    "rsync",
    "set_execmodel",
    "xspec",
]
