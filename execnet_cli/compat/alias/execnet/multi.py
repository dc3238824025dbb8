"""``execnet.multi`` of the alias: groups, multi-channels and ``safe_terminate``."""

from __future__ import annotations

import sys
from typing import Any, Sequence, Union

from execnet_cli._remote.channel import NO_ENDMARKER_WANTED, Channel
from execnet_cli._remote.execmodel import ExecModel, get_execmodel
from execnet_cli.compat.tracing import trace
from execnet_cli.compat.workerpool import WorkerPool, safe_terminate
from execnet_cli.group import Group as _Group
from execnet_cli.group import MultiChannel, default_group, makegateway, set_execmodel
from execnet_cli.spec import XSpec

#: What a pytest-xdist worker imports first thing (``xdist.remote``): its fork server
#: imports it once, so each worker starts with it imported (~150-200 ms of CPU saved per
#: worker here). Only the controller's own files are preloaded (see set_forkserver_preload).
XDIST_WORKER_PRELOAD = ("pytest",)


class _GroupType(type):
    """Every execnet_cli Group (``default_group`` too) is an ``execnet.Group``."""

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, _Group)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, _Group)


class Group(_Group, metaclass=_GroupType):
    """execnet_cli's Group; in a pytest-xdist controller its workers start with pytest
    imported (the fork server preloads it)."""

    def __init__(self, xspecs: Sequence[Union[str, XSpec]] = (), execmodel: str = "thread") -> None:
        super().__init__((), execmodel)
        if "xdist.workermanage" in sys.modules:
            self.set_forkserver_preload(XDIST_WORKER_PRELOAD)
        for xspec in xspecs:
            self.makegateway(xspec)


__all__ = [
    "NO_ENDMARKER_WANTED",
    "Channel",
    "ExecModel",
    "Group",
    "MultiChannel",
    "WorkerPool",
    "default_group",
    "get_execmodel",
    "makegateway",
    "safe_terminate",
    "set_execmodel",
    "trace",
]
