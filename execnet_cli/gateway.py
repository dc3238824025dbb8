"""The controller's side of a gateway: ``remote_exec``, status, and a bounded exit."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional, Set

from . import bootstrap
from ._remote.channel import Channel
from ._remote.engine import BaseGateway
from ._remote.errors import DataFormatError
from ._remote.protocol import MessageType
from ._remote.serializer import dumps_parts, loads
from .errors import BootstrapError
from .source import prepare_request
from .spec import XSpec
from .transports.base import Transport
from .transports.opening import WorkerConfig

log = logging.getLogger("execnet_cli.gateway")

#: Seconds ``exit()`` waits for the worker to end by itself before killing it.
EXIT_TIMEOUT = 5.0
#: Once the worker has exited, seconds its stream may take to end (as ``xnet sh`` gives a
#: command's pipes); how often ``exit()`` looks whether it has exited meanwhile.
EXIT_DRAIN = 1.0
EXIT_POLL = 0.1


class _Facts:
    """A dict from the worker, read as attributes (execnet's API does so)."""

    def __init__(self, facts: Dict[str, Any]) -> None:
        self.__dict__.update(facts)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in sorted(self.__dict__.items()))
        return f"<{type(self).__name__} {fields}>"


class RInfo(_Facts):
    """Facts about the worker's interpreter (``Gateway._rinfo()``)."""


class RemoteStatus(_Facts):
    """The worker's answer to ``remote_status()``: numexecuting, numchannels, execqsize."""


#: Asks the worker again for what its ready message said (``_remote.worker.interpreter_info``).
_RINFO_SOURCE = (
    f"from {bootstrap.WORKER_PACKAGE}.worker import interpreter_info\n"
    "channel.send(interpreter_info())"
)


#: Worker side of ``Gateway.remote_modules``: add sources to the bootstrap's importer.
_ADD_MODULES_SOURCE = """
import sys
importer = [f for f in sys.meta_path if type(f).__name__ == "_XnetImporter"][0]
importer.modules.update(channel.receive())
channel.send(importer.package)
"""


