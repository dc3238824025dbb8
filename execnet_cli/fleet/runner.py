"""Running one job (Python code or a shell command) on many hosts, as a stream of host events.

The runner opens gateways from a bounded pool of threads (opening is mostly waiting), runs
the job on each, and reports what happens as ``events`` (``Started``, ``Output``, then one
``Exited`` or ``Failed`` per host), in the consuming thread. It keeps no results: a
``results.GroupResult`` folds the events, and renderers draw them; neither touches a gateway.

Connection errors that may pass (refused, timed out) are tried again when the host's
retries allow (``retries``: which errors, the backoff), each retry a ``Retrying`` event.

How a host that did not get its job done is classified: ``ends``.

What runs remotely is a ``jobs.Job``; its output travels over the job's channel, never
through the worker's stderr, and is cut at line ends here (an event carries whole lines).
With ``capture_strays``, log records and ssh stderr about a host become its ``log``
stream (``strays``).

Hosts a relay serves (``relays``) are not opened here: the relay's task opens it and
starts a ``relays.RelayLink``, whose records become the same events.

Hosts with ``via=`` need their carrier's gateway first: tasks are queued by via depth, so
a carrier's task always starts before its dependents' (no pool deadlock), and carriers stay
open until the end, when the whole group is terminated.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Optional

from ..errors import ChannelClosed, ConnectFailed, RemoteError
from ..inventory import Host
from ..transports.cancel import OpenScope
from ..transports.descriptors import room_for
from . import direct, strays
from .carriers import _depth, carriers_for
from .collect import Budget, LineSplitter
from .ends import CONNECTION_ERRORS, KILL_WAIT, _bug, _Cancelled, _job_end, _not_opened, _worker_end
from .events import (
    FAILED,
    INTERRUPTED,
    TIMED_OUT,
    Event,
    Exited,
    Failed,
    Output,
    Retrying,
    Running,
    Started,
)
from .jobs import Job
from .jobstart import JobStart, one_line, start_job
from .relays import RelayLink, Sink, relay_hosts
from .results import GroupResult
from .retries import backoff, retryable

if TYPE_CHECKING:  # loaded with the first gateway: ``sh`` straight on ssh opens none
    from ..gateway import Gateway
    from ..group import Group

__all__ = [
    "CONNECTION_ERRORS",
    "DEFAULT_FANOUT",
    "Runner",
    "carriers_for",
    "run_job",
]

#: Default number of hosts worked on at once.
DEFAULT_FANOUT = 64
#: Bound on joining the pool threads when the run is closed.
JOIN_WAIT = 5.0
#: How often a pool thread waiting for its job looks at the clock (timeouts).
_POLL = 0.25


class _Slot:
    """A host's gateway, once its opening is decided (for hosts going ``via`` it)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.gateway: Optional[Gateway] = None
        self.exception: Optional[Exception] = None  # why it did not open


