"""``xnet rsync``: push a tree to many hosts, or pull one from each, with block deltas.

    xnet rsync DIR HOSTS            DIR lands at the same path on every host (--dest PATH)
    xnet rsync SRC HOSTS:DEST       push SRC to DEST
    xnet rsync HOSTS:SRC DEST       pull: each host's SRC into DEST/<host>/

The command picks the hosts (``options``), turns them into places (``rsync.hosts``), feeds
what happens to a ``GroupResult`` and a renderer (``render``), and leaves with the exit
status of ``xnet run`` (``exitcodes``). Each host's summary is its output, so hosts that
did the same fold under one host set, as ``xnet run`` folds identical output.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional, TextIO, Union

import click
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from ..fleet import events
from ..fleet.events import Event, Exited, Failed, Output, Started
from ..fleet.results import GroupResult
from ..fleet.runner import carriers_for
from ..inventory import Host, HostSet
from ..rsync.excludes import read_exclude_file, translate
from ..rsync.hosts import Place, Settings, pull_many, push_many
from ..rsync.results import SyncResult
from . import config, options
from .exitcodes import exit_status
from .live import LiveRenderer
from .render import GatherRenderer
from .rolling import RollingOptions, remember, report, rolling_options
from .run import leave_if_stopped, started, stopping

__all__ = ["parse_arguments", "remote_path", "rsync", "summary"]


@dataclass(frozen=True)
class Direction:
    """What the two arguments mean: a push or a pull, the hosts, the paths."""

    pull: bool
    pattern: str
    local: str
    remote: Optional[str]  # None: the same path as the local one (push only)


def parse_arguments(source: str, destination: str) -> Direction:
    """``DIR HOSTS``, ``SRC HOSTS:DEST`` or ``HOSTS:SRC DEST``.

    An argument names hosts when it has a ":" and is not an existing local path; it splits
    at its last ":" unless what follows starts with "&" or "!" (Ansible's ``web:&prod``
    pattern syntax): then the whole argument is the pattern.
    """
    from_hosts, to_hosts = _remote(source), _remote(destination)
    if from_hosts and to_hosts:
        options.fail("both arguments name hosts; one side must be local")
    if from_hosts:
        return Direction(True, from_hosts[0], destination, from_hosts[1] or None)
    if to_hosts:
        return Direction(False, to_hosts[0], source, to_hosts[1] or None)
    return Direction(False, destination, source, None)


def _remote(argument: str) -> Optional[tuple[str, str]]:
    if ":" not in argument or os.path.lexists(argument):
        return None
    pattern, _, path = argument.rpartition(":")
    if not pattern or path.startswith(("&", "!")):
        return None
    return pattern, path


def remote_path(host: Host, path: str) -> str:
    """``path`` as the host's worker must open it: a relative path is relative to the host's
    ``chdir``, else to its home directory (as ``clush --copy`` does)."""
    if path.startswith(("/", "~")) or host.chdir:
        return path
    return "~/" + path


def same_path(local: str) -> str:
    """Where ``DIR HOSTS`` puts DIR: its path as given (relative: under the remote home)."""
    normal = os.path.normpath(local)
    if os.path.isabs(normal) or normal.startswith(os.pardir):
        return os.path.abspath(normal)
    return normal


# -- reporting -------------------------------------------------------------------------------


def human(size: float) -> str:
    """Bytes for people: ``980 B``, ``1.2 KB``, ``301.0 MB``."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


def summary(result: SyncResult, pulled: bool = False) -> str:
    """One host's sync in a line (the same for hosts that did the same). A host with
    errors that changed nothing is not "up to date": it sent nothing. ``pulled``: the
    files came from the host (received, not sent)."""
    sent, send = _verbs(pulled)
    unchanged = f"nothing {sent}" if result.errors or result.error else "up to date"
    if result.dry_run:
        if not result.files and not result.deleted and not result.made:
            return f"dry run: {unchanged}"
        parts = [f"{files(result.files)} ({human(result.file_bytes)}) to {send}"]
        if result.deleted:
            parts.append(f"{len(result.deleted)} to delete")
        return "dry run: " + ", ".join(parts)
    if not result.files and not result.deleted and not result.made:
        return f"{unchanged} ({human(result.wire_bytes)} on the wire)"
    parts = [f"{files(result.files)} ({human(result.file_bytes)}) {sent}"]
    parts.append(f"{human(result.wire_bytes)} on the wire")
    if result.deleted:
        parts.append(f"{len(result.deleted)} deleted")
    return ", ".join(parts)


