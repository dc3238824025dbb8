"""Syncing with many hosts: open their gateways (``fanout`` at a time), push or pull, report.

A push serves each batch of ``fanout`` hosts from one ``RSync.send``: the source is scanned
once and each file read once for all of them. A pull runs one ``pull`` per host, ``fanout``
at a time. Hosts are given as ``Place``s (a name, a spec, paths); what happens to each is
told to a ``Report`` as it happens, so the command line can show it; a host that cannot be
reached or fails is reported with its reason while the others go on. Hosts reached
``via=`` another gateway need it open first: ``carriers`` (opened before anything else,
kept open to the end) are given as (name, spec, via) in any order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

from ..gateway import Gateway
from ..group import Group
from . import RSync
from .pull import pull
from .results import SyncResult, error_line

__all__ = ["Place", "Report", "Settings", "pull_many", "push_many"]

#: How long gateways are given to end when the run is over (then they are killed).
EXIT_WAIT = 5.0


@dataclass(frozen=True)
class Place:
    """One host of the run: ``remote`` is the path there; ``local`` the local path (pulls)."""

    name: str
    spec: str
    remote: str
    local: str = ""
    delta: bool = True
    into: Optional[str] = None


@dataclass(frozen=True)
class Settings:
    """How the run goes: hosts at once, time per host, what to leave out, sync options,
    and the carriers (name, spec, via) that hosts reach others ``via`` (by host name)."""

    fanout: int = 64
    timeout: Optional[float] = None
    excludes: tuple[str, ...] = ()
    delete: bool = False
    checksum: bool = False
    dry_run: bool = False
    carriers: tuple[tuple[str, str, Optional[str]], ...] = ()
    vias: Mapping[str, Optional[str]] = field(default_factory=dict)
    stop: Optional[threading.Event] = None  # set: end the run (hosts under way fail)

    def options(self) -> dict[str, bool]:
        return {"delete": self.delete, "checksum": self.checksum, "dry_run": self.dry_run}


class Report(Protocol):
    """What the run tells as it goes (every method is called from the calling thread or a
    pool thread; implementations must be thread-safe)."""

    def started(self, name: str) -> None: ...

    def unreachable(self, name: str, error: str, detail: str, duration: float) -> None: ...

    def syncing(self, name: str, progress: Any) -> None: ...

    def finished(self, name: str, result: SyncResult) -> None: ...


class _Opener:
    """Opens gateways in one group, carriers first; classifies what fails to open."""

    def __init__(self, carriers: Sequence[tuple[str, str, Optional[str]]], report: Report) -> None:
        self.group = Group()
        self.report = report
        self.failed_carriers: dict[str, str] = {}
        self._open_carriers(list(carriers))

    def _open_carriers(self, pending: list[tuple[str, str, Optional[str]]]) -> None:
        opened = set()
        while pending:
            ready = [
                c for c in pending if not c[2] or c[2] in opened or c[2] in self.failed_carriers
            ]
            if not ready:  # a via loop the inventory let through: give up on them
                for name, _, _ in pending:
                    self.failed_carriers[name] = "via loop"
                return
            for name, spec, via in ready:
                pending.remove((name, spec, via))
                if via in self.failed_carriers:
                    self.failed_carriers[name] = f"via {via}: unreachable"
                    continue
                try:
                    self.group.makegateway(spec)
                    opened.add(name)
                except Exception as exc:
                    self.failed_carriers[name] = error_line(exc)

    def open(self, place: Place, via: Optional[str]) -> Optional[Gateway]:
        start = time.monotonic()
        self.report.started(place.name)
        if via in self.failed_carriers:
            why = f"via {via}: unreachable ({self.failed_carriers[via]})"
            self.report.unreachable(place.name, why, why, time.monotonic() - start)
            return None
        try:
            return self.group.makegateway(place.spec)
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            self.report.unreachable(place.name, error_line(exc), detail, time.monotonic() - start)
            return None

    def open_all(
        self, places: Sequence[Place], vias: Mapping[str, Optional[str]], fanout: int
    ) -> list[tuple[Place, Gateway]]:
        with ThreadPoolExecutor(max_workers=max(1, min(fanout, len(places)))) as pool:
            opened = list(pool.map(lambda p: (p, self.open(p, vias.get(p.name))), places))
        return [(place, gw) for place, gw in opened if gw is not None]

    def close(self, gateways: Sequence[Gateway] = ()) -> None:
        for gateway in gateways:
            gateway.exit(EXIT_WAIT)

    def terminate(self) -> None:
        self.group.terminate(EXIT_WAIT)


class _Progress:
    """Passes the sender's targets to the report as the sync starts, and the sender's
    events on to ``more`` (``hooks`` of ``push_many``)."""

    def __init__(self, report: Report, more: Any) -> None:
        self.report = report
        self.more = more

    def __getattr__(self, name: str) -> Any:
        return getattr(self.more, name)

    def on_start(self, targets: Sequence[Any]) -> None:
        for target in targets:
            self.report.syncing(target.name, target)
        method = getattr(self.more, "on_start", None)
        if method is not None:
            method(targets)


def push_many(
    source: str, places: Sequence[Place], report: Report, settings: Settings, hooks: Any = None
) -> None:
    """Push ``source`` to every place's ``remote`` path, ``fanout`` hosts at a time.

    ``hooks``: more of the sender's events (``_remote/rsync_send.Sender``), e.g. ``on_file``.
    """
    opener = _Opener(settings.carriers, report)
    fanout = settings.fanout
    try:
        for first in range(0, len(places), fanout):
            if settings.stop is not None and settings.stop.is_set():
                return
            opened = opener.open_all(places[first : first + fanout], settings.vias, fanout)
            if not opened:
                continue
            rsync = RSync(source, verbose=False, excludes=settings.excludes)
            live = []
            for place, gateway in opened:
                try:
                    rsync.add_target(
                        gateway,
                        place.remote,
                        None,
                        delta=place.delta,
                        delete=settings.delete,
                        checksum=settings.checksum,
                        dry_run=settings.dry_run,
                    )
                    live.append(place)
                except Exception as exc:  # the worker died as it opened
                    report.finished(place.name, _failed(place, exc))
            try:
                results = rsync.send(
                    False,
                    check=False,
                    timeout=settings.timeout,
                    hooks=_Progress(report, hooks),
                    stop=settings.stop,
                )
                for place, result in zip(live, results or ()):  # None: no target left
                    report.finished(place.name, result)
            finally:
                opener.close([gw for _, gw in opened])
    finally:
        opener.terminate()


def pull_many(places: Sequence[Place], report: Report, settings: Settings) -> None:
    """Pull every place's ``remote`` path into its ``local`` one, ``fanout`` at a time."""
    from .excludes import translate

    rules = translate(settings.excludes)
    opener = _Opener(settings.carriers, report)
    stop = threading.Event()
    timeout = settings.timeout

    def one(place: Place) -> None:
        if stop.is_set():
            return
        try:
            gateway = opener.open(place, settings.vias.get(place.name))
        except Exception as exc:  # a bug of ours: reported, never lost in the pool
            report.finished(place.name, _failed(place, exc))
            return
        if gateway is None:
            return
        timer = None
        if timeout is not None:  # ending the worker ends the pull, which reports it
            timer = threading.Timer(timeout, gateway.exit, (0,))
            timer.daemon = True
            timer.start()
        try:
            result = pull(
                gateway,
                place.remote,
                place.local,
                excludes=rules,
                into=place.into,
                name=place.name,
                delta=place.delta,
                receiver_ready=lambda receiver: report.syncing(place.name, receiver),
                **settings.options(),
            )
            if not result.ok and stop.is_set():
                result = _replace_error(result, "interrupted")
            elif timer is not None and not timer.is_alive() and not result.ok:
                result = _replace_error(result, f"timed out after {timeout:g} s")
            report.finished(place.name, result)
        finally:
            if timer is not None:
                timer.cancel()
            opener.close([gateway])

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(settings.fanout, len(places)))) as pool:
            futures = [pool.submit(one, place) for place in places]
            try:
                for future in futures:
                    while not _wait(future):
                        if settings.stop is not None and settings.stop.is_set():
                            raise _Stopped
            except BaseException as exc:
                stop.set()
                opener.terminate()  # ends the pulls under way, so the pool can end
                if not isinstance(exc, _Stopped):
                    raise
    finally:
        opener.terminate()


class _Stopped(Exception):
    """``Settings.stop`` was set: the pulls under way are ended."""


def _wait(future: Any) -> bool:
    """Wait a little for ``future`` (short waits keep Ctrl-C responsive)."""
    try:
        future.result(timeout=0.2)
    except FutureTimeout:
        return False
    return True


def _failed(place: Place, exc: BaseException) -> SyncResult:
    return SyncResult(place.name, place.remote, False, error_line(exc), str(exc))


def _replace_error(result: SyncResult, error: str) -> SyncResult:
    from dataclasses import replace

    return replace(result, error=error)
