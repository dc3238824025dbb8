"""Opening a gateway for a spec: pick the transport, start it, bootstrap the worker.

Each transport module only knows how to reach the far side and run the stage-1
command there; this module joins that to ``gateway.start_gateway``.
"""

from __future__ import annotations

import logging
import shutil
import sys
from typing import Any, Optional

from . import bootstrap
from .errors import AuthenticationFailed, GatewayError, SpecError
from .gateway import Gateway, adopt_gateway, connect_timeout, start_gateway, worker_config
from .spec import XSpec

log = logging.getLogger("execnet_cli.connect")


def open_gateway(spec: XSpec, remote_execmodel: str, group: Any = None) -> Gateway:
    """Open a gateway of the kind ``spec`` names (``group`` resolves ``via=`` ids)."""
    kind = spec.transport
    if kind is None:
        raise SpecError(f"spec {str(spec)!r} names no transport (popen, ssh or socket)")
    if kind == "popen":
        if spec.via:
            return open_popen_via(spec, remote_execmodel, via_gateway(spec, group))
        return open_popen(spec, remote_execmodel, group)
    if kind == "socket":
        return open_socket(spec, remote_execmodel, group)
    if kind == "ssh":
        return open_ssh(spec, remote_execmodel, group)
    raise GatewayError(f"spec {str(spec)!r}: the {kind} transport is not available yet")


def via_gateway(spec: XSpec, group: Any) -> Gateway:
    """The existing gateway that ``via=ID`` names, from the same group."""
    return group_gateway(spec, group, "via")


