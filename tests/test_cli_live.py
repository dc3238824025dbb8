"""The live table: which rows fit a screen, how they look, and the real thing in tmux."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from proc_helpers import wait_until
from rich.console import Console

from execnet_cli.cli.live import WAITING, LiveRenderer, table_rows
from execnet_cli.fleet.events import FAILED, OK, UNREACHABLE, Exited, Failed, Output, Running
from execnet_cli.fleet.events import Started as S
from execnet_cli.fleet.results import CONNECTING, RUNNING, GroupResult, HostRow


def row(name: str, state: str, error: str | None = None) -> HostRow:
    return HostRow(name, state, 1.0, None if state in (RUNNING, CONNECTING) else 0, "", error)


def shown(rows: list) -> list[tuple[str, str]]:
    return [(str(names), state) for names, state, *_ in rows]


def test_every_host_has_its_row_when_they_fit() -> None:
    rows = [row("a1", OK), row("a2", RUNNING), row("a3", FAILED), row("a4", CONNECTING)]
    hosts = ["a1", "a2", "a3", "a4", "a5"]
    assert shown(table_rows(rows, hosts, 10)) == [
        ("a3", FAILED),  # trouble first
        ("a2", RUNNING),
        ("a4", CONNECTING),
        ("a5", WAITING),  # not started yet
        ("a1", OK),
    ]


def test_healthy_finished_hosts_fold_first() -> None:
    rows = [row(f"n{i}", OK) for i in range(1, 8)] + [row("n8", RUNNING), row("n9", UNREACHABLE)]
    assert shown(table_rows(rows, [f"n{i}" for i in range(1, 10)], 5)) == [
        ("n9", UNREACHABLE),
        ("n8", RUNNING),
        ("n[1-7]", OK),
    ]


def test_hosts_at_work_fold_when_they_still_do_not_fit() -> None:
    rows = [row(f"n{i:02d}", RUNNING) for i in range(1, 21)] + [row("n21", FAILED)]
    hosts = [f"n{i:02d}" for i in range(1, 31)]
    result = shown(table_rows(rows, hosts, 6))
    assert result == [
        ("n21", FAILED),
        ("n01", RUNNING),
        ("n02", RUNNING),
        ("n03", RUNNING),
        ("n[04-20]", RUNNING),  # the rest of those at work, counted in one row
        ("n[22-30]", WAITING),
    ]


def test_trouble_folds_by_outcome_last() -> None:
    rows = [row(f"f{i}", FAILED) for i in range(6)] + [row(f"u{i}", UNREACHABLE) for i in range(6)]
    names = [r.name for r in rows]
    assert shown(table_rows(rows, names, 4)) == [("f[0-5]", FAILED), ("u[0-5]", UNREACHABLE)]


def test_the_view_shows_state_time_exit_and_last_line() -> None:
    err = Console(file=io.StringIO(), width=80, height=24, color_system=None)
    result = GroupResult()
    renderer = LiveRenderer(Console(file=io.StringIO()), err, result, ["w1", "w2", "w3", "w4"])
    try:
        for event in (
            S("w1"),
            Running("w1"),
            Output("w1", "out", "step 1\nstep 2 \x1b[31mred\x1b[0m\n"),
            S("w2"),
            Exited("w2", 0, 0.5),
            S("w3"),
            Failed("w3", FAILED, "ValueError: boom", 0.2, None, 1),
        ):
            result.add(event)
            renderer.handle(event)
        view = Console(file=io.StringIO(), width=80, height=24, color_system=None)
        view.print(renderer.view())
        lines = [line.rstrip() for line in view.file.getvalue().splitlines()]  # type: ignore[attr-defined]
    finally:
        renderer.close()
    assert lines[0].split() == ["HOST", "STATE", "TIME", "EXIT", "LAST", "LINE"]
    assert lines[1].split()[:2] == ["w3", "failed"] and lines[1].endswith("ValueError: boom")
    assert lines[2].split()[:2] == ["w1", "running"] and lines[2].endswith("step 2 red")
    assert lines[3].split() == ["w4", "waiting"]
    assert lines[4].split()[:2] == ["w2", "ok"]
    assert "2/4 done, 1 not ok" in lines[5]
    assert all(len(line) < 80 for line in lines)


# -- the real thing: xnet in a pseudo-terminal (tmux) ----------------------------------

TMUX = shutil.which("tmux")
#: w1..: wait for the go file; the ``quick`` ones end at once, the ``broken`` ones fail.
CODE = """\
import os, sys, time
role = os.environ.get("ROLE")
if role == "fail":
    sys.exit("broken on purpose")
print("started as", role or "worker", flush=True)
if role == "quick":
    sys.exit(0)
while not os.path.exists({go!r}):
    time.sleep(0.05)
