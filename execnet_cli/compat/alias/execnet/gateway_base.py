"""``execnet.gateway_base`` of the alias: channels, errors, serializer, execution models."""

from __future__ import annotations

from execnet_cli._remote.channel import NO_ENDMARKER_WANTED, Channel
from execnet_cli._remote.engine import BaseGateway
from execnet_cli._remote.execmodel import ExecModel, get_execmodel
from execnet_cli._remote.serializer import dump, dumps, load, loads
from execnet_cli.errors import DataFormatError, DumpError, LoadError, RemoteError, TimeoutError

__all__ = [
    "NO_ENDMARKER_WANTED",
    "BaseGateway",
    "Channel",
    "DataFormatError",
    "DumpError",
    "ExecModel",
    "LoadError",
    "RemoteError",
    "TimeoutError",
    "dump",
    "dumps",
    "get_execmodel",
    "load",
    "loads",
]
