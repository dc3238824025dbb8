"""What a run did: one ``HostResult`` per host, gathered in a ``GroupResult``.

A ``GroupResult`` is fed the run's events (``add``) as they come, so the command line can
hand each event to it and to a renderer, and a library caller gets it back from
``run_job``. Like Fabric's ``GroupResult`` it is a mapping (host name -> ``HostResult``, in
the order hosts finished) that also says which hosts ended which way (``ok``, ``failed``,
``unreachable``, ``errored``: ``HostSet``s). It carries no exit status: ``outcomes`` says
which kinds of ending occurred, and the command line's one table turns that into a number.

The gathered view works like ClusterShell's ``MsgTree``: identical output from many hosts
is stored once, and ``gathered()`` lists each distinct (outcome, output, error) once with
the folded set of hosts that had it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from ..inventory import HostSet, natural_key
from .events import ERROR, FAILED, OK, OUTCOMES, UNREACHABLE, Event, Exited, Output, Started

__all__ = ["GroupResult", "HostResult"]

Pieces = tuple[tuple[str, str], ...]  # (stream, text) in arrival order
#: What hosts must share to be gathered: outcome, exit code, output, error, detail.
_BlockKey = tuple[str, Optional[int], Pieces, Optional[str], Optional[str]]
_RANK = {outcome: rank for rank, outcome in enumerate(OUTCOMES)}


@dataclass(frozen=True)
class HostResult:
    """What one host did: its outcome (``status``), its output in arrival order, its error."""

    name: str
    status: str
    exit_code: Optional[int] = None
    output: Pieces = ()
    error: Optional[str] = None
    detail: Optional[str] = None
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def stdout(self) -> str:
        return "".join(text for stream, text in self.output if stream == "out")

    @property
    def stderr(self) -> str:
        return "".join(text for stream, text in self.output if stream == "err")

    def error_lines(self, full: bool = False) -> list[str]:
        """The error as lines: its one line, or with ``full`` the traceback or whole message."""
        text = self.detail if full and self.detail else self.error
        return text.rstrip("\n").splitlines() if text else []

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` record."""
        return {
            "name": self.name,
            "status": self.status,
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "error": self.error,
            "traceback": self.detail,
            "duration": round(self.duration, 6),
        }


class GroupResult(Mapping[str, HostResult]):
    """Every finished host's ``HostResult``, built from the run's events."""

    def __init__(self) -> None:
        self._results: dict[str, HostResult] = {}
        self._pending: dict[str, list[tuple[str, str]]] = {}  # started, not finished
        self._by_outcome: dict[str, list[str]] = {outcome: [] for outcome in OUTCOMES}
        self._pieces: dict[Pieces, Pieces] = {}  # each distinct output, stored once
        self._blocks: dict[_BlockKey, list[str]] = {}

    def add(self, event: Event) -> Optional[HostResult]:
        """Take one event; return the host's result when the event ends that host."""
        if isinstance(event, Started):
            self._pending.setdefault(event.host, [])
            return None
        if isinstance(event, Output):
            self._pending.setdefault(event.host, []).append((event.stream, event.text))
            return None
        output = tuple(self._pending.pop(event.host, ()))
        output = self._pieces.setdefault(output, output)
        if isinstance(event, Exited):
            status = OK if event.exit_code == 0 else FAILED
            result = HostResult(
                event.host, status, event.exit_code, output, event.error, None, event.duration
            )
        else:
            result = HostResult(
                event.host,
                event.status,
                event.exit_code,
                output,
                event.error,
                event.detail,
                event.duration,
            )
        self._results[event.host] = result
        self._by_outcome.setdefault(result.status, []).append(event.host)
        key = (result.status, result.exit_code, output, result.error, result.detail)
        self._blocks.setdefault(key, []).append(event.host)
        return result

    # -- the mapping ---------------------------------------------------------------------

    def __getitem__(self, name: str) -> HostResult:
        return self._results[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def __repr__(self) -> str:
        counts = ", ".join(f"{len(names)} {o}" for o, names in self._by_outcome.items() if names)
        return f"<GroupResult {counts or 'empty'}>"

    # -- hosts by outcome ----------------------------------------------------------------

    def hosts(self, outcome: str) -> HostSet:
        """The hosts that ended with ``outcome`` (one of ``events.OUTCOMES``)."""
        return HostSet(self._by_outcome.get(outcome, ()))

    def count(self, outcome: str) -> int:
        return len(self._by_outcome.get(outcome, ()))

    @property
    def ok(self) -> HostSet:
        return self.hosts(OK)

    @property
    def failed(self) -> HostSet:
        """Hosts where the job raised, exited non-zero, timed out or lost its worker."""
        return self.hosts(FAILED)

    @property
    def unreachable(self) -> HostSet:
        """Hosts whose gateway did not open."""
        return self.hosts(UNREACHABLE)

    @property
    def errored(self) -> HostSet:
        """Hosts that hit a bug of ours (not a connection error, not the job's failure)."""
        return self.hosts(ERROR)

    @property
    def outcomes(self) -> frozenset[str]:
        """The kinds of ending that occurred: what an exit status is decided by."""
        return frozenset(o for o, names in self._by_outcome.items() if names)

    @property
    def unfinished(self) -> HostSet:
        """Hosts that started but have no result (the run was interrupted)."""
        return HostSet(self._pending)

    # -- the gathered view ---------------------------------------------------------------

    def gathered(self, full: bool = False) -> list[tuple[HostSet, HostResult]]:
        """Hosts with identical output and outcome, once each: (their names, one of them).

        Errors compare by their one line, or with ``full`` by the whole traceback or
        message. Ordered by outcome (successes first, problems last) and by host name.
        """
        merged: dict[tuple, list[str]] = {}
        for (status, code, output, _, _), names in self._blocks.items():
            lines = tuple(self._results[names[0]].error_lines(full))
            merged.setdefault((status, code, output, lines), []).extend(names)
        blocks = [(HostSet(names), self._results[names[0]]) for names in merged.values()]
        blocks.sort(key=_block_order)
        return blocks


def _block_order(block: tuple[HostSet, HostResult]) -> tuple[int, list]:
    names, result = block
    return _RANK.get(result.status, len(_RANK)), natural_key(next(iter(names)))
