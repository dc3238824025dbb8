"""``xnet serve``: an authenticated socket gateway server (see docs/socket.md).

Clients connect with ``makegateway("socket=HOST:PORT")``. Every client must prove it
knows the shared secret before anything of its runs; each good client gets a fresh
worker process that talks to it directly over the connection.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
from typing import Any, Dict, Optional

import click

from .. import bootstrap
from .._remote.sockets import HANDSHAKE_TIMEOUT, SocketServer, bind_listener
from ..transports.sockets import SecretError, format_hostport, load_secret, parse_hostport
from .options import fail

DEFAULT_LISTEN = "127.0.0.1:8888"


def _note(message: str) -> None:
    click.echo(f"xnet serve: {message}", err=True)


def is_loopback(host: str) -> bool:
    """True if every address ``host`` names is a loopback address."""
    try:
        infos = socket.getaddrinfo(host or None, 0, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except OSError:
        return False
    return all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


@click.command()
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Address to listen on; port 0 picks a free port. Anything but loopback must "
    "be asked for here, and the stream is not encrypted: use ssh across untrusted networks.",
)
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="File with the shared secret (mode 0600, ours). Default: $XNET_SECRET, else "
    "~/.config/xnet/secret (created if missing).",
)
@click.option(
    "--handshake-timeout",
    type=click.FloatRange(min=0.01),
    default=HANDSHAKE_TIMEOUT,
    show_default=True,
    help="Seconds a client has to authenticate before it is dropped.",
)
def serve(listen: str, secret_file: Optional[str], handshake_timeout: float) -> None:
    """Serve socket gateways to clients that know the shared secret.

    Each authenticated client gets a fresh Python worker. Stop with Ctrl-C or SIGTERM:
    the workers still running are ended.
    """
    try:
        host, port = parse_hostport(listen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None
    loopback = is_loopback(host)
    source = click.get_current_context().get_parameter_source("listen")
    if not loopback and source is not click.core.ParameterSource.COMMANDLINE:
        fail(f"refusing to listen on {listen}, not a loopback address, unless --listen says so")
    try:
        secret, origin, created = load_secret(secret_file, create=True)
    except SecretError as exc:
        fail(str(exc))
    if created:
        _note(f"created a new secret in {origin}; clients need a copy of it (mode 0600)")
    else:
        _note(f"using the secret from {origin}")
    if not loopback:
        _note(
            f"warning: listening on {listen}, reachable from other machines. The handshake "
            "keeps out clients without the secret, but the stream is not encrypted: use "
            "ssh across networks you do not trust"
        )
    try:
        listener = bind_listener(host, port)
    except OSError as exc:
        fail(f"cannot listen on {listen}: {exc.strerror or exc}")
    server = SocketServer(listener, secret, bootstrap.STAGE1, handshake_timeout=handshake_timeout)
    previous = _install_stop_handlers(server)
    try:
        bound_host, bound_port = server.address
        click.echo(f"xnet serve: listening on {format_hostport(bound_host, bound_port)}")
        sys.stdout.flush()
        server.serve_forever()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _note(f"stopped ({server.accepted} clients served, {server.refused} refused)")


def _install_stop_handlers(server: SocketServer) -> Dict[int, Any]:
    """SIGINT and SIGTERM stop the server cleanly (it ends and reaps its workers)."""

    def stop(signum: int, frame: Any) -> None:
        server.request_stop()

    previous: Dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, stop)
    return previous
