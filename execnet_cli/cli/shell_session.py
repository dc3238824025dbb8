"""The hosts of an ``xnet shell`` session, and running each statement on all of them.

With one host, output is shown as it comes and a traceback as the interpreter prints it.
With several, each statement runs on every host in parallel and its results are shown
gathered and folded when all hosts are done (``web[01-15]: 42`` / ``web16: KeyError: 'x'``),
from the same ``GroupResult`` that ``xnet run`` folds. A host that is lost, or that runs a
statement longer than ``--timeout``, is dropped with a note; the others go on.

Ctrl-C while a statement runs interrupts it on every host (``KeyboardInterrupt`` there);
pressed three times in one statement it ends the session (a statement blocked where no
signal reaches cannot be stopped otherwise).
"""

from __future__ import annotations

import queue
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Optional, TextIO

from rich.console import Console
from rich.text import Text

from ..errors import XnetError
from ..fleet.events import FAILED, OK, Exited, Failed, Output, Started
from ..fleet.hostkeys import Decide, NewKey
from ..fleet.results import GroupResult
from ..group import Group
from ..inventory import Host, HostSet, Inventory
from .shell_hosts import open_hosts
from .shell_remote import RemoteShell

__all__ = ["INTERRUPTS_TO_END", "Outcome", "Session", "SessionEnded"]

#: Ctrl-C presses during one statement that end the session.
INTERRUPTS_TO_END = 3
#: How the session says a host is gone from it (once: a note, or the statement's result).
DROPPED = "dropped from the session"
#: How long a dropped host's worker is given to end before it is killed.
DROP_WAIT = 1.0


@dataclass(frozen=True)
class Outcome:
    """How a statement ended on the session's hosts, worst first: ``exit`` (``code``: the
    status ``exit()`` asked for), ``interrupted``, ``error``, ``ok``."""

    status: str
    code: int = 0


