"""The remote half of ``xnet shell --sh``: the user's login shell on a new pseudo-terminal.

Sent whole as source with ``remote_exec(module)`` (stdlib only, Python 3.8+);
``cli.shell_term`` is the local half. Its first item is ``("pty", {"rows", "cols",
"term"})``; then bytes travel both ways (terminal input in, terminal output out),
``("size", rows, cols)`` comes in on every resize, and one ``("exit", status)`` goes out
when the shell has ended. If the controller goes away, the shell is hung up on, as a
terminal would.
"""

from __future__ import annotations

import os
import signal
import threading

from .fdio import write_all

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict, Optional

#: Largest piece of terminal output sent as one item.
CHUNK = 65536


def serve_pty(channel: Any, options: Dict[str, Any]) -> None:
    """Run the user's login shell on a new pseudo-terminal and relay it over ``channel``."""
    import pty
    import pwd

    shell = options.get("shell") or pwd.getpwuid(os.getuid()).pw_shell or "/bin/sh"
    argv = ["-" + os.path.basename(shell)]  # a leading "-" makes a login shell
    env = dict(os.environ, TERM=options.get("term") or "xterm")
    size = winsize(options.get("rows") or 24, options.get("cols") or 80)
    pid, master = pty.fork()
    if pid == 0:  # the child: reset what Python changed, then become the shell
        try:
            for name in ("SIGPIPE", "SIGXFSZ", "SIGINT"):
                if hasattr(signal, name):
                    signal.signal(getattr(signal, name), signal.SIG_DFL)
            set_winsize(0, size)
            os.execve(shell, argv, env)
        finally:
            os._exit(127)
    set_winsize(master, size)
    relay = PtyRelay(channel, master, pid)
    try:
        relay.run()
    finally:
        os.close(master)


def winsize(rows: int, cols: int) -> bytes:
    import struct

    return struct.pack("HHHH", int(rows), int(cols), 0, 0)


def set_winsize(fd: int, size: bytes) -> None:
    import fcntl
    import termios

    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
    except OSError:
        pass


class PtyRelay:
    """Terminal bytes both ways until the shell ends (or the controller goes away)."""

    def __init__(self, channel: Any, master: int, pid: int) -> None:
        self.channel = channel
        self.master = master
        self.pid = pid
        self.shell_done = threading.Event()
        self.reader = threading.Thread(target=self._read, name="xnet-shell-pty", daemon=True)

    def run(self) -> None:
        self.reader.start()
        status = None
        while status is None:
            try:
                item = self.channel.receive(0.2)
            except self.channel.TimeoutError:
                item = None
            except EOFError:  # the controller went away: hang up, as a terminal would
                self._hang_up()
                return
            if isinstance(item, bytes):
                write_all(self.master, item)
            elif isinstance(item, tuple) and item and item[0] == "size":
                set_winsize(self.master, winsize(item[1], item[2]))
            status = self._poll()
        self.shell_done.set()
        self.reader.join(5.0)
        self.channel.send(("exit", status))

    def _poll(self) -> Optional[int]:
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status)

    def _read(self) -> None:
        """Terminal output, as it comes; after the shell ended, what is left (a background
        job may keep the terminal open: stop once it is quiet)."""
        import select

        while True:
            quiet = not select.select([self.master], [], [], 0.1)[0]
            if quiet:
                if self.shell_done.is_set():
                    return
                continue
            try:
                data = os.read(self.master, CHUNK)
            except OSError:  # EIO: every process holding the terminal has closed it
                return
            if not data:
                return
            try:
                self.channel.send(data)
            except Exception:
                return

    def _hang_up(self) -> None:
        import time

        for sig, wait in ((signal.SIGHUP, 1.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except OSError:
                pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    if os.waitpid(self.pid, os.WNOHANG)[0]:
                        return
                except ChildProcessError:
                    return
                time.sleep(0.02)
