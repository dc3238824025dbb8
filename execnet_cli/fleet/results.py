"""What a run did: one ``HostResult`` per host, gathered in a ``GroupResult``.

A ``GroupResult`` is fed the run's events (``add``) as they come, so the command line can
hand each event to it and to a renderer, and a library caller gets it back from
``run_job``. Like Fabric's ``GroupResult`` it is a mapping (host name -> ``HostResult``, in
the order hosts finished) that also says which hosts ended which way (``ok``, ``failed``,
``timed_out``, ``unreachable``, ``interrupted``, ``errored``: ``HostSet``s). It carries no
exit status: ``outcomes`` says which kinds of ending occurred, and the command line's one
table turns that into a number. While the run goes on, ``progress`` says what each
unfinished host is doing (what a live display draws).

The gathered view works like ClusterShell's ``MsgTree``: identical output from many hosts
is stored once, and ``gathered()`` lists each distinct (outcome, output, error) once with
the folded set of hosts that had it. Output is kept by ``output.HostOutput``: in memory
while small, in a temporary file past a bound, so any amount of it costs bounded memory.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, Optional

from ..inventory import HostSet, natural_key
from ..records import Record
from .events import (
    ERROR,
    FAILED,
    INTERRUPTED,
    OK,
    OUTCOMES,
    TIMED_OUT,
    UNREACHABLE,
    Event,
    Exited,
    Output,
    Retrying,
    Returned,
    Running,
    Started,
)
from .output import HostOutput, Spool

__all__ = [
    "CONNECTING",
    "RETRYING",
    "RUNNING",
    "GroupResult",
    "HostProgress",
    "HostResult",
    "HostRow",
]

#: What an unfinished host is doing (``HostProgress.state``, ``HostRow.state``).
CONNECTING, RETRYING, RUNNING = "connecting", "retrying", "running"
#: What hosts must share to be gathered: outcome, exit code, output, error, detail, and
#: what a called function returned (its repr).
_BlockKey = tuple[
    str, Optional[int], tuple[bytes, int], Optional[str], Optional[str], Optional[str]
]
_RANK = {outcome: rank for rank, outcome in enumerate(OUTCOMES)}
_NO_OUTPUT = HostOutput(Spool()).freeze()


class HostResult(Record):
    """What one host did: its outcome (``status``), its output in arrival order, its error.

    ``output`` iterates ``(stream, text)`` runs in arrival order (a run: consecutive
    output of one stream, joined); ``stdout``/``stderr``/``log`` are each stream whole.
    A ``Record`` (a frozen value, as the dataclass it was, cheaper to import).
    """

    __slots__ = (  # noqa: RUF023 (the order __init__ takes them)
        "name",
        "status",
        "exit_code",
        "output",
        "error",
        "detail",
        "duration",
        "attempts",
        "returned",
    )
    name: str
    status: str
    exit_code: Optional[int]
    output: HostOutput
    error: Optional[str]
    detail: Optional[str]
    duration: float
    attempts: int  # connection attempts (``--retries``); each failed one is in ``log``
    returned: Optional[Returned]  #: what ``xnet run -m pkg.mod:func`` returned

    def __init__(
        self,
        name: str,
        status: str,
        exit_code: Optional[int] = None,
        output: HostOutput = _NO_OUTPUT,
        error: Optional[str] = None,
        detail: Optional[str] = None,
        duration: float = 0.0,
        attempts: int = 1,
        returned: Optional[Returned] = None,
    ) -> None:
        self._set(name, status, exit_code, output, error, detail, duration, attempts, returned)

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def stdout(self) -> str:
        return self.output.text("out")

    @property
    def stderr(self) -> str:
        return self.output.text("err")

    @property
    def log(self) -> str:
        """What was not the job's output but about this host (see ``events``)."""
        return self.output.text("log")

    def error_lines(self, full: bool = False) -> list[str]:
        """The error as lines: its one line, or with ``full`` the traceback or whole message."""
        text = self.detail if full and self.detail else self.error
        return text.rstrip("\n").splitlines() if text else []

    def as_dict(self, streams: bool = True) -> dict[str, Any]:
        """The ``--json`` record (``streams=False``: with None for stdout, stderr and log,
        for a writer that streams them from a large output); a called function's value
        as ``value`` (its repr when JSON cannot hold it)."""
        record = {
            "name": self.name,
            "status": self.status,
            "exit_code": self.exit_code,
            "stdout": self.stdout if streams else None,
            "stderr": self.stderr if streams else None,
            "error": self.error,
            "traceback": self.detail,
            "duration": round(self.duration, 6),
            "log": self.log if streams else None,
            "attempts": self.attempts,
        }
        if self.returned is not None:
            record["value"] = _json_value(self.returned)
        return record


