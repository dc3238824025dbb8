"""Showing a run: gathered (``clush -b`` style), streamed line by line, or as JSON lines.

Renderers consume ``runner`` events (``handle``) and print at ``finish``; they never see a
gateway. Results go to the ``out`` console, everything about the run itself (progress, the
summary, and in streamed mode the remote stderr and per-host errors) to the ``err``
console, so ``xnet run ... > file`` keeps only what the hosts printed. Styles show only on
a terminal: rich drops them for pipes and files, where the layout stays plain ASCII.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Optional, Protocol, TextIO

from rich.console import Console
from rich.rule import Rule
from rich.status import Status
from rich.text import Text

from ..fleet.runner import (
    FAILED,
    OK,
    UNREACHABLE,
    Collector,
    Event,
    Exited,
    Failed,
    HostResult,
    Output,
)
from ..inventory import HostSet, natural_key

__all__ = [
    "GatherRenderer",
    "JsonRenderer",
    "Renderer",
    "StreamRenderer",
    "gather",
    "outcome_label",
    "summary_line",
]

_RANK = {OK: 0, FAILED: 1, UNREACHABLE: 2}
_HOST_STYLES = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta")


class Renderer(Protocol):
    """What the CLI drives: events as they come, then the end of the run."""

    def handle(self, event: Event) -> None: ...

    def finish(self, wall: float, interrupted: bool = False) -> list[HostResult]: ...


def _strip_newline(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


def _print(console: Console, text: Text) -> None:
    """One line, never wrapped or cropped: host output is shown as it was written."""
    console.print(text, soft_wrap=True, highlight=False)


def outcome_label(result: HostResult) -> str:
    """How a host ended, in a word or two: "" for success, else "failed", "exit 3", ..."""
    if result.status == OK:
        return ""
    if result.status == UNREACHABLE:
        return "unreachable"
    if result.detail is None and result.exit_code is not None:
        return f"exit {result.exit_code}"
    return "failed"


def _error_lines(result: HostResult, verbose: bool) -> list[str]:
    text = result.detail if verbose and result.detail else result.error
    return text.rstrip("\n").splitlines() if text else []


def gather(
    results: Sequence[HostResult], verbose: bool = False
) -> list[tuple[HostSet, HostResult]]:
    """Hosts with identical output and outcome, once each: (their names, one of them).

    Ordered successes first, then failures, then unreachable hosts (problems end up next
    to the summary), and by host name within each.
    """
    groups: dict[tuple, list[HostResult]] = {}
    for result in results:
        errors = tuple(_error_lines(result, verbose))
        key = (result.status, result.exit_code, result.output, errors)
        groups.setdefault(key, []).append(result)
    blocks = [(HostSet(r.name for r in members), members[0]) for members in groups.values()]
    blocks.sort(key=lambda b: (_RANK.get(b[1].status, 3), natural_key(next(iter(b[0])))))
    return blocks


def summary_line(
    results: Sequence[HostResult],
    wall: float,
    unfinished: Sequence[str] = (),
) -> Text:
    """``3 ok, 1 failed (web02), 1 unreachable (db01) in 0.42 s``, colored on a terminal."""
    parts: list[tuple[str, str]] = []
    for status, style in ((OK, "green"), (FAILED, "red"), (UNREACHABLE, "yellow")):
        names = HostSet(r.name for r in results if r.status == status)
        count = f"{len(names)} {status}"
        if names and status != OK:
            count += f" ({names})"
        parts.append((count, style if names else ""))
    if unfinished:
        parts.append((f"{len(unfinished)} interrupted ({HostSet(unfinished)})", "red"))
    line = Text()
    for i, (text, style) in enumerate(parts):
        if i:
            line.append(", ")
        line.append(text, style=style)
    line.append(f" in {wall:.2f} s")
    return line


class GatherRenderer:
    """Shows each distinct output once, under the folded set of hosts that printed it."""

    def __init__(
        self,
        out: Console,
        err: Console,
        hosts: Sequence[str] = (),
        verbose: bool = False,
    ) -> None:
        self.out, self.err, self.verbose = out, err, verbose
        self.total = len(hosts)
        self.collector = Collector()
        self._not_ok = 0  # counted as results arrive: recounting each time was quadratic
        self._status: Optional[Status] = None
        if err.is_terminal and self.total:
            self._status = err.status(self._progress_text(), spinner="dots")
            self._status.start()

    def _progress_text(self) -> Text:
        text = Text(f"{len(self.collector.results)}/{self.total} hosts done")
        if self._not_ok:
            text.append(f", {self._not_ok} not ok", style="red")
        return text

    def handle(self, event: Event) -> None:
        result = self.collector.add(event)
        if result is None:
            return
        if result.status != OK:
            self._not_ok += 1
        if self._status is not None:
            self._status.update(self._progress_text())

    def finish(self, wall: float, interrupted: bool = False) -> list[HostResult]:
        if self._status is not None:
            self._status.stop()
        results = list(self.collector.results.values())
        dash = "─" if self.out.is_terminal else "-"
        for names, result in gather(results, self.verbose):
            label = outcome_label(result)
            title = Text(f"{names} ({len(names)})", style="bold")
            if label:
                title.append(f": {label}", style="bold red")
            self.out.print(Rule(title, align="left", characters=dash, style="dim"))
            for stream, text in result.output:
                _print(self.out, Text(_strip_newline(text), style="red" if stream == "err" else ""))
            for line in _error_lines(result, self.verbose):
                _print(self.out, Text(line, style="bold red"))
        unfinished = self.collector.unfinished() if interrupted else []
        _print(self.err, summary_line(results, wall, unfinished))
        return results


class StreamRenderer:
    """``host: line`` as lines arrive; remote stderr and host errors go to our stderr."""

    def __init__(
        self, out: Console, err: Console, hosts: Sequence[str] = (), verbose: bool = False
    ) -> None:
        self.out, self.err, self.verbose = out, err, verbose
        self.collector = Collector()
        self._styles = {h: _HOST_STYLES[i % len(_HOST_STYLES)] for i, h in enumerate(hosts)}

    def _line(self, host: str, text: str, style: str = "") -> Text:
        line = Text(f"{host}: ", style=self._styles.get(host, "bold"))
        line.append(text, style=style)
        return line

    def handle(self, event: Event) -> None:
        result = self.collector.add(event)
        if isinstance(event, Output):
            console = self.out if event.stream == "out" else self.err
            _print(console, self._line(event.host, _strip_newline(event.text)))
        elif isinstance(event, (Exited, Failed)) and result is not None and not result.ok:
            label = outcome_label(result)
            lines = _error_lines(result, self.verbose)
            if len(lines) == 1:
                _print(self.err, self._line(result.name, f"{label}: {lines[0]}", "red"))
                return
            _print(self.err, self._line(result.name, label, "red"))
            for line in lines:
                _print(self.err, self._line(result.name, line, "red"))

    def finish(self, wall: float, interrupted: bool = False) -> list[HostResult]:
        results = list(self.collector.results.values())
        unfinished = self.collector.unfinished() if interrupted else []
        _print(self.err, summary_line(results, wall, unfinished))
        return results


class JsonRenderer:
    """One JSON object per host and line, written as each host finishes."""

    def __init__(self, file: TextIO) -> None:
        self.file = file
        self.collector = Collector()

    def handle(self, event: Event) -> None:
        result = self.collector.add(event)
        if result is not None:
            self.file.write(json.dumps(result.as_dict()) + "\n")
            self.file.flush()

    def finish(self, wall: float, interrupted: bool = False) -> list[HostResult]:
        return list(self.collector.results.values())
