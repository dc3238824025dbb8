"""Begin the TCP connections of a run's first hosts while the CLI is still starting.

``transports.ssh.early`` makes the connections; this picks the hosts it may make them
for: ssh hosts this process opens itself over a plain TCP connection to their address,
as far as can be told without reading ssh config through paramiko (whose import is
what the connections overlap). A host with ``via``, ``proxy_jump``, a relay, or an ssh
option, or a config file naming any keyword that could send it elsewhere (HostName,
Port, ProxyCommand, ProxyJump, Match, ...) is left to connect when its turn comes; so is
every host past the first ``fanout`` (the pool opens those first). A connection begun
for a destination the host does not end up at is never used, and is closed at the end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ..inventory import Host
from ..transports.ssh import early
from ..transports.ssh.config import load_config_text
from ..transports.ssh.connect import DEFAULT_CONNECT_TIMEOUT, HANDSHAKES_PER_SERVER

__all__ = ["DESTINATION_KEYS", "ENABLED", "destinations", "preconnected"]

#: Off: every host connects when its turn comes (to compare).
ENABLED = True
#: ssh options that may change where (or through what) a connection goes.
DESTINATION_KEYS = frozenset(
    (
        "hostname",
        "port",
        "proxycommand",
        "proxyjump",
        "match",
        "include",
        "canonicalizehostname",
        "addressfamily",
        "bindaddress",
        "bindinterface",
        "connecttimeout",
    )
)
_KEYWORD = re.compile(r"^\s*([A-Za-z]+)", re.MULTILINE)


def destinations(hosts: Sequence[Host], fanout: int) -> list[tuple[str, int, float]]:
    """(address, port, connect timeout) of the first ``fanout`` hosts that connect over
    plain TCP from here."""
    found: list[tuple[str, int, float]] = []
    for host in hosts[:fanout]:
        if host.transport != "ssh" or host.via or host.relay or host.proxy_jump:
            continue
        if any(key in DESTINATION_KEYS for key, _ in host.ssh_options):
            continue
        timeout = float(host.connect_timeout or DEFAULT_CONNECT_TIMEOUT)
        found.append((host.address, host.port or 22, timeout))
    return found if found and _plain_config() else []


def _plain_config() -> bool:
    """Whether the ssh config files inventory hosts read (the user's, the system's) name
    no keyword in ``DESTINATION_KEYS``."""
    try:
        text = load_config_text(None)
    except Exception:  # its reading fails later, where it is reported
        return False
    return not any(k.lower() in DESTINATION_KEYS for k in _KEYWORD.findall(text))


@contextmanager
def preconnected(hosts: Sequence[Host], fanout: int) -> Iterator[int]:
    """While the block runs, connections begun for ``hosts`` wait to be taken; at its end
    the ones not taken are closed. Yields how many were begun."""
    begun = early.begin(destinations(hosts, fanout), HANDSHAKES_PER_SERVER) if ENABLED else 0
    try:
        yield begun
    finally:
        early.close_all()
