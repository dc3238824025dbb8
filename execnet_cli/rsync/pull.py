"""Pulling a tree from one gateway: the worker sends, this process receives.

The receiving half is the very code a worker runs for a push (``_remote/rsync_recv``),
here in the controller; the worker runs the sending half (``_remote/rsync_send``) over
its tree. Files are checked, written and deleted here exactly as a push does remotely.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Optional

from .._remote.rsync_recv import Receiver
from .._remote.rsync_tree import PROTOCOL
from . import program
from .excludes import Rule
from .results import SyncResult, error_line

__all__ = ["pull"]

#: How long the worker is given to end once this side is done.
CLOSE_WAIT = 10.0


def pull(
    gateway: Any,
    source: str,
    dest: str,
    *,
    delete: bool = False,
    checksum: bool = False,
    dry_run: bool = False,
    delta: bool = True,
    excludes: Sequence[Rule] = (),
    into: Optional[str] = None,
    name: str = "",
    receiver_ready: Any = None,
) -> SyncResult:
    """Copy ``source`` (a path on the gateway's side) to the local ``dest``.

    A single-file source lands at ``dest`` itself, or at ``dest/into`` when ``into`` is
    given. Failures are in the result (``ok`` false, ``error`` one line), never raised.
    ``receiver_ready(receiver)`` is called before the sync starts (progress displays).
    """
    start = time.monotonic()
    options = {
        "delete": delete,
        "checksum": checksum,
        "dry_run": dry_run,
        "delta": delta,
        "excludes": list(excludes),
        "into": into,
    }
    channel = program.start(gateway)
    receiver = Receiver(channel, dest, options)
    if receiver_ready is not None:
        receiver_ready(receiver)
    error = detail = None
    try:
        channel.send(("rsync", PROTOCOL, "pull", source, {"excludes": list(excludes)}))
        receiver.run()
        channel.waitclose(CLOSE_WAIT)
    except Exception as exc:  # the far side's error, a broken protocol, a local OSError
        error, detail = error_line(exc), str(exc).strip() or None
    finally:
        if not channel.isclosed():
            channel.close()
    return SyncResult.of_receiver(
        receiver, name, receiver.root, time.monotonic() - start, error, detail
    )
