"""``xnet sh`` on ssh hosts without a remote Python: the command on the session channel.

The runner asks ``applies(job, host)``; for such a host it calls ``start`` (connect and
exec; connection errors are raised as when a gateway opens) and then ``finish``, which
turns what the channel delivers into the same events the Python path gives: output as
whole lines, then ``Exited(code)`` (a signal as 128 + N, "killed by signal N"), or
``Failed`` timed out (``timed out after T s``, exit code 137), interrupted, or failed
when the connection is lost. The remote side is ``transports.ssh.command``'s wrapper.

Hosts that go ``via`` a gateway, use ``sudo``, or set ``chdir``/``env`` the wrapper cannot
express (``~user``, a name that is no shell variable) keep the Python worker.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Callable
from typing import Optional

from ..inventory import Host
from ..transports.ssh.command import ENV_NAME, SessionCommand, exit_signal_number, wrapper_line
from ..transports.ssh.connect import connect
from ..transports.ssh.settings import settings_for_line
from .events import FAILED, INTERRUPTED, TIMED_OUT, Event, Exited, Failed
from .jobs import Job

__all__ = ["ENABLED", "PIPE_GRACE", "applies", "finish", "start"]

#: Off: every ``sh`` host goes through the Python worker (to compare the two paths).
ENABLED = True
#: After the command ended, how long its output may still take to end (a background
#: child holding the pipes open: its later output is not collected, as with ``nohup``).
PIPE_GRACE = 1.0
#: How long a killed command is given to report its end before the connection is closed.
KILL_WAIT = 1.0
#: How often the wait for output looks at the clock (timeouts, cancelling).
_POLL = 0.1

Emit = Callable[[list[tuple[str, str]], bool], None]


def applies(job: Job, host: Host) -> bool:
    """Whether ``host`` runs ``job`` straight on an ssh session channel."""
    if not ENABLED or job.kind != "sh" or job.command is None:
        return False
    if host.transport != "ssh" or host.via or host.sudo:
        return False
    if host.chdir and host.chdir.startswith("~") and not _home_path(host.chdir):
        return False
    return all(ENV_NAME.match(name) for name in host.env)


def _home_path(path: str) -> bool:
    return path == "~" or path.startswith("~/")


def start(host: Host, job: Job) -> SessionCommand:
    """Connect to ``host`` and start the job's command there (connection errors raise)."""
    assert job.command is not None
    target = host.ssh_target()  # no XSpec: its module and the gateway stack stay unloaded
    assert target is not None
    settings = settings_for_line(target, None)  # what xspec() gives: no ssh_config= key
    connection = connect(settings, None)  # an ssh host's timeout is in its target
    try:
        line = wrapper_line(job.command, job.command_timeout, host.chdir, host.env)
        return SessionCommand(connection, line)
    except BaseException:
        connection.close()
        raise


def finish(
    command: SessionCommand,
    job: Job,
    name: str,
    began: float,
    emit: Emit,
    cancel: threading.Event,
) -> Event:
    """Deliver the command's output through ``emit`` and return the host's end event."""
    decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("out", "err")}
    open_streams = {"out", "err"}
    status: Optional[int] = None
    signal_name: Optional[str] = None
    timeout = job.command_timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    killed: Optional[str] = None  # why we ended it: TIMED_OUT or INTERRUPTED
    give_up: Optional[float] = None  # when to stop waiting for the rest
    try:
        while open_streams or (status is None and signal_name is None):
            now = time.monotonic()
            if killed is None and cancel.is_set():
                killed, give_up = INTERRUPTED, now + KILL_WAIT
                command.kill()
            elif killed is None and deadline is not None and now >= deadline:
                killed, give_up = TIMED_OUT, now + KILL_WAIT
                command.kill()
            if give_up is not None and now >= give_up:
                break
            wait = _POLL if deadline is None or killed else min(_POLL, max(0, deadline - now))
            if give_up is not None:
                wait = min(wait, max(0.0, give_up - now))
            item = command.get(wait)
            pieces: list[tuple[str, str]] = []
            while item is not None:
                kind, value = item
                if kind == "status":
                    status = int(value)  # type: ignore[arg-type]
                elif kind == "signal":
                    signal_name = str(value)
                elif value is None:
                    open_streams.discard(kind)
                else:
                    data = bytes(value)  # type: ignore[arg-type]
                    command.consumed(len(data))
                    text = decoders[kind].decode(data)
                    if text:
                        pieces.append((kind, text))
                item = command.get(0) if len(pieces) < 256 else None
            if pieces:
                emit(pieces, False)
            if not open_streams and command.closed and command.items.empty():
                break  # the channel is gone, and whatever it said was taken
            ended = status is not None or signal_name is not None
            if ended and open_streams and give_up is None:
                give_up = time.monotonic() + PIPE_GRACE
    finally:
        command.close()
    tails = [(s, d.decode(b"", True)) for s, d in decoders.items()]
    emit([(s, text) for s, text in tails if text], True)
    duration = time.monotonic() - began
    return _end(name, job, killed, status, signal_name, duration)


def _end(
    name: str,
    job: Job,
    killed: Optional[str],
    status: Optional[int],
    signal_name: Optional[str],
    duration: float,
) -> Event:
    """The host's end event, as the Python path (``_remote.jobs.run_shell``) reports it."""
    number = exit_signal_number(signal_name) if signal_name else None
    if killed == INTERRUPTED:
        return Failed(name, INTERRUPTED, "interrupted", duration)
    if killed == TIMED_OUT:
        why = f"timed out after {job.command_timeout:g} s"
        code = 128 + (number or 9) if status is None else status
        return Failed(name, TIMED_OUT, why, duration, None, code)
    if status is not None:
        return Exited(name, status, duration)
    if signal_name is not None:
        if number is None:
            return Exited(name, 255, duration, f"killed by signal {signal_name}")
        return Exited(name, 128 + number, duration, f"killed by signal {number}")
    return Failed(name, FAILED, "the connection to the host was lost", duration)