class Runner:
    """Runs a job on hosts; iterate ``events()`` in one thread, and close (``with``) at the end.

    Closing ends every gateway of the run, also after an exception or Ctrl-C. ``stop()``
    ends the run early but completely: ``events()`` then reports every host not yet
    ended as interrupted, with what it printed so far.
    """

    def __init__(
        self,
        hosts: Sequence[Host],
        job: Job,
        *,
        fanout: int = DEFAULT_FANOUT,
        carriers: Sequence[Host] = (),
        capture_strays: bool = False,
        retries: Optional[int] = None,
        default_retries: int = 0,
        relays: Mapping[str, Sequence[Host]] = MappingProxyType({}),
    ) -> None:
        if fanout < 1:
            raise ValueError("fanout must be at least 1")
        #: Connection retries: ``retries`` for every host, else each host's own (its
        #: inventory's ``retries``), else ``default_retries``.
        self._retries = retries
        self._default_retries = default_retries
        self.hosts = list(hosts)
        self.job = job
        self.fanout = fanout
        self.capture_strays = capture_strays
        self._group: Optional[Group] = None  # made by the first gateway (``group``)
        self._group_lock = threading.Lock()
        self._direct_opens = OpenScope()  # ``sh`` straight on ssh: ``close`` cuts them short
        self._selected = {h.name for h in self.hosts}
        everyone = {h.name: h for h in [*carriers, *self.hosts]}
        self._carrier_names = {h.via for h in everyone.values() if h.via} | set(relays)
        self._relays = relays
        relayed = relay_hosts(relays)
        self._slots = {name: _Slot() for name in everyone}
        self._by_address: dict[str, list[str]] = {}
        for host in self.hosts:
            self._by_address.setdefault(host.address, []).append(host.name)
        self._tasks: queue.SimpleQueue[Optional[Host]] = queue.SimpleQueue()
        self._task_count = 0
        for host in sorted(everyone.values(), key=lambda h: _depth(h, everyone)):
            if host.name not in relayed:
                self._tasks.put(host)
                self._task_count += 1
        self._events: queue.SimpleQueue[Optional[Event]] = queue.SimpleQueue()  # None: wake up
        self._budget = Budget()  # output in events not consumed yet
        self._cancel = threading.Event()
        self._stopping = False
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._complete = False  # every selected host reported its end
        self._started: dict[str, float] = {}  # host -> when its turn came
        self._serving: dict[Optional[int], str] = {}  # pool thread ident -> its host
        self._ended: set[str] = set()  # hosts whose end event was put
        #: Why each host that did not open did not (set before its ``Failed`` is put): for
        #: callers that look past the event's text (``hostkeys``: the key to ask about).
        self.open_errors: dict[str, Exception] = {}

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """End the run early (safe from a signal handler): see ``events``."""
        self._stopping = True
        self._events.put(None)  # SimpleQueue.put is reentrant: wakes the consumer

    def events(self) -> Iterator[Event]:
        """Start the pool and yield every host's events until each host is done.

        After ``stop()``, the gateways are ended, what they had sent is yielded, and
        then ``Failed(INTERRUPTED)`` for each host that had not ended (in host order).
        """
        if self.capture_strays:
            with strays.capture(self._owner, self._report_stray):
                yield from self._events_until_done()
        else:
            yield from self._events_until_done()

    def _events_until_done(self) -> Iterator[Event]:
        count = min(self.fanout, self._task_count)
        room_for(count + len(self._carrier_names))  # open at once: the pool's, and carriers
        for number in range(count):
            self._tasks.put(None)  # one stop mark per thread
            thread = threading.Thread(target=self._work, name=f"xnet-run-{number}", daemon=True)
            self._threads.append(thread)
            thread.start()
        remaining = set(self._selected)
        while remaining and not self._stopping:
            try:
                event = self._events.get(timeout=0.2)  # a timeout keeps Ctrl-C responsive
            except queue.Empty:
                continue
            if event is not None and self._take(event, remaining):
                yield event
        self._complete = not remaining
        if remaining:
            yield from self._interrupted(remaining)

    def _take(self, event: Event, remaining: set[str]) -> bool:
        """Whether to yield ``event``: one end per host, nothing about a host after it."""
        if isinstance(event, Output) and event.stream != "log":
            self._budget.release(len(event.text))
        if event.host not in remaining:
            return False
        if isinstance(event, (Exited, Failed)):
            remaining.discard(event.host)
        return True

    def _interrupted(self, remaining: set[str]) -> Iterator[Event]:
        self.close()  # ends every gateway; the pool's last events are queued by now
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if event is not None and self._take(event, remaining):
                yield event
        now = time.monotonic()
        for host in self.hosts:
            if host.name in remaining:
                started = self._started.get(host.name, now)
                yield Failed(host.name, INTERRUPTED, "interrupted", now - started)

    def close(self) -> None:
        """End every gateway (asked, waited for with a bound, then killed) and the pool."""
        if self._closed:
            return
        self._closed = True
        self._cancel.set()
        try:
            while True:
                self._tasks.get_nowait()
        except queue.Empty:
            pass
        for _ in self._threads:
            self._tasks.put(None)
        # Interrupted: workers may be stuck in user code, so do not wait long for them.
        self._direct_opens.abort()
        self._terminate(None if self._complete else KILL_WAIT)
        deadline = time.monotonic() + JOIN_WAIT
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._terminate(KILL_WAIT)  # gateways that finished opening meanwhile

    @property
    def group(self) -> Group:
        """The run's gateways, made on first use: ``xnet sh`` straight on ssh opens none,
        and so never imports the gateway stack (``group``, ``spec``, ``transports.opening``)."""
        with self._group_lock:
            if self._group is None:
                from ..group import Group

                self._group = Group()
            return self._group

    def _terminate(self, timeout: Optional[float]) -> None:
        with self._group_lock:
            group = self._group
        if group is not None:
            group.terminate(timeout)

    # -- strays (see ``strays``) -----------------------------------------------------------

    def _owner(self, thread: threading.Thread) -> Optional[str]:
        """The selected host ``thread`` works for, if any."""
        name = self._serving.get(thread.ident)
        if name is not None:
            return name
        for prefix in ("xnet-receiver-", "xnet-ssh-stderr-"):
            if thread.name.startswith(prefix):
                key = thread.name[len(prefix) :]
                if prefix == "xnet-receiver-":  # a gateway's id is its host's name
                    return key if key in self._selected else None
                names = self._by_address.get(key, [])
                return names[0] if len(names) == 1 else None
        return None

    def _report_stray(self, name: str, text: str) -> bool:
        if name in self._ended:
            return False
        self._events.put(Output(name, "log", text))
        return True

    # -- the pool ------------------------------------------------------------------------

    def _work(self) -> None:
        ident = threading.get_ident()
        while not self._cancel.is_set():
            host = self._tasks.get()
            if host is None:
                return
            start = time.monotonic()
            self._serving[ident] = host.name
            try:
                self._serve(host, start)
            except Exception as exc:  # a bug here must not hang the consumer
                if host.name in self._selected:
                    self._end(_bug(host.name, exc, time.monotonic() - start))
            finally:
                self._serving.pop(ident, None)

    def _end(self, event: Event) -> None:
        self._ended.add(event.host)
        self._events.put(event)

    def _serve(self, host: Host, start: float) -> None:
        name = host.name
        selected = name in self._selected
        slot = self._slots[name]
        if selected:
            self._started[name] = start
            self._events.put(Started(name))
            if name not in self._carrier_names and direct.applies(self.job, host):
                self._end(self._direct(host, start))
                return
        job = JobStart(self.job)  # sent behind the bootstrap where it may be (``jobstart``)
        early = job if selected and name not in self._carrier_names and job.applies() else None
        try:
            gateway = self._open_retrying(host, selected, lambda h: self._open(h, early))
        except Exception as exc:
            # Closing the run cuts opens short: that is not the host's fault.
            error = _Cancelled("interrupted") if self._cancel.is_set() else exc
            slot.exception = error
            self.open_errors[name] = error
            slot.done.set()
            if selected:
                self._end(_not_opened(name, error, time.monotonic() - start))
            if name in self._relays:
                self._link(gateway=None, name=name).lost(f"unreachable ({one_line(error)})")
            return
        slot.gateway = gateway
        slot.done.set()
        if name in self._relays:
            self._link(gateway, name).start(host.xspec().fields.timeout())
        if not selected:
            return
        try:
            self._events.put(Running(name))
            self._end(self._execute(gateway, name, start, job))
        finally:
            if name not in self._carrier_names:
                gateway.exit(KILL_WAIT if self._cancel.is_set() else None)

    def _open_retrying(self, host: Host, selected: bool, opener: Callable[[Host], Any]) -> Any:
        """``opener(host)``, tried again after connection errors that may pass
        (refused, timed out: a host rebooting), with exponential backoff; each retry is
        an event."""
        retries = self._retries
        if retries is None:
            retries = host.retries if host.retries is not None else self._default_retries
        attempt = 1
        while True:
            try:
                return opener(host)
            except Exception as exc:
                if attempt > retries or self._cancel.is_set() or not retryable(exc):
                    raise
                delay = backoff(attempt)
                if selected:
                    self._events.put(
                        Retrying(host.name, attempt, retries + 1, one_line(exc), delay)
                    )
                if self._cancel.wait(delay * random.uniform(0.8, 1.2)):
                    raise _Cancelled("interrupted") from None
                attempt += 1

    def _link(self, gateway: Optional[Gateway], name: str) -> RelayLink:
        """The link to relay ``name`` (its gateway None: it did not open)."""
        sink = Sink(self._events.put, self._put, self._end, _job_end, self._started, self._cancel)
        return RelayLink(gateway, name, self._relays[name], self.job, self.fanout, sink)

    def _open(self, host: Host, early: Optional[JobStart] = None) -> Gateway:
        if host.via:
            carrier = self._slots[host.via]
            while not carrier.done.wait(0.1):
                if self._cancel.is_set():
                    raise _Cancelled("interrupted")
            if carrier.gateway is None:  # its cause says why (an unknown host key, say)
                why = one_line(carrier.exception) if carrier.exception else "did not open"
                error = ConnectFailed(f"via {host.via}: unreachable ({why})")
                raise error from carrier.exception
        if self._cancel.is_set():
            raise _Cancelled("interrupted")
        gateway = self.group.makegateway(host.xspec(), before_ready=early)
        if self._cancel.is_set():  # close() may have missed it
            gateway.exit(KILL_WAIT)  # its receiver has handed over all the worker sent
            if early is not None and early.started is not None:  # the job ran: keep its output
                splitters = {"out": LineSplitter(), "err": LineSplitter()}
                self._emit(host.name, early.started[1].take(0), splitters, flush=True)
            raise _Cancelled("interrupted")
        return gateway

    def _direct(self, host: Host, start: float) -> Event:
        """``xnet sh`` without a remote Python (``direct``): the same events."""
        try:
            if self._cancel.is_set():
                raise _Cancelled("interrupted")
            with self._direct_opens.opening():  # close() cuts a stuck handshake short
                command = self._open_retrying(host, True, lambda h: direct.start(h, self.job))
        except Exception as exc:
            self.open_errors[host.name] = exc
            error = _Cancelled("interrupted") if self._cancel.is_set() else exc
            return _not_opened(host.name, error, time.monotonic() - start)
        self._events.put(Running(host.name))
        splitters = {"out": LineSplitter(), "err": LineSplitter()}

        def emit(pieces: list[tuple[str, str]], flush: bool) -> None:
            self._emit(host.name, pieces, splitters, flush)

        return direct.finish(command, self.job, host.name, start, emit, self._cancel)

    def _execute(self, gateway: Gateway, name: str, start: float, sent: JobStart) -> Event:
        """Run the job on an open gateway (``sent``: maybe already), putting its output;
        return the final event."""
        job = self.job
        try:
            channel, collector = start_job(gateway, job, sent)
        except ChannelClosed:  # the worker died right after it said ready
            return self._lost(gateway, name, start)
        deadline = None if job.timeout is None else time.monotonic() + job.timeout
        splitters = {"out": LineSplitter(), "err": LineSplitter()}
        try:
            while not collector.ended:
                wait = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
                if wait <= 0:
                    self._emit(name, collector.take(0), splitters, flush=True)
                    # the worker ends the job's processes, then itself; killed if stuck
                    gateway.exit(KILL_WAIT)
                    error = f"timed out after {job.timeout:g} s"
                    return Failed(name, TIMED_OUT, error, time.monotonic() - start)
                self._emit(name, collector.take(wait), splitters)
            self._emit(name, collector.take(0), splitters, flush=True)
        finally:
            collector.stop()
        if collector.exit is not None:
            _, code, text = collector.exit
            duration = time.monotonic() - start
            return _job_end(job, name, int(code), text, duration, collector.returned)
        try:
            channel.waitclose(0)
        except RemoteError as exc:
            return Failed(name, FAILED, one_line(exc), time.monotonic() - start, str(exc))
        except (EOFError, channel.TimeoutError):
            pass
        return self._lost(gateway, name, start)

    def _emit(
        self, name: str, pieces: list[tuple[str, str]], splitters: dict, flush: bool = False
    ) -> None:
        """Put ``pieces`` as events of whole lines (``flush``: the last pieces too)."""
        for stream, text in _runs(pieces):
            self._put(name, stream, splitters[stream].feed(text))
        if flush:
            for stream, splitter in splitters.items():
                self._put(name, stream, splitter.rest())

    def _put(self, name: str, stream: str, text: str) -> None:
        if text:
            self._budget.acquire(len(text), self._cancel)
            self._events.put(Output(name, stream, text))

    def _lost(self, gateway: Gateway, name: str, start: float) -> Failed:
        """The end of a host whose worker went away: we ended it, or it died (how?)."""
        if self._cancel.is_set():
            return Failed(name, INTERRUPTED, "interrupted", time.monotonic() - start)
        error, code = _worker_end(gateway)
        return Failed(name, FAILED, error, time.monotonic() - start, exit_code=code)


def _runs(pieces: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """Consecutive pieces of one stream, joined."""
    start = 0
    for i in range(1, len(pieces) + 1):
        if i == len(pieces) or pieces[i][0] != pieces[start][0]:
            yield pieces[start][0], "".join(text for _, text in pieces[start:i])
            start = i


def run_job(
    hosts: Sequence[Host],
    job: Job,
    *,
    fanout: int = DEFAULT_FANOUT,
    carriers: Sequence[Host] = (),
    on_event: Optional[Callable[[Event], None]] = None,
    capture_strays: bool = False,
    retries: Optional[int] = None,
    relays: Mapping[str, Sequence[Host]] = MappingProxyType({}),
) -> GroupResult:
    """Run ``job`` on ``hosts`` and return every host's result (library use, tests)."""
    result = GroupResult()
    with Runner(
        hosts,
        job,
        fanout=fanout,
        carriers=carriers,
        capture_strays=capture_strays,
        retries=retries,
        relays=relays,
    ) as runner:
        for event in runner.events():
            result.add(event)
            if on_event is not None:
                on_event(event)
    return result
