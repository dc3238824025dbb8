"""Running one job (Python code or a shell command) on many hosts, as a stream of host events.

The runner opens gateways from a bounded pool of threads (opening is mostly waiting), runs
the job on each, and reports what happens as events, in the consuming thread:

    Started(host)                   the host's turn came: connecting now
    Output(host, stream, text)      one line (or a last, unterminated piece) of out or err
    Exited(host, exit_code, ...)    the job ran to its end; 0 is success
    Failed(host, status, error...)  it could not: "failed" (raised, timed out, worker lost)
                                    or "unreachable" (the gateway did not open)

Every host gets ``Started`` then any ``Output`` then exactly one ``Exited`` or ``Failed``.
Renderers consume these and never touch gateways; ``Collector`` folds them into results.

What runs remotely is a ``jobs.Job``; its output travels over the job's channel, never
through the worker's stderr, and is cut into lines here.

Hosts with ``via=`` need their carrier's gateway first: tasks are queued by via depth, so
a carrier's task always starts before its dependents' (no pool deadlock), and carriers stay
open until the end, when the whole group is terminated.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

from ..errors import ChannelClosed, RemoteError
from ..gateway import Gateway
from ..group import Group
from ..inventory import Host
from .jobs import Job, python_job, shell_job

__all__ = [
    "FAILED",
    "OK",
    "UNREACHABLE",
    "Collector",
    "Event",
    "Exited",
    "Failed",
    "HostResult",
    "Job",
    "Output",
    "Runner",
    "Started",
    "carriers_for",
    "python_job",
    "run_job",
    "shell_job",
]

log = logging.getLogger(__name__)

OK, FAILED, UNREACHABLE = "ok", "failed", "unreachable"
#: Default number of hosts worked on at once.
DEFAULT_FANOUT = 64
#: How long a timed-out or cancelled worker is given to end before it is killed.
KILL_WAIT = 1.0
#: Bound on joining the pool threads when the run is closed.
JOIN_WAIT = 5.0


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    host: str


@dataclass(frozen=True)
class Output:
    host: str
    stream: str  # "out" or "err"
    text: str  # one line with its "\n", or the last piece of a stream without one


@dataclass(frozen=True)
class Exited:
    host: str
    exit_code: int
    duration: float
    error: Optional[str] = None  # why a non-zero exit, when known ("killed by signal 9")


@dataclass(frozen=True)
class Failed:
    host: str
    status: str  # FAILED or UNREACHABLE
    error: str  # one line
    duration: float
    detail: Optional[str] = None  # the remote traceback or the full message
    exit_code: Optional[int] = None


Event = Union[Started, Output, Exited, Failed]


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HostResult:
    """What one host did: its status, its output in arrival order, and its error."""

    name: str
    status: str
    exit_code: Optional[int] = None
    output: tuple[tuple[str, str], ...] = ()  # (stream, text) pieces, in order
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


class Collector:
    """Folds events into ``HostResult`` objects; ``add`` returns one when a host is done."""

    def __init__(self) -> None:
        self._output: dict[str, list[tuple[str, str]]] = {}
        self.started: list[str] = []
        self.results: dict[str, HostResult] = {}

    def add(self, event: Event) -> Optional[HostResult]:
        if isinstance(event, Started):
            self.started.append(event.host)
            self._output.setdefault(event.host, [])
            return None
        if isinstance(event, Output):
            self._output.setdefault(event.host, []).append((event.stream, event.text))
            return None
        output = tuple(self._output.pop(event.host, ()))
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
        self.results[event.host] = result
        return result

    def unfinished(self) -> list[str]:
        """Hosts that started but have no result (after an interrupt)."""
        return [name for name in self.started if name not in self.results]


# -- running -----------------------------------------------------------------------------


class _Slot:
    """A host's gateway, once its opening is decided (for hosts going ``via`` it)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.gateway: Optional[Gateway] = None
        self.error: Optional[str] = None


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


class _Cancelled(Exception):
    """The run was closed before this host's turn ended."""


def _one_line(exc: BaseException) -> str:
    """The line a summary shows: a remote traceback's last line, else ``Type: message``."""
    lines = str(exc).strip().splitlines()
    text = lines[-1] if lines else ""
    if isinstance(exc, RemoteError):
        return text or "remote error"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _LineSplitter:
    """Cuts a stream's text pieces into lines, so renderers always get whole lines."""

    def __init__(self) -> None:
        self.pending = ""

    def feed(self, text: str) -> list[str]:
        data = self.pending + text
        cut = data.rfind("\n") + 1
        self.pending = data[cut:]
        return data[:cut].splitlines(True) if cut else []

    def rest(self) -> list[str]:
        data, self.pending = self.pending, ""
        return [data] if data else []