print("done")
"""


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[list[str]]:
    if TMUX is None:
        pytest.skip("tmux is not installed")
    command = [TMUX, "-L", f"xnet-test-{os.getpid()}-{tmp_path.name}", "-f", "/dev/null"]
    yield command
    subprocess.run([*command, "kill-server"], capture_output=True, timeout=30, env=TMUX_ENV)


#: The environment tmux runs in: never the one of a tmux the suite itself may run in (its socket
#: and the outer pane's size would leak into the test's terminal).
TMUX_ENV = {
    k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "COLUMNS", "LINES")
}


def screen(tmux: list[str]) -> str:
    done = subprocess.run(
        [*tmux, "capture-pane", "-p", "-t", "live"],
        capture_output=True,
        text=True,
        timeout=30,
        env=TMUX_ENV,
    )
    return done.stdout


def start(tmux: list[str], env: Path, size: tuple[int, int], hosts: str, groups: str) -> Path:
    inventory = env / "live.yaml"
    inventory.write_text(
        f"groups:\n  w:\n    hosts: {hosts}\n    vars: {{transport: popen}}\n{groups}"
    )
    go = env / "go"
    script = env / "job.py"
    script.write_text(CODE.format(go=str(go)))
    command = (
        f"cd {env} && PYTHONPATH={os.environ.get('PYTHONPATH', '')} {sys.executable} "
        f"-m execnet_cli run -i {inventory} -f 200 @{script}; echo exit=$?; "
        "stty -a | tr ' ;' '\\n\\n' | grep -qx echo && echo echo=on; sleep 600"
    )
    width, height = size
    subprocess.run(
        [*tmux, "new", "-d", "-s", "live", "-x", str(width), "-y", str(height), command],
        check=True,
        timeout=30,
        env=TMUX_ENV,
    )
    return go


def test_live_table_at_80_columns_with_8_hosts(tmux: list[str], env: Path) -> None:
    groups = "  quick:\n    hosts: w1\n    vars: {env: {ROLE: quick}}\n"
    groups += "  broken:\n    hosts: w8\n    vars: {env: {ROLE: fail}}\n"
    go = start(tmux, env, (80, 24), "w[1-8]", groups)
    assert wait_until(lambda: screen(tmux).count("started as worker") == 6, 60), screen(tmux)
    lines = screen(tmux).splitlines()
    assert lines[0].split() == ["HOST", "STATE", "TIME", "EXIT", "LAST", "LINE"]
    assert lines[1].split()[:2] == ["w8", "failed"]
    assert "broken on purpose" in lines[1]
    assert [line.split()[:2] for line in lines[2:8]] == [[f"w{i}", "running"] for i in range(2, 8)]
    assert lines[8].split()[:2] == ["w1", "ok"]
    assert "2/8 done, 1 not ok" in lines[9]
    assert max(len(line) for line in lines) < 80
    go.touch()
    assert wait_until(lambda: "exit=1" in screen(tmux), 60), screen(tmux)
    assert wait_until(lambda: "echo=on" in screen(tmux), 30)  # keys echo again
    after = screen(tmux)
    assert "HOST" not in after and "running" not in after  # the table gave way
    assert "w[2-7] (6) ─" in after and "1 ok, 6 failed" not in after
    assert "6 ok" not in after and "7 ok, 1 failed (w8), 0 unreachable in " in after


def test_live_table_at_160_columns_with_100_hosts(tmux: list[str], env: Path) -> None:
    groups = "  quick:\n    hosts: w[001-009]\n    vars: {env: {ROLE: quick}}\n"
    groups += "  broken:\n    hosts: w[010-100/10]\n    vars: {env: {ROLE: fail}}\n"
    go = start(tmux, env, (160, 40), "w[001-100]", groups)

    def settled() -> bool:
        text = screen(tmux)
        return "19/100 done, 10 not ok" in text and "connecting" not in text

    assert wait_until(settled, 120), screen(tmux)
    lines = screen(tmux).rstrip("\n").splitlines()
    assert len(lines) <= 40 and max(len(line) for line in lines) < 160
    states = [line.split()[:2] for line in lines[1:-1]]
    assert states[:10] == [[f"w{n:03d}", "failed"] for n in range(10, 101, 10)]
    assert states[-1] == ["w[001-009]", "ok"]  # folded: they do not all fit
    folded = [line for line in lines if "running (" in line]
    assert len(folded) == 1 and folded[0].startswith("w[")  # the rest of those at work
    assert all(s[1] in ("failed", "running", "ok") for s in states)
    go.touch()
    assert wait_until(lambda: "exit=1" in screen(tmux), 120), screen(tmux)
    assert "90 ok, 10 failed (w[010-100/10]" not in screen(tmux)  # ranges fold without steps
    assert "90 ok, 10 failed (w[010,020,030,040,050,060,070,080,090,100])" in screen(tmux)
