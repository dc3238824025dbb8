"""How a transport is found and opened: typed spec fields in, a Transport out.

Each kind of spec (``popen``, ``ssh``, ``socket``) has one opener,
``open(fields, config, context) -> Transport``, registered here by name and imported on
first use (so ``import execnet_cli`` never imports paramiko). An opener returns a transport
whose far side is a worker that has its settings (``config``) and will report ready: it
started the stage-1 command and sent the bootstrap (``send_bootstrap``), or had
the worker forked with its settings. ``connect.py`` turns that into a gateway.

``OpenContext`` holds what opening needs besides the spec: the gateways a ``via=`` or
``installvia=`` may name (those of the owning group) and the fork servers popen workers
are forked from. A ``Group`` owns one and closes it when it terminates.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterable,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

from .. import bootstrap
from ..errors import GatewayError, SpecError
from .base import Transport
from .cancel import OpenScope

if TYPE_CHECKING:
    from .forkserver import ForkServers
    from .ssh.settings import CommandLine

#: Seconds to wait for a new worker to report ready, unless the spec says otherwise.
WORKER_TIMEOUT = 30.0

#: The settings sent to a new worker (``gateway.worker_config``).
WorkerConfig = Dict[str, Any]
T = TypeVar("T", bound=Transport)


@dataclass(frozen=True)
class SpecFields:
    """A gateway spec's settings, typed and checked once (``XSpec.fields``)."""

    text: str = ""  #: the spec as written (or displayed), for messages
    kind: Optional[str] = None  #: the transport: popen, ssh, socket (``opener_for``)
    id: Optional[str] = None
    python: Optional[str] = None
    chdir: Optional[str] = None
    nice: Optional[int] = None
    dont_write_bytecode: bool = False
    execmodel: Optional[str] = None
    via: Optional[str] = None
    installvia: Optional[str] = None
    sudo: Optional[str] = None  #: the user to become (``sudo=true``: root)
    connect_timeout: Optional[float] = None  #: seconds
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    spawn: bool = False
    ssh: Optional[CommandLine] = None  #: the ssh target: destination and options
    ssh_config: Optional[str] = None
    socket: Optional[Tuple[str, int]] = None  #: (host, port); port 0 only with installvia
    secret_file: Optional[str] = None

    @property
    def where(self) -> str:
        """How messages name this spec."""
        return f"spec {self.text!r}"

    def timeout(self, default: float = WORKER_TIMEOUT) -> float:
        """``connect_timeout`` or ``default`` seconds."""
        return default if self.connect_timeout is None else self.connect_timeout

    def refuse(self, keys: Sequence[str], why: str) -> None:
        """SpecError for the first of ``keys`` this spec sets (it has no use here)."""
        for key in keys:
            if getattr(self, key) not in (None, False):
                raise SpecError(f"{self.where}: {key}= is not supported {why}")


class Carrier(Protocol):
    """What ``via=`` and ``installvia=`` need of the gateway they name."""

    id: str

    def remote_exec(self, source: Any, **kwargs: Any) -> Any: ...

    def remote_modules(self, *names: str, timeout: Optional[float] = ...) -> str: ...

    def _rinfo(self, update: bool = False) -> Any: ...


class OpenContext:
    """The gateways a spec may name, and the fork servers (started on first use)."""

    def __init__(self, gateways: Iterable[Carrier] = ()) -> None:
        self._gateways = gateways
        self._lock = threading.Lock()
        self._fork_servers: Optional[ForkServers] = None
        self._preload: Tuple[str, ...] = ()
        #: The opens in progress, which ``close`` cuts short (``transports.cancel``).
        self.scope = OpenScope()

    def carrier(self, fields: SpecFields, key: str) -> Carrier:
        """The gateway whose id the spec's ``key`` (via, installvia) names."""
        gwid = getattr(fields, key)
        known = list(self._gateways)
        for gateway in known:
            if gateway.id == gwid:
                return gateway
        names = ", ".join(gw.id for gw in known) or "none"
        raise SpecError(
            f"{fields.where}: {key}={gwid!r} names no gateway of this group (it has: {names})"
        )

    def fork_servers(self) -> ForkServers:
        """The fork servers popen workers are forked from (``transports.forkserver``)."""
        with self._lock:
            if self._fork_servers is None:
                from .forkserver import ForkServers

                self._fork_servers = ForkServers()
                self._fork_servers.preload = self._preload
            return self._fork_servers

    def set_forkserver_preload(self, module_names: Sequence[str]) -> None:
        """Modules the fork servers started from now on import before forking."""
        with self._lock:
            self._preload = tuple(module_names)
            if self._fork_servers is not None:
                self._fork_servers.preload = self._preload

    def close(self) -> None:
        """Abort the opens in progress, stop the fork servers (more start on the next fork:
        the owner may go on)."""
        self.scope.abort()
        with self._lock:
            servers = self._fork_servers
        if servers is not None:
            servers.stop()


class Opener(Protocol):
    def __call__(self, fields: SpecFields, config: WorkerConfig, context: OpenContext) -> Transport:
        """A transport to a worker that has ``config`` and will report ready."""
        ...


#: Spec kind -> opener, or ``"module:function"`` imported on first use.
_OPENERS: Dict[str, Union[str, Opener]] = {
    "popen": "execnet_cli.transports.popen:open_popen",
    "ssh": "execnet_cli.transports.ssh.transport:open_ssh",
    "socket": "execnet_cli.transports.sockets:open_socket",
}


def register(kind: str, opener: Union[str, Opener]) -> None:
    """Make specs of ``kind`` open with ``opener`` (a function or ``"module:function"``)."""
    _OPENERS[kind] = opener


def opener_for(kind: str, fields: SpecFields) -> Opener:
    """The opener registered for ``kind``; GatewayError when there is none."""
    opener = _OPENERS.get(kind)
    if opener is None:
        raise GatewayError(f"{fields.where}: the {kind} transport is not available yet")
    if isinstance(opener, str):
        module, _, name = opener.partition(":")
        opener = _OPENERS[kind] = getattr(importlib.import_module(module), name)
    return opener


def send_bootstrap(transport: T, config: WorkerConfig, same_python: bool) -> T:
    """Send a fresh worker (running ``bootstrap.stage1_argv``) its bootstrap: our
    ``_remote`` modules (code objects when ``same_python``) and its settings. A worker that
    died at once is explained by the gateway waiting for its ready message."""
    try:
        transport.write([bootstrap.bootstrap_bytes(config, same_python)])
    except OSError:
        pass
    return transport
