"""The live table at a real terminal (tmux): what docs/cli.md promises about keys."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from proc_helpers import wait_until
from test_cli_live import TMUX_ENV, screen, start, tmux  # noqa: F401 (the tmux fixture)


def test_keys_typed_while_the_table_shows_are_not_echoed(
    tmux: list[str],  # noqa: F811 (the fixture imported above)
    env: Path,
) -> None:
    """docs/cli.md: "While it shows, keys typed are not echoed (a `^C` would shift it)".
    The table redraws over an echo, so the terminal's own mode is what is checked."""
    go = start(tmux, env, (80, 24), "w[1-3]", "")
    assert wait_until(lambda: screen(tmux).count("started as worker") == 3, 60), screen(tmux)
    pane = subprocess.run(
        [*tmux, "display", "-p", "-t", "live", "#{pane_tty}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env=TMUX_ENV,
    ).stdout.strip()
    assert "-echo" in terminal_modes(pane)  # typed keys are not echoed meanwhile
    go.touch()
    assert wait_until(lambda: "echo=on" in screen(tmux), 60), screen(tmux)
    assert "echo" in terminal_modes(pane)  # and are again once the table went


def terminal_modes(tty: str) -> list[str]:
    """The modes of a terminal as ``stty`` words (``echo`` or ``-echo``, ...)."""
    fd = os.open(tty, os.O_RDONLY | os.O_NOCTTY)  # never our controlling terminal
    try:
        done = subprocess.run(
            ["stty", "-a"], stdin=fd, capture_output=True, text=True, timeout=30, check=True
        )
    finally:
        os.close(fd)
    return done.stdout.replace(";", " ").split()
