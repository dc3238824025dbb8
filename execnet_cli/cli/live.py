"""The live table ``xnet run`` and ``xnet sh`` show at a terminal while hosts work.

One row per host: state (waiting, connecting, retrying, running, ok, failed, timed out,
unreachable, interrupted, error), elapsed time, exit code and the last line it printed;
trouble first, then the hosts at work, then the ones done and fine, and a progress bar
(in a rolling run it also says which batch runs: ``note``). When there are more rows than
the screen has lines, healthy finished hosts fold into one row (``w[001-090] (90)  ok``),
hosts not started yet are one row from the start, and if hosts at work still do not fit,
the rest of them are counted in one more row. When the run ends the table goes away
(``transient``) and the gathered output and summary follow, as without it.

Only at a terminal, and only gathered: in a pipe, with ``--json`` or ``--no-gather`` the
output is what it always was. The table is drawn by rich's ``Live`` thread from
``GroupResult.rows()`` (a copy, taken under the result's lock): the thread that feeds the
result never waits for drawing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Optional

from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..fleet.events import ERROR, FAILED, INTERRUPTED, OK, TIMED_OUT, UNREACHABLE
from ..fleet.results import CONNECTING, RETRYING, RUNNING, HostRow
from ..inventory import HostSet, natural_key
from .render import GatherRenderer, clean

__all__ = ["LiveRenderer", "table_rows"]

WAITING = "waiting"
#: Lines the table needs beyond its rows: its heading, the progress line, one spare.
_CHROME = 3
_STYLES = {
    WAITING: "dim",
    CONNECTING: "dim cyan",
    RETRYING: "yellow",
    RUNNING: "cyan",
    OK: "green",
    FAILED: "bold red",
    TIMED_OUT: "bold magenta",
    UNREACHABLE: "bold yellow",
    INTERRUPTED: "red",
    ERROR: "bold red",
}
_TROUBLE = (FAILED, TIMED_OUT, UNREACHABLE, INTERRUPTED, ERROR)
_AT_WORK = (CONNECTING, RETRYING, RUNNING)

#: A row of the table: (hosts, state, elapsed or None, exit code, what to say).
Row = tuple[HostSet, str, Optional[float], Optional[int], str]


def _single(row: HostRow) -> Row:
    """A host's row: its last line, or for one in trouble its error (``exit 3``: the line)."""
    said = row.last_line
    if row.state in _TROUBLE and row.error:
        said = row.error
    return HostSet([row.name]), row.state, row.elapsed, row.exit_code, said


def _folded(rows: Sequence[HostRow], state: str) -> Row:
    longest = max((r.elapsed for r in rows), default=None)
    codes = {r.exit_code for r in rows}
    code = codes.pop() if len(codes) == 1 else None
    return HostSet(r.name for r in rows), state, longest, code, ""


def table_rows(rows: Iterable[HostRow], hosts: Sequence[str], room: int) -> list[Row]:
    """The rows to show in ``room`` lines: trouble, at work, waiting, done and fine.

    Folding, in order, until they fit: the healthy finished hosts into one row; hosts at
    work beyond what fits into one ``+N`` row; trouble by outcome.
    """
    by_name = sorted(rows, key=lambda r: natural_key(r.name))
    seen = {r.name for r in by_name}
    trouble = [r for r in by_name if r.state in _TROUBLE]
    working = [r for r in by_name if r.state in _AT_WORK]
    working.sort(key=lambda r: r.state != RETRYING)  # retrying first: trouble, maybe
    done = [r for r in by_name if r.state == OK]
    waiting = [h for h in hosts if h not in seen]
    tail: list[Row] = []
    if waiting:
        tail.append((HostSet(waiting), WAITING, None, None, ""))
    ok_rows = [_single(r) for r in done]
    if len(trouble) + len(working) + len(ok_rows) + len(tail) > room and len(done) > 1:
        ok_rows = [_folded(done, OK)]
    free = room - len(trouble) - len(ok_rows) - len(tail)
    working_rows = [_single(r) for r in working]
    if len(working_rows) > max(free, 0):
        keep = max(free - 1, 0)
        rest = working[keep:]
        state = RUNNING if any(r.state == RUNNING for r in rest) else CONNECTING
        working_rows = [*working_rows[:keep], _folded(rest, state)]
    trouble_rows = [_single(r) for r in trouble]
    if len(trouble_rows) + len(working_rows) + len(ok_rows) + len(tail) > room:
        trouble_rows = [
            _folded([r for r in trouble if r.state == state], state)
            for state in _TROUBLE
            if any(r.state == state for r in trouble)
        ]
    return [*trouble_rows, *working_rows, *tail, *ok_rows]