class Gateway(BaseGateway):
    """A worker interpreter and the connection to it."""

    _group: Any = None

    _io: Transport

    def __init__(self, transport: Transport, spec: XSpec, remote_execmodel: str) -> None:
        super().__init__(transport, str(spec.id), "thread")
        self.spec = spec
        self.remote_execmodel = remote_execmodel
        self._ready = threading.Event()
        self._rinfo_cache: Optional[RInfo] = None
        self._startup_error: Optional[str] = None  # why the worker cannot serve (chdir)
        self._exiting = False
        #: exit() in one thread and Group.terminate() in another may both finish the exit:
        #: one does it, the other waits for it (the transport is closed exactly once).
        self._finish_lock = threading.Lock()
        self._finished = False
        self._modules_lock = threading.Lock()
        self._shipped_modules: Set[str] = set(bootstrap.REMOTE_MODULES)

    def __repr__(self) -> str:
        state = "receive-live" if self.hasreceiver() else "not-receiving"
        return (
            f"<Gateway id={self.id!r} {state}, {self.remote_execmodel} model, "
            f"{self._channels.count()} active channels>"
        )

    @property
    def transport(self) -> Transport:
        return self._io

    # -- starting ------------------------------------------------------------------------

    def _handle_ready(self, payload: Any) -> None:
        try:
            info = loads(payload)
        except DataFormatError as exc:
            log.error("gateway %r: undecodable ready message: %s", self.id, exc)
            return
        facts = info if isinstance(info, dict) else {}
        problem = facts.pop("startup_error", None)
        if problem is not None:
            self._startup_error = str(problem)
        self._rinfo_cache = RInfo(facts)
        pid = facts.get("pid")
        self._io.worker_ready(pid if isinstance(pid, int) else None)
        self._ready.set()

    def _on_connection_lost(self, reason: BaseException) -> None:
        self._ready.set()  # wake a waiter in _wait_ready, which then sees the loss

    def _wait_ready(self, timeout: float) -> None:
        if not self._ready.wait(timeout):
            self._abandon()
            raise BootstrapError(
                f"gateway {self.id!r} ({self._io.describe()}): worker not ready after {timeout:g} s"
            )
        if self._startup_error is not None:
            self._abandon()
            raise BootstrapError(f"gateway {self.id!r}: {self._startup_error}")
        if self._rinfo_cache is None:
            self._abandon()
            raise BootstrapError(
                f"gateway {self.id!r} ({self._io.describe()}): the worker "
                f"{self._io.exit_description()} before it was ready; its error output, if "
                "any, is above"
            )

    def _abandon(self) -> None:
        self._io.kill()
        self._io.wait(EXIT_TIMEOUT)
        if self._receiver is not None:
            self._receiver.join(EXIT_TIMEOUT)
        self._io.close()

    # -- running code --------------------------------------------------------------------

    def remote_exec(self, source: Any, **kwargs: Any) -> Channel:
        """Run ``source`` (text, a pure function, or a module) in the worker.

        Returns the channel the code sees as ``channel``. A function is called with the
        channel and ``kwargs``; a module runs with ``__name__ == "__channelexec__"``.
        """
        request = prepare_request(source, kwargs)
        channel = self.newchannel()
        self._send(MessageType.CHANNEL_EXEC, channel.id, dumps_parts(request))
        return channel

    def remote_status(self, timeout: Optional[float] = None) -> RemoteStatus:
        """The worker's count of executing tasks, open channels and queued tasks."""
        channel = self.newchannel()
        self._send(MessageType.STATUS, channel.id)
        return RemoteStatus(channel.receive(timeout))

    def _rinfo(self, update: bool = False) -> RInfo:
        """Facts about the worker interpreter; cached (primed by the ready message)."""
        if update or self._rinfo_cache is None:
            channel = self.remote_exec(_RINFO_SOURCE)
            self._rinfo_cache = RInfo(channel.receive())
            channel.waitclose()
        return self._rinfo_cache

    def remote_modules(self, *names: str, timeout: Optional[float] = 30.0) -> str:
        """Make ``_remote`` modules that not every worker needs importable in this one, as
        submodules of the package this returns (``xnet_remote``), with the siblings they
        import; each crosses once.

        The far halves of features (a socket server, ...) live there as modules with sibling
        imports instead of being sent whole as ``__channelexec__`` code.
        """
        with self._modules_lock:
            needed = bootstrap.with_siblings(names)
            missing = [name for name in needed if name not in self._shipped_modules]
            if missing:
                channel = self.remote_exec(_ADD_MODULES_SOURCE)
                channel.send({name: bootstrap.module_payload(name, "source") for name in missing})
                channel.receive(timeout)
                channel.waitclose(timeout)
                self._shipped_modules.update(missing)
        return bootstrap.WORKER_PACKAGE

    def reconfigure(self, py2str_as_py3str: bool = True, py3str_as_py2str: bool = False) -> None:
        """Accepted for execnet compatibility; there is nothing to reconfigure."""

    # -- ending --------------------------------------------------------------------------

    def exit(self, timeout: Optional[float] = None) -> None:
        """End the worker: ask it to stop, wait up to ``timeout`` seconds, then kill it.

        Returns once the worker process is gone and the receiver thread has ended.
        """
        self._begin_exit()
        wait = EXIT_TIMEOUT if timeout is None else timeout
        self._finish_exit(time.monotonic() + wait)

    def _begin_exit(self) -> None:
        if self._exiting:
            return
        self._exiting = True
        group = self._group
        if group is not None:
            group._unregister(self)
        if not self._sender.finish(MessageType.GATEWAY_TERMINATE, timeout=1.0):
            self._io.kill()  # a send is stuck on a full pipe: only killing the worker frees it

    def _finish_exit(self, deadline: float) -> None:
        with self._finish_lock:
            if not self._finished:
                self._finish_exit_once(deadline)
                self._finished = True

    def _finish_exit_once(self, deadline: float) -> None:
        ended = self._wait_for_stream_end(deadline)
        if ended is None:
            log.debug("gateway %r: worker did not stop in time, killing it", self.id)
            self._io.kill()
        elif not ended:
            log.debug("gateway %r: worker exited; its stream is held open, closing it", self.id)
            self._io.close()  # ends the receiver's read; what holds the stream goes on
        if self._io.wait(max(0.0, deadline - time.monotonic())) is None:
            self._io.kill()
            self._io.wait(EXIT_TIMEOUT)
        receiver = self._receiver
        if receiver is not None and receiver is not threading.current_thread():
            receiver.join(EXIT_TIMEOUT)
        self._io.close()

    def _wait_for_stream_end(self, deadline: float) -> Optional[bool]:
        """True once the stream has ended; False if the worker exited and its stream stayed
        open ``EXIT_DRAIN`` seconds more (a process the job left in the background holds
        it: over ssh its stderr keeps the session open); None if neither by ``deadline``."""
        done = self._receiver_done
        while not done.wait(min(EXIT_POLL, max(0.0, deadline - time.monotonic()))):
            if self._io.wait(0) is not None:
                return done.wait(min(EXIT_DRAIN, max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                return None
        return True

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait for the receiver thread to end (the worker is gone)."""
        receiver = self._receiver
        if receiver is not None and receiver is not threading.current_thread():
            receiver.join(timeout)


def worker_config(spec: XSpec, remote_execmodel: str) -> WorkerConfig:
    """The settings the worker applies to itself at start."""
    fields = spec.fields
    return {
        "id": str(fields.id),
        "execmodel": remote_execmodel,
        "chdir": fields.chdir,
        "nice": fields.nice,
        "env": dict(fields.env),
        "dont_write_bytecode": fields.dont_write_bytecode,
        "execnet_alias": execnet_alias_version(),
    }


def execnet_alias_version() -> Optional[str]:
    """The version our execnet alias claims, when this process imported it as execnet.

    Workers then get an ``execnet`` module of their own engine (see
    ``_remote/compat.py``); otherwise they leave ``import execnet`` alone.
    """
    module = sys.modules.get("execnet")
    if module is not None and getattr(module, "__xnet_alias__", False):
        return str(getattr(module, "__version__", "0"))
    return None


def start_gateway(
    transport: Transport,
    spec: XSpec,
    remote_execmodel: str,
    before_ready: Optional[Callable[[Gateway], Any]] = None,
) -> Gateway:
    """The gateway of a worker that was given its settings and will report ready (a
    transport's opener saw to both); returns once it has, or raises why it did not.

    ``before_ready(gateway)`` runs before the worker's ready message is awaited: what it
    sends (a ``remote_exec``) follows the bootstrap at once, saving a round trip; the
    worker runs it once ready, and refuses it if it cannot serve (``startup_error``).
    """
    gateway = Gateway(transport, spec, remote_execmodel)
    gateway._start_receiver()
    early: Optional[Exception] = None
    if before_ready is not None:
        try:
            before_ready(gateway)
        except (OSError, EOFError) as exc:  # the worker is gone: _wait_ready says why
            early = exc
        except BaseException:
            gateway._abandon()
            raise
    try:
        gateway._wait_ready(spec.fields.timeout())
    except BootstrapError as exc:
        if gateway._startup_error is not None:  # the worker said why (chdir): keep its words
            raise
        raise transport.startup_error(exc) from exc
    if early is not None:
        gateway._abandon()
        raise BootstrapError(f"gateway {gateway.id!r}: cannot send to the worker: {early}")
    return gateway
