"""Opening a gateway for a spec: its kind's opener gives a transport, the gateway waits for
the worker on it.

The openers live with their transports and are found through
``transports.opening.opener_for``; this module knows none of them.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional

from .errors import GatewayError, RemoteError, SpecError
from .errors import TimeoutError as XnetTimeoutError
from .gateway import Gateway, start_gateway, worker_config
from .imports import ImportPolicy, serve_imports
from .spec import XSpec
from .transports.cancel import watch
from .transports.descriptors import exhausted, make_room
from .transports.opening import OpenContext, opener_for


def open_gateway(
    spec: XSpec,
    remote_execmodel: str,
    context: OpenContext,
    before_ready: Optional[Callable[[Gateway], Any]] = None,
) -> Gateway:
    """Open a gateway of the kind ``spec`` names (``context``: via= ids, fork servers;
    ``before_ready``: see ``gateway.start_gateway``)."""
    fields = spec.fields
    if fields.kind is None:
        raise SpecError(f"{fields.where} names no transport (popen, ssh or socket)")
    opener = opener_for(fields.kind, fields)
    make_room()
    try:
        with context.scope.opening():  # Group.terminate cuts it short (transports.cancel)
            transport = opener(fields, worker_config(spec, remote_execmodel), context)
            watch(transport)  # a worker that never says ready
            gateway = start_gateway(transport, spec, remote_execmodel, before_ready)
    except Exception as exc:  # our errors keep the OSError they come from as their cause
        clear = exhausted(exc)
        if clear is None:
            raise
        raise clear from exc
    if fields.forward_imports is not None:
        _forward_imports(gateway, fields.forward_imports)
    return gateway


def _forward_imports(gateway: Gateway, roots: tuple[str, ...]) -> None:
    """The spec's ``forward_imports``: serve the worker's missing imports from ``roots``
    (none given: the main script's directory, as ``sys.path[0]`` names it)."""
    try:
        policy = ImportPolicy.from_directories(roots or [sys.path[0] or os.getcwd()])
    except ValueError as exc:
        gateway.exit()
        raise SpecError(f"spec {gateway.spec}: forward_imports: {exc}") from exc
    try:
        serve_imports(gateway, policy)
    except (RemoteError, EOFError, OSError, XnetTimeoutError) as exc:
        gateway.exit()
        raise GatewayError(f"gateway {gateway.id!r}: cannot forward imports: {exc}") from exc
