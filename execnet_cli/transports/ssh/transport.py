"""Workers on other hosts over ssh (paramiko): one exec channel runs the stage-1 command.

The channel's stdout/stdin carry the protocol; its stderr (the worker's ``print()``
output and the shell's complaints, e.g. ``python3: not found``) is copied to our
``sys.stderr``, keeping the last 4 KiB for error messages (``stderr``: one writer thread
for all connections). Connecting, host keys and keys: ``connect``.

sudo (``sudo=true`` or ``sudo=USER``): the worker is started through ``sudo -n``. If sudo
wants a password, it is taken once per process from ``XNET_SUDO_PASSWORD`` or asked
with ``getpass``, checked on a separate channel (one attempt, so a wrong password never
counts thrice), then fed to ``sudo -k -S -p ''`` on the channel's stdin ahead of the
bootstrap. ``-k`` makes sudo read it even when it has cached credentials, so the
password line can never end up in the worker's stdin. It is never on a command line and
never logged.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import shlex
import socket
import sys
import threading
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from ... import bootstrap
from ...errors import AuthenticationFailed, BootstrapError, ConnectFailed, InterpreterNotFound
from ..base import PassiveTransport
from ..opening import OpenContext, SpecFields, WorkerConfig, send_bootstrap
from .channel import ChunkPipe, run_detached, send_signal, send_window_adjust
from .connect import WINDOW_SIZE, Connection, StreamOpener, connect
from .settings import SSHSettings, settings_for_line
from .stderr import StderrSink

log = logging.getLogger("execnet_cli.ssh")

Buffer = Union[bytes, bytearray, memoryview]

#: Frames up to this size are joined into one ssh packet rather than sent piecewise.
JOIN_LIMIT = 64 * 1024
SUDO_PASSWORD_ENV = "XNET_SUDO_PASSWORD"
NEEDS_PASSWORD = ("password is required", "a terminal is required")
#: Read through ``ChunkPipe`` (copy once); False: paramiko's ``Channel.recv`` (to compare).
FAST_READ = True
#: Dispatch in paramiko's thread (``forwarding``); False: our receiver thread reads.
PUSH = True
NO_STATUS = 255  # what OpenSSH's client returns when the session ended without a status

_password_lock = threading.Lock()
_sudo_password: Optional[str] = None


class SSHTransport(PassiveTransport):
    """The transport verb set over one paramiko exec channel (see ``transports.base``)."""

    def __init__(
        self,
        connection: Connection,
        channel: Any,
        settings: SSHSettings,
        python: str,
        sudo: Tuple[str, Optional[str]] = ("", None),
    ) -> None:
        self.connection = connection
        self.channel = channel
        self.settings = settings
        self.python = python
        self._sudo = sudo
        #: The worker's pid over there (from its ready message): lets ``kill`` reach it.
        self.remote_pid: Optional[int] = None
        self._closed = False
        self._kills = 0
        sink = channel.in_stderr_buffer
        assert isinstance(sink, StderrSink), "open_channel(..., copy_stderr=True) makes it"
        self._stderr = sink

    # -- the verb set ------------------------------------------------------------------------

    def readinto(self, buffer: bytearray | memoryview) -> int:
        pipe = self.channel.in_buffer
        if not isinstance(pipe, ChunkPipe):  # a paramiko without the hooks we use
            data = self.channel.recv(len(buffer))
            buffer[: len(data)] = data
            return len(data)
        count = pipe.readinto(buffer)
        if count:  # what Channel.recv does: grant the server more window when due
            ack = self.channel._check_add_window(count)
            if ack > 0:
                send_window_adjust(self.channel, ack)
        return count

    def push_frames(self, gateway: Any) -> Optional[Callable[[], None]]:
        """Frames are dispatched in paramiko's thread as packets arrive (``forwarding``)."""
        pipe = self.channel.in_buffer
        if not (PUSH and isinstance(pipe, ChunkPipe)):
            return None
        from .forwarding import PacketDispatcher

        dispatcher = PacketDispatcher(gateway, self.channel, pipe)
        dispatcher.start()
        return dispatcher.serve

    def write(self, segments: Sequence[Buffer]) -> None:
        total = 0
        for segment in segments:
            total += len(segment)
        if len(segments) > 1 and total <= JOIN_LIMIT:
            segments = [b"".join(segments)]
        send = self.channel.send
        for segment in segments:
            view = memoryview(segment).cast("B")
            while view:
                sent = send(view)
                if not sent:
                    raise BrokenPipeError(f"{self.describe()}: the channel is closed")
                view = view[sent:]

    def close_write(self) -> None:
        try:
            self.channel.shutdown_write()
        except (OSError, EOFError, Exception):
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.channel.close()
        self.connection.close()
        self._stderr.wait(5.0)  # its stderr written before we say it is closed

    def wait(self, timeout: Optional[float]) -> Optional[int]:
        if not self.channel.status_event.wait(timeout):
            return None
        status = self.channel.exit_status
        return NO_STATUS if status == -1 else status

    def kill(self) -> None:
        """SIGKILL the worker and end its stdin; a second call drops the connection.

        sshd honours "signal" requests only in some setups (not for root logins here), so
        the worker is also killed by pid with ``kill`` on a second channel. Until sshd
        reports the exit status it has not reaped the session, so the pid is still ours.
        Without a pid (not ready yet) the end of stdin makes the worker exit by itself.
        """
        if self.channel.status_event.is_set():
            return
        self._kills += 1
        if self._kills > 1:
            self.channel.close()
            self.connection.close()
            return
        try:
            send_signal(self.channel, "KILL")
            if self.remote_pid is not None:
                prefix, password = self._sudo
                command = f"{prefix}kill -KILL {int(self.remote_pid)}"
                run_detached(self.connection, command, password)
        except Exception:
            log.debug("%s: kill request failed", self.describe(), exc_info=True)
        self.close_write()

    def describe(self) -> str:
        return f"ssh {self.settings.describe()} ({self.python})"

    def exit_description(self) -> str:
        if not self.channel.status_event.is_set():
            return "still running"
        if self.channel.exit_status == -1:
            return "ended without an exit status (killed by a signal, or the connection was lost)"
        return f"exited with status {self.channel.exit_status}"

    def worker_ready(self, pid: Optional[int]) -> None:
        self.remote_pid = pid

    def startup_error(self, error: Exception) -> Exception:
        """The worker died before it was ready: say why, from the remote's stderr."""
        return bootstrap_failure(self, error)

    # -- remote stderr -------------------------------------------------------------------------

    def stderr_text(self) -> str:
        """The last few KiB the remote side wrote to stderr."""
        return self._stderr.text()


