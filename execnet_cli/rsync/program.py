"""Starting the remote half of rsync in a gateway.

The remote half is ``_remote/rsync`` and its ``rsync_*`` siblings: too much for one module,
and not part of every worker's bootstrap (most gateways never sync). ``Gateway.
remote_modules`` makes them importable in the worker, once per gateway; each sync then
runs ``rsync.serve`` on a new channel.
"""

from __future__ import annotations

import threading
from typing import Any

from .._remote.channel import Channel

__all__ = ["start"]

#: ``remote_modules`` finds siblings with ``ast.parse``, which CPython 3.11 cannot run in
#: several threads at once ("AST constructor recursion depth mismatch"); pulls start in a
#: pool, so their starts take turns here.
_STARTING = threading.Lock()


def start(gateway: Any) -> Channel:
    """A channel to a fresh remote half in ``gateway``, waiting for its first item."""
    with _STARTING:
        package = gateway.remote_modules("rsync")
    channel: Channel = gateway.remote_exec(f"from {package} import rsync\nrsync.serve(channel)\n")
    return channel