def group_gateway(spec: XSpec, group: Any, key: str) -> Gateway:
    """The gateway of ``group`` whose id the spec's ``key`` (via, installvia) names."""
    gwid = getattr(spec, key)
    if not isinstance(gwid, str) or group is None:
        raise SpecError(f"spec {str(spec)!r}: {key}= needs the id of a gateway in the same group")
    try:
        return group[gwid]
    except KeyError:
        known = ", ".join(gw.id for gw in group) or "none"
        raise SpecError(
            f"spec {str(spec)!r}: {key}={gwid!r} names no gateway of this group (it has: {known})"
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
    from .transports.sudo import sudo_user
    from .transports.via import open_via_process

    check_nice(spec)
    if sudo_user(spec.sudo, f"spec {str(spec)!r}") is not None:
        raise SpecError(f"spec {str(spec)!r}: sudo= is not supported with popen via= (yet)")
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


def open_popen(spec: XSpec, remote_execmodel: str, group: Any = None) -> Gateway:
    """A local worker for ``spec``: forked from the group's fork server where it can be,
    else a new interpreter (see ``transports.forkserver`` for when forking applies)."""
    from .transports.popen import PopenTransport, popen_environment
    from .transports.sudo import sudo_user

    check_nice(spec)
    user = sudo_user(spec.sudo, f"spec {str(spec)!r}")
    if user is not None:
        return _open_sudo(spec, remote_execmodel, user)
    python = spec.python if isinstance(spec.python, str) else sys.executable
    resolved = shutil.which(python) or python
    same = bootstrap.same_interpreter(resolved)
    if same and group is not None and not spec.spawn:
        gateway = _open_forked(spec, remote_execmodel, group, resolved)
        if gateway is not None:
            return gateway
    transport = PopenTransport(bootstrap.stage1_argv(resolved), popen_environment(spec.env))
    return start_gateway(transport, spec, remote_execmodel, same)


def _open_sudo(spec: XSpec, remote_execmodel: str, user: str) -> Gateway:
    """A new interpreter run as ``user`` through sudo (never forked: the server is us)."""
    from .transports import sudo
    from .transports.popen import popen_environment

    pythons = [spec.python] if isinstance(spec.python, str) else [sys.executable, "python3"]
    where = f"spec {str(spec)!r}"
    target = sudo.probe(user, pythons, connect_timeout(spec), where)
    transport = sudo.SudoPopenTransport(target, popen_environment(spec.env))
    config = worker_config(spec, remote_execmodel)
    config["chdir"] = sudo.worker_chdir(config["chdir"], target)
    same = bootstrap.same_interpreter(target.python)
    gateway = start_gateway(transport, spec, remote_execmodel, same, config)
    transport.remote_pid = getattr(gateway._rinfo(), "pid", None)  # from the ready message
    return gateway


def _open_forked(spec: XSpec, remote_execmodel: str, group: Any, python: str) -> Optional[Gateway]:
    """A worker forked from ``group``'s fork server, or None where forking does not apply."""
    from .transports import forkserver

    if not forkserver.forking_supported():
        return None
    config = worker_config(spec, remote_execmodel)
    try:
        transport = group._fork_servers().fork(python, config, spec.env)
    except forkserver.ForkUnavailable as exc:
        log.debug("gateway %s: starting an interpreter, not forking: %s", spec.id, exc)
        return None
    return adopt_gateway(transport, spec, remote_execmodel)


def open_socket(spec: XSpec, remote_execmodel: str, group: Any = None) -> Gateway:
    """Connect to an authenticated socket server; with ``installvia=ID`` start it first.

    ``installvia`` starts a one-client server inside gateway ``ID`` with a fresh secret
    only we know (no secret file needed); closing the gateway stops that server.
    """
    from .transports import sockets

    where = f"spec {str(spec)!r}"
    for key in ("python", "via", "sudo"):
        if getattr(spec, key):
            raise SpecError(f"{where}: {key}= is not supported with socket= (the server decides)")
    address = "127.0.0.1:0" if spec.socket is True else str(spec.socket)
    try:
        host, port = sockets.parse_hostport(address)
    except ValueError as exc:
        raise SpecError(f"{where}: socket= {exc}") from None
    timeout = sockets.CONNECT_TIMEOUT if spec.connect_timeout is None else connect_timeout(spec)
    if spec.installvia:
        if spec.secret_file:
            raise SpecError(f"{where}: secret_file= has no use with installvia= (fresh secret)")
        carrier = group_gateway(spec, group, "installvia")
        secret = sockets.one_time_secret()
        control, bound, port = sockets.install_server(
            carrier, host, port, secret, bootstrap.STAGE1, timeout, where
        )
        transport = sockets.connect(
            sockets.connect_host(bound), port, secret, timeout, where, "a one-time secret", control
        )
    else:
        if port == 0:
            raise SpecError(f"{where}: socket= needs a port (0 only with installvia=)")
        secret_file = spec.secret_file if isinstance(spec.secret_file, str) else None
        try:
            secret, origin, _ = sockets.load_secret(secret_file)
        except sockets.SecretError as exc:
            raise AuthenticationFailed(f"{where}: {exc}") from exc
        transport = sockets.connect(host, port, secret, timeout, where, origin)
    return start_gateway(transport, spec, remote_execmodel, transport.same_python)


def open_ssh(spec: XSpec, remote_execmodel: str, group: Any = None) -> Gateway:
    """Start a worker over ssh; a worker that dies at once is explained with its stderr.

    With ``via=ID``, the TCP connection to the ssh server is made from that gateway's
    host (a tunnel over one of its channels): keys and known hosts stay local, the
    bastion needs only Python, as with OpenSSH's ProxyJump.
    """
    from .errors import BootstrapError
    from .transports.ssh.settings import settings_for
    from .transports.ssh.transport import bootstrap_failure, open_ssh_transport

    opener = None
    if spec.via:
        from .transports.via import open_via_tcp

        carrier = via_gateway(spec, group)

        def opener(host: str, port: int, timeout: float) -> Any:
            return open_via_tcp(carrier, host, port, timeout)

    if not isinstance(spec.ssh, str):
        raise SpecError(f"spec {str(spec)!r}: ssh= needs a host ([user@]host[:port])")
    check_nice(spec)
    config = spec.ssh_config if isinstance(spec.ssh_config, str) else None
    settings = settings_for(spec.ssh, config)
    python = spec.python if isinstance(spec.python, str) else "python3"
    timeout = None if spec.connect_timeout is None else connect_timeout(spec)
    transport = open_ssh_transport(settings, python, spec.sudo, timeout, opener)
    try:
        gateway = start_gateway(transport, spec, remote_execmodel, False)
    except BootstrapError as exc:
        raise bootstrap_failure(transport, exc) from exc
    transport.remote_pid = getattr(gateway._rinfo(), "pid", None)  # from the ready message
    return gateway
