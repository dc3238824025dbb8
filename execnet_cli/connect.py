"""Opening a gateway for a spec: its kind's opener gives a transport, the gateway waits for
the worker on it.

The openers live with their transports and are found through
``transports.opening.opener_for``; this module knows none of them.
"""

from __future__ import annotations

from .errors import SpecError
from .gateway import Gateway, start_gateway, worker_config
from .spec import XSpec
from .transports.cancel import watch
from .transports.descriptors import exhausted, make_room
from .transports.opening import OpenContext, opener_for


def open_gateway(spec: XSpec, remote_execmodel: str, context: OpenContext) -> Gateway:
    """Open a gateway of the kind ``spec`` names (``context``: via= ids, fork servers)."""
    fields = spec.fields
    if fields.kind is None:
        raise SpecError(f"{fields.where} names no transport (popen, ssh or socket)")
    opener = opener_for(fields.kind, fields)
    make_room()
    try:
        with context.scope.opening():  # Group.terminate cuts it short (transports.cancel)
            transport = opener(fields, worker_config(spec, remote_execmodel), context)
            watch(transport)  # a worker that never says ready
            return start_gateway(transport, spec, remote_execmodel)
    except Exception as exc:  # our errors keep the OSError they come from as their cause
        clear = exhausted(exc)
        if clear is None:
            raise
        raise clear from exc
