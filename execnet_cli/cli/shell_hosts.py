"""Which hosts ``xnet shell HOST`` means, and opening their gateways.

HOST is what ``xnet run -H`` takes (``cli.selection``): an inventory pattern (``-i`` as
everywhere; the embedded default without one, so ``xnet shell localhost`` works on a fresh
machine), or an address-like ad-hoc ``[user@]host[:port]`` reached over ssh (a bare word
must be an inventory name: an unknown one is a typo). ``open_gateway`` is the one place
the shell turns a ``Host`` into a gateway. Unknown host keys are asked about as ``xnet run``
asks (``fleet.hostkeys``): all of a round's at once, then the hosts that met them again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import ConnectFailed
from ..fleet.events import ERROR, UNREACHABLE, Event, Failed, Running
from ..fleet.hostkeys import Decide, HostKeyRounds, NewKey
from ..fleet.runner import CONNECTION_ERRORS, carriers_for
from ..gateway import Gateway
from ..group import Group
from ..inventory import Host, Inventory
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
    opened = Opened()

    def opening(some: Sequence[Host]) -> _Opening:
        return _Opening(group, inventory, some, fanout, opened.gateways)

    with HostKeyRounds(list(hosts), decide, opening, refused=opened.refused) as rounds:
        for event in rounds.events():
            if isinstance(event, Failed):
                lines = opened.unreachable if event.status == UNREACHABLE else opened.errors
                lines[event.host] = event.error
    return opened


class _Opening:
    """One round of opening ``hosts`` into ``group``, run by ``HostKeyRounds`` as it runs a
    ``Runner``: the gateways go to ``gateways``; ``Running`` or ``Failed`` ends each host."""

    def __init__(
        self,
        group: Group,
        inventory: Inventory,
        hosts: Sequence[Host],
        fanout: int,
        gateways: dict[str, Gateway],
    ) -> None:
        self.group = group
        self.inventory = inventory
        self.hosts = list(hosts)
        self.fanout = fanout
        self.gateways = gateways
        self.open_errors: dict[str, BaseException] = {}  # why a host did not open
        self._failed: dict[str, Failed] = {}  # its end (carriers not selected too)

    def events(self) -> Iterator[Event]:
        self._open()
        for host in self.hosts:
            yield Running(host.name) if host.name in self.gateways else self._failed[host.name]

    def stop(self) -> None:
        """Opening is not cut short: a session starts with the hosts that opened."""

    def close(self) -> None:
        """The gateways stay: they are the session's (``group`` ends them)."""

    def _open(self) -> None:
        hosts, inventory, group = self.hosts, self.inventory, self.group
        with user_errors():
            carriers = carriers_for(hosts, inventory.host)
        for carrier in sorted(carriers, key=lambda h: _depth(h, inventory)):
            if carrier.name not in group:
                self._open_one(carrier)
        todo = [h for h in hosts if h.name not in self._failed and h.name not in self.gateways]
        if not todo:
            return
        workers = min(self.fanout, len(todo))
        with ThreadPoolExecutor(workers, thread_name_prefix="xnet-shell-open") as pool:
            for host in todo:
                pool.submit(self._open_one, host)
        selected = {h.name for h in hosts}
        for carrier in carriers:  # carriers not selected themselves are not shell hosts
            if carrier.name not in selected:
                self.gateways.pop(carrier.name, None)

    def _open_one(self, host: Host) -> None:
        start = time.monotonic()
        if host.via and host.via in self._failed:
            error = ConnectFailed(f"via {host.via}: unreachable")
            error.__cause__ = self.open_errors.get(host.via)  # an unknown key, say: asked about
            self.open_errors[host.name] = error
            self._failed[host.name] = Failed(host.name, UNREACHABLE, str(error), 0.0)
            return
        try:
            group = self.group
            gateway = group[host.name] if host.name in group else open_gateway(group, host)
        except CONNECTION_ERRORS as exc:
            self.open_errors[host.name] = exc
            self._fail(host, UNREACHABLE, exc, start)
        except Exception as exc:
            self._fail(host, ERROR, exc, start)
        else:
            self.gateways[host.name] = gateway

    def _fail(self, host: Host, status: str, exc: BaseException, start: float) -> None:
        duration = time.monotonic() - start
        self._failed[host.name] = Failed(host.name, status, _one_line(exc), duration)


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
