"""Showing a run: gathered (``clush -b`` style), streamed line by line, or as JSON lines.

Renderers draw from a ``fleet.results.GroupResult`` that the CLI feeds each event first,
then hand the event on (``handle``); they print as they go or at ``finish``, keep nothing,
and return nothing. They import only events, results and host sets, never a gateway.

Results go to the ``out`` console, everything about the run itself (progress, the summary,
and in streamed mode the remote stderr and per-host errors) to the ``err`` console, so
``xnet run ... > file`` keeps only what the hosts printed. Styles show only on a terminal:
rich drops them for pipes and files, where the layout stays plain ASCII.

Host output is written straight to the console's file (``Painter``), never through
``Console.print``: rich lays out every line it prints, which cost 15 s for 100,000 lines;
a file write costs nothing. What hosts print is cleaned on the way (``clean``): terminal
escape sequences are dropped and other control characters shown as ``\\xNN``, so a host
cannot recolor, retitle or rewrite our terminal; ``--raw`` keeps them. JSON keeps the data
as it was (JSON escapes it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional, Protocol, TextIO

from ..fleet.diffing import OutputClasses
from ..fleet.events import (
    ERROR,
    FAILED,
    INTERRUPTED,
    OK,
    TIMED_OUT,
    UNREACHABLE,
    Event,
    Exited,
    Failed,
    Output,
)
from ..fleet.results import GroupResult, HostResult
from ..inventory import HostSet

if TYPE_CHECKING:  # rich loads with the first console renderer: --json never needs it
    from rich.console import Console
    from rich.text import Text

__all__ = [
    "GatherRenderer",
    "JsonRenderer",
    "Painter",
    "Renderer",
    "StreamRenderer",
    "clean",
    "header",
    "outcome_label",
    "said",
    "summary_line",
]

_HOST_STYLES = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta")
#: Each outcome in the summary, in its order: (outcome, style, shown even when none).
_SUMMARY = (
    (OK, "green", True),
    (FAILED, "red", True),
    (TIMED_OUT, "magenta", False),
    (UNREACHABLE, "yellow", True),
    (INTERRUPTED, "red", False),
    (ERROR, "bold red", False),
)
_STREAM_STYLES = {"out": "", "err": "red", "log": "yellow"}
#: Escape sequences (CSI, OSC, DCS/PM/APC/SOS strings, two-byte ones), a lone ESC, and the
#: other control characters but tab and newline (a carriage return only before a newline).
#: Patterns as text: ``re`` compiles (and caches) them on first use, which most runs never
#: reach (the cost of compiling a module's patterns at import adds up at start-up).
_CONTROL = (
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[P^_X][^\x1b]*\x1b\\"
    r"|[ -/]*[0-~])?|[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f]|\r(?!\n)"
)

#: Any character ``_CONTROL`` may match (a quick test), as a pattern and as ASCII bytes.
_ANY_CONTROL = r"[\x00-\x08\x0b-\x1f\x7f-\x9f]"
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])

Elapsed = Callable[[], float]


class Renderer(Protocol):
    """What the CLI drives: each event as it comes (after the ``GroupResult`` the renderer
    draws from has taken it), then the end of the run (``elapsed()``: the seconds since
    the command started, asked when the summary is written), then ``close``."""

    def handle(self, event: Event) -> None: ...

    def finish(self, elapsed: Elapsed) -> None: ...

    def close(self) -> None: ...


def _escape(match: re.Match[str]) -> str:
    text = match.group()
    if text.startswith("\x1b") and len(text) > 1:
        return ""  # a whole escape sequence: dropped
    return f"\\x{ord(text):02x}"


def clean(text: str) -> str:
    """``text`` without terminal escape sequences, other controls shown as ``\\xNN``.

    Most output has none: that is checked first, fast (ASCII text as bytes: ~1 GB/s).
    """
    if text.isascii():
        data = text.encode("ascii")
        if len(data.translate(None, _CONTROL_BYTES)) == len(data):
            return text
    elif not re.search(_ANY_CONTROL, text):
        return text
    return re.sub(_CONTROL, _escape, text)


class Painter:
    """Writes text straight to a console's file: styled on a terminal, never wrapped or cut."""

    def __init__(self, console: Console, raw: bool = False) -> None:
        from rich.console import COLOR_SYSTEMS

        self.console = console
        self.raw = raw
        system = console.color_system
        self._system = COLOR_SYSTEMS[system] if system and not console.no_color else None
        self._codes: dict[str, tuple[str, str]] = {}

    def codes(self, style: str) -> tuple[str, str]:
        """The escape codes that start and end ``style`` ("" without colors)."""
        if not style or self._system is None:
            return "", ""
        found = self._codes.get(style)
        if found is None:
            from rich.style import Style

            start, _, end = (
                Style.parse(style).render("\0", color_system=self._system).partition("\0")
            )
            found = self._codes[style] = (start, end)
        return found

    def write(self, text: str, style: str = "", prefix: str = "") -> None:
        """Host text (whole lines or a last piece), one line per line, ``prefix`` on each."""
        if not text:
            return
        if not self.raw:
            text = clean(text)
        if text.endswith("\n"):
            text = text[:-1]
        start, end = self.codes(style)
        if start:
            text = text.replace("\n", f"{end}\n{start}")
        if prefix:
            text = text.replace("\n", "\n" + prefix)
        self.console.file.write(f"{prefix}{start}{text}{end}\n")

    def flush(self) -> None:
        self.console.file.flush()


