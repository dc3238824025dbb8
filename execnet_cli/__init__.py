"""execnet_cli: execnet's programming model (gateways, channels, groups), fast and safe.

The public API matches execnet's: ``import execnet_cli as execnet`` and execnet code runs.
"""

from ._remote.channel import Channel
from ._remote.serializer import dump, dumps
from ._remote.serializer import load_public as load
from ._remote.serializer import loads_public as loads
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
    XnetError,
)
from .gateway import Gateway
from .group import Group, MultiChannel, default_group, makegateway, set_execmodel
from .spec import XSpec

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
    "RemoteError",
    "SpecError",
    "TimeoutError",
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
