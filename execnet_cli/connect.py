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
from .gateway import Gateway, start_gateway
from .spec import XSpec


def open_gateway(spec: XSpec, remote_execmodel: str, group: Any = None) -> Gateway:
    """Open a gateway of the kind ``spec`` names (``group`` resolves ``via=`` ids)."""
    kind = spec.transport
    if kind is None:
        raise SpecError(f"spec {str(spec)!r} names no transport (popen, ssh or socket)")
    if kind == "popen":
        return open_popen(spec, remote_execmodel)
    raise GatewayError(f"spec {str(spec)!r}: the {kind} transport is not available yet")


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