def outcome_label(result: HostResult) -> str:
    """How a host ended, in a word or two: "" for success, else "failed", "exit 3", ..."""
    if result.status == OK:
        return ""
    if result.status != FAILED:
        return result.status
    if result.detail is None and result.exit_code is not None:
        return f"exit {result.exit_code}"
    return "failed"


def header(console: Console, names: HostSet, label: str = "") -> Text:
    """``web[01-03] (3): failed ------``: the rule above a block, as wide as the console.

    A title wider than that is kept whole (a terminal wraps it; a pipe gets it as one
    line): a header is never cut.
    """
    from rich.text import Text

    title = Text(f"{names} ({len(names)})", style="bold")
    if label:
        title.append(f": {label}", style="bold red")
    dash = "─" if console.is_terminal else "-"
    title.append(" ")
    title.append(dash * max(3, console.width - title.cell_len), style="dim")
    return title


def summary_line(result: GroupResult, wall: float) -> Text:
    """``3 ok, 1 failed (web02), 1 unreachable (db01) in 0.42 s``, colored on a terminal.

    Hosts that timed out, were interrupted or hit a bug of ours (``1 error (web03)``) are
    named only when there are some.
    """
    from rich.text import Text

    line = Text()
    for outcome, style, always in _SUMMARY:
        names = result.hosts(outcome)
        if not names and not always:
            continue
        if line:
            line.append(", ")
        word = "errors" if outcome == ERROR and len(names) > 1 else outcome
        count = f"{len(names)} {word}"
        if names and outcome != OK:
            count += f" ({names})"
        line.append(count, style=style if names else "")
    line.append(f" in {wall:.2f} s")
    return line


def _print(console: Console, text: Text) -> None:
    """One line of ours, never wrapped or cut."""
    console.print(text, soft_wrap=True, highlight=False)


class _ConsoleRenderer:
    """What the console renderers share: two consoles, the result they draw from, the hosts."""

    def __init__(
        self,
        out: Console,
        err: Console,
        result: GroupResult,
        hosts: Sequence[str] = (),
        verbose: bool = False,
        raw: bool = False,
    ) -> None:
        self.out, self.err, self.result, self.verbose = out, err, result, verbose
        self.hosts = tuple(hosts)
        self.out_painter, self.err_painter = Painter(out, raw), Painter(err, raw)
        self._start()

    def _start(self) -> None:
        """What a renderer sets up once it is constructed."""

    def finish(self, elapsed: Elapsed) -> None:
        self.out_painter.flush()
        _print(self.err, summary_line(self.result, elapsed()))

    def close(self) -> None:
        """Nothing to undo."""


