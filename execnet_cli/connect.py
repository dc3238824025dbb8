"""Opening a gateway for a spec: pick the transport, start it, bootstrap the worker.

Each transport module only knows how to reach the far side and run the stage-1
command there; this module joins that to ``gateway.start_gateway``.
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

from . import bootstrap
from .errors import GatewayError, SpecError
from .gateway import Gateway, connect_timeout, start_gateway
from .spec import XSpec


def open_gateway(spec: XSpec, remote_execmodel: str, group: Any = None) -> Gateway:
    """Open a gateway of the kind ``spec`` names (``group`` resolves ``via=`` ids)."""
    kind = spec.transport
    if kind is None:
        raise SpecError(f"spec {str(spec)!r} names no transport (popen, ssh or socket)")
    if kind == "popen":
        if spec.via:
            return open_popen_via(spec, remote_execmodel, via_gateway(spec, group))
        return open_popen(spec, remote_execmodel)
    raise GatewayError(f"spec {str(spec)!r}: the {kind} transport is not available yet")


def via_gateway(spec: XSpec, group: Any) -> Gateway:
    """The existing gateway that ``via=ID`` names, from the same group."""
    via = spec.via
    if not isinstance(via, str) or group is None:
        raise SpecError(f"spec {str(spec)!r}: via= needs the id of a gateway in the same group")
    try:
        return group[via]
    except KeyError:
        known = ", ".join(gw.id for gw in group) or "none"
        raise SpecError(
            f"spec {str(spec)!r}: via={via!r} names no gateway of this group (it has: {known})"
        ) from None


def _same_minor_python(info: Any) -> bool:
    """Can code objects compiled here run there? (same minor version, final releases)"""
    theirs = tuple(getattr(info, "version_info", ()))
    return (
        len(theirs) >= 4
        and theirs[:2] == tuple(sys.version_info[:2])
        and theirs[3] == "final"
        and sys.version_info.releaselevel == "final"
    )


def open_popen_via(spec: XSpec, remote_execmodel: str, via: Gateway) -> Gateway:
    """Start a worker on the via gateway's host, its bytes relayed over a channel."""
    from .transports.via import open_via_process

    check_nice(spec)
    info = via._rinfo()
    python = spec.python if isinstance(spec.python, str) else info.executable
    transport = open_via_process(via, bootstrap.stage1_argv(python), connect_timeout(spec))
    same = python == info.executable and _same_minor_python(info)
    return start_gateway(transport, spec, remote_execmodel, same)


def check_nice(spec: XSpec) -> None:
    if isinstance(spec.nice, str):
        try:
            int(spec.nice)
        except ValueError:
            raise SpecError(f"spec {str(spec)!r}: nice={spec.nice!r} is not an integer") from None


def open_popen(spec: XSpec, remote_execmodel: str) -> Gateway:
    """Start a local worker interpreter for ``spec``."""
    from .transports.popen import PopenTransport, popen_environment

    check_nice(spec)
    python = spec.python if isinstance(spec.python, str) else sys.executable
    resolved = shutil.which(python) or python
    transport = PopenTransport(bootstrap.stage1_argv(resolved), popen_environment(spec.env))
    return start_gateway(transport, spec, remote_execmodel, bootstrap.same_interpreter(resolved))
