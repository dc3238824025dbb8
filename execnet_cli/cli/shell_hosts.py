"""Which hosts ``xnet shell HOST`` means, and opening their gateways.

HOST is an inventory pattern (``-i`` as everywhere; the embedded default without one, so
``xnet shell localhost`` works on a fresh machine), or, when the inventory knows no such
host, an ad-hoc ``[user@]host[:port]`` reached over ssh. ``open_gateway`` is the one place
the shell turns a ``Host`` into a gateway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from ..fleet.runner import CONNECTION_ERRORS, carriers_for
from ..gateway import Gateway
from ..group import Group
from ..inventory import Host, Inventory, PatternError
from .options import fail, load_user_inventory, user_errors

__all__ = ["Opened", "adhoc_host", "open_gateway", "open_hosts", "select"]

_ADHOC = re.compile(
    r"(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9_.-]*)@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_][A-Za-z0-9_.-]*)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


def adhoc_host(text: str) -> Optional[Host]:
    """``[user@]host[:port]`` as an ssh ``Host`` named as written (two terms for one address,
    as another user or port, stay two hosts, and the name selects the same target again),
    or None."""
    match = _ADHOC.fullmatch(text)
    if match is None:
        return None
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        return None
    address = match["host"].strip("[]")
    return Host(name=text, transport="ssh", address=address, port=port, user=match["user"])


def select(inventories: Sequence[str], pattern: str) -> tuple[Inventory, list[Host]]:
    """The hosts ``pattern`` selects, or the ad-hoc host it names; a usage error otherwise."""
    with user_errors():
        inventory = load_user_inventory(inventories)
    try:
        hosts = inventory.hosts(pattern)
    except PatternError as exc:
        host = adhoc_host(pattern)
        if host is None or "unknown host" not in str(exc):
            fail(str(exc))
        return inventory, [host]
    if not hosts:
        fail(f"{pattern!r} selects no host")
    return inventory, hosts


def open_gateway(group: Group, host: Host) -> Gateway:
    """A gateway to ``host`` in ``group`` (which holds the carriers its ``via`` needs)."""
    return group.makegateway(host.spec())


@dataclass
class Opened:
    """What opening hosts gave: gateways by host, and a line per host that failed."""

    gateways: dict[str, Gateway] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # a bug of ours


def open_hosts(group: Group, inventory: Inventory, hosts: Iterable[Host], fanout: int) -> Opened:
    """Open every host's gateway concurrently (carriers of ``via`` first, one by one)."""
    hosts = list(hosts)
    opened = Opened()
    with user_errors():
        carriers = carriers_for(hosts, inventory.host)
    for carrier in sorted(carriers, key=lambda h: _depth(h, inventory)):
        if carrier.name not in group:
            _open_one(group, carrier, opened)
    todo = [h for h in hosts if h.name not in opened.unreachable]
    if not todo:
        return opened
    with ThreadPoolExecutor(min(fanout, len(todo)), thread_name_prefix="xnet-shell-open") as pool:
        for host in todo:
            pool.submit(_open_one, group, host, opened)
    selected = {h.name for h in hosts}
    for carrier in carriers:  # carriers not selected themselves are not shell hosts
        if carrier.name not in selected:
            opened.gateways.pop(carrier.name, None)
    return opened


def _open_one(group: Group, host: Host, opened: Opened) -> None:
    if host.via and host.via in opened.unreachable:
        opened.unreachable[host.name] = f"via {host.via}: unreachable"
        return
    try:
        gateway = group[host.name] if host.name in group else open_gateway(group, host)
    except CONNECTION_ERRORS as exc:
        opened.unreachable[host.name] = _one_line(exc)
    except Exception as exc:
        opened.errors[host.name] = _one_line(exc)
    else:
        opened.gateways[host.name] = gateway


def _depth(host: Host, inventory: Inventory) -> int:
    depth, seen = 0, set()
    while host.via and host.name not in seen:
        seen.add(host.name)
        host = inventory.host(host.via)
        depth += 1
    return depth


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[-1] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