class GatherRenderer(_ConsoleRenderer):
    """Shows each distinct output once, under the folded set of hosts that printed it."""

    def handle(self, event: Event) -> None:
        """Nothing until the end: the output is gathered first."""

    def finish(self, elapsed: Elapsed) -> None:
        self.close()
        painter = self.out_painter
        for names, result in self.result.gathered(self.verbose):
            label = outcome_label(result)
            _print(self.out, header(self.out, names, label))
            for stream, text in result.output:
                painter.write(text, _STREAM_STYLES.get(stream, ""))
            if result.returned is not None:
                painter.write(returned_line(result), "bold")
            for line in said(result, label, self.verbose):
                painter.write(line, "bold red")
        super().finish(elapsed)


def returned_line(result: HostResult) -> str:
    """``=> VALUE``: what a called function returned (``xnet run -m pkg.mod:func``)."""
    assert result.returned is not None
    return f"=> {result.returned.text}"


def said(result: HostResult, label: str, verbose: bool) -> list[str]:
    """The error's lines, unless they only repeat the label (``interrupted``)."""
    lines = result.error_lines(verbose)
    return [] if lines == [label] else lines


class StreamRenderer(_ConsoleRenderer):
    """``host: line`` as lines arrive; remote stderr and host errors go to our stderr."""

    def _start(self) -> None:
        styles = {h: _HOST_STYLES[i % len(_HOST_STYLES)] for i, h in enumerate(self.hosts)}
        self._prefixes: dict[tuple[str, bool], str] = {}
        self._styles = styles

    def _prefix(self, host: str, painter: Painter) -> str:
        key = (host, painter is self.err_painter)
        prefix = self._prefixes.get(key)
        if prefix is None:
            start, end = painter.codes(self._styles.get(host, "bold"))
            prefix = self._prefixes[key] = f"{start}{clean(host)}: {end}"
        return prefix

    def handle(self, event: Event) -> None:
        if isinstance(event, Output):
            painter = self.out_painter if event.stream == "out" else self.err_painter
            style = _STREAM_STYLES.get(event.stream, "")
            painter.write(event.text, style, self._prefix(event.host, painter))
            return
        result = self.result.get(event.host) if isinstance(event, (Exited, Failed)) else None
        if result is not None and result.returned is not None:
            self.out_painter.write(
                returned_line(result), "bold", self._prefix(event.host, self.out_painter)
            )
        if result is None or result.ok:
            return
        label = outcome_label(result)
        lines = said(result, label, self.verbose)
        prefix = self._prefix(result.name, self.err_painter)
        if len(lines) == 1:
            self.err_painter.write(f"{label}: {lines[0]}", "red", prefix)
        else:  # none (the label says it all), or a traceback: a line each
            self.err_painter.write("\n".join([label, *lines]), "red", prefix)


class JsonRenderer:
    """One JSON object per host and line, written as each host finishes.

    A host's output too large for memory is read back from the spill file in pieces and
    written as it is read, so a record is never built whole.
    """

    def __init__(self, file: TextIO, result: GroupResult) -> None:
        self.file, self.result = file, result
        self.classes = OutputClasses()  # the ``group`` field: hosts that printed the same

    def handle(self, event: Event) -> None:
        if isinstance(event, (Exited, Failed)) and event.host in self.result:
            host = self.result[event.host]
            write_record(self.file, host, {"group": self.classes.add(host)})
            self.file.flush()

    def finish(self, elapsed: Elapsed) -> None:
        """Nothing more: every host was written as it finished."""

    def close(self) -> None:
        """Nothing to undo."""


_STREAM_FIELDS = {"stdout": "out", "stderr": "err", "log": "log"}


def write_record(
    file: TextIO, result: HostResult, extra: Optional[Mapping[str, Any]] = None
) -> None:
    """``result.as_dict()`` and ``extra`` as one JSON line, its output streamed if it was
    spilled."""
    if not result.output.spilled:
        file.write(json.dumps({**result.as_dict(), **(extra or {})}) + "\n")
        return
    file.write("{")
    for i, (key, value) in enumerate({**result.as_dict(streams=False), **(extra or {})}.items()):
        file.write(f"{', ' if i else ''}{json.dumps(key)}: ")
        stream = _STREAM_FIELDS.get(key)
        if stream is None:
            file.write(json.dumps(value))
            continue
        file.write('"')
        for name, text in result.output:
            if name == stream:
                file.write(json.dumps(text)[1:-1])  # escapes are per character: pieces join
        file.write('"')
    file.write("}\n")
