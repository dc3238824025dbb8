"""Unknown host keys met by a run: collected from every host, asked about once, then run.

Under OpenSSH's default policy (``StrictHostKeyChecking ask``) a host whose key no
known_hosts file lists fails to open at once with ``UnknownHostKey`` (nothing is sent to
it), and the other hosts run on. ``HostKeyRounds`` holds such hosts back (their end is not
reported yet) and, when the round is over, hands every unknown key once, with the hosts
waiting for it, to ``decide``: the CLI asks one question at a terminal, answers yes for
``--accept-new``, and no in a pipe. Accepted keys are recorded in known_hosts and their
hosts run in a next round of the same run; refused ones end unreachable, one line each.

Why a round and not a prompt per connection: many hosts meet their unknown keys at once,
from many threads; one list and one answer is what a person can check. A host behind a
jump host or a ``via`` carrier whose key is unknown waits for that key; the next round
may then meet the keys of the hosts behind it, and asks about those (and only those).
A key that differs from a recorded one is never held: it is refused as changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional, Protocol

from ..errors import HostKeyError, UnknownHostKey
from ..inventory import Host
from ..transports.ssh.hostkeys import record_host_key
from .events import UNREACHABLE, Event, Failed

__all__ = [
    "REFUSED",
    "Decide",
    "HostKeyRounds",
    "NewKey",
    "Round",
    "RoundFor",
    "unknown_key",
]


@dataclass(frozen=True)
class NewKey:
    """One unknown host key and the selected hosts that wait for it."""

    name: str  # as known_hosts writes it: host, or [host]:port
    key_type: str
    fingerprint: str  # SHA256:...
    hosts: tuple[str, ...]
    file: str  # where accepting records it
    error: UnknownHostKey = field(compare=False, repr=False)


#: ``Failed.error`` of a host whose key was refused: the same line for all (so a report
#: folds them into one block under their host set); the key is in ``detail``, and the
#: caller lists the keys once (``NewKey``).
REFUSED = "UnknownHostKey: host key not in known_hosts, not accepted"


#: Given the keys of one round, whether to record them all (True) or refuse them all.
Decide = Callable[[Sequence[NewKey]], bool]


def unknown_key(exc: Optional[BaseException]) -> Optional[UnknownHostKey]:
    """The ``UnknownHostKey`` one may ask about behind ``exc`` (it, or a cause), if any.

    A host ``via`` a carrier with an unknown key fails with a ``ConnectFailed`` caused by
    the carrier's error; a key refused under ``StrictHostKeyChecking yes`` is not asked about.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, UnknownHostKey):
            return exc if exc.askable else None
        exc = exc.__cause__
    return None


class Round(Protocol):
    """What runs one round: a ``Runner``, or whatever else opens hosts and says why a host
    did not open (``xnet shell``'s opening of its session's hosts)."""

    @property
    def open_errors(self) -> Mapping[str, BaseException]: ...

    def events(self) -> Iterator[Event]: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


#: Makes the runner of one round from its hosts (the selected ones, then those let in).
RoundFor = Callable[[Sequence[Host]], Round]