def _verbs(pulled: bool) -> tuple[str, str]:
    """``sent``/``send``; for a pull (the files came from the host) ``received``/``receive``."""
    return ("received", "receive") if pulled else ("sent", "send")


def output_lines(result: SyncResult, listed: bool, pulled: bool = False) -> list[tuple[str, str]]:
    """The host's output: (stream, line) pieces, for the gathered view; ``listed``: with
    every change (a dry run's always are; a push's go by as they happen with ``-v``)."""
    lines: list[tuple[str, str]] = []
    if result.dry_run or listed:
        sent, send = _verbs(pulled)
        word = {"send": f"would {send}" if result.dry_run else sent, "make": "make"}
        lines += [("out", f"{word[what]} {path}") for what, path in result.changes]
        verb = "would delete" if result.dry_run else "deleted"
        lines += [("out", f"{verb} {path}") for path in result.deleted]
    lines.append(("out", summary(result, pulled)))
    lines += [("err", f"skipped {path}: {why}") for path, why in result.skipped]
    lines += [("err", f"error: {path}: {reason}") for path, reason in result.errors]
    return lines


class _Reporter:
    """Turns what the run tells (``rsync.hosts.Report``) into events for the result and the
    renderer, under a lock (hosts finish in pool threads)."""

    def __init__(
        self, result: GroupResult, renderer: Any, listed: bool, pulled: bool = False
    ) -> None:
        self.result = result
        self.renderer = renderer
        self.listed = listed
        self.pulled = pulled
        self.lock = threading.Lock()
        self.starts: dict[str, float] = {}
        self.progress: dict[str, Any] = {}
        self.syncs: dict[str, SyncResult] = {}

    def emit(self, event: Event) -> None:
        with self.lock:
            self.result.add(event)
            self.renderer.handle(event)

    def started(self, name: str) -> None:
        self.starts[name] = time.monotonic()
        self.emit(Started(name))

    def unreachable(self, name: str, error: str, detail: str, duration: float) -> None:
        self.emit(Failed(name, events.UNREACHABLE, error, duration, detail))

    def syncing(self, name: str, progress: Any) -> None:
        self.progress[name] = (progress, time.monotonic())

    def finished(self, name: str, result: SyncResult) -> None:
        self.progress.pop(name, None)
        self.syncs[name] = result
        duration = time.monotonic() - self.starts.get(name, time.monotonic())
        for stream, line in output_lines(result, self.listed, self.pulled) if result.ok else ():
            self.emit(Output(name, stream, line + "\n"))
        if not result.ok:
            error = result.error or "failed"
            outcome = _OUTCOME_OF.get(error.partition(" after ")[0], events.FAILED)
            self.emit(Failed(name, outcome, error, duration, result.detail))
        elif result.errors:
            count = len(result.errors)
            why = f"{count} {'path' if count == 1 else 'paths'} not synced"  # dirs, deletes too
            self.emit(Failed(name, events.FAILED, why, duration))
        else:
            self.emit(Exited(name, 0, duration))

    def stopped(self, names: Sequence[str]) -> None:
        """The run was stopped: the hosts without an end yet end as interrupted."""
        for name in names:
            if name not in self.result:
                self.emit(Failed(name, events.INTERRUPTED, "interrupted", 0.0))


#: A failure's first words -> its outcome (anything else is FAILED).
_OUTCOME_OF = {"timed out": events.TIMED_OUT, "interrupted": events.INTERRUPTED}


class _JsonRenderer:
    """One JSON object per host, as each finishes: its outcome and its sync's figures."""

    def __init__(self, file: TextIO, result: GroupResult, syncs: dict[str, SyncResult]) -> None:
        self.file, self.result, self.syncs = file, result, syncs

    def handle(self, event: Event) -> None:
        if isinstance(event, (Exited, Failed)) and event.host in self.result:
            record = self.result[event.host].as_dict()
            for key in ("exit_code", "stdout", "stderr"):
                record.pop(key, None)
            sync = self.syncs.get(event.host)
            record.update(sync.as_dict() if sync is not None else {"dest": None})
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def finish(self, elapsed: Callable[[], float]) -> None:
        """Nothing more: every host was written as it finished."""

    def close(self) -> None:
        """Nothing to undo."""


