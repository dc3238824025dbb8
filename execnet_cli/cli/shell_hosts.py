"""Which hosts ``xnet shell HOST`` means, and opening their gateways.

HOST is what ``xnet run -H`` takes (``cli.selection``): an inventory pattern (``-i`` as
everywhere; the embedded default without one, so ``xnet shell localhost`` works on a fresh
machine), or an address-like ad-hoc ``[user@]host[:port]`` reached over ssh (a bare word
must be an inventory name: an unknown one is a typo). ``open_gateway`` is the one place
the shell turns a ``Host`` into a gateway. Unknown host keys are asked about as ``xnet run``
asks (``fleet.hostkeys``): all of a round's at once, then the hosts that met them again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import HostKeyError
from ..fleet.hostkeys import REFUSED, Decide, NewKey, new_keys, unknown_key
from ..fleet.runner import CONNECTION_ERRORS, carriers_for
from ..gateway import Gateway
from ..group import Group
from ..inventory import Host, Inventory
from ..transports.ssh.hostkeys import record_host_key
from .options import fail, select_hosts, user_errors

__all__ = ["Opened", "open_gateway", "open_hosts", "select"]


def select(inventories: Sequence[str], pattern: str) -> tuple[Inventory, list[Host]]:
    """The hosts ``pattern`` selects, as ``xnet run -H`` reads it (inventory patterns,
    address-like ad-hoc hosts, ``@FILE``, ``@failed``), except ``-``: standard input
    carries the statements."""
    if pattern == "-":
        fail("HOST '-' would read host names from standard input, which is for statements")
    return select_hosts(inventories, pattern)


def open_gateway(group: Group, host: Host) -> Gateway:
    """A gateway to ``host`` in ``group`` (which holds the carriers its ``via`` needs)."""
    return group.makegateway(host.spec())


@dataclass
class Opened:
    """What opening hosts gave: gateways by host, and a line per host that failed."""

    gateways: dict[str, Gateway] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # a bug of ours
    refused: list[NewKey] = field(default_factory=list)  # unknown host keys not accepted
    causes: dict[str, BaseException] = field(default_factory=dict)  # of ``unreachable``


def _refuse(keys: Sequence[NewKey]) -> bool:
    return False


def open_hosts(
    group: Group,
    inventory: Inventory,
    hosts: Iterable[Host],
    fanout: int,
    decide: Decide = _refuse,
) -> Opened:
    """Open every host's gateway concurrently (carriers of ``via`` first, one by one);
    the hosts that met unknown host keys again if ``decide`` accepts the keys."""
    hosts = list(hosts)
    opened = Opened()
    recorded: set[tuple[str, str]] = set()
    while True:
        _open_round(group, inventory, hosts, fanout, opened)
        waiting = {n: e for n, c in opened.causes.items() if (e := unknown_key(c)) is not None}
        keys = new_keys(waiting, [*waiting])
        if not keys:
            return opened
        if any((k.name, k.fingerprint) in recorded for k in keys) or not decide(keys):
            opened.refused += keys
            opened.unreachable.update((name, REFUSED) for name in waiting)
            return opened
        for key in keys:
            try:
                record_host_key(key.error.settings, key.error.key)  # type: ignore[arg-type]
            except HostKeyError as exc:  # changed meanwhile, or cannot be written
                opened.refused.append(key)
                opened.unreachable.update((name, _one_line(exc)) for name in key.hosts)
                return opened
            recorded.add((key.name, key.fingerprint))
        for name in [n for n in opened.unreachable if n not in opened.gateways]:
            del opened.unreachable[name]  # tried again, with the others that failed
            opened.causes.pop(name, None)


def _open_round(
    group: Group, inventory: Inventory, hosts: list[Host], fanout: int, opened: Opened
) -> None:
    with user_errors():
        carriers = carriers_for(hosts, inventory.host)
    for carrier in sorted(carriers, key=lambda h: _depth(h, inventory)):
        if carrier.name not in group:
            _open_one(group, carrier, opened)
    todo = [h for h in hosts if h.name not in opened.unreachable and h.name not in opened.gateways]
    if not todo:
        return
    with ThreadPoolExecutor(min(fanout, len(todo)), thread_name_prefix="xnet-shell-open") as pool:
        for host in todo:
            pool.submit(_open_one, group, host, opened)
    selected = {h.name for h in hosts}
    for carrier in carriers:  # carriers not selected themselves are not shell hosts
        if carrier.name not in selected:
            opened.gateways.pop(carrier.name, None)


def _open_one(group: Group, host: Host, opened: Opened) -> None:
    if host.via and host.via in opened.unreachable:
        opened.unreachable[host.name] = f"via {host.via}: unreachable"
        return
    try:
        gateway = group[host.name] if host.name in group else open_gateway(group, host)
    except CONNECTION_ERRORS as exc:
        opened.unreachable[host.name] = _one_line(exc)
        opened.causes[host.name] = exc
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
