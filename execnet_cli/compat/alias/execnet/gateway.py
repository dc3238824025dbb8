"""``execnet.gateway`` of the alias: the Gateway class and execnet's helpers for
``remote_exec`` of functions (ours check with ``ast`` and the compiler, see
``execnet_cli/source.py``)."""

from __future__ import annotations

import types
from typing import Any, Callable, List

from execnet_cli._remote.channel import Channel
from execnet_cli.compat.wire import IO, Message
from execnet_cli.gateway import Gateway, RemoteStatus, RInfo
from execnet_cli.parsing import parse
from execnet_cli.source import non_builtin_globals, prepare_request
from execnet_cli.spec import XSpec

from .multi import Group


def rinfo_source(channel) -> None:  # type: ignore[no-untyped-def]
    """What ``Gateway._rinfo()`` asks a worker (ours comes with its ready message).

    Self-contained, parameter unannotated: its source runs elsewhere on its own."""
    import os
    import sys

    channel.send(
        dict(
            executable=sys.executable,
            version_info=tuple(sys.version_info),
            platform=sys.platform,
            cwd=os.getcwd(),
            pid=os.getpid(),
        )
    )


def _find_non_builtin_globals(source: str, codeobj: types.CodeType) -> List[str]:
    """The global names ``source`` (the code of ``codeobj``) reads that are not builtins."""
    return sorted(non_builtin_globals(parse(source), codeobj))


def _source_of_function(function: Callable[..., Any]) -> str:
    """The source ``remote_exec(function)`` sends; ValueError for what cannot travel."""
    if not isinstance(function, types.FunctionType):
        raise ValueError(f"{function!r} is not a function")
    return prepare_request(function, {})[0]


__all__ = [
    "IO",
    "Channel",
    "Gateway",
    "Group",
    "Message",
    "RInfo",
    "RemoteStatus",
    "XSpec",
    "rinfo_source",
]
