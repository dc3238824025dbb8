"""``xnet ping``: is each host reachable, with which Python, on which platform, how fast.

It runs a tiny job through the same runner as ``xnet run`` and times its events as they
arrive: ``connect`` is from the host's turn to its gateway being open (the handshake and
the worker's start), ``rtt`` from then to the job's answer (one request and its reply,
plus running three lines of Python). Exit status as for ``run`` (``exitcodes``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Optional

import click

from ..fleet.events import FAILED, OK, Event, Exited, Failed, Running, Started
from ..fleet.hostkeys import HostKeyRounds
from ..fleet.jobs import Job, python_job
from ..fleet.results import GroupResult
from ..fleet.runner import Runner, carriers_for
from . import config
from .exitcodes import exit_status
from .hostkeys import KeyQuestion, accept_new_option
from .options import complete_hosts, fanout_option, inventory_option, select_hosts, user_errors
from .render import clean, summary_line
from .run import leave_if_stopped, started, stopping

__all__ = ["PROBE", "Ping", "ping", "probe_job"]

#: What each host runs: its Python's version and its system, release and machine, one
#: line split by tabs (os.uname: platform.platform() reads the interpreter's binary).
PROBE = (
    "import os, sys\n"
    "u = os.uname()\n"
    "print(sys.version.split()[0], f'{u.sysname} {u.release} {u.machine}', sep='\\t')\n"
)


def probe_job() -> Job:
    """PROBE, sent once the gateway is open: RTT is then one request and its answer (sent
    behind the bootstrap, the answer came with the gateway's opening: RTT ~0)."""
    return python_job(PROBE).replace(early=False)


@dataclass
class Ping:
    """One host's answer (or why there is none); times in seconds."""

    name: str
    status: str = ""
    python: Optional[str] = None
    platform: Optional[str] = None
    connect: Optional[float] = None
    rtt: Optional[float] = None
    error: Optional[str] = None
    log: str = ""  # what xnet logged or the worker said on stderr about this host

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` record (times in milliseconds)."""
        return {
            "name": self.name,
            "status": self.status,
            "python": self.python,
            "platform": self.platform,
            "connect_ms": _ms(self.connect),
            "rtt_ms": _ms(self.rtt),
            "error": self.error,
            "log": self.log,
        }

    def cells(self) -> list[str]:
        """The row's columns; a host without an answer has its error as its last cell."""
        if self.status != OK:
            return [self.name, self.status, clean(self.error or "")]
        return [
            self.name,
            self.status,
            self.python or "?",
            self.platform or "?",
            f"{_ms(self.connect)} ms",
            f"{_ms(self.rtt)} ms",
        ]


def _ms(seconds: Optional[float]) -> Optional[float]:
    return None if seconds is None else round(seconds * 1000, 1)


class _Timer:
    """Stamps each host's events as they arrive and makes a ``Ping`` of them."""

    def __init__(self, result: GroupResult) -> None:
        self.result = result
        self.stamps: dict[tuple[str, str], float] = {}
        self.pings: dict[str, Ping] = {}

    def handle(self, event: Event) -> None:
        now = time.monotonic()
        if isinstance(event, (Started, Running)):
            self.stamps[(event.host, type(event).__name__)] = now
        elif isinstance(event, (Exited, Failed)) and event.host in self.result:
            self.pings[event.host] = self._ping(event.host, now)

    def _ping(self, name: str, now: float) -> Ping:
        result = self.result[name]
        begun = self.stamps.get((name, "Started"))
        running = self.stamps.get((name, "Running"))
        answer = Ping(name, result.status, error=result.error)
        if begun is not None and running is not None:
            answer.connect, answer.rtt = running - begun, now - running
        answer.log = result.log
        if result.ok:
            facts = result.stdout.rstrip("\n").split("\t")
            if len(facts) == 2:
                answer.python, answer.platform = facts
            else:
                answer.status, answer.error = FAILED, f"unexpected answer: {result.stdout!r}"
        return answer


def _aligned(rows: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell. A short row's last cell (an error) runs on to
    the end of its line and sets no width, so one long error does not stretch the table."""
    width = len(rows[0])
    widths = [
        max((len(row[i]) for row in rows if i < len(row) - 1 or len(row) == width), default=0)
        for i in range(width)
    ]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]


@click.command("ping")
@click.argument("pattern", required=False, default="all", shell_complete=complete_hosts)
@inventory_option
@fanout_option()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per host and line.")
@accept_new_option
def ping(
    pattern: str, inventories: tuple[str, ...], fanout: int, as_json: bool, accept_new: bool
) -> None:
    """Reach every host PATTERN selects (default: all): Python version, platform, timing.

    \b
    Columns: HOST STATUS PYTHON PLATFORM CONNECT RTT, sorted by host; CONNECT is the
    time to open the gateway, RTT one request and its answer on it.
    Exit status as for xnet run: 0 all reachable, 3 some unreachable, 5 no host.
    """
    begin = started()
    inventory, hosts = select_hosts(inventories, pattern)
    with user_errors():
        carriers_for(hosts, inventory.host)  # a bad via= is a usage error before anything runs
    result = GroupResult()
    timer = _Timer(result)
    question = KeyQuestion(accept_new)
    try:
        with (
            HostKeyRounds(
                hosts,
                question,
                lambda some: Runner(
                    some,
                    probe_job(),
                    fanout=fanout,
                    carriers=carriers_for(some, inventory.host),
                    capture_strays=True,
                ),
            ) as rounds,
            stopping(rounds.stop) as received,
        ):
            for event in rounds.events():
                result.add(event)
                timer.handle(event)
    finally:
        result.close()
    pings = [timer.pings[h.name] for h in hosts if h.name in timer.pings]
    if as_json:
        for answer in pings:
            click.echo(json.dumps(answer.as_dict()))
    elif pings:
        heading = ["HOST", "STATUS", "PYTHON", "PLATFORM", "CONNECT", "RTT"]
        for line in _aligned([heading, *(p.cells() for p in pings)]):
            click.echo(line)
        err = config.console(stderr=True, highlight=False)
        err.print(summary_line(result, time.monotonic() - begin), soft_wrap=True)
    question.hint(rounds.refused)
    leave_if_stopped(received, quiet=as_json)
    raise click.exceptions.Exit(exit_status(result.outcomes))