class SessionEnded(XnetError):
    """The session cannot go on (no host left, or Ctrl-C pressed repeatedly)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Session:
    """Remote engines on the selected hosts; ``run`` one statement at a time."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        fanout: int,
        timeout: Optional[float] = None,
        verbose: bool = False,
        read_line: Callable[[], Optional[str]],
        decide: Decide = lambda keys: False,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.inventory = inventory
        self.decide = decide  # whether to record unknown host keys met opening hosts
        self.refused: list[NewKey] = []  # the keys not recorded, for the caller to tell
        self.group = Group()
        self.fanout = fanout
        self.timeout = timeout
        self.verbose = verbose
        self.read_line = read_line  # a line for the remote input(): None at end of file
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.console = Console(file=self.out, highlight=False)
        self.shells: dict[str, RemoteShell] = {}
        self._events: queue.SimpleQueue[tuple[Optional[str], tuple]] = queue.SimpleQueue()
        self._running = False
        self._ending = False  # lost channels are expected now: no notes

    # -- hosts ---------------------------------------------------------------------------

    @property
    def names(self) -> HostSet:
        return HostSet(self.shells)

    def add(self, hosts: Iterable[Host]) -> tuple[dict[str, str], dict[str, str]]:
        """Open the hosts not in the session yet; return why hosts failed, one line each:
        (unreachable ones, ones that hit a bug of ours)."""
        hosts = [h for h in hosts if h.name not in self.shells]
        opened = open_hosts(self.group, self.inventory, hosts, self.fanout, self.decide)
        self.refused += opened.refused
        for name, gateway in opened.gateways.items():
            try:
                self.shells[name] = RemoteShell(name, gateway, self._sink)
            except Exception as exc:
                opened.unreachable[name] = str(exc)
                gateway.exit(DROP_WAIT)
        return opened.unreachable, opened.errors

    def keep(self, names: Iterable[str]) -> None:
        """End every host not in ``names``."""
        keep = set(names)
        for name in [n for n in self.shells if n not in keep]:
            self.shells.pop(name).close(DROP_WAIT)

    def drop(self, name: str, why: str, announce: bool = True) -> None:
        """End ``name``'s shell; ``announce=False`` where the statement's results say it."""
        shell = self.shells.pop(name, None)
        if shell is not None:
            if announce:
                self.note(f"{name}: {why}; {DROPPED}")
            shell.gateway.exit(DROP_WAIT)

    def note(self, line: str) -> None:
        self.err.write(f"xnet: {line}\n")
        self.err.flush()

    def close(self) -> None:
        """End every host's engine and worker, and the carriers."""
        self._ending = True
        for shell in list(self.shells.values()):
            shell.close(DROP_WAIT)  # a worker stuck in a statement is not waited for long
        self.shells.clear()
        self.group.terminate(DROP_WAIT)

    def complete(self, text: str) -> list[str]:
        """Completions from the first host's namespace (none while a statement runs: its
        engine is busy, e.g. the statement reads input)."""
        if self._running:
            return []
        for name in self.names:
            return self.shells[name].complete(text)
        return []

    # -- items from the hosts (receiver threads) ------------------------------------------

    def _sink(self, host: str, item: tuple) -> None:
        kind = item[0]
        if kind in ("out", "err") and (not self._running or len(self.shells) == 1):
            self._show(host, kind, item[1], prefix=len(self.shells) > 1)
            return
        if kind == "lost" and not self._running and not self._ending and host in self.shells:
            self.note(f"{host}: {item[1]}")  # the hosts we end were removed first
        self._events.put((host, item))

    def _show(self, host: str, stream: str, text: str, prefix: bool = False) -> None:
        file = self.out if stream == "out" else self.err
        if prefix:
            text = "".join(f"{host}: {line}" for line in text.splitlines(True))
        file.write(text)
        file.flush()

    def poll(self) -> None:
        """Take what came between statements: drop lost hosts; end when none is left."""
        while True:
            try:
                host, item = self._events.get_nowait()
            except queue.Empty:
                break
            if host is not None and item[0] == "lost" and self._lost(host):
                self.shells.pop(host)
        if not self.shells:
            raise SessionEnded("no host left in the session", 1)

    def _lost(self, host: str) -> bool:
        """Whether the session's shell of ``host`` has ended (a "lost" item may be stale:
        from a shell ended earlier, the host added again since)."""
        shell = self.shells.get(host)
        return shell is not None and not shell.alive

    # -- running a statement -----------------------------------------------------------------

    def run(self, source: str) -> Outcome:
        """Run one statement on every host of the session; show what it did."""
        self.poll()
        previous = signal.signal(signal.SIGINT, self._on_interrupt)
        self._running = True
        try:
            run = _Run(self, source)
            run.wait()
        finally:
            signal.signal(signal.SIGINT, previous)
            self._running = False
        if not run.streaming:
            show_gathered(self.console, run.result, self.verbose)
        if not self.shells:
            raise SessionEnded("no host left in the session", 1)
        return run.outcome()

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        self._events.put((None, ("interrupt",)))  # SimpleQueue.put is safe in a handler


