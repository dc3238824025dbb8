"""``xnet shell --sh HOST``: the user's login shell on the host, on a real terminal.

The pseudo-terminal is made on the far side by the worker (``_remote/shell_pty.py``),
so this works the same over every kind of gateway (popen, ssh, socket,
via) and needs nothing of the transports: terminal bytes travel over a channel both
ways. Locally the terminal is put in raw mode (every key, Ctrl-C and Ctrl-D among them,
goes to the remote shell) and is restored on every way out: the shell's exit, a lost
connection, SIGTERM or SIGHUP, an exception. The window size is sent at the start and
on every SIGWINCH; the remote shell's exit status becomes ours.
"""

from __future__ import annotations

import os
import select
import signal
import termios
import tty
from types import FrameType
from typing import Any, Optional

from ..gateway import Gateway

__all__ = ["Terminal", "window_size"]

#: End of file, in a terminal's canonical mode: sent when a piped stdin ends.
EOF_CHAR = b"\x04"
_END = object()


def window_size(fds: tuple[int, ...]) -> tuple[int, int]:
    """(rows, columns) of the first terminal among ``fds``; 24x80 when none is one."""
    for fd in fds:
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        return size.lines, size.columns
    return 24, 80


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Terminal:
    """One relay between our terminal (``in_fd``/``out_fd``) and a remote login shell."""

    def __init__(self, gateway: Gateway, in_fd: int = 0, out_fd: int = 1) -> None:
        self.gateway = gateway
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.is_tty = os.isatty(in_fd)
        self.status: Optional[int] = None
        self.ended = False
        self._wake_r, self._wake_w = os.pipe()

    def run(self, term: Optional[str] = None) -> Optional[int]:
        """Relay until the remote shell ends; its exit status (None: the connection ended
        before the shell said)."""
        rows, cols = window_size((self.out_fd, self.in_fd))
        options = {"rows": rows, "cols": cols, "term": term or os.environ.get("TERM") or "xterm"}
        package = self.gateway.remote_modules("shell_pty")
        channel = self.gateway.remote_exec(
            f"from {package} import shell_pty\nshell_pty.serve_pty(channel, channel.receive()[1])"
        )
        channel.setcallback(self._on_item, endmarker=_END)
        channel.send(("pty", options))
        handlers = self._install_handlers()
        saved = termios.tcgetattr(self.in_fd) if self.is_tty else None
        try:
            if saved is not None:
                tty.setraw(self.in_fd)
            self._relay(channel)
        finally:
            if saved is not None:
                termios.tcsetattr(self.in_fd, termios.TCSADRAIN, saved)
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            os.close(self._wake_r)
            os.close(self._wake_w)
        return self.status

    def _on_item(self, item: Any) -> None:
        """Items from the remote side, in the gateway's receiver thread."""
        if item is _END:
            self.ended = True
            os.write(self._wake_w, b"e")
        elif isinstance(item, bytes):
            _write_all(self.out_fd, item)
        elif isinstance(item, tuple) and len(item) == 2 and item[0] == "exit":
            self.status = int(item[1])

    def _install_handlers(self) -> dict[int, Any]:
        def wake(signum: int, frame: Optional[FrameType]) -> None:
            os.write(self._wake_w, b"w")

        def leave(signum: int, frame: Optional[FrameType]) -> None:
            raise SystemExit(128 + signum)  # unwinds through the terminal's restore

        handlers: dict[int, Any] = {signal.SIGWINCH: signal.signal(signal.SIGWINCH, wake)}
        for signum in (signal.SIGTERM, signal.SIGHUP):
            handlers[signum] = signal.signal(signum, leave)
        return handlers

    def _relay(self, channel: Any) -> None:
        reading = True
        while not self.ended:
            watched = [self._wake_r, self.in_fd] if reading else [self._wake_r]
            ready = select.select(watched, [], [])[0]
            if self._wake_r in ready and b"w" in os.read(self._wake_r, 512):
                self._send(channel, ("size", *window_size((self.out_fd, self.in_fd))))
            if self.in_fd in ready:
                data = os.read(self.in_fd, 65536)
                if not data:  # a pipe ended: the shell reads end of file
                    reading = False
                    data = EOF_CHAR
                self._send(channel, data)

    def _send(self, channel: Any, item: Any) -> None:
        try:
            channel.send(item)
        except OSError:
            pass  # the channel ended: the end marker wakes the loop