class _ProgressRenderer(LiveRenderer):
    """The live table at a terminal, showing each host's files, bytes and rate while the
    sync goes on; the gathered output and summary follow it (``LiveRenderer``)."""

    def __init__(self, progress: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        self.progress = progress  # filled by the reporter as hosts start syncing
        super().__init__(*args, **kwargs)

    def view(self) -> RenderableType:
        return progress_table(dict(self.progress))


def progress_table(progress: dict[str, tuple[Any, float]], limit: int = 12) -> Union[Table, Text]:
    """Hosts being synced (name -> (a sender's target or a receiver, when it started)):
    files and bytes done of those needed, and the rate."""
    if not progress:
        return Text("connecting…", style="dim")
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for column in ("host", "files", "bytes", "rate"):
        table.add_column(column, justify="left" if column == "host" else "right")
    items = sorted(progress.items())
    for name, (item, since) in items[:limit]:
        done, total, sent, needed = _counts(item)
        finished = getattr(item, "finished", False)  # its rate stays what it was at the end
        elapsed = max(1e-3, item.duration if finished else time.monotonic() - since)
        files = f"{done}/{total}" if total else str(done)
        table.add_row(
            name,
            files,
            f"{human(sent)}/{human(needed)}",
            f"{human(sent / elapsed)}/s",
            style="dim" if finished else None,
        )
    if len(items) > limit:
        table.add_row(f"… {len(items) - limit} more", "", "", "")
    return table


def _counts(item: Any) -> tuple[int, int, int, int]:
    """(files done, files needed, bytes done, bytes needed) of a sender's target or a
    receiver (pulls)."""
    if hasattr(item, "files_done"):
        done = min(item.bytes_done, item.bytes_total)
        return item.files_done, item.files_total, done, item.bytes_total
    stats = item.stats
    return stats["files"], item.files_total, stats["bytes"], item.bytes_total


class _FileLines:
    """``-v`` in a push: each file as it goes, once for the folded set of hosts getting it."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def on_file(self, targets: Sequence[Any], relpath: str) -> None:
        names = HostSet(t.name for t in targets)
        self.console.print(f"{names}: {relpath}", soft_wrap=True, highlight=False, markup=False)


# -- the command ---------------------------------------------------------------------------


@click.command("rsync")
@click.argument("source")
@click.argument("destination")
@options.inventory_option
@click.option(
    "--dest",
    "dest_path",
    metavar="PATH",
    help="Where DIR lands on the hosts (DIR HOSTS form; default: the same path as DIR).",
)
@click.option(
    "--delete",
    is_flag=True,
    help="Delete what the destination has beyond the source (never what --exclude protects).",
)
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="PATTERN",
    help=".gitignore-style pattern to leave out (repeatable): '*.pyc', '/build', 'logs/'.",
)
@click.option(
    "--exclude-from",
    "exclude_files",
    multiple=True,
    metavar="FILE",
    help="Read exclude patterns from FILE, one a line (repeatable).",
)
@click.option(
    "-n", "--dry-run", is_flag=True, help="List what would change on each host; change nothing."
)
@click.option(
    "-c", "--checksum", is_flag=True, help="Compare content hashes, not sizes and mtimes."
)
@click.option(
    "-W", "--whole-file", is_flag=True, help="Send changed files whole, never as block deltas."
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Show each file as it goes, and remote tracebacks."
)
@options.fanout_option()
@options.timeout_option("Fail a host whose sync runs longer.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per host and line.")
@rolling_options(with_diff=False)
def rsync(
    source: str,
    destination: str,
    inventories: tuple[str, ...],
    dest_path: Optional[str],
    delete: bool,
    excludes: tuple[str, ...],
    exclude_files: tuple[str, ...],
    dry_run: bool,
    checksum: bool,
    whole_file: bool,
    verbose: bool,
    fanout: int,
    timeout: Optional[float],
    as_json: bool,
    rolling: RollingOptions,
) -> None:
    """Push a tree to every selected host, or pull one from each.

    \b
      xnet rsync DIR HOSTS          DIR lands at the same path on each host
      xnet rsync SRC HOSTS:DEST     push SRC to DEST (DEST/ ending in /: DEST/<name of SRC>)
      xnet rsync HOSTS:SRC DEST     pull each host's SRC into DEST/<host>/

    HOSTS is a host pattern as for --hosts elsewhere (web, 'web&prod', 'web[01-04]').
    A relative remote path is relative to the host's chdir, else its home directory.
    Only what changed travels: big changed files as block deltas (not to local popen
    hosts, where copying is cheaper). The summary (and --json) report bytes on the wire.

    \b
    --batch, --canary and --max-fail roll a push out a slice at a time, as for xnet sh;
    -H @failed style selections work for HOSTS too (xnet rsync DIR @failed).

    \b
    Exit status: 0 all synced, 1 some host failed (or some path was not synced),
    4 some timed out, 3 some unreachable, 2 usage or inventory error, 5 no host
    selected, 6 stopped on the failure budget, 70 internal error, 128+N stopped by
    signal N (130 Ctrl-C).
    """
    begin = started()
    direction = parse_arguments(source, destination)
    if dest_path is not None and (direction.pull or direction.remote is not None):
        options.fail("--dest goes with the DIR HOSTS form only")
    patterns = list(excludes)
    for name in exclude_files:
        try:
            patterns += read_exclude_file(name)
        except (OSError, UnicodeDecodeError) as exc:
            options.fail(f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}")
    try:
        translate(patterns)
    except ValueError as exc:
        options.fail(str(exc))
    if not direction.pull and not os.path.lexists(direction.local):
        options.fail(f"{direction.local}: no such file or directory")
    inventory, hosts = options.select_hosts(inventories, direction.pattern)
    with options.user_errors():
        carriers = carriers_for(hosts, inventory.host)
    places = _places(direction, hosts, dest_path, whole_file)
    stop = threading.Event()
    settings = Settings(
        fanout=fanout,
        timeout=timeout,
        excludes=tuple(patterns),
        delete=delete,
        checksum=checksum,
        dry_run=dry_run,
        carriers=tuple((h.name, h.spec(), h.via) for h in carriers),
        vias={h.name: h.via for h in hosts},
        stop=stop,
    )
    result = GroupResult()
    out, err = config.console(highlight=False), config.console(stderr=True, highlight=False)
    progress: dict[str, Any] = {}
    renderer: Any
    if as_json:
        renderer = _JsonRenderer(sys.stdout, result, {})
    elif err.is_terminal:
        renderer = _ProgressRenderer(progress, out, err, result, (), verbose)
    else:
        renderer = GatherRenderer(out, err, result, (), verbose)
    reporter = _Reporter(result, renderer, verbose and direction.pull, direction.pull)
    reporter.progress = progress
    if as_json:
        reporter.syncs = renderer.syncs
    hooks = None
    if verbose and not as_json and not direction.pull:
        hooks = _FileLines(err if err.is_terminal else out)
    rollout = rolling.rollout(hosts)
    by_name = {place.name: place for place in places}

    def halt() -> None:
        stop.set()
        rollout.stop()

    received: list[int] = []
    try:
        with stopping(halt) as received:
            while (batch := rollout.next_batch()) is not None:
                chunk = [by_name[name] for name in batch.names]
                if direction.pull:
                    pull_many(chunk, reporter, settings)
                else:
                    push_many(direction.local, chunk, reporter, settings, hooks)
                for name in batch.names:
                    if name in result:
                        rollout.ended(name, result[name].status)
            if received:
                reporter.stopped([name for b in rollout.ran for name in b.names])
            renderer.finish(lambda: time.monotonic() - begin)
    finally:
        renderer.close()
        outcomes = {name: result[name].status for name in result}
        names = [h.name for h in hosts]
        sets = remember("rsync", direction.pattern, names, outcomes, rolling.save_run)
        result.close()
    if not as_json:
        report(rollout, rolling, sets, flag="")
    leave_if_stopped(received, quiet=as_json)
    bad = len(result) - result.count(events.OK)
    status = exit_status(result.outcomes, bad, len(hosts), budget_spent=rollout.stopped_early)
    raise click.exceptions.Exit(status)


def _places(
    direction: Direction, hosts: Sequence[Host], dest_path: Optional[str], whole_file: bool
) -> list[Place]:
    places = []
    for host in hosts:
        delta = not whole_file and not (host.transport == "popen" and not host.via)
        if direction.pull:
            path = direction.remote or "."
            local = os.path.join(direction.local, host.name)
            into = os.path.basename(path.rstrip("/")) or host.name
            places.append(
                Place(host.name, host.spec(), remote_path(host, path), local, delta, into)
            )
            continue
        path = dest_path or direction.remote or same_path(direction.local)
        if path.endswith("/"):
            path += os.path.basename(os.path.normpath(direction.local))
        places.append(Place(host.name, host.spec(), remote_path(host, path), "", delta))
    return places
