"""Starting the remote half of rsync in a gateway.

The remote half is ``_remote/rsync`` and its ``rsync_*`` siblings: too much for one module,
and not part of every worker's bootstrap (most gateways never sync). ``Gateway.
remote_modules`` makes them importable in the worker, once per gateway; each sync then
runs ``rsync.serve`` on a new channel.
"""

from __future__ import annotations

from typing import Any

from .._remote.channel import Channel

__all__ = ["start"]


def start(gateway: Any) -> Channel:
    """A channel to a fresh remote half in ``gateway``, waiting for its first item."""
    package = gateway.remote_modules("rsync")
    channel: Channel = gateway.remote_exec(f"from {package} import rsync\nrsync.serve(channel)\n")
    return channel
