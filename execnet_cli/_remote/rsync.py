"""The remote half of rsync: started in a worker by ``execnet_cli.rsync.program``.

Standard library only, Python 3.8 syntax: it runs in whatever interpreter the far side
has. The worker receives this module and its siblings (``rsync_tree``, ``rsync_delta``,
``rsync_recv``, ``rsync_send``) as source and runs ``serve(channel)``. The first item
says which half this side plays:

    ("rsync", 2, "push", destdir, options)   receive into destdir (``rsync_recv``)
    ("rsync", 2, "pull", srcdir, options)    send srcdir to the controller (``rsync_send``)

The conversation, sender S and receiver R (items are tuples; indexes count manifest
entries from 0; every message is bounded in size):

    S -> R                                   R -> S
    ("entries", packed entries)  (batches)     ("sig", index, block, old size, weak, strong)
                                             ("need", packed [(index, how, arg)], [made],
                                                      entries decided)  per batch
    ("end_entries", count)                   ("deleted", [relpath])  (with "delete")
                                             ("need_end", count of needs to answer)
    answers, in need order:
      ("batch", [(index, data)])  data: bytes (the whole file), None (same content:
                                  set mode and mtime), str (not sent: why)
      ("file", index) ("chunk", bytes)* ("eof", size or None: changed while read)
      ("delta", index) ("ops", [op])* ("eof", literal bytes or None)
        op: (first block, count) copies old blocks, bytes are literal data
                                             ("ack", weight, files answered)
                                             ("errors", [(relpath, reason)])  any time
    ("finish",)                              ("done", stats)

An entry is ``(relpath, kind, size, mtime_ns, mode, link_target)``, packed in batches
(``rsync_tree.pack_entries``); kind is "d", "f" or "l"; relpath "" is the root (destdir
itself), others are "/"-joined names whose parent is a directory entry sent before them.
A need's ``how``: "new" (send it whole), "sum" (arg: R's sha256; "same" if S's agrees),
"delta" (its signature was sent before), "list" (dry run: only reported; arg: R's sha256
or None). "made" are entries R created or fixed without data (directories, links,
modes). S keeps at most a window of bytes unacknowledged per receiver; "ack" carries the
flow-control weight (``rsync_tree.credit``) of what R has consumed.
"""

from __future__ import annotations

from .rsync_recv import Receiver
from .rsync_send import Sender, Target
from .rsync_tree import PROTOCOL, Excludes, RsyncProtocolError, Tree

__all__ = ["PROTOCOL", "serve"]


def serve(channel):
    """Play the half the first item asks for, to the end of the sync."""
    first = channel.receive()
    if not (isinstance(first, tuple) and len(first) == 5 and first[0] == "rsync"):
        raise RsyncProtocolError(f"not an rsync request: {first!r:.200}")
    _, version, role, path, options = first
    if version != PROTOCOL:
        raise RsyncProtocolError(f"rsync protocol {version!r}, this side speaks {PROTOCOL}")
    if not isinstance(path, str) or not path or not isinstance(options, dict):
        raise RsyncProtocolError(f"bad path {path!r:.200} or options {options!r:.200}")
    if role == "push":
        Receiver(channel, path, options).run()
    elif role == "pull":
        import os

        tree = Tree(os.path.expanduser(path), Excludes(options.get("excludes") or ()))
        Sender(tree, [Target(channel)]).run()
    else:
        raise RsyncProtocolError(f"unknown role {role!r:.50}")