class HostProgress:
    """An unfinished host: connecting or running, since when, and its last line so far."""

    def __init__(self, name: str, state: str, started: float, output: HostOutput) -> None:
        self.name = name
        self.state = state
        self.started = started  # on the result's clock (time.monotonic)
        self.output = output
        self.last_line = ""
        self.attempts = 1


class HostRow(NamedTuple):
    """One host as a live display shows it: ``state`` is CONNECTING, RUNNING or its outcome."""

    name: str
    state: str
    elapsed: float  # seconds so far, or its duration once ended
    exit_code: Optional[int]
    last_line: str
    error: Optional[str] = None  # the one line of a host that did not succeed


class GroupResult(Mapping[str, HostResult]):
    """Every finished host's ``HostResult``, built from the run's events.

    It is fed from one thread; another (a live display) may read it meanwhile, through
    ``rows()`` only.
    """

    def __init__(
        self, spool: Optional[Spool] = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._spool = spool if spool is not None else Spool()
        self._clock = clock
        self._results: dict[str, HostResult] = {}
        self._progress: dict[str, HostProgress] = {}  # started, not finished
        self._by_outcome: dict[str, list[str]] = {outcome: [] for outcome in OUTCOMES}
        self._outputs: dict[tuple[bytes, int], HostOutput] = {}  # each distinct output once
        self._blocks: dict[_BlockKey, list[str]] = {}
        self._last_lines: dict[str, str] = {}  # of ended hosts
        self._lock = threading.Lock()

    def add(self, event: Event) -> Optional[HostResult]:
        """Take one event; return the host's result when the event ends that host."""
        with self._lock:
            return self._add(event)

    def rows(self) -> list[HostRow]:
        """Every host started so far, finished or not, as of now (safe from another thread)."""
        now = self._clock()
        with self._lock:
            rows = [
                HostRow(p.name, p.state, now - p.started, None, p.last_line)
                for p in self._progress.values()
            ]
            rows += [
                HostRow(
                    r.name,
                    r.status,
                    r.duration,
                    r.exit_code,
                    self._last_lines.get(r.name, ""),
                    r.error,
                )
                for r in self._results.values()
            ]
        return rows

    def _add(self, event: Event) -> Optional[HostResult]:
        if isinstance(event, Output):
            going = self._progress.get(event.host) or self._begin(event.host)
            going.output.add(event.stream, event.text)
            if event.stream != "log":
                going.last_line = _last_line(event.text) or going.last_line
            return None
        if isinstance(event, Started):
            self._begin(event.host)
            return None
        if isinstance(event, Retrying):
            going = self._progress.get(event.host) or self._begin(event.host)
            going.state, going.attempts = RETRYING, event.attempt + 1
            going.last_line = event.describe()
            going.output.add("log", event.describe() + "\n")
            return None
        if isinstance(event, Running):
            (self._progress.get(event.host) or self._begin(event.host)).state = RUNNING
            return None
        if event.host in self._results:
            return None  # ended already: a late word about it changes nothing
        progress: Optional[HostProgress] = self._progress.pop(event.host, None)
        output = self._stored(progress.output if progress is not None else None)
        if progress is not None and progress.last_line:
            self._last_lines[event.host] = progress.last_line
        attempts = progress.attempts if progress is not None else 1
        if isinstance(event, Exited):
            status = OK if event.exit_code == 0 else FAILED
            result = HostResult(
                event.host,
                status,
                event.exit_code,
                output,
                event.error,
                None,
                event.duration,
                attempts,
                event.returned,
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
                attempts,
            )
        self._results[event.host] = result
        self._by_outcome.setdefault(result.status, []).append(event.host)
        shown = None if result.returned is None else result.returned.text
        key = (result.status, result.exit_code, output.key, result.error, result.detail, shown)
        self._blocks.setdefault(key, []).append(event.host)
        return result

    def _begin(self, name: str) -> HostProgress:
        progress = HostProgress(name, CONNECTING, self._clock(), HostOutput(self._spool))
        self._progress[name] = progress
        return progress

    def _stored(self, output: Optional[HostOutput]) -> HostOutput:
        """``output`` frozen, or the identical one stored before it (kept once)."""
        if output is None:
            return _NO_OUTPUT
        output.freeze()
        known = self._outputs.get(output.key)
        if known is not None:
            output.discard()
            return known
        self._outputs[output.key] = output
        return output

    def close(self) -> None:
        """Remove the temporary file large outputs were kept in: their text is gone."""
        self._spool.close()

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
        """Hosts where the job raised, exited non-zero or lost its worker."""
        return self.hosts(FAILED)

    @property
    def timed_out(self) -> HostSet:
        """Hosts whose job ran longer than its timeout."""
        return self.hosts(TIMED_OUT)

    @property
    def unreachable(self) -> HostSet:
        """Hosts whose gateway did not open."""
        return self.hosts(UNREACHABLE)

    @property
    def interrupted(self) -> HostSet:
        """Hosts the run was stopped before they ended."""
        return self.hosts(INTERRUPTED)

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
        """Hosts that started but have no result (yet)."""
        return HostSet(self._progress)

    @property
    def progress(self) -> Mapping[str, HostProgress]:
        """The unfinished hosts, by name: what each is doing (a live view, not a copy)."""
        return self._progress

    def elapsed(self, name: str) -> float:
        """Seconds since ``name`` started (0 if it has not), on the result's clock."""
        progress = self._progress.get(name)
        return 0.0 if progress is None else self._clock() - progress.started

    # -- the gathered view ---------------------------------------------------------------

    def gathered(self, full: bool = False) -> list[tuple[HostSet, HostResult]]:
        """Hosts with identical output and outcome, once each: (their names, one of them).

        Errors compare by their one line, or with ``full`` by the whole traceback or
        message. Ordered by outcome (successes first, problems last) and by host name.
        """
        merged: dict[tuple, list[str]] = {}
        for (status, code, output, _, _, shown), names in self._blocks.items():
            lines = tuple(self._results[names[0]].error_lines(full))
            merged.setdefault((status, code, output, lines, shown), []).extend(names)
        blocks = [(HostSet(names), self._results[names[0]]) for names in merged.values()]
        blocks.sort(key=_block_order)
        return blocks


def _json_value(returned: Returned) -> Any:
    """The value as JSON holds it, or its repr (bytes, sets, ... and what could not travel)."""
    if returned.value is None and returned.text != "None":
        return returned.text  # it could not travel: the host's repr is all there is
    try:
        json.dumps(returned.value, allow_nan=False)
    except (TypeError, ValueError):
        return returned.text
    return returned.value


def _last_line(text: str) -> str:
    """The last line of ``text`` with something on it (looked for in its last 4 KiB)."""
    for line in reversed(text[-4096:].splitlines()):
        if line.strip():
            return line
    return ""


def _block_order(block: tuple[HostSet, HostResult]) -> tuple[int, list]:
    names, result = block
    return _RANK.get(result.status, len(_RANK)), natural_key(next(iter(names)))