class HostKeyRounds:
    """Runs ``hosts`` round after round (each round's runner made by ``runner_for``), with
    unknown host keys asked about once.

    Iterate ``events()`` in one thread (every selected host gets exactly one end, as from
    a ``Runner``); ``stop()`` is safe from a signal handler; close it (``with``) at the end.
    ``accepted`` and ``refused`` list the keys decided on, for the caller's report (pass
    ``refused`` to gather the refusals of several runs, e.g. the batches of a rollout).
    """

    def __init__(
        self,
        hosts: Sequence[Host],
        decide: Decide,
        runner_for: RoundFor,
        *,
        refused: Optional[list[NewKey]] = None,
    ) -> None:
        self.hosts = list(hosts)
        self.decide = decide
        self.runner_for = runner_for
        self.accepted: list[NewKey] = []
        self.refused: list[NewKey] = [] if refused is None else refused  # shared by batches
        self._runner: Optional[Round] = None
        self._stopping = False

    def __enter__(self) -> HostKeyRounds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """End the run early: the current round stops, held hosts are refused, not asked."""
        self._stopping = True
        runner = self._runner
        if runner is not None:
            runner.stop()

    def close(self) -> None:
        runner = self._runner
        if runner is not None:
            runner.close()

    def events(self) -> Iterator[Event]:
        """Every host's events, round after round, until no host waits for a key."""
        pending = list(self.hosts)
        recorded: set[tuple[str, str]] = set()  # (name, fingerprint) accepted in this run
        while pending:
            held: dict[str, tuple[Failed, UnknownHostKey]] = {}
            yield from self._round(pending, held)
            if not held:
                return
            keys = _gather(held, [h.name for h in pending])
            again = [k for k in keys if (k.name, k.fingerprint) in recorded]
            if again:  # recorded, yet still unknown: a file we cannot read back; do not loop
                yield from _refuse(held, again, f"{REFUSED}: recorded, yet not found again")
                keys = [k for k in keys if k not in again]
            if not keys:
                return
            if self._stopping or not self.decide(keys) or self._stopping:
                self.refused.extend(keys)
                yield from _refuse(held, keys, REFUSED)
                return
            accepted: set[str] = set()  # hosts whose key is recorded: the next round's
            for key in keys:
                try:
                    record_host_key(key.error.settings, key.error.key)  # type: ignore[arg-type]
                except HostKeyError as exc:  # changed meanwhile, or cannot be written
                    self.refused.append(key)
                    yield from _refuse(held, [key], f"{type(exc).__name__}: {exc}")
                    continue
                recorded.add((key.name, key.fingerprint))
                self.accepted.append(key)
                accepted.update(key.hosts)
            pending = [h for h in self.hosts if h.name in accepted]

    def _round(
        self, hosts: list[Host], held: dict[str, tuple[Failed, UnknownHostKey]]
    ) -> Iterator[Event]:
        """One round over ``hosts``; the ends of hosts with an unknown key go to ``held``."""
        runner = self.runner_for(hosts)
        self._runner = runner
        if self._stopping:  # stopped between rounds
            runner.stop()
        try:
            for event in runner.events():
                if isinstance(event, Failed) and event.status == UNREACHABLE:
                    error = unknown_key(runner.open_errors.get(event.host))
                    if error is not None:
                        held[event.host] = (event, error)
                        continue
                yield event
        finally:
            runner.close()


def _gather(held: dict[str, tuple[Failed, UnknownHostKey]], order: list[str]) -> list[NewKey]:
    """Each distinct key of the ``held`` hosts once, with its hosts in ``order``."""
    hosts: dict[tuple[str, str, str], list[str]] = {}
    errors: dict[tuple[str, str, str], UnknownHostKey] = {}
    for name in order:
        if name in held:
            error = held[name][1]
            key = (error.name, error.key_type, error.fingerprint)
            hosts.setdefault(key, []).append(name)
            errors.setdefault(key, error)
    return [
        NewKey(*key, tuple(names), _target(errors[key]), errors[key])
        for key, names in hosts.items()
    ]


def _target(error: UnknownHostKey) -> str:
    files = getattr(error.settings, "user_known_hosts_files", ())
    return os.path.expanduser(files[0]) if files else "(UserKnownHostsFile none)"


def _refuse(
    held: dict[str, tuple[Failed, UnknownHostKey]], keys: Sequence[NewKey], error: str
) -> Iterator[Failed]:
    """The held hosts of ``keys`` end unreachable with ``error`` (one line)."""
    for key in keys:
        for name in key.hosts:
            failed = held[name][0]
            yield Failed(name, UNREACHABLE, error, failed.duration, failed.detail)
