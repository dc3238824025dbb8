"""Rendering a run from hand-made events: gathered, streamed and JSON output."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterable

from rich.console import Console

from execnet_cli.cli.render import (
    GatherRenderer,
    JsonRenderer,
    Painter,
    Renderer,
    StreamRenderer,
    clean,
    outcome_label,
    summary_line,
)
from execnet_cli.fleet.events import (
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
from execnet_cli.fleet.events import Started as S
from execnet_cli.fleet.results import GroupResult, HostResult

TRACEBACK = 'Traceback (most recent call last):\n  File "<xnet run>", line 1\nValueError: boom\n'


def console() -> Console:
    return Console(file=io.StringIO(), width=100, color_system=None)


def text_of(c: Console) -> str:
    file = c.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def run_events() -> list[Event]:
    """web[01-03] print the same, web04 raises after printing, db01 is unreachable."""
    events: list[Event] = []
    for name in ("web01", "web02", "web03", "web04", "db01"):
        events.append(S(name))
    for name in ("web03", "web01", "web02", "web04"):
        events += [Output(name, "out", "same\n"), Output(name, "err", "warn\n")]
    events += [Exited(name, 0, 0.1) for name in ("web02", "web03", "web01")]
    events.append(Failed("web04", FAILED, "ValueError: boom", 0.2, TRACEBACK, 1))
    events.append(Failed("db01", UNREACHABLE, "ConnectFailed: refused", 0.3, "ConnectFailed: x"))
    return events


def feed(result: GroupResult, renderer: Renderer, events: Iterable[Event]) -> None:
    """As the CLI does: each event to the result first, then to the renderer."""
    for event in events:
        result.add(event)
        assert renderer.handle(event) is None


def render_gathered(verbose: bool = False) -> tuple[str, str]:
    out, err, result = console(), console(), GroupResult()
    names = ["web01", "web02", "web03", "web04", "db01"]
    renderer = GatherRenderer(out, err, result, names, verbose)
    feed(result, renderer, run_events())
    assert renderer.finish(lambda: 1.234) is None
    return text_of(out), text_of(err)


def test_gathered_output_is_shown_once_per_distinct_result() -> None:
    out, err = render_gathered()
    lines = out.splitlines()
    assert lines[0].startswith("web[01-03] (3) ---") and len(lines[0]) == 100
    assert lines[1:3] == ["same", "warn"]
    assert lines[3].startswith("web04 (1): failed ---")
    assert lines[4:7] == ["same", "warn", "ValueError: boom"]
    assert lines[7].startswith("db01 (1): unreachable ---")
    assert lines[8:] == ["ConnectFailed: refused"]
    assert err == "3 ok, 1 failed (web04), 1 unreachable (db01) in 1.23 s\n"


def test_verbose_shows_the_traceback() -> None:
    out, _ = render_gathered(verbose=True)
    assert "Traceback (most recent call last):" in out
    assert '  File "<xnet run>", line 1' in out
    assert "ConnectFailed: x" in out


def test_outcome_labels() -> None:
    assert outcome_label(HostResult("a", OK, 0)) == ""
    assert outcome_label(HostResult("a", FAILED, 3)) == "exit 3"  # sh, sys.exit(3)
    assert outcome_label(HostResult("a", FAILED, 1, detail=TRACEBACK)) == "failed"
    assert outcome_label(HostResult("a", FAILED, None, error="timed out")) == "failed"
    assert outcome_label(HostResult("a", UNREACHABLE)) == "unreachable"
    assert outcome_label(HostResult("a", ERROR, error="TypeError: x")) == "error"


def test_summary_line() -> None:
    result = GroupResult()
    for event in (S("a1"), S("a2"), S("b1"), S("b2"), Exited("a1", 0, 0.1), Exited("a2", 0, 0.1)):
        result.add(event)
    assert summary_line(result, 0.5).plain == "2 ok, 0 failed, 0 unreachable in 0.50 s"
    result.add(Failed("b1", INTERRUPTED, "interrupted", 2))
    result.add(Failed("b2", INTERRUPTED, "interrupted", 2))
    result.add(Failed("c1", TIMED_OUT, "timed out after 1 s", 1))
    assert summary_line(result, 2).plain == (
        "2 ok, 0 failed, 1 timed out (c1), 0 unreachable, 2 interrupted (b[1-2]) in 2.00 s"
    )


def test_summary_names_hosts_with_errors_only_when_there_are_some() -> None:
    result = GroupResult()
    result.add(Failed("b1", ERROR, "TypeError: x", 0.1))
    assert summary_line(result, 1).plain == "0 ok, 0 failed, 0 unreachable, 1 error (b1) in 1.00 s"
    result.add(Failed("b2", ERROR, "TypeError: x", 0.1))
    assert summary_line(result, 1).plain.endswith(", 2 errors (b[1-2]) in 1.00 s")


def test_host_output_is_not_markup_and_not_wrapped() -> None:
    out, err, result = console(), console(), GroupResult()
    renderer = GatherRenderer(out, err, result, ["a"])
    long = "x" * 250
    markup = Output("a", "out", "[bold]not markup[/bold] :smile:\n")
    feed(result, renderer, [S("a"), markup, Output("a", "out", long + "\n"), Exited("a", 0, 0.1)])
    renderer.finish(lambda: 0.1)
    lines = text_of(out).splitlines()
    assert lines[1:] == ["[bold]not markup[/bold] :smile:", long]


def test_streamed_output_is_prefixed_by_host() -> None:
    out, err, result = console(), console(), GroupResult()
    renderer = StreamRenderer(out, err, result, ["web01", "web02", "web03", "web04", "db01"])
    feed(result, renderer, run_events())
    assert renderer.finish(lambda: 0.5) is None
    assert text_of(out).splitlines() == ["web03: same", "web01: same", "web02: same", "web04: same"]
    assert text_of(err).splitlines() == [
        "web03: warn",
        "web01: warn",
        "web02: warn",
        "web04: warn",
        "web04: failed: ValueError: boom",
        "db01: unreachable: ConnectFailed: refused",
        "3 ok, 1 failed (web04), 1 unreachable (db01) in 0.50 s",
    ]


def test_streamed_exit_code_and_verbose_traceback() -> None:
    out, err, result = console(), console(), GroupResult()
    renderer = StreamRenderer(out, err, result, ["a", "b"], verbose=True)
    feed(result, renderer, [S("a"), S("b"), Exited("a", 2, 0.1)])
    feed(result, renderer, [Failed("b", FAILED, "ValueError: boom", 0.1, TRACEBACK, 1)])
    lines = text_of(err).splitlines()
    assert lines[0] == "a: exit 2"
    assert lines[1:] == [
        "b: failed",
        "b: Traceback (most recent call last):",
        'b:   File "<xnet run>", line 1',
        "b: ValueError: boom",
    ]


def test_json_lines_one_per_host() -> None:
    file, result = io.StringIO(), GroupResult()
    renderer = JsonRenderer(file, result)
    feed(result, renderer, run_events())
    assert renderer.finish(lambda: 0.5) is None
    records = [json.loads(line) for line in file.getvalue().splitlines()]
    assert [r["name"] for r in records] == ["web02", "web03", "web01", "web04", "db01"]
    web04 = records[3]
    assert web04 == {
        "name": "web04",
        "status": "failed",
        "exit_code": 1,
        "stdout": "same\n",
        "stderr": "warn\n",
        "error": "ValueError: boom",
        "traceback": TRACEBACK,
        "duration": 0.2,
        "log": "",
        "attempts": 1,
        "group": 0,  # the output of web[01-03]: a class is what was printed, not how it ended
    }
    assert records[4]["status"] == "unreachable" and records[4]["exit_code"] is None
    assert records[4]["group"] is None  # it printed nothing of the job's


def test_interrupted_hosts_keep_their_output() -> None:
    out, err, result = console(), console(), GroupResult()
    renderer = GatherRenderer(out, err, result, ["a", "b"])
    feed(result, renderer, [S("a"), S("b"), Output("b", "out", "partial\n"), Exited("a", 0, 0.1)])
    feed(result, renderer, [Failed("b", INTERRUPTED, "interrupted", 2.0)])
    renderer.finish(lambda: 3.0)
    lines = text_of(out).splitlines()
    assert lines[0].startswith("a (1) ---")
    assert lines[1].startswith("b (1): interrupted ---")
    assert lines[2:] == ["partial"]  # "interrupted" once, in the header
    assert text_of(err) == "1 ok, 0 failed, 0 unreachable, 1 interrupted (b) in 3.00 s\n"


def test_an_error_is_shown_with_its_one_line() -> None:
    out, err, result = console(), console(), GroupResult()
    renderer = GatherRenderer(out, err, result, ["a"], verbose=True)
    feed(result, renderer, [S("a"), Failed("a", ERROR, "TypeError: bad", 0.1, "TypeError: bad")])
    renderer.finish(lambda: 0.1)
    lines = text_of(out).splitlines()
    assert lines[0].startswith("a (1): error ---") and lines[1:] == ["TypeError: bad"]
    assert text_of(err).startswith("0 ok, 0 failed, 0 unreachable, 1 error (a) in ")


def test_importing_the_renderers_does_not_import_the_runner() -> None:
    """Rendering needs events, results and host sets, never gateways or transports."""
    probe = (
        "import sys, execnet_cli.cli.render\n"
        "names = (m for m in sys.modules if m.startswith(('execnet_cli', 'paramiko')))\n"
        "print('\\n'.join(sorted(names)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(done.stdout.split())
    assert "execnet_cli.fleet.results" in loaded  # the probe sees what it should
    forbidden = (
        "fleet.runner",
        "fleet.jobs",
        "group",
        "gateway",
        "connect",
        "transports",
        "paramiko",
    )
    # The inventory checks host names by ssh's rules: pure functions, no I/O.
    pure = {"transports", "transports.ssh", "transports.ssh.names"}
    short = {m.removeprefix("execnet_cli.") for m in loaded}
    leaked = [m for m in short if m.startswith(forbidden) and m not in pure]
    assert leaked == []


def test_a_spilled_output_is_streamed_into_its_json_record() -> None:
    file, result = io.StringIO(), GroupResult()
    renderer = JsonRenderer(file, result)
    text = "".join(f'line {i} "quoted" \\ é \udcff\n' for i in range(30_000))
    feed(result, renderer, [S("a"), Output("a", "out", text), Output("a", "err", "e\n")])
    feed(result, renderer, [Output("a", "log", "note\n"), Exited("a", 0, 0.5)])
    assert result["a"].output.spilled
    assert file.getvalue() == json.dumps({**result["a"].as_dict(), "group": 0}) + "\n"
    assert json.loads(file.getvalue())["stdout"] == text
    result.close()


def test_streamed_lines_each_get_their_prefix() -> None:
    out, err, result = console(), console(), GroupResult()
    renderer = StreamRenderer(out, err, result, ["a"])
    feed(result, renderer, [S("a"), Output("a", "out", "1\n2\n\n3"), Output("a", "log", "w\n")])
    assert text_of(out) == "a: 1\na: 2\na: \na: 3\n"
    assert text_of(err) == "a: w\n"


def test_clean_drops_escape_sequences_and_shows_other_controls() -> None:
    assert clean("\x1b[1;31mred\x1b[0m") == "red"
    assert clean("a\x1b]0;title\x07b\x1b]8;;http://x\x1b\\link") == "ablink"
    assert clean("tab\tand\r\nline") == "tab\tand\r\nline"
    assert clean("é plain") == "é plain" and clean("é \x1b[1mbold") == "é bold"  # not ASCII
    assert clean("bell\x07 back\x08 cr\rnul\x00 del\x7f c1\x9b lone\x1b") == (
        "bell\\x07 back\\x08 cr\\x0dnul\\x00 del\\x7f c1\\x9b lone\\x1b"
    )


def test_colors_only_on_a_terminal() -> None:
    plain = Painter(console())
    assert plain.codes("red") == ("", "")
    styled = Painter(Console(file=io.StringIO(), force_terminal=True, color_system="standard"))
    start, end = styled.codes("red")
    assert (start, end) == ("\x1b[31m", "\x1b[0m")
    styled.write("x\ny\n", "red", "h: ")
    assert styled.console.file.getvalue() == f"h: {start}x{end}\nh: {start}y{end}\n"  # type: ignore[attr-defined]