class _Run:
    """One statement on the session's hosts, until every host is done with it."""

    def __init__(self, session: Session, source: str) -> None:
        self.session = session
        self.pending = set(session.shells)
        self.streaming = len(self.pending) == 1
        self.result = GroupResult()
        self.statuses: dict[str, str] = {}
        self.exit_codes: dict[str, int] = {}
        self.pieces: dict[tuple[str, str], str] = {}
        self.presses = 0
        self.deadline = None if session.timeout is None else time.monotonic() + session.timeout
        for name in sorted(self.pending):
            self.result.add(Started(name))
            session.shells[name].run(source)

    def wait(self) -> None:
        events = self.session._events
        while self.pending:
            try:
                host, item = events.get(timeout=0.2)
            except queue.Empty:
                self._check_deadline()
                continue
            if host is None:
                self._interrupt()
            elif host in self.pending:
                self._take(host, item)
            elif item[0] in ("out", "err"):  # late output of a host done with it
                self.session._show(host, item[0], item[1], prefix=True)

    def _take(self, host: str, item: tuple) -> None:
        kind = item[0]
        if kind in ("out", "err"):
            self._output(host, kind, item[1])
        elif kind == "input":
            self._answer_input(host)
        elif kind == "done":
            self._done(host, item[1], item[2])
        elif kind == "lost" and self.session._lost(host):
            self._end(host, Failed(host, FAILED, f"{item[1]}; {DROPPED}", 0.0))
            self.session.drop(host, item[1], announce=False)

    def _output(self, host: str, stream: str, text: str) -> None:
        """Whole lines to the result (so hosts that printed the same fold together)."""
        key = (host, stream)
        data = self.pieces.pop(key, "") + text
        cut = data.rfind("\n") + 1
        if cut < len(data):
            self.pieces[key] = data[cut:]
        for line in data[:cut].splitlines(True):
            self.result.add(Output(host, stream, line))

    def _answer_input(self, host: str) -> None:
        shell = self.session.shells[host]
        if not self.streaming:  # one terminal cannot answer many hosts: end of file
            shell.answer_input("")
            return
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            line = self.session.read_line()
        except KeyboardInterrupt:
            self.session.out.write("\n")
            shell.answer_input(None)
            return
        finally:
            signal.signal(signal.SIGINT, previous)
        shell.answer_input("" if line is None else line)

    def _done(self, host: str, status: str, text: Any) -> None:
        self.statuses[host] = status
        if status == "exit":
            self.session._ending = True
            self.exit_codes[host] = int(text)
            self._end(host, Exited(host, 0, 0.0))
        elif status == "ok":
            self._end(host, Exited(host, 0, 0.0))
        else:
            if self.streaming:
                self.session.err.write(text)
                self.session.err.flush()
            last = text.strip().splitlines()[-1] if text.strip() else status
            self._end(host, Failed(host, FAILED, last, 0.0, text))

    def _end(self, host: str, event: Exited | Failed) -> None:
        for stream in ("out", "err"):
            rest = self.pieces.pop((host, stream), "")
            if rest:
                self.result.add(Output(host, stream, rest))
        self.result.add(event)
        self.statuses.setdefault(host, "error")
        self.pending.discard(host)

    def _interrupt(self) -> None:
        self.presses += 1
        if self.presses >= INTERRUPTS_TO_END:
            raise SessionEnded("interrupted; the session was ended", 130)
        if self.presses == 1 and not self.streaming:
            # the terminal echoed ^C; the gathered results start a line of their own
            self.session.out.write("\n")
            self.session.out.flush()
        if self.presses == INTERRUPTS_TO_END - 1:
            self.session.note("interrupting again; one more Ctrl-C ends the session")
        for host in self.pending:
            self.session.shells[host].interrupt()

    def _check_deadline(self) -> None:
        if self.deadline is None or time.monotonic() < self.deadline:
            return
        why = f"timed out after {self.session.timeout:g} s"
        for host in sorted(self.pending):
            self._end(host, Failed(host, FAILED, f"{why}; {DROPPED}", 0.0))
            self.session.drop(host, why, announce=False)

    def outcome(self) -> Outcome:
        if self.exit_codes:
            return Outcome("exit", self.exit_codes[min(self.exit_codes)])
        for status in ("interrupted", "error"):
            if status in self.statuses.values():
                return Outcome(status)
        return Outcome(OK)


_STREAM_STYLE = {"err": "red", "log": "dim"}


def show_gathered(console: Console, result: GroupResult, verbose: bool = False) -> None:
    """Each distinct output once, under the folded set of hosts that had it.

    One line: ``web[01-15]: 42``; more: the hosts, then the lines indented. Errors show
    their last line (``-v``: the whole traceback); hosts that printed nothing show nothing.
    """
    for names, host in result.gathered(verbose):
        lines = [  # output comes in runs of one stream (several lines each)
            (line, _STREAM_STYLE.get(stream, ""))
            for stream, text in host.output
            for line in text.splitlines()
        ]
        lines += [(line, "red") for line in host.error_lines(verbose)]
        if not lines:
            continue
        head = Text()
        head.append(f"{names}:", style="bold cyan" if host.status == OK else "bold red")
        if len(lines) == 1:
            head.append(" ")
            head.append(lines[0][0], style=lines[0][1])
            console.print(head, soft_wrap=True)
            continue
        console.print(head, soft_wrap=True)
        for line, style in lines:
            console.print(Text("    " + line, style=style), soft_wrap=True)
