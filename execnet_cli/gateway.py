"""The controller's side of a gateway: ``remote_exec``, status, and a bounded exit."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Dict, Optional

from . import bootstrap
from ._remote.channel import Channel
from ._remote.engine import BaseGateway
from ._remote.errors import DataFormatError
from ._remote.protocol import MessageType
from ._remote.serializer import dumps_parts, loads
from .errors import BootstrapError, SpecError
from .source import prepare_request
from .spec import XSpec

log = logging.getLogger("execnet_cli.gateway")

#: Seconds ``exit()`` waits for the worker to end by itself before killing it.
EXIT_TIMEOUT = 5.0
#: Seconds to wait for a new worker to report ready, unless the spec says otherwise.
CONNECT_TIMEOUT = 30.0


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


_RINFO_SOURCE = """
import os, sys
channel.send({"executable": sys.executable, "version_info": tuple(sys.version_info),
              "platform": sys.platform, "cwd": os.getcwd(), "pid": os.getpid()})
"""


class Gateway(BaseGateway):
    """A worker interpreter and the connection to it."""

    _group: Any = None

    def __init__(self, transport: Any, spec: XSpec, remote_execmodel: str) -> None:
        super().__init__(transport, str(spec.id), "thread")
        self.spec = spec
        self.remote_execmodel = remote_execmodel
        self._ready = threading.Event()
        self._rinfo_cache: Optional[RInfo] = None
        self._exiting = False
        #: exit() in one thread and Group.terminate() in another may both finish the exit:
        #: one does it, the other waits for it (the transport is closed exactly once).
        self._finish_lock = threading.Lock()
        self._finished = False

    def __repr__(self) -> str:
        state = "receive-live" if self.hasreceiver() else "not-receiving"
        return (
            f"<Gateway id={self.id!r} {state}, {self.remote_execmodel} model, "
            f"{self._channels.count()} active channels>"
        )

    @property
    def transport(self) -> Any:
        return self._io

    # -- starting ------------------------------------------------------------------------

    def _handle_ready(self, payload: Any) -> None:
        try:
            info = loads(payload)
        except DataFormatError as exc:
            log.error("gateway %r: undecodable ready message: %s", self.id, exc)
            return
        self._rinfo_cache = RInfo(info if isinstance(info, dict) else {})
        self._ready.set()

    def _on_connection_lost(self, reason: BaseException) -> None:
        self._ready.set()  # wake a waiter in _wait_ready, which then sees the loss

    def _wait_ready(self, timeout: float) -> None:
        if not self._ready.wait(timeout):
            self._abandon()
            raise BootstrapError(
                f"gateway {self.id!r} ({self._io.describe()}): worker not ready after {timeout:g} s"
            )
        if self._rinfo_cache is None:
            self._abandon()
            describe = getattr(self._io, "exit_description", lambda: "ended")()
            raise BootstrapError(
                f"gateway {self.id!r} ({self._io.describe()}): the worker {describe} before "
                "it was ready; its error output, if any, is above"
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
        if not self._receiver_done.wait(max(0.0, deadline - time.monotonic())):
            log.debug("gateway %r: worker did not stop in time, killing it", self.id)
            self._io.kill()
        if self._io.wait(max(0.0, deadline - time.monotonic())) is None:
            self._io.kill()
            self._io.wait(EXIT_TIMEOUT)
        receiver = self._receiver
        if receiver is not None and receiver is not threading.current_thread():
            receiver.join(EXIT_TIMEOUT)
        self._io.close()

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait for the receiver thread to end (the worker is gone)."""
        receiver = self._receiver
        if receiver is not None and receiver is not threading.current_thread():
            receiver.join(timeout)


def worker_config(spec: XSpec, remote_execmodel: str) -> Dict[str, Any]:
    """The settings the worker applies to itself at start."""
    return {
        "id": str(spec.id),
        "execmodel": remote_execmodel,
        "chdir": spec.chdir if isinstance(spec.chdir, str) else None,
        "nice": spec.nice if isinstance(spec.nice, str) else None,
        "env": dict(spec.env),
        "dont_write_bytecode": bool(spec.dont_write_bytecode),
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


def connect_timeout(spec: XSpec) -> float:
    """Seconds to wait for the connection and the worker's ready message."""
    raw = spec.connect_timeout
    if raw is None or raw is True:
        return CONNECT_TIMEOUT
    try:
        value = float(raw)  # type: ignore[arg-type]
    except ValueError:
        raise SpecError(f"spec {str(spec)!r}: connect_timeout={raw!r} is not a number") from None
    if value <= 0:
        raise SpecError(f"spec {str(spec)!r}: connect_timeout must be positive")
    return value


def start_gateway(transport: Any, spec: XSpec, remote_execmodel: str, same_python: bool) -> Gateway:
    """Bootstrap a worker over a fresh transport and wait until it reports ready.

    ``transport`` must already run the stage-1 command (``bootstrap.stage1_argv``) on
    the far side; ``same_python`` says whether that interpreter is this one.
    """
    payload = bootstrap.bootstrap_bytes(worker_config(spec, remote_execmodel), same_python)
    return _connect(transport, spec, remote_execmodel, payload)


def adopt_gateway(transport: Any, spec: XSpec, remote_execmodel: str) -> Gateway:
    """Wait for a worker that started with its settings already (a forked popen worker)."""
    return _connect(transport, spec, remote_execmodel, None)


def _connect(
    transport: Any, spec: XSpec, remote_execmodel: str, payload: Optional[bytes]
) -> Gateway:
    gateway = Gateway(transport, spec, remote_execmodel)
    gateway._start_receiver()
    if payload is not None:
        try:
            transport.write([payload])
        except OSError:
            pass  # the worker died at once; _wait_ready reports how
    gateway._wait_ready(connect_timeout(spec))
    return gateway
