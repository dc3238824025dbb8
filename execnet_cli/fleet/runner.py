"""Running one job (Python code or a shell command) on many hosts, as a stream of host events.

The runner opens gateways from a bounded pool of threads (opening is mostly waiting), runs
the job on each, and reports what happens as ``events`` (``Started``, ``Output``, then one
``Exited`` or ``Failed`` per host), in the consuming thread. It keeps no results: a
``results.GroupResult`` folds the events, and renderers draw them; neither touches a gateway.

How a host that did not get its job done is classified (``events`` names the outcomes):
only a connection error while opening (``CONNECTION_ERRORS``) makes it "unreachable"; the
job raising, timing out or losing its worker makes it "failed"; any other exception is a
bug of ours, "error", with its traceback logged at debug level (``xnet --debug``).

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
from typing import Optional

from ..errors import ChannelClosed, ConnectFailed, HostNotFound, RemoteError
from ..gateway import Gateway
from ..group import Group
from ..inventory import Host
from .events import ERROR, FAILED, UNREACHABLE, Event, Exited, Failed, Output, Started
from .jobs import Job
from .results import GroupResult

__all__ = [
    "CONNECTION_ERRORS",
    "DEFAULT_FANOUT",
    "Runner",
    "carriers_for",
    "run_job",
]

log = logging.getLogger(__name__)

#: Default number of hosts worked on at once.
DEFAULT_FANOUT = 64
#: How long a timed-out or cancelled worker is given to end before it is killed.
KILL_WAIT = 1.0
#: Bound on joining the pool threads when the run is closed.
JOIN_WAIT = 5.0
#: What opening a gateway raises when the host cannot be reached: our connection errors
#: (``HostNotFound`` and its kinds), and the OS-level ones a transport let through
#: (refused, reset, timed out: ``OSError``; the stream ended: ``EOFError``).
CONNECTION_ERRORS = (HostNotFound, OSError, EOFError)


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


def _not_opened(name: str, exc: Exception, duration: float) -> Failed:
    """The end of a host whose gateway did not open: unreachable, interrupted, or our bug."""
    if isinstance(exc, _Cancelled):
        return Failed(name, FAILED, "interrupted", duration)
    if isinstance(exc, CONNECTION_ERRORS):
        return Failed(name, UNREACHABLE, _one_line(exc), duration, f"{type(exc).__name__}: {exc}")
    return _bug(name, exc, duration)


def _bug(name: str, exc: Exception, duration: float) -> Failed:
    """An exception nobody expected: its line for the report, its traceback for ``--debug``."""
    log.debug("host %s: internal error", name, exc_info=exc)
    return Failed(name, ERROR, _one_line(exc), duration, f"{type(exc).__name__}: {exc}")


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
            start = time.monotonic()
            try:
                self._serve(host, start)
            except Exception as exc:  # a bug here must not hang the consumer
                if host.name in self._selected:
                    self._events.put(_bug(host.name, exc, time.monotonic() - start))

    def _serve(self, host: Host, start: float) -> None:
        name = host.name
        selected = name in self._selected
        slot = self._slots[name]
        if selected:
            self._events.put(Started(name))
        try:
            gateway = self._open(host)
        except Exception as exc:
            slot.error = _one_line(exc)
            slot.done.set()
            if selected:
                self._events.put(_not_opened(name, exc, time.monotonic() - start))
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
                raise ConnectFailed(f"via {host.via}: unreachable ({carrier.error})")
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
) -> GroupResult:
    """Run ``job`` on ``hosts`` and return every host's result (library use, tests)."""
    result = GroupResult()
    with Runner(hosts, job, fanout=fanout, carriers=carriers) as runner:
        for event in runner.events():
            result.add(event)
            if on_event is not None:
                on_event(event)
    return result