def _quiet_keyboard() -> Optional[Callable[[], None]]:
    """Stop the terminal echoing keys (a "^C" or a typed line would shift the table and
    leave a line of it behind); return the undo, or None when stdin is no terminal."""
    try:
        import termios  # POSIX only
    except ImportError:
        return None
    try:
        fd = sys.stdin.fileno()
        if not os.isatty(fd):
            return None
        saved = termios.tcgetattr(fd)
        quiet = list(saved)
        quiet[3] &= ~termios.ECHO  # lflag
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except (OSError, ValueError, AttributeError, termios.error):
        return None

    def undo() -> None:
        try:
            termios.tcsetattr(fd, termios.TCSANOW, saved)
        except (OSError, termios.error):
            pass

    return undo


class LiveRenderer(GatherRenderer):
    """``GatherRenderer`` with a live table on the ``err`` console while the run goes on."""

    _live: Optional[Live] = None
    _echo: Optional[Callable[[], None]] = None
    #: Where a rolling run is (``batch 2 of 4``), shown on the progress line.
    note: Optional[Callable[[], str]] = None

    def _start(self) -> None:
        self._began = getattr(self, "_began", None) or time.monotonic()  # kept across a pause
        self._echo = _quiet_keyboard()
        self._live = Live(
            console=self.err,
            get_renderable=self.view,
            refresh_per_second=4,
            transient=True,
        )
        self._live.start()

    def close(self) -> None:
        """Take the table away (the gathered output comes next)."""
        live, self._live = self._live, None
        if live is not None:
            live.stop()
        echo, self._echo = self._echo, None
        if echo is not None:
            echo()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The table taken away while something else talks to the user (a host key question)."""
        self.close()
        try:
            yield
        finally:
            self._start()

    def view(self) -> RenderableType:
        """The table and the progress line, as of now."""
        rows = self.result.rows()
        width, height = self.err.size
        # One column short of the screen: a line ending in the last column leaves the cursor
        # waiting to wrap, and the "^C" a terminal echoes would push the table down a line.
        table = Table(box=None, padding=(0, 1), pad_edge=False, width=width - 1)
        table.add_column("HOST", no_wrap=True, overflow="ellipsis", max_width=max(12, width // 5))
        table.add_column("STATE", no_wrap=True)
        table.add_column("TIME", no_wrap=True, justify="right")
        table.add_column("EXIT", no_wrap=True, justify="right")
        table.add_column("LAST LINE", no_wrap=True, overflow="ellipsis", ratio=1)
        for names, state, elapsed, code, said in table_rows(rows, self.hosts, height - _CHROME):
            label = state if len(names) == 1 else f"{state} ({len(names)})"
            table.add_row(
                Text(clean(str(names))),
                Text(label, style=_STYLES.get(state, "")),
                "" if elapsed is None else f"{elapsed:.1f} s",
                "" if code is None else str(code),
                Text(clean(said), style="red" if state in _TROUBLE else "dim"),
            )
        return Group(table, self._progress(rows, width - 1))

    def _progress(self, rows: Sequence[HostRow], width: int) -> RenderableType:
        total = max(len(self.hosts), 1)
        done = [r for r in rows if r.state not in _AT_WORK]
        bad = sum(1 for r in done if r.state != OK)
        line = Text(f" {len(done)}/{len(self.hosts)} done")
        if bad:
            line.append(f", {bad} not ok", style="red")
        line.append(f", {time.monotonic() - self._began:.1f} s")
        note = self.note() if self.note is not None else ""
        if note:
            line.append(f", {note}", style="bold")
        grid = Table(box=None, show_header=False, padding=0, pad_edge=False, width=width)
        grid.add_column(ratio=1)
        grid.add_column(no_wrap=True)
        grid.add_row(ProgressBar(total=total, completed=len(done)), line)
        return grid
