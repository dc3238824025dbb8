"""Rolling batches: the selection worked through a slice at a time, with a failure budget.

``plan`` splits the selected hosts into batches (an optional canary batch first); a
``Rollout`` hands them out one after another and decides, before each, whether it may
start: not after a canary host failed, not once more hosts failed than the budget allows,
not after ``stop()``. ``RollingRunner`` runs a job that way, one runner per
batch, and yields the same events a single ``Runner`` would; ``xnet rsync`` drives a
``Rollout`` itself.

The rules, stated once (docs/cli.md repeats them for users):

- ``--batch P%`` is P% of the selection rounded *up*, at least 1 host: a share never
  rounds to an empty batch, and the number of batches is at most ``ceil(100 / P)``.
- ``--max-fail P%`` is P% of the selection rounded *down*: a budget never allows more
  failures than the share stated (10% of 12 hosts is 1 host, not 2).
- A host counts against the budget when it failed, timed out, was unreachable or hit a
  bug of ours; an interrupted host does not (a signal stops the run anyway). The budget
  is spent when more hosts than it allows have counted; the run then stops before the
  next batch (hosts of the running batch finish).
- A batch in which every host fails is no special case: it counts as that many failures.
  Without ``--max-fail`` every batch runs whatever fails (the canary aside).
- ``--canary N`` runs the first N hosts (in the chosen order) as a batch of their own;
  if any of them does not succeed, no other batch starts, whatever the budget.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple, Optional, Protocol

from ..inventory import Host
from .events import ERROR, FAILED, OK, TIMED_OUT, UNREACHABLE, Event, Exited, Failed

__all__ = [
    "BUDGET_SPENT",
    "CANARY_FAILED",
    "COUNTED",
    "ORDERS",
    "STOPPED",
    "Amount",
    "Batch",
    "RollingRunner",
    "Rollout",
    "order_hosts",
    "plan",
]

#: The orders ``--order`` accepts.
ORDERS = ("inventory", "sorted", "random", "group")
#: The outcomes that count against the failure budget.
COUNTED = frozenset({FAILED, TIMED_OUT, UNREACHABLE, ERROR})
#: Why a rollout stopped before its last batch (``Rollout.reason``).
CANARY_FAILED, BUDGET_SPENT, STOPPED = "canary failed", "failure budget spent", "stopped"


class Amount(NamedTuple):
    """A number of hosts, given as ``N`` or as ``P%`` of the selection (a NamedTuple, as
    ``Batch``: a frozen dataclass costs ~3.5 M instructions to create, at every start)."""

    value: int
    percent: bool = False

    @classmethod
    def parse(cls, text: str, least: int = 0) -> Amount:
        """``N`` or ``P%`` (P at most 100), at least ``least``; ValueError otherwise."""
        percent = text.endswith("%")
        digits = text[:-1] if percent else text
        if not digits.isdigit():
            raise ValueError(f"{text!r} is not a number of hosts (N) or a share of them (P%)")
        value = int(digits)
        if percent and value > 100:
            raise ValueError(f"{text!r}: a share is at most 100%")
        if value < least:
            raise ValueError(f"{text!r}: at least {least}{'%' if percent else ''}")
        return cls(value, percent)

    def rounded_up(self, total: int) -> int:
        """This many of ``total`` hosts, a share rounded up (a batch size)."""
        return -(-self.value * total // 100) if self.percent else self.value

    def rounded_down(self, total: int) -> int:
        """This many of ``total`` hosts, a share rounded down (a budget)."""
        return self.value * total // 100 if self.percent else self.value

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


class Batch(NamedTuple):
    """Hosts run together: ``number`` counts from 1; the canary batch is number 0."""

    number: int
    hosts: tuple[Host, ...]

    @property
    def canary(self) -> bool:
        return self.number == 0

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    @property
    def label(self) -> str:
        return "canary" if self.canary else f"batch {self.number}"


def _group_of(host: Host) -> str:
    """The group a host is batched with: its most specific one (the last to apply)."""
    return host.groups[-1] if host.groups else "ungrouped"


def order_hosts(
    hosts: Sequence[Host], order: str, rng: Optional[random.Random] = None
) -> list[Host]:
    """``hosts`` in the order ``--order`` names.

    ``inventory`` keeps the selection's order (as ``xnet hosts`` lists it: natural order,
    web2 before web10); ``sorted`` sorts names character by character (web10 before web2);
    ``random`` shuffles; ``group`` puts the hosts of each group together, groups in the
    order of their first host.
    """
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}: one of {', '.join(ORDERS)}")
    chosen = list(hosts)
    if order == "sorted":
        chosen.sort(key=lambda h: h.name)
    elif order == "random":
        (rng or random.Random()).shuffle(chosen)
    elif order == "group":
        first: dict[str, int] = {}
        for i, host in enumerate(chosen):
            first.setdefault(_group_of(host), i)
        chosen.sort(key=lambda h: first[_group_of(h)])  # stable: natural order within
    return chosen


def plan(
    hosts: Sequence[Host],
    size: Optional[Amount] = None,
    canary: int = 0,
    order: str = "inventory",
    rng: Optional[random.Random] = None,
) -> list[Batch]:
    """The batches to run, in order: the canary (number 0) if any, then batches of ``size``
    (all the rest at once without one). With ``order="group"`` a batch never spans two
    groups, and without a size each group is one batch."""
    chosen = order_hosts(hosts, order, rng)
    batches: list[Batch] = []
    if canary > 0 and chosen:
        batches.append(Batch(0, tuple(chosen[:canary])))
        chosen = chosen[canary:]
    width = max(1, size.rounded_up(len(hosts))) if size is not None else len(chosen) or 1
    runs = _group_runs(chosen) if order == "group" else [chosen]
    for run in runs:
        for start in range(0, len(run), width):
            numbered = sum(1 for b in batches if not b.canary) + 1
            batches.append(Batch(numbered, tuple(run[start : start + width])))
    return batches


def _group_runs(hosts: list[Host]) -> list[list[Host]]:
    """Consecutive hosts of one group, each run a list."""
    runs: list[list[Host]] = []
    for host in hosts:
        if runs and _group_of(runs[-1][-1]) == _group_of(host):
            runs[-1].append(host)
        else:
            runs.append([host])
    return runs


class Rollout:
    """Hands out batches one at a time while the rules allow (see the module's docstring).

    Feed it each host's end (``ended``); ``next_batch()`` returns the next batch or None
    and then says why in ``reason`` ("" when every batch ran).
    """

    def __init__(self, batches: Sequence[Batch], max_fail: Optional[Amount] = None) -> None:
        self.batches = list(batches)
        total = sum(len(b.hosts) for b in self.batches)
        self.limit = None if max_fail is None else max_fail.rounded_down(total)
        self.max_fail = max_fail
        self.ran: list[Batch] = []
        self.counted: list[str] = []  # hosts that count against the budget, as they ended
        self.reason = ""
        self._canary_failed = False
        self._stopped = False

    def ended(self, name: str, outcome: str) -> None:
        """A host of the current batch ended with ``outcome``."""
        if outcome in COUNTED:
            self.counted.append(name)
        if outcome != OK and self.ran and self.ran[-1].canary:
            self._canary_failed = True

    def stop(self) -> None:
        """No batch starts after this (safe from a signal handler)."""
        self._stopped = True

    @property
    def spent(self) -> bool:
        """Whether more hosts failed than the budget allows."""
        return self.limit is not None and len(self.counted) > self.limit

    def next_batch(self) -> Optional[Batch]:
        """The batch to run now, or None: every batch ran, or the run stops (``reason``)."""
        if len(self.ran) == len(self.batches) or self.reason:
            return None
        if self._stopped:
            self.reason = STOPPED
        elif self._canary_failed:
            self.reason = CANARY_FAILED
        elif self.spent:
            self.reason = BUDGET_SPENT
        if self.reason:
            return None
        batch = self.batches[len(self.ran)]
        self.ran.append(batch)
        return batch

    @property
    def stopped_early(self) -> bool:
        """Whether the budget or the canary kept some batch from running."""
        return self.reason in (CANARY_FAILED, BUDGET_SPENT)

    def not_run(self) -> list[str]:
        """The hosts of the batches that did not start."""
        return [name for batch in self.batches[len(self.ran) :] for name in batch.names]

    def progress(self) -> str:
        """``batch 2 of 4`` (``canary``): where the run is, for a live display."""
        if not self.ran:
            return ""
        current = self.ran[-1]
        numbered = sum(1 for b in self.batches if not b.canary)
        return "canary" if current.canary else f"batch {current.number} of {numbered}"


class BatchRunner(Protocol):
    """What runs one batch: a ``Runner``, or a ``HostKeyRounds`` asking about new keys."""

    def events(self) -> Iterator[Event]: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


#: Makes the runner of one batch from its hosts.
RunnerFor = Callable[[Sequence[Host]], BatchRunner]


class RollingRunner:
    """A runner per batch of a ``Rollout``: ``events()`` and ``stop()`` as a Runner's."""

    def __init__(self, rollout: Rollout, runner_for: RunnerFor) -> None:
        self.rollout = rollout
        self.runner_for = runner_for
        self._runner: Optional[BatchRunner] = None
        self._stopping = False

    def __enter__(self) -> RollingRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        runner = self._runner
        if runner is not None:
            runner.close()

    def stop(self) -> None:
        """Stop the batch running now (its hosts end interrupted) and start no other."""
        self._stopping = True
        self.rollout.stop()
        runner = self._runner
        if runner is not None:
            runner.stop()

    def events(self) -> Iterator[Event]:
        """Every batch's events in turn, while the rollout lets batches start."""
        while True:
            batch = self.rollout.next_batch()
            if batch is None:
                return
            runner = self.runner_for(batch.hosts)
            self._runner = runner
            try:
                if self._stopping:  # a signal came between two batches
                    runner.stop()
                for event in runner.events():
                    if isinstance(event, Exited):
                        self.rollout.ended(event.host, OK if event.exit_code == 0 else FAILED)
                    elif isinstance(event, Failed):
                        self.rollout.ended(event.host, event.status)
                    yield event
            finally:
                self._runner = None
                runner.close()
