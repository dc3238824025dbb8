"""Showing a run: gathered (``clush -b`` style), streamed line by line, or as JSON lines.

Renderers draw from a ``fleet.results.GroupResult`` that the CLI feeds each event first,
then hand the event on (``handle``); they print as they go or at ``finish``, keep nothing,
and return nothing. They import only events, results and host sets, never a gateway.

Results go to the ``out`` console, everything about the run itself (progress, the summary,
and in streamed mode the remote stderr and per-host errors) to the ``err`` console, so
``xnet run ... > file`` keeps only what the hosts printed. Styles show only on a terminal:
rich drops them for pipes and files, where the layout stays plain ASCII.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Optional, Protocol, TextIO

from rich.console import Console
from rich.rule import Rule
from rich.status import Status
from rich.text import Text

from ..fleet.events import ERROR, FAILED, OK, UNREACHABLE, Event, Exited, Failed, Output
from ..fleet.results import GroupResult, HostResult
from ..inventory import HostSet

__all__ = [
    "GatherRenderer",
    "JsonRenderer",
    "Renderer",
    "StreamRenderer",
    "outcome_label",
    "summary_line",
]

_HOST_STYLES = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta")
#: Each outcome in the summary, in its order: (outcome, style, always shown).
_SUMMARY = ((OK, "green", True), (FAILED, "red", True), (UNREACHABLE, "yellow", True))


class Renderer(Protocol):
    """What the CLI drives: each event as it comes (after the ``GroupResult`` the renderer
    draws from has taken it), then the end of the run. Renderers draw and keep nothing."""

    def handle(self, event: Event) -> None: ...

    def finish(self, wall: float, interrupted: bool = False) -> None: ...


def _strip_newline(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


def _print(console: Console, text: Text) -> None:
    """One line, never wrapped or cropped: host output is shown as it was written."""
    console.print(text, soft_wrap=True, highlight=False)


def outcome_label(result: HostResult) -> str:
    """How a host ended, in a word or two: "" for success, else "failed", "exit 3", ..."""
    if result.status == OK:
        return ""
    if result.status in (UNREACHABLE, ERROR):
        return result.status
    if result.detail is None and result.exit_code is not None:
        return f"exit {result.exit_code}"
    return "failed"


def summary_line(result: GroupResult, wall: float, interrupted: bool = False) -> Text:
    """``3 ok, 1 failed (web02), 1 unreachable (db01) in 0.42 s``, colored on a terminal.

    Hosts that hit a bug of ours (``1 error (web03)``) are named only when there are some,
    and, after an interrupt, the hosts that started but did not finish.
    """
    parts: list[tuple[str, str]] = []
    for outcome, style, always in (*_SUMMARY, (ERROR, "bold red", False)):
        names = result.hosts(outcome)
        if not names and not always:
            continue
        word = "errors" if outcome == ERROR and len(names) > 1 else outcome
        count = f"{len(names)} {word}"
        if names and outcome != OK:
            count += f" ({names})"
        parts.append((count, style if names else ""))
    unfinished = result.unfinished if interrupted else HostSet()
    if unfinished:
        parts.append((f"{len(unfinished)} interrupted ({unfinished})", "red"))
    line = Text()
    for i, (text, style) in enumerate(parts):
        if i:
            line.append(", ")
        line.append(text, style=style)
    line.append(f" in {wall:.2f} s")
    return line


class _ConsoleRenderer:
    """What the console renderers share: two consoles, the result they draw from, the hosts."""

    def __init__(
        self,
        out: Console,
        err: Console,
        result: GroupResult,
        hosts: Sequence[str] = (),
        verbose: bool = False,
    ) -> None:
        self.out, self.err, self.result, self.verbose = out, err, result, verbose
        self.hosts = tuple(hosts)
        self._start()

    def _start(self) -> None:
        """What a renderer sets up once it is constructed."""

    def finish(self, wall: float, interrupted: bool = False) -> None:
        _print(self.err, summary_line(self.result, wall, interrupted))


class GatherRenderer(_ConsoleRenderer):
    """Shows each distinct output once, under the folded set of hosts that printed it."""

    _status: Optional[Status] = None

    def _start(self) -> None:
        if self.err.is_terminal and self.hosts:
            self._status = self.err.status(self._progress_text(), spinner="dots")
            self._status.start()

    def _progress_text(self) -> Text:
        done = len(self.result)
        text = Text(f"{done}/{len(self.hosts)} hosts done")
        not_ok = done - self.result.count(OK)
        if not_ok:
            text.append(f", {not_ok} not ok", style="red")
        return text

    def handle(self, event: Event) -> None:
        if self._status is not None and isinstance(event, (Exited, Failed)):
            self._status.update(self._progress_text())

    def finish(self, wall: float, interrupted: bool = False) -> None:
        if self._status is not None:
            self._status.stop()
        dash = "─" if self.out.is_terminal else "-"
        for names, result in self.result.gathered(self.verbose):
            label = outcome_label(result)
            title = Text(f"{names} ({len(names)})", style="bold")
            if label:
                title.append(f": {label}", style="bold red")
            self.out.print(Rule(title, align="left", characters=dash, style="dim"))
            for stream, text in result.output:
                _print(self.out, Text(_strip_newline(text), style="red" if stream == "err" else ""))
            for line in result.error_lines(self.verbose):
                _print(self.out, Text(line, style="bold red"))
        super().finish(wall, interrupted)


class StreamRenderer(_ConsoleRenderer):
    """``host: line`` as lines arrive; remote stderr and host errors go to our stderr."""

    def _start(self) -> None:
        self._styles = {h: _HOST_STYLES[i % len(_HOST_STYLES)] for i, h in enumerate(self.hosts)}

    def _line(self, host: str, text: str, style: str = "") -> Text:
        line = Text(f"{host}: ", style=self._styles.get(host, "bold"))
        line.append(text, style=style)
        return line

    def handle(self, event: Event) -> None:
        if isinstance(event, Output):
            console = self.out if event.stream == "out" else self.err
            _print(console, self._line(event.host, _strip_newline(event.text)))
            return
        result = self.result.get(event.host) if isinstance(event, (Exited, Failed)) else None
        if result is None or result.ok:
            return
        label = outcome_label(result)
        lines = result.error_lines(self.verbose)
        if len(lines) == 1:
            _print(self.err, self._line(result.name, f"{label}: {lines[0]}", "red"))
            return
        _print(self.err, self._line(result.name, label, "red"))
        for line in lines:
            _print(self.err, self._line(result.name, line, "red"))


class JsonRenderer:
    """One JSON object per host and line, written as each host finishes."""

    def __init__(self, file: TextIO, result: GroupResult) -> None:
        self.file, self.result = file, result

    def handle(self, event: Event) -> None:
        if isinstance(event, (Exited, Failed)) and event.host in self.result:
            self.file.write(json.dumps(self.result[event.host].as_dict()) + "\n")
            self.file.flush()

    def finish(self, wall: float, interrupted: bool = False) -> None:
        """Nothing more: every host was written as it finished."""
