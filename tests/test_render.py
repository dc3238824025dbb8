"""Rendering a run from hand-made events: gathered, streamed and JSON output."""

from __future__ import annotations

import io
import json

from rich.console import Console

from execnet_cli.cli.render import (
    GatherRenderer,
    JsonRenderer,
    StreamRenderer,
    gather,
    outcome_label,
    summary_line,
)
from execnet_cli.fleet.runner import (
    FAILED,
    OK,
    UNREACHABLE,
    Event,
    Exited,
    Failed,
    HostResult,
    Output,
)
from execnet_cli.fleet.runner import Started as S

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


def render_gathered(verbose: bool = False) -> tuple[str, str]:
    out, err = console(), console()
    renderer = GatherRenderer(out, err, ["web01", "web02", "web03", "web04", "db01"], verbose)
    for event in run_events():
        renderer.handle(event)
    renderer.finish(1.234)
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


def test_gather_groups_by_output_and_outcome() -> None:
    def result(name: str, output: str, status: str = OK, code: int = 0) -> HostResult:
        return HostResult(name, status, code, (("out", output),), None, None, 0.1)

    blocks = gather(
        [
            result("n10", "a\n"),
            result("n2", "a\n"),
            result("n3", "b\n"),
            result("n1", "a\n", FAILED, 1),  # same output, different outcome
        ]
    )
    assert [(str(names), r.stdout) for names, r in blocks] == [
        ("n[2,10]", "a\n"),
        ("n3", "b\n"),
        ("n1", "a\n"),
    ]


def test_outcome_labels() -> None:
    assert outcome_label(HostResult("a", OK, 0)) == ""
    assert outcome_label(HostResult("a", FAILED, 3)) == "exit 3"  # sh, sys.exit(3)
    assert outcome_label(HostResult("a", FAILED, 1, detail=TRACEBACK)) == "failed"
    assert outcome_label(HostResult("a", FAILED, None, error="timed out")) == "failed"
    assert outcome_label(HostResult("a", UNREACHABLE)) == "unreachable"


def test_summary_line() -> None:
    results = [HostResult("a1", OK), HostResult("a2", OK)]
    assert summary_line(results, 0.5).plain == "2 ok, 0 failed, 0 unreachable in 0.50 s"
    interrupted = summary_line(results, 2, ["b1", "b2"]).plain
    assert interrupted == "2 ok, 0 failed, 0 unreachable, 2 interrupted (b[1-2]) in 2.00 s"


def test_host_output_is_not_markup_and_not_wrapped() -> None:
    out, err = console(), console()
    renderer = GatherRenderer(out, err, ["a"])
    long = "x" * 250
    for event in (S("a"), Output("a", "out", "[bold]not markup[/bold] :smile:\n")):
        renderer.handle(event)
    renderer.handle(Output("a", "out", long + "\n"))
    renderer.handle(Exited("a", 0, 0.1))
    renderer.finish(0.1)
    lines = text_of(out).splitlines()
    assert lines[1:] == ["[bold]not markup[/bold] :smile:", long]


def test_streamed_output_is_prefixed_by_host() -> None:
    out, err = console(), console()
    renderer = StreamRenderer(out, err, ["web01", "web02", "web03", "web04", "db01"])
    for event in run_events():
        renderer.handle(event)
    renderer.finish(0.5)
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
    out, err = console(), console()
    renderer = StreamRenderer(out, err, ["a", "b"], verbose=True)
    for event in (S("a"), S("b"), Exited("a", 2, 0.1)):
        renderer.handle(event)
    renderer.handle(Failed("b", FAILED, "ValueError: boom", 0.1, TRACEBACK, 1))
    lines = text_of(err).splitlines()
    assert lines[0] == "a: exit 2"
    assert lines[1:] == [
        "b: failed",
        "b: Traceback (most recent call last):",
        'b:   File "<xnet run>", line 1',
        "b: ValueError: boom",
    ]


def test_json_lines_one_per_host() -> None:
    file = io.StringIO()
    renderer = JsonRenderer(file)
    for event in run_events():
        renderer.handle(event)
    results = renderer.finish(0.5)
    records = [json.loads(line) for line in file.getvalue().splitlines()]
    assert [r["name"] for r in records] == ["web02", "web03", "web01", "web04", "db01"]
    assert len(results) == 5
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
    }
    assert records[4]["status"] == "unreachable" and records[4]["exit_code"] is None


def test_interrupted_run_names_unfinished_hosts() -> None:
    out, err = console(), console()
    renderer = GatherRenderer(out, err, ["a", "b"])
    for event in (S("a"), S("b"), Output("b", "out", "partial\n"), Exited("a", 0, 0.1)):
        renderer.handle(event)
    renderer.finish(3.0, interrupted=True)
    assert text_of(err) == "1 ok, 0 failed, 0 unreachable, 1 interrupted (b) in 3.00 s\n"
