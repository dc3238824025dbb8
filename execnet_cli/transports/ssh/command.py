"""A shell command straight on an ssh session channel: no remote Python (``xnet sh``).

Starting an interpreter and sending it our bootstrap costs the remote tens of ms of CPU
per host; a shell command needs neither. The exec request runs a small POSIX ``sh``
wrapper (``wrapper_line``) that keeps the guarantees the Python path gives:

- the command runs under ``/bin/sh -c`` with its stdin from /dev/null, in the process
  group of the ssh session (OpenSSH's sshd makes each session its own session and
  process group, and the wrapper ``exec``\\ s the command in that process, so its death by
  a signal reaches us as the channel's "exit-signal");
- a watcher (a background subshell) blocks reading the channel's stdin: when we close
  it (a timeout, the run cancelled) or the connection drops, it SIGKILLs the whole
  process group, if the command is still running; after the command ended it only
  exits, so a background child (``sleep 100 &``) is left running, as with ``nohup``;
- with a timeout, a timer subshell kills the group ``REMOTE_GRACE`` seconds after it, in
  case we cannot reach the host to say so (the watcher ends the timer otherwise).

``SessionCommand`` delivers the channel's stdout and stderr data in arrival order and
how the command ended, from one queue (no thread of ours per host).
"""

from __future__ import annotations

import queue
import re
import shlex
from collections.abc import Mapping
from typing import Any, Optional, Union

from ...errors import ConnectFailed
from .channel import ForwardingPipe, send_window_adjust
from .connect import Connection

__all__ = ["REMOTE_GRACE", "SessionCommand", "exit_signal_number", "wrapper_line"]

#: The remote timer fires this long after the local timeout (which normally acts first).
REMOTE_GRACE = 3.0
#: Receive window of a command's channel: bounds what one host can have in flight.
WINDOW = 1024 * 1024
#: Names ``export`` takes (others make the host go through the Python worker).
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_KILL_GROUP = "kill -0 $g 2>/dev/null && kill -s KILL -- -$g"


def wrapper_line(
    command: str,
    timeout: Optional[float] = None,
    chdir: Optional[str] = None,
    env: Mapping[str, str] = {},
) -> str:
    """The exec request's command line: the wrapper, then ``command`` as its ``$1``.

    ``chdir`` (created if missing, ``~`` is $HOME) and ``env`` apply as the Python
    worker applies them. Everything is single-quoted for the login shell.
    """
    lines = ["g=$$", "exec 3<&0 </dev/null"]
    if timeout is not None:
        wait = f"{timeout + REMOTE_GRACE:.3f}"
        lines.append(
            f"( sleep {wait} & p=$!; trap 'kill $p 2>/dev/null; exit 0' TERM; "
            f"wait $p && {_KILL_GROUP} ) >/dev/null 2>&1 3<&- &"
        )
        lines.append("t=$!")
        stop_timer = "kill $t 2>/dev/null; "
    else:
        stop_timer = ""
    lines.append(f"( read _ <&3; {stop_timer}{_KILL_GROUP} ) >/dev/null 2>&1 &")
    lines.append("exec 3<&-")
    for name, value in env.items():
        if not ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not a shell variable name")
        lines.append(f"export {name}={shlex.quote(value)}")
    if chdir:
        path = _shell_path(chdir)
        lines.append(f"mkdir -p -- {path} && cd -- {path} || exit 1")
    lines.append('exec /bin/sh -c "$1"')
    return f"exec /bin/sh -c {shlex.quote(chr(10).join(lines))} xnet-sh {shlex.quote(command)}"


def _shell_path(path: str) -> str:
    """``path`` as a shell word, ``~`` and ``~/...`` meaning the home directory."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    if path.startswith("~"):
        raise ValueError(f"{path!r}: only ~ and ~/... are expanded")
    return shlex.quote(path)


def exit_signal_number(name: str) -> Optional[int]:
    """The number of a signal by its ssh name ("KILL" -> 9), here; None if unknown."""
    import signal

    try:
        return int(signal.Signals["SIG" + name])
    except KeyError:
        return None


#: An item of ``SessionCommand.get``: ("out"|"err", bytes), (stream, None) at its end,
#: ("status", int) or ("signal", name).
Item = tuple[str, Union[bytes, int, str, None]]


class _Sink(ForwardingPipe):
    """Stands in for paramiko's ``BufferedPipe`` as a channel's input buffer: each packet's
    data goes straight to the command's queue, tagged with its stream."""

    def __init__(self, stream: str, items: queue.SimpleQueue[Item]) -> None:
        self.stream = stream
        self.items = items
        self.closed = False

    def feed(self, data: bytes) -> None:
        if data:
            self.items.put((self.stream, data))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.items.put((self.stream, None))


class SessionCommand:
    """One command running on a session channel of ``connection``, read from one queue.

    ``get`` returns the next item; ``consumed`` grants the server window for data taken;
    ``kill`` closes the channel's stdin (the wrapper then kills the process group);
    ``close`` ends the connection.
    """

    def __init__(self, connection: Connection, line: str) -> None:
        self.connection = connection
        self.items: queue.SimpleQueue[Item] = queue.SimpleQueue()
        transport = connection.transport
        _watch_exit_requests(transport)
        try:
            channel = transport.open_session(window_size=WINDOW, timeout=transport.channel_timeout)
            channel.in_buffer = _Sink("out", self.items)  # before any data can arrive
            channel.in_stderr_buffer = _Sink("err", self.items)
            channel.xnet_exit = self.items.put
            channel.exec_command(line)
        except Exception as exc:
            where = connection.settings.describe()
            raise ConnectFailed(f"{where}: cannot start a command: {exc or 'refused'}") from exc
        self.channel = channel

    def get(self, timeout: Optional[float]) -> Optional[Item]:
        """The next item, or None when none came in ``timeout`` seconds."""
        try:
            return self.items.get(timeout=timeout)
        except queue.Empty:
            return None

    @property
    def closed(self) -> bool:
        """The channel closed: nothing more will come."""
        return bool(self.channel.closed)

    def consumed(self, count: int) -> None:
        """``count`` bytes were taken: let the server send more when due."""
        ack = self.channel._check_add_window(count)
        if ack > 0 and not self.channel.closed:
            try:
                send_window_adjust(self.channel, ack)
            except Exception:  # the connection is gone: the queue says so
                pass

    def kill(self) -> None:
        """End the command's stdin: the wrapper SIGKILLs its process group if it runs."""
        try:
            self.channel.shutdown_write()
        except Exception:
            pass

    def close(self) -> None:
        self.connection.close()


def _watch_exit_requests(transport: Any) -> None:
    """Make ``transport`` report a channel's "exit-status" and "exit-signal" requests to
    the channel's ``xnet_exit`` (paramiko keeps the status but drops the signal)."""
    from paramiko.common import MSG_CHANNEL_REQUEST

    table = dict(transport._channel_handler_table)
    original = table[MSG_CHANNEL_REQUEST]

    def handle(channel: Any, message: Any) -> None:
        report = getattr(channel, "xnet_exit", None)
        if report is not None:
            start = message.packet.tell()
            try:
                kind = message.get_text()
                message.get_boolean()
                if kind == "exit-status":
                    report(("status", message.get_int()))
                elif kind == "exit-signal":
                    report(("signal", message.get_text()))
            except Exception:  # a malformed request: paramiko's handler decides
                pass
            message.packet.seek(start)
        original(channel, message)

    table[MSG_CHANNEL_REQUEST] = handle
    transport._channel_handler_table = table