class Runner:
    """Runs a job on hosts; iterate ``events()`` in one thread, and close (``with``) at the end.

    Closing ends every gateway of the run, also after an exception or Ctrl-C.
    """

    def __init__(
        self,
        hosts: Sequence[Host],
        job: Job,
        *,
        fanout: int = DEFAULT_FANOUT,
        carriers: Sequence[Host] = (),
    ) -> None:
        if fanout < 1:
            raise ValueError("fanout must be at least 1")
        self.hosts = list(hosts)
        self.job = job
        self.fanout = fanout
        self.group = Group()
        self._selected = {h.name for h in self.hosts}
        everyone = {h.name: h for h in [*carriers, *self.hosts]}
        self._carrier_names = {h.via for h in everyone.values() if h.via}
        self._slots = {name: _Slot() for name in everyone}
        self._tasks: queue.SimpleQueue[Optional[Host]] = queue.SimpleQueue()
        for host in sorted(everyone.values(), key=lambda h: _depth(h, everyone)):
            self._tasks.put(host)
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._threads: list[threading.Thread] = []
        self._complete = False  # every selected host reported its end

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def events(self) -> Iterator[Event]:
        """Start the pool and yield every host's events until each host is done."""
        count = min(self.fanout, len(self._slots))
        for number in range(count):
            self._tasks.put(None)  # one stop mark per thread
            thread = threading.Thread(target=self._work, name=f"xnet-run-{number}", daemon=True)
            self._threads.append(thread)
            thread.start()
        remaining = len(self._selected)
        while remaining:
            try:
                event = self._events.get(timeout=0.2)  # a timeout keeps Ctrl-C responsive
            except queue.Empty:
                continue
            if isinstance(event, (Exited, Failed)):
                remaining -= 1
            yield event
        self._complete = True

    def close(self) -> None:
        """End every gateway (asked, waited for with a bound, then killed) and the pool."""
        self._cancel.set()
        try:
            while True:
                self._tasks.get_nowait()
        except queue.Empty:
            pass
        for _ in self._threads:
            self._tasks.put(None)
        # Interrupted: workers may be stuck in user code, so do not wait long for them.
        self.group.terminate(None if self._complete else KILL_WAIT)
        deadline = time.monotonic() + JOIN_WAIT
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.group.terminate(KILL_WAIT)  # gateways that finished opening meanwhile

    # -- the pool ------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._cancel.is_set():
            host = self._tasks.get()
            if host is None:
                return
            try:
                self._serve(host)
            except Exception as exc:  # a bug here must not hang the consumer
                log.exception("xnet: internal error on host %s", host.name)
                if host.name in self._selected:
                    self._events.put(Failed(host.name, FAILED, _one_line(exc), 0.0))

    def _serve(self, host: Host) -> None:
        name = host.name
        selected = name in self._selected
        slot = self._slots[name]
        start = time.monotonic()
        if selected:
            self._events.put(Started(name))
        try:
            gateway = self._open(host)
        except Exception as exc:
            slot.error = _one_line(exc)
            slot.done.set()
            if selected:
                detail = f"{type(exc).__name__}: {exc}"
                self._events.put(
                    Failed(name, UNREACHABLE, slot.error, time.monotonic() - start, detail)
                )
            return
        slot.gateway = gateway
        slot.done.set()
        if not selected:
            return
        try:
            self._events.put(self._execute(gateway, name, start))
        finally:
            if name not in self._carrier_names:
                gateway.exit(KILL_WAIT if self._cancel.is_set() else None)

    def _open(self, host: Host) -> Gateway:
        if host.via:
            carrier = self._slots[host.via]
            while not carrier.done.wait(0.1):
                if self._cancel.is_set():
                    raise _Cancelled("interrupted")
            if carrier.gateway is None:
                raise ConnectionError(f"via {host.via}: unreachable ({carrier.error})")
        if self._cancel.is_set():
            raise _Cancelled("interrupted")
        gateway = self.group.makegateway(host.spec())
        if self._cancel.is_set():  # close() may have missed it
            gateway.exit(KILL_WAIT)
            raise _Cancelled("interrupted")
        return gateway

    def _execute(self, gateway: Gateway, name: str, start: float) -> Event:
        """Run the job on an open gateway, putting its output; return the final event."""
        job = self.job
        try:
            channel = gateway.remote_exec(job.source)
        except ChannelClosed as exc:  # the worker died right after it said ready
            return Failed(name, FAILED, f"worker lost: {exc}", time.monotonic() - start)
        deadline = None if job.timeout is None else time.monotonic() + job.timeout
        splitters = {"out": _LineSplitter(), "err": _LineSplitter()}

        def flush() -> None:
            for stream, splitter in splitters.items():
                for line in splitter.rest():
                    self._events.put(Output(name, stream, line))

        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = channel.receive(wait)
            except channel.TimeoutError:
                flush()
                gateway.exit(0)  # stuck in user code: only killing frees it
                error = f"timed out after {job.timeout:g} s"
                return Failed(name, FAILED, error, time.monotonic() - start)
            except RemoteError as exc:
                flush()
                return Failed(name, FAILED, _one_line(exc), time.monotonic() - start, str(exc))
            except EOFError as exc:
                flush()
                error = "interrupted" if self._cancel.is_set() else f"worker lost: {exc}"
                return Failed(name, FAILED, error, time.monotonic() - start)
            if not isinstance(item, tuple) or not item:
                continue
            if item[0] in splitters and len(item) == 2 and isinstance(item[1], str):
                for line in splitters[item[0]].feed(item[1]):
                    self._events.put(Output(name, item[0], line))
            elif item[0] == "exit" and len(item) == 3:
                flush()
                code, text = int(item[1]), item[2]
                duration = time.monotonic() - start
                if job.kind == "run" and text:  # an exception: its traceback is the detail
                    last = text.strip().splitlines()[-1]
                    return Failed(name, FAILED, last, duration, text, code)
                return Exited(name, code, duration, text)


def _depth(host: Host, hosts: Mapping[str, Host]) -> int:
    depth, seen = 0, set()
    while host.via and host.via in hosts and host.name not in seen:
        seen.add(host.name)
        host = hosts[host.via]
        depth += 1
    return depth


def run_job(
    hosts: Sequence[Host],
    job: Job,
    *,
    fanout: int = DEFAULT_FANOUT,
    carriers: Sequence[Host] = (),
    on_event: Optional[Callable[[Event], None]] = None,
) -> dict[str, HostResult]:
    """Run ``job`` on ``hosts`` and return every host's result (library use, tests)."""
    collector = Collector()
    with Runner(hosts, job, fanout=fanout, carriers=carriers) as runner:
        for event in runner.events():
            collector.add(event)
            if on_event is not None:
                on_event(event)
    return collector.results
