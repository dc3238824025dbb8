"""The local side of the ``xnet shell`` prompt: statements read from a terminal or a pipe.

At a terminal: readline line editing, Tab completion from the remote namespace, history
in ``$XDG_STATE_HOME/xnet/history``, the host in the prompt (``web01>>> ``), the REPL's
rules for blocks (a blank line ends one). From a pipe: no prompts, and a line at the left
margin that cannot continue a block ends it, so scripts without blank lines between
blocks work. Whether a statement is complete is decided here with ``codeop`` (no round
trip per line); each host compiles it again with its own interpreter's rules.

Lines starting with ``%`` are ours (no Python statement starts so): ``%hosts [PATTERN]``.
"""

from __future__ import annotations

import codeop
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Optional, TextIO

from .shell_session import Session

__all__ = ["StatementReader", "batch", "history_path", "interact"]

#: Lines kept in the history file.
HISTORY_LENGTH = 10000
INDENT = "    "

Command = Callable[[str], None]


def history_path() -> Path:
    """``$XDG_STATE_HOME/xnet/history`` (``~/.local/state/xnet/history`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local/state")
    return Path(base) / "xnet" / "history"


def _state(source: str) -> str:
    """``more`` (incomplete), ``ready`` (complete) or ``error`` (send it: the host reports)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = codeop.compile_command(source, "<stdin>", "single")
    except (SyntaxError, ValueError, OverflowError):
        return "error"
    return "more" if code is None else "ready"


class StatementReader:
    """Lines in, complete statements out (``push`` returns those a line completes)."""

    def __init__(self, lenient: bool = False) -> None:
        self.lenient = lenient
        self.lines: list[str] = []

    @property
    def pending(self) -> bool:
        return bool(self.lines)

    def reset(self) -> None:
        self.lines = []

    def push(self, line: str) -> list[str]:
        if not self.lines and not line.strip():
            return []
        if self.lenient and self.lines and line[:1] not in ("", " ", "\t"):
            block = "\n".join(self.lines) + "\n"
            joined = "\n".join([*self.lines, line])
            if _state(joined) == "error" and _state(block) == "ready":
                self.lines = []
                return [block, *self.push(line)]
        self.lines.append(line)
        source = "\n".join(self.lines)
        if _state(source) == "more":
            return []
        self.lines = []
        return [source]

    def finish(self) -> list[str]:
        """What is left at the end of the input (a block without its blank line)."""
        source, self.lines = "\n".join(self.lines), []
        return [source + "\n"] if source.strip() else []


def _run_all(session: Session, sources: Iterable[str]) -> tuple[Optional[int], bool]:
    """Run statements: (the exit status ``exit()`` asked for or None, whether any failed)."""
    failed = False
    for source in sources:
        outcome = session.run(source)
        if outcome.status == "exit":
            return outcome.code, failed
        failed = failed or outcome.status != "ok"
    return None, failed


def batch(session: Session, stream: TextIO, command: Command) -> int:
    """Statements from a pipe: 1 if any raised (or did not compile), else 0."""
    reader = StatementReader(lenient=True)
    failed = False
    lines = (raw.rstrip("\r\n") for raw in iter(stream.readline, ""))
    for line in lines:
        if not reader.pending and line.startswith("%"):
            command(line)
            continue
        code, failed_now = _run_all(session, reader.push(line))
        failed = failed or failed_now
        if code is not None:
            return code
    code, failed_now = _run_all(session, reader.finish())
    if code is not None:
        return code
    return 1 if failed or failed_now else 0


def interact(session: Session, command: Command, out: TextIO) -> int:
    """The prompt at a terminal, until Ctrl-D or ``exit()``.

    Ctrl-C at the prompt (or between statements) drops the line being typed, as in the
    Python REPL; while a statement runs, the session turns it into an interrupt there.
    """
    readline = _setup_readline(session)
    reader = StatementReader()
    try:
        while True:
            try:
                code = _prompt_once(session, reader, command)
            except EOFError:
                out.write("\n")
                return 0
            except KeyboardInterrupt:
                out.write("\nKeyboardInterrupt\n")
                reader.reset()
                continue
            if code is not None:
                return code
    finally:
        if readline is not None:
            _save_history(readline)


def _prompt_once(session: Session, reader: StatementReader, command: Command) -> Optional[int]:
    """Read one line and run what it completes; the status ``exit()`` asked for, or None."""
    session.poll()
    names = str(session.names)
    line = input(f"{names}>>> " if not reader.pending else f"{' ' * len(names)}... ")
    if not reader.pending and line.startswith("%"):
        command(line)
        return None
    return _run_all(session, reader.push(line))[0]


class _Completer:
    """readline's completer: the remote namespace's names; Tab on a blank line indents."""

    def __init__(self, session: Session, readline: Any) -> None:
        self.session = session
        self.readline = readline
        self.matches: list[str] = []

    def __call__(self, text: str, state: int) -> Optional[str]:
        if state == 0:
            self.matches = []
            before = self.readline.get_line_buffer()[: self.readline.get_begidx()]
            if not text.strip() and not before.strip():
                self.readline.insert_text(INDENT)
                self.readline.redisplay()
            elif text.strip():
                self.matches = self.session.complete(text)
        return self.matches[state] if state < len(self.matches) else None


def _setup_readline(session: Session) -> Any:
    try:
        import readline
    except ImportError:  # no line editing on this build: plain input() still works
        return None
    readline.set_completer(_Completer(session, readline))
    if "libedit" in (readline.__doc__ or ""):
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")
    readline.set_history_length(HISTORY_LENGTH)
    try:
        readline.read_history_file(history_path())
    except OSError:
        pass
    return readline


def _save_history(readline: Any) -> None:
    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(path)
    except OSError:
        pass