# -- opening -----------------------------------------------------------------------------


def open_ssh(fields: SpecFields, config: WorkerConfig, context: OpenContext) -> SSHTransport:
    """A worker over ssh, given ``config``.

    With ``via=ID``, the TCP connection to the ssh server is made from that gateway's
    host (a tunnel over one of its channels): keys and known hosts stay local, the
    bastion needs only Python, as with OpenSSH's ProxyJump.
    """
    opener: Optional[StreamOpener] = None
    if fields.via:
        from ..via import open_via_tcp

        carrier = context.carrier(fields, "via")

        def opener(host: str, port: int, timeout: float) -> Any:
            return open_via_tcp(carrier, host, port, timeout)

    assert fields.ssh is not None
    settings = settings_for_line(fields.ssh, fields.ssh_config)
    python = fields.python or "python3"
    transport = open_ssh_transport(settings, python, fields.sudo, fields.connect_timeout, opener)
    return send_bootstrap(transport, config, same_python=False)


def open_ssh_transport(
    settings: SSHSettings,
    python: str,
    sudo: Optional[str] = None,
    timeout: Optional[float] = None,
    opener: Optional[StreamOpener] = None,
) -> SSHTransport:
    """Connect, (check that sudo becomes user ``sudo``), and start ``python`` with the
    stage-1 bootstrap.

    ``opener`` makes the TCP connection from elsewhere (``via=``, see ``connect``).
    """
    connection = connect(settings, timeout, opener)
    try:
        command = shlex.join(bootstrap.stage1_argv(python))
        prefix, password = sudo_prefix(connection, sudo, timeout) if sudo else ("", None)
        channel = open_channel(connection, prefix + command, copy_stderr=True)
        transport = SSHTransport(connection, channel, settings, python, (prefix, password))
        if password is not None:
            channel.sendall((password + "\n").encode())
        return transport
    except BaseException:
        connection.close()
        raise


