"""The hosts a relay opens (``relay``): their worker processes, and the gateway to each.

Standard library only, Python 3.8. A host's worker is a process the relay starts (a local
interpreter, or OpenSSH's ``ssh``) or forks (``relay_fork``), with pipes the relay owns;
whatever happens, nothing started here outlives the relay (killed at exit). The relay
talks to each worker as the controller would (``_HostGateway``), and keeps the end of
what an ssh client writes on stderr to explain a failure (``_StderrTail``).
"""

from __future__ import annotations

import atexit
import os
import subprocess
import threading

from .engine import BaseGateway
from .errors import DataFormatError, RemoteError
from .fdio import FdIO, enlarge_pipe
from .protocol import MessageType
from .serializer import loads

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict, List, Optional

#: How long a host's worker is given to end before it is killed.
KILL_WAIT = 1.0
#: Bytes of a host's ssh stderr kept to explain a failure.
STDERR_TAIL = 2000
_END = object()

_children: Dict[int, subprocess.Popen] = {}
_children_lock = threading.Lock()


def _kill_children() -> None:
    """At exit (the worker leaves after its grace time): nothing we started survives us."""
    with _children_lock:
        processes = list(_children.values())
    for process in processes:
        _kill(process)


atexit.register(_kill_children)


def _kill(process: subprocess.Popen) -> None:
    try:
        process.kill()
    except OSError:
        pass


class _Child(FdIO):
    """A host's worker process (started, or forked: ``relay_fork``): stdin/stdout pipes we
    own, stderr ours or piped (ssh)."""

    def __init__(self, process: Any, read_fd: int, write_fd: int) -> None:
        self.process = process
        super().__init__(read_fd, write_fd)
        enlarge_pipe(write_fd)
        with _children_lock:
            _children[process.pid] = process

    @classmethod
    def spawn(cls, argv: List[str], env: Dict[str, str], pipe_stderr: bool) -> _Child:
        to_child, from_child = os.pipe(), os.pipe()
        try:
            process = subprocess.Popen(
                argv,
                stdin=to_child[0],
                stdout=from_child[1],
                stderr=subprocess.PIPE if pipe_stderr else None,
                env=env,
                start_new_session=pipe_stderr,  # an ssh client must not get the terminal's ^C
            )
        except BaseException:
            for fd in (*to_child, *from_child):
                os.close(fd)
            raise
        os.close(to_child[0])
        os.close(from_child[1])
        return cls(process, from_child[0], to_child[1])

    def end(self, wait: float) -> Optional[int]:
        """Wait up to ``wait`` for the process, kill it if it is still there; reap it."""
        try:
            self.process.wait(wait)
        except subprocess.TimeoutExpired:
            _kill(self.process)
            self.process.wait()
        with _children_lock:
            _children.pop(self.process.pid, None)
        self.close()
        if self.process.stderr is not None:
            self.process.stderr.close()
        return self.process.returncode


class _HostGateway(BaseGateway):
    """The controller's side of one host's gateway, run by the relay."""

    def __init__(self, io: _Child, name: str) -> None:
        super().__init__(io, name, "thread")
        self.ready = threading.Event()
        self.info: Optional[Dict[str, Any]] = None

    def _handle_ready(self, payload: Any) -> None:
        try:
            info = loads(payload)
        except DataFormatError:
            info = None
        self.info = info if isinstance(info, dict) else {}
        self.ready.set()

    def _on_connection_lost(self, reason: BaseException) -> None:
        self.ready.set()

    def start(self, bootstrap: Optional[bytes]) -> None:
        """Send the worker its bootstrap (None: forked, it has it) and read what it sends."""
        try:
            if bootstrap is not None:
                self._io.write([bootstrap])
        except OSError:
            pass  # it died at once: the wait for its ready message says how
        self._start_receiver()

    def execute(self, request: List[Any], callback: Any) -> bool:
        """Run the exec request on a new channel whose items go to ``callback``; False if
        the worker is gone already (the callback then got its endmarker)."""
        channel = self.newchannel()
        channel.setcallback(callback, endmarker=_END)
        self.channel = channel
        try:
            self.start_exec(channel, request)
        except OSError:
            return False
        return True

    def start_exec(self, channel: Any, request: List[Any]) -> None:
        """Send an exec request (serialized) to run on ``channel``; OSError if gone."""
        self._send(MessageType.CHANNEL_EXEC, channel.id, request)

    def remote_error(self) -> Optional[str]:
        """The text of the error the job's channel closed with, if any."""
        try:
            self.channel.waitclose(0)
        except RemoteError as exc:
            return str(exc)
        except (EOFError, OSError):  # lost, or (TimeoutError) still open
            pass
        return None

    def finish(self, wait: float) -> None:
        """Ask the worker to end (the process is ended by ``_Child.end``)."""
        self._sender.finish(MessageType.GATEWAY_TERMINATE, timeout=1.0)
        self._receiver_done.wait(wait)

    def join(self, wait: float) -> None:
        if self._receiver is not None:
            self._receiver.join(wait)


class _StderrTail:
    """Forwards what an ssh client writes on stderr, keeping the end to explain failures."""

    def __init__(self, child: _Child, index: int, put: Any) -> None:
        assert child.process.stderr is not None  # piped for ssh
        self.stream = child.process.stderr
        self.index = index
        self.put = put
        self.tail = b""
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        try:
            while True:
                data = os.read(self.stream.fileno(), 65536)
                if not data:
                    return
                self.tail = (self.tail + data)[-STDERR_TAIL:]
                self.put(("L", self.index, data.decode("utf-8", "replace")))
        except (OSError, ValueError):
            return

    def text(self) -> str:
        self.thread.join(KILL_WAIT)
        return " ".join(self.tail.decode("utf-8", "replace").split())


def _how_ended(child: _Child) -> str:
    code = child.process.poll()
    if code is None:
        try:
            code = child.process.wait(KILL_WAIT)
        except subprocess.TimeoutExpired:
            return "stopped answering"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exited with status {code}"
