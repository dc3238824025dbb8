"""``xnet run`` (Python code) and ``xnet sh`` (a shell command) on every selected host.

The command layer only picks hosts, builds the job, feeds each event to a ``GroupResult``
and a renderer, and maps the outcomes to an exit status (``exitcodes``); running is
``runner``'s, showing is ``render``'s (and ``live``'s, at a terminal).

SIGINT, SIGTERM and SIGHUP stop the run rather than the process (``stopping``): every
gateway is ended, every host is reported (``interrupted`` if it had not ended, with what
it printed), the summary is written, and the status is 128 + the signal's number.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, NamedTuple, Optional

import click
from click.core import ParameterSource

from ..fleet.batches import RollingRunner, Rollout
from ..fleet.events import OK
from ..fleet.hostkeys import HostKeyRounds, NewKey
from ..fleet.jobs import Job, shell_job
from ..fleet.preconnect import preconnected
from ..fleet.relays import RelayPlan
from ..fleet.relays import plan as plan_relays
from ..fleet.results import GroupResult
from ..fleet.runner import Runner, carriers_for
from ..inventory import Host, Inventory
from ..records import Record
from . import config
from .exitcodes import Tolerance, exit_status, signal_status
from .forwarding import forwarding_options, run_job
from .hostkeys import KeyQuestion, accept_new_option
from .options import (
    complete_hosts,
    fail,
    fanout_option,
    inventory_option,
    select_hosts,
    timeout_option,
    user_errors,
)
from .outdir import OutdirWriter
from .render import GatherRenderer, JsonRenderer, Renderer, StreamRenderer
from .rolling import RollingOptions, remember, report, rolling_options

__all__ = [
    "RunOptions",
    "leave_if_stopped",
    "run",
    "run_options",
    "sh",
    "started",
    "stopping",
]

#: The signals that stop a run.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Retries(NamedTuple):
    """``--retries``: how many, and whether typed (it then beats the hosts' own)."""

    times: int
    typed: bool


class RunOptions(Record):
    """The options ``run`` and ``sh`` share, gathered into one value by ``run_options``
    (a ``Record``: a frozen value, as the dataclass it was, cheaper to import)."""

    __slots__ = (  # noqa: RUF023 (the order __init__ takes them)
        "inventories",
        "pattern",
        "fanout",
        "timeout",
        "as_json",
        "gather",
        "verbose",
        "raw",
        "tolerance",
        "outdir",
        "retries",
        "accept_new",
        "relays",
    )
    inventories: tuple[str, ...]
    pattern: str
    fanout: int
    timeout: Optional[float]
    as_json: bool
    gather: bool
    verbose: bool
    raw: bool
    tolerance: Tolerance
    outdir: Optional[str]
    retries: Retries
    accept_new: bool
    relays: int

    def __init__(
        self,
        inventories: tuple[str, ...],
        pattern: str,
        fanout: int,
        timeout: Optional[float],
        as_json: bool,
        gather: bool,
        verbose: bool,
        raw: bool,
        tolerance: Tolerance,
        outdir: Optional[str],
        retries: Retries,
        accept_new: bool,
        relays: int,
    ) -> None:
        self._set(
            *(inventories, pattern, fanout, timeout, as_json, gather, verbose, raw),
            *(tolerance, outdir, retries, accept_new, relays),
        )


_RUN_OPTIONS = (
    inventory_option,
    click.option(
        "-H",
        "--hosts",
        "pattern",
        default="all",
        show_default=True,
        metavar="PATTERN",
        shell_complete=complete_hosts,
        help="Hosts to run on: web, 'web[01-03]', 'web&prod', 'all,!db' (see xnet hosts); "
        "'-' reads names from stdin, @FILE from a file; user@host[:port] works ad hoc; "
        "@failed: the last run's failed hosts (also @ok, @unreachable, @timed-out, @not-run).",
    ),
    fanout_option(),
    timeout_option(
        "Fail a host whose job runs longer (connecting is bounded by the "
        "inventory's connect_timeout)."
    ),
    click.option("--json", "as_json", is_flag=True, help="One JSON object per host and line."),
    click.option(
        "--gather/--no-gather",
        default=True,
        help="Show identical output once under its folded host set (default), or stream "
        "'host: line' as lines arrive.",
    ),
    click.option("-v", "--verbose", is_flag=True, help="Show remote tracebacks in full."),
    click.option(
        "--raw",
        is_flag=True,
        help="Show host output as it is: terminal escape sequences and control characters "
        "included (by default they are dropped or shown as \\xNN).",
    ),
    click.option(
        "--tolerate",
        "tolerance",
        default="0",
        envvar="XNET_TOLERATE",
        metavar="N[%]",
        callback=lambda ctx, param, value: _tolerance(value),
        help="Exit 0 when at most N hosts (or N% of them) failed, timed out or were "
        "unreachable. Default 0.",
    ),
    click.option(
        "--retries",
        type=click.IntRange(min=0),
        default=0,
        envvar="XNET_RETRIES",
        metavar="N",
        help="Try connecting again up to N times when it is refused or times out (a host "
        "rebooting), after 0.5, 1, 2, ... s. Default: each host's 'retries' variable, else 0; "
        "this flag overrides it.",
    ),
    click.option(
        "--outdir",
        metavar="DIR",
        type=click.Path(file_okay=False),
        help="Also write each host's output to DIR/HOST.stdout and DIR/HOST.stderr "
        "(DIR is created; files of an earlier run are replaced).",
    ),
    accept_new_option,
    click.option(
        "--relays",
        type=click.IntRange(min=0),
        default=0,
        metavar="N",
        help="Pick N of the selected hosts as relays: each opens and serves a share of the "
        "others (--fanout at once), besides those the inventory's 'relay' variable places. "
        "See docs/relays.md.",
    ),
)


def _tolerance(text: str) -> Tolerance:
    try:
        return Tolerance.parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_FIELDS = RunOptions.__slots__


def run_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add the shared options to ``command``, which receives them as ``options=RunOptions``."""

    @functools.wraps(command)
    def collect(**kwargs: Any) -> None:
        typed = click.get_current_context().get_parameter_source("retries")
        kwargs["retries"] = Retries(kwargs["retries"], typed is ParameterSource.COMMANDLINE)
        options = RunOptions(**{name: kwargs.pop(name) for name in _FIELDS})
        command(options=options, **kwargs)

    decorated: Callable[..., None] = collect
    for option in reversed(_RUN_OPTIONS):  # decorators apply bottom-up
        decorated = option(decorated)
    return decorated


def started() -> float:
    """When this command started (``time.monotonic``): the summary's time counts from it."""
    context = click.get_current_context(silent=True)
    meta = context.meta if context is not None else {}
    return float(meta.setdefault("xnet.started", time.monotonic()))


@contextmanager
def stopping(stop: Callable[[], None]) -> Iterator[list[int]]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP call ``stop`` (once) instead of
    ending the process; the list names the signal received, if any. A second signal
    while the run is already stopping is ignored: ending it is bounded anyway.
    """
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if not received:
            received.append(signum)
            stop()

    if threading.current_thread() is not threading.main_thread():
        yield received  # only the main thread may set handlers (a library caller's thread)
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def leave_if_stopped(received: list[int], quiet: bool = False) -> None:
    """After a run ``stopping`` saw a signal: say so (unless ``quiet``) and leave with 128+N."""
    if received:
        if not quiet:
            name = signal.Signals(received[0]).name
            click.echo(f"xnet: stopped by {name}; every gateway was ended", err=True)
        raise click.exceptions.Exit(signal_status(received[0]))


def _execute(job: Job, options: RunOptions, rolling: RollingOptions) -> None:
    """Run ``job`` on the selected hosts (in batches: ``rolling``), show it, record its
    outcome sets, and leave with the table's status.

    Each event goes to the result first, then to the renderer, which draws from it.
    """
    begin = started()
    if options.as_json and not options.gather:
        raise click.UsageError("--json and --no-gather cannot be combined (--json streams already)")
    if rolling.diff and (options.as_json or not options.gather):
        raise click.UsageError("--diff goes with the gathered view (not --json, --no-gather)")
    inventory, hosts = select_hosts(options.inventories, options.pattern)
    _carriers(inventory, hosts)  # a bad via= is a usage error before anything runs
    _relays(inventory, options.relays, hosts)  # and so is a bad relay
    files = _outdir(options.outdir)
    rollout = rolling.rollout(hosts)
    result = GroupResult()
    renderer = _renderer(options, result, [h.name for h in hosts], rolling, rollout)
    question = KeyQuestion(options.accept_new, getattr(renderer, "paused", nullcontext))
    refused: list[NewKey] = []
    received: list[int] = []

    def runner_for(some: Sequence[Host]) -> Runner:
        return Runner(
            some,
            job,
            fanout=options.fanout,
            carriers=_carriers_and_relays(inventory, options.relays, some),
            capture_strays=True,
            retries=options.retries.times if options.retries.typed else None,
            default_retries=options.retries.times,
            relays=_relays(inventory, options.relays, some).served,
        )

    def batch_runner(batch: Sequence[Host]) -> HostKeyRounds:
        return HostKeyRounds(batch, question, runner_for, refused=refused)  # one hint a run

    try:
        with (
            preconnected(_first_hosts(rollout, options), options.fanout),
            RollingRunner(rollout, batch_runner) as runner,
            stopping(runner.stop) as received,
        ):
            for event in runner.events():
                result.add(event)
                if files is not None:
                    files.handle(event)
                renderer.handle(event)
            renderer.finish(lambda: time.monotonic() - begin)
    finally:
        if files is not None:
            files.close()
        renderer.close()
        outcomes = {name: result[name].status for name in result}
        sets = remember(
            job.kind, options.pattern, [h.name for h in hosts], outcomes, rolling.save_run
        )
        result.close()
    if not options.as_json:
        report(rollout, rolling, sets)
    question.hint(refused)
    leave_if_stopped(received, quiet=options.as_json)
    bad = len(result) - result.count(OK)
    status = exit_status(result.outcomes, bad, len(hosts), options.tolerance, rollout.stopped_early)
    if status == 0 and bad and not options.as_json:
        click.echo(
            f"xnet: {bad} of {len(hosts)} hosts not ok, tolerated (--tolerate {options.tolerance})",
            err=True,
        )
    raise click.exceptions.Exit(status)


def _first_hosts(rollout: Rollout, options: RunOptions) -> Sequence[Host]:
    """The hosts whose connections may begin now: the first batch's (none with --relays)."""
    return rollout.batches[0].hosts if rollout.batches and not options.relays else ()


def _outdir(name: Optional[str]) -> Optional[OutdirWriter]:
    """The writer of ``--outdir``, its directory made now: a bad one is a usage error."""
    if name is None:
        return None
    try:
        return OutdirWriter(Path(name))
    except OSError as exc:
        fail(f"--outdir {name}: cannot create the directory: {exc.strerror or exc}")


def _one_stdin(argument: str, options: RunOptions) -> None:
    if argument == "-" and options.pattern == "-":
        fail("standard input cannot give both the code and the hosts: use --hosts @FILE")


def _renderer(
    options: RunOptions,
    result: GroupResult,
    names: list[str],
    rolling: RollingOptions,
    rollout: Rollout,
) -> Renderer:
    if options.as_json:
        return JsonRenderer(sys.stdout, result)
    out, err = config.console(highlight=False), config.console(stderr=True, highlight=False)
    if not options.gather:
        return StreamRenderer(out, err, result, names, options.verbose, options.raw)
    args = (out, err, result, names, options.verbose, options.raw)
    if err.is_terminal and names:
        from .live import LiveRenderer  # only a terminal pays for rich's Live

        if rolling.diff:
            from .diffview import LiveDiffRenderer

            live: LiveRenderer = LiveDiffRenderer(*args)
        else:
            live = LiveRenderer(*args)
        if rolling.rolling:
            live.note = rollout.progress
        return live
    if rolling.diff:
        from .diffview import DiffRenderer

        return DiffRenderer(*args)
    return GatherRenderer(*args)


def _carriers(inventory: Inventory, hosts: Sequence[Host]) -> list[Host]:
    """Hosts that selected hosts reach ``via``, opened too but not run on."""
    with user_errors():
        return carriers_for(hosts, inventory.host)


def _relays(inventory: Inventory, count: int, hosts: Sequence[Host]) -> RelayPlan:
    """Which relays serve which of ``hosts`` (the inventory's, and ``--relays``)."""
    with user_errors():
        return plan_relays(hosts, inventory.host, count)


def _carriers_and_relays(inventory: Inventory, count: int, hosts: Sequence[Host]) -> list[Host]:
    """The carriers of ``hosts``, and the relays that serve them but are not among them
    (with their own carriers): opened, not run on."""
    relays = _relays(inventory, count, hosts).carriers
    return _carriers(inventory, hosts) + _carriers(inventory, relays) + relays


@click.command("run")
@click.argument("code", required=False)
@run_options
@rolling_options()
@forwarding_options
def run(
    code: Optional[str], options: RunOptions, rolling: RollingOptions, **forwarding: Any
) -> None:
    """Run Python CODE on every selected host; show what it prints and how it ended.

    CODE is source text, '-' for standard input, or @FILE for a file. It runs as
    __main__ in a fresh interpreter on each host; sys.exit(N) sets that host's exit code.
    Instead of CODE: -m PKG.MOD:FUNC calls a function (its return value is shown per
    host), --file SCRIPT runs a script; the hosts import what they lack from here.

    \b
    Examples:
      xnet run 'import platform; print(platform.node())'
      xnet run -i lab.yaml --hosts web @check.py
      xnet run --json 'import os; print(os.cpu_count())' | jq -r .stdout
      xnet run -m mypkg.tasks:deploy --hosts web
      xnet run --file tools/check.py --hosts web

    \b
    At a terminal a live table shows each host while it works; then each distinct
    output is shown once under the hosts that printed it.

    \b
    Exit status (the first that applies): 128+N stopped by signal N (130 Ctrl-C),
    70 internal error (see --debug), 6 stopped on the failure budget (--max-fail,
    --canary), 1 some host failed, 4 some host timed out, 3 some host unreachable,
    0 all ok (or within --tolerate); 2 usage or inventory error, 5 the pattern
    selected no host, 141 stdout closed (| head).
    """
    if code is not None:
        _one_stdin(code, options)
    _execute(run_job(code, options.timeout, **forwarding), options, rolling)


@click.command("sh")
@click.argument("command")
@run_options
@rolling_options()
def sh(command: str, options: RunOptions, rolling: RollingOptions) -> None:
    """Run the shell COMMAND on every selected host (sh -c, started by its worker).

    Output streams back as it comes; each host's exit status is reported. COMMAND '-'
    reads the command from standard input.

    \b
    Examples:
      xnet sh 'uptime'
      xnet sh -i lab.yaml --hosts 'web,!web03' --no-gather 'tail -n 20 /var/log/syslog'

    \b
    Rolling and rerunning:
      xnet sh --canary 1 --batch 25% --max-fail 2 'systemctl restart app'
      xnet sh -H @failed 'systemctl restart app'     # the hosts that failed last time
      xnet sh --diff 'cat /etc/resolv.conf'          # how hosts differ from the majority

    \b
    Exit status (the first that applies): 128+N stopped by signal N (130 Ctrl-C),
    70 internal error (see --debug), 6 stopped on the failure budget (--max-fail,
    --canary), 1 some host exited non-zero or failed, 4 some host timed out, 3 some
    host unreachable, 0 all exited 0 (or within --tolerate); 2 usage or inventory
    error, 5 the pattern selected no host, 141 stdout closed.
    """
    _one_stdin(command, options)
    if command == "-":
        command = sys.stdin.read()
    _execute(shell_job(command, options.timeout), options, rolling)