def open_channel(connection: Connection, command: str, copy_stderr: bool = False) -> Any:
    """Start ``command`` on a new session channel; ``copy_stderr``: its stderr goes to
    ours through a ``StderrSink`` (else it stays in the channel for ``recv_stderr``)."""
    import paramiko

    where = connection.settings.describe()
    try:
        channel = connection.transport.open_session(
            window_size=WINDOW_SIZE, timeout=connection.transport.channel_timeout
        )
        if FAST_READ and hasattr(channel, "_check_add_window"):
            channel.in_buffer = ChunkPipe()  # before any data can arrive
        if copy_stderr:
            channel.in_stderr_buffer = StderrSink(channel, connection.settings.host)
        channel.exec_command(command)
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise ConnectFailed(f"{where}: cannot start a command: {exc or 'channel refused'}") from exc
    return channel


def run_probe(
    connection: Connection, command: str, stdin: bytes, timeout: float
) -> Tuple[int, str]:
    """Run a short command to its end: (exit status, stderr text)."""
    channel = open_channel(connection, command)
    try:
        if stdin:
            channel.sendall(stdin)
        channel.shutdown_write()
        deadline = time.monotonic() + timeout
        errors = bytearray()
        try:
            while True:  # stderr until its end, then the exit status
                channel.settimeout(max(0.0, deadline - time.monotonic()))
                data = channel.recv_stderr(4096)
                if not data:
                    break
                errors += data
            if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise socket.timeout()
        except socket.timeout:
            raise ConnectFailed(
                f"{connection.settings.describe()}: {command.split()[0]} did not finish "
                f"in {timeout:g} s"
            ) from None
        return channel.exit_status, errors.decode("utf-8", "replace").strip()
    finally:
        channel.close()


def sudo_prefix(
    connection: Connection, user: str, timeout: Optional[float]
) -> Tuple[str, Optional[str]]:
    """The sudo words to put before the command (to become ``user``, checked by the spec),
    and the password to feed, if any."""
    where = connection.settings.describe()
    wait = timeout or 30.0
    target = f"-u {shlex.quote(user)} --"
    status, errors = run_probe(connection, f"sudo -n {target} true", b"", wait)
    if status == 0:
        return f"sudo -n {target} ", None
    if status == 127 or ("not found" in errors and "sudo" in errors):
        raise InterpreterNotFound(f"{where}: sudo is not installed there ({errors})")
    if not any(text in errors for text in NEEDS_PASSWORD):
        raise AuthenticationFailed(f"{where}: sudo to {user} refused: {errors or status}")
    password = sudo_password(where)
    command = f"sudo -k -S -p '' {target} true"
    status, errors = run_probe(connection, command, (password + "\n").encode(), wait)
    if status != 0:
        detail = "incorrect password" if "incorrect" in errors or "Sorry" in errors else errors
        raise AuthenticationFailed(
            f"{where}: sudo to {user} refused the password ({detail}); the password came "
            f"from {'$' + SUDO_PASSWORD_ENV if os.environ.get(SUDO_PASSWORD_ENV) else 'the prompt'}"
        )
    return f"sudo -k -S -p '' {target} ", password


def sudo_password(where: str) -> str:
    """The sudo password: $XNET_SUDO_PASSWORD, or asked once per process on the terminal."""
    global _sudo_password
    from_env = os.environ.get(SUDO_PASSWORD_ENV)
    if from_env is not None:
        return from_env
    with _password_lock:
        if _sudo_password is None:
            if not (sys.stdin and sys.stdin.isatty()):
                raise AuthenticationFailed(
                    f"{where}: sudo needs a password and there is no terminal to ask on; "
                    f"set {SUDO_PASSWORD_ENV}"
                )
            _sudo_password = getpass.getpass("sudo password for the remote hosts: ")
        return _sudo_password


def bootstrap_failure(transport: SSHTransport, exc: BaseException) -> Exception:
    """The error for a worker that died before it was ready, with its remote stderr."""
    where = transport.settings.describe()
    errors = transport.stderr_text()
    status = transport.wait(0)
    shown = f": {errors}" if errors else " (no error output)"
    missing = status in (126, 127) or re.search(r"command not found|No such file", errors)
    if missing:
        return InterpreterNotFound(
            f"{where}: cannot start the interpreter {transport.python!r} "
            f"(exit status {status}){shown}"
        )
    return BootstrapError(
        f"{where}: the worker {transport.exit_description()} before it was ready{shown}"
    )


__all__: List[str] = ["SSHTransport", "bootstrap_failure", "open_ssh", "open_ssh_transport"]
