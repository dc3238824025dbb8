"""Hosts reached ``via=`` others: the carriers a selection needs, and how deep each host is.

A host with ``via=`` is opened through its carrier's gateway, which must be open first:
the runner opens carriers the selection does not include (``carriers_for``) and queues
every host by its depth in the chain (``_depth``), so a carrier's task always starts
before its dependents' (no pool deadlock).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..inventory import Host

__all__ = ["carriers_for"]


def carriers_for(hosts: Sequence[Host], lookup: Callable[[str], Host]) -> list[Host]:
    """The hosts that ``via`` chains need but ``hosts`` does not include."""
    have = {h.name for h in hosts}
    extra: list[Host] = []
    todo = [h.via for h in hosts if h.via]
    while todo:
        name = todo.pop()
        if name in have:
            continue
        have.add(name)
        carrier = lookup(name)
        extra.append(carrier)
        if carrier.via:
            todo.append(carrier.via)
    return extra


def _depth(host: Host, hosts: Mapping[str, Host]) -> int:
    depth, seen = 0, set()
    while host.via and host.via in hosts and host.name not in seen:
        seen.add(host.name)
        host = hosts[host.via]
        depth += 1
    return depth
