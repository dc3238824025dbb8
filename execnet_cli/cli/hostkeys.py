"""Unknown host keys at the command line: one list, one question, or one hint.

``fleet.hostkeys`` collects the hosts whose keys are unknown; this module answers for it:

- ``--accept-new``: yes, without asking; the list of keys recorded is still shown (never
  a silent accept);
- at a terminal (stdin and stderr): the list (hosts, key type, SHA256 fingerprint), then
  one question, ``[y/N]``; anything but y/yes refuses, Ctrl-C stops the run;
- in a pipe or CI: no; the refused hosts end unreachable (one folded block in the report),
  and ``KeyQuestion.hint`` lists their keys, one line each, then one line on accepting them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import ContextManager, Optional

import click

from ..fleet.hostkeys import NewKey
from ..inventory import fold

__all__ = ["KeyQuestion", "accept_new_option", "key_lines"]

accept_new_option = click.option(
    "--accept-new",
    is_flag=True,
    help="Record the host keys of hosts not yet in known_hosts without asking (they are "
    "listed). Without it, a terminal is asked once; a pipe refuses them. A changed key is "
    "always refused.",
)

#: What pauses the display around the question (the live table's ``paused``).
Pause = Callable[[], ContextManager[None]]


def key_lines(keys: Sequence[NewKey]) -> list[str]:
    """One aligned line per key: the hosts waiting for it, the key's name, type, fingerprint."""
    rows = [(fold(k.hosts), k.name, k.key_type, k.fingerprint) for k in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return ["  " + "  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[3]]) for r in rows]


class KeyQuestion:
    """The answer for this command (a ``fleet.hostkeys.Decide``): ``--accept-new``'s, the
    terminal's, or no (a pipe); then ``hint`` says, once, what became of the keys refused."""

    def __init__(self, accept_new: bool, pause: Pause = contextlib.nullcontext) -> None:
        self.accept_new = accept_new
        self.pause = pause
        self.asked = False

    def __call__(self, keys: Sequence[NewKey]) -> bool:
        hosts = sum(len(k.hosts) for k in keys)
        files = ", ".join(sorted({k.file for k in keys}))
        with self.pause():
            if self.accept_new:
                _say(f"recording {_count(keys)} in {files} (--accept-new):", keys)
                return True
            if not _interactive():
                return False
            self.asked = True
            _say(f"{_unknown(keys)} not in known_hosts, for {_plural(hosts, 'host')}:", keys)
            one = len(keys) == 1
            question = (
                f"Accept {'this key' if one else f'these {len(keys)} keys'} and record "
                f"{'it' if one else 'them'} in {files}? [y/N] "
            )
            return _ask(question) in ("y", "yes")

    def hint(self, refused: Sequence[NewKey]) -> None:
        """After the run: the keys refused, one line each, and how to accept them (once)."""
        if not refused:
            return
        hosts = _plural(sum(len(k.hosts) for k in refused), "host")
        if self.asked:  # the list was shown with the question
            click.echo(f"xnet: host keys not accepted; {hosts} not run", err=True)
            return
        _say(f"{hosts} refused: {_unknown(refused)} not in known_hosts:", refused)
        click.echo(
            "xnet: if these fingerprints are right, run again with --accept-new to record "
            "them, or add them to known_hosts yourself (ssh-keyscan)",
            err=True,
        )


def _interactive() -> bool:
    """Whether a person can answer: stdin and stderr are a terminal."""
    try:
        return os.isatty(sys.stdin.fileno()) and os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # replaced or closed streams
        return False


def _ask(question: str) -> str:
    """Read one answer; Ctrl-C (or end of input) is no, and Ctrl-C still stops the run."""
    click.echo(question, err=True, nl=False)
    try:
        with _interruptible():
            line = sys.stdin.readline()
    except KeyboardInterrupt:
        click.echo("", err=True)
        return ""
    return line.strip().lower()


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C ends the read: the run's own SIGINT handler (``stopping``) is called, then the
    read is broken off with ``KeyboardInterrupt`` (a handler that returns would not end it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Optional[FrameType]) -> None:
        if callable(previous):
            previous(signum, frame)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _say(title: str, keys: Sequence[NewKey]) -> None:
    click.echo(f"xnet: {title}", err=True)
    for line in key_lines(keys):
        click.echo(line, err=True)


def _unknown(keys: Sequence[NewKey]) -> str:
    return "1 host key" if len(keys) == 1 else f"{len(keys)} host keys"


def _count(keys: Sequence[NewKey]) -> str:
    return _plural(len(keys), "key")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
