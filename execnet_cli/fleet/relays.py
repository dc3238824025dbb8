"""Relays: the controller opens R relay gateways, and each opens and serves hosts behind it.

For thousands of hosts the controller's own limits (a gateway, its threads and
descriptors per host, the bootstrap sent to each) bound a run. A relay is a host of the
inventory whose worker runs ``_remote/relay.py``: the controller sends it the bootstrap
bundle and the job once; the relay starts each of its hosts' workers (a local interpreter,
or OpenSSH's ``ssh`` for ssh hosts, with the relay host's keys and known hosts), serves
them the bootstrap, runs the job, and forwards what the jobs send, in batches, over one
channel. This side turns those records into the same host events a direct run makes
(``Started``, ``Running``, ``Output`` of whole lines, ``Exited`` / ``Failed``), so
results, renderers and exit statuses do not know relays exist.

Which relay serves a host: the inventory variable ``relay`` (any level; ``xnet_relay`` in
an Ansible inventory) names the relay host, or ``plan(count=N)`` (``--relays N``) picks N
of the selected hosts and shares the others among them. A relay runs the job itself when
it is selected. Hosts that need the controller (``via=``, ``sudo``, socket hosts) go
direct. A relay that cannot be opened, or dies, makes each of its hosts that had not ended
unreachable; the rest of the run goes on.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

from .. import bootstrap
from .._remote.errors import RemoteError, XnetError
from ..inventory import Host, InventoryError
from ..transports.ssh.settings import SSHSettings, settings_for_line
from .collect import LineSplitter
from .events import UNREACHABLE, Event, Failed, Output, Returned, Running, Started
from .jobs import Job

if TYPE_CHECKING:  # the gateway stack loads with a run's first relay, not before
    from ..gateway import Gateway
    from ..imports import ImportServer

__all__ = ["RelayLink", "RelayPlan", "host_entry", "plan", "relayable"]

#: The relays' ssh clients read no ssh_config of the relay host (they get the settings this
#: side resolved), never prompt, and prefer curve25519 (OpenSSH's post-quantum default
#: costs several times the CPU per handshake).
SSH_DEFAULTS = ("-F", "none", "-T", "-o", "BatchMode=yes", "-o", "KexAlgorithms=^curve25519-sha256")
_END = object()
log = logging.getLogger(__name__)


class RelayPlan:
    """Which relay serves which hosts, and the relay hosts to open without running on."""

    def __init__(self) -> None:
        self.served: dict[str, list[Host]] = {}  # relay name -> hosts
        self.carriers: list[Host] = []

    def __bool__(self) -> bool:
        return bool(self.served)


def relayable(host: Host) -> bool:
    """Can a relay open this host by itself? (popen or ssh, no via=, sudo or jump host)."""
    return (
        host.transport in ("popen", "ssh")
        and not host.via
        and not host.sudo
        and not host.proxy_jump
    )


def plan(hosts: Sequence[Host], lookup: Callable[[str], Host], count: int = 0) -> RelayPlan:
    """Relays from the inventory's ``relay`` variable, then ``count`` picked among the rest.

    Picked relays are spread evenly over the selection (in its order), and each serves
    the contiguous run of hosts that follows it. InventoryError for a host that names a
    relay but cannot be relayed, or a relay that is itself relayed.
    """
    result = RelayPlan()
    selected = {h.name for h in hosts}
    free: list[Host] = []
    for host in hosts:
        if host.relay and host.relay != host.name:
            if not relayable(host):
                raise InventoryError(
                    f"host {host.name!r}: relay {host.relay!r} cannot open it (a relay opens "
                    "popen and ssh hosts without via, sudo or proxy_jump)"
                )
            result.served.setdefault(host.relay, []).append(host)
        elif relayable(host):
            free.append(host)
    for name in result.served:
        relay = lookup(name)
        if relay.relay and relay.relay != name:
            raise InventoryError(f"host {name!r} is a relay and cannot be relayed itself")
        if name not in selected:
            result.carriers.append(relay)
    free = [h for h in free if h.name not in result.served]
    count = min(count, len(free))
    if count:
        bounds = [len(free) * k // count for k in range(count + 1)]
        for start, end in itertools.pairwise(bounds):
            relay, *others = free[start:end]
            if others:
                result.served.setdefault(relay.name, []).extend(others)
    return result


def host_entry(host: Host) -> tuple[str, Optional[list[str]], dict[str, str], dict, float, bool]:
    """What a relay needs to start ``host``'s worker: (name, argv, env, config, timeout, fork).

    argv None: the relay's own interpreter (its workers get code objects compiled there);
    fork: it may be forked from the relay's fork server (no variable in ``env`` shapes an
    interpreter's start, as for the controller's fork servers).
    """
    from ..gateway import worker_config
    from ..transports.forkserver import read_at_startup

    spec = host.xspec()
    fields = spec.fields
    config = worker_config(spec, "thread")
    if host.transport == "popen":
        argv = None if not fields.python else bootstrap.stage1_argv(fields.python)
        fork = argv is None and not any(read_at_startup(name) for name in fields.env)
        return host.name, argv, dict(fields.env), config, fields.timeout(), fork
    assert fields.ssh is not None
    command = shlex.join(bootstrap.stage1_argv(fields.python or "python3"))
    argv = ssh_argv(settings_for_line(fields.ssh, fields.ssh_config))
    return host.name, [*argv, command], {}, config, fields.timeout(), False


def ssh_argv(settings: SSHSettings) -> list[str]:
    """OpenSSH's command line for ``settings`` as this side resolved them: the same user,
    port, keys, known hosts files (by path) and host key policy. InventoryError for what
    a relay cannot carry over (a jump host or proxy command)."""
    if settings.jump is not None or settings.proxy_command:
        raise InventoryError(
            f"ssh host {settings.host!r}: a relay cannot go through a jump host or proxy "
            "command (run it without relays)"
        )

    def files(paths: Sequence[str]) -> str:
        return " ".join(f'"{os.path.expanduser(p)}"' for p in paths) or "none"

    argv = ["ssh", *SSH_DEFAULTS, "-p", str(settings.port), "-l", settings.user]
    for key, value in (
        ("UserKnownHostsFile", files(settings.user_known_hosts_files)),
        ("GlobalKnownHostsFile", files(settings.global_known_hosts_files)),
        ("StrictHostKeyChecking", settings.strict_host_key_checking),
        ("AddressFamily", settings.address_family),
        ("IdentitiesOnly", "yes" if settings.identities_only else "no"),
    ):
        argv += ["-o", f"{key}={value}"]
    for path in settings.identity_files:
        argv += ["-i", path]
    if settings.identity_agent:
        argv += ["-o", f"IdentityAgent={settings.identity_agent}"]
    if settings.connect_timeout:
        argv += ["-o", f"ConnectTimeout={math.ceil(settings.connect_timeout)}"]
    if settings.server_alive_interval:  # a host that vanishes is noticed, as from here
        argv += ["-o", f"ServerAliveInterval={math.ceil(settings.server_alive_interval)}"]
    return [*argv, settings.hostname]


class Sink:
    """What a relay's records become: the runner's event queue and output budget."""

    def __init__(
        self,
        put: Callable[[Event], None],
        output: Callable[[str, str, str], None],
        end: Callable[[Event], None],
        job_end: Callable[[Job, str, int, Optional[str], float, Optional[Returned]], Event],
        started: dict[str, float],
        cancelled: threading.Event,
    ) -> None:
        self.put, self.output, self.end, self.job_end = put, output, end, job_end
        self.started, self.cancelled = started, cancelled


class RelayLink:
    """The controller's side of one relay: starts it, and turns its records into events.

    Records arrive in the relay gateway's receiving thread (a channel callback), one host's
    in order. ``lost`` reports the hosts that had not ended as unreachable.
    """

    def __init__(
        self,
        gateway: Optional[Gateway],
        name: str,
        hosts: Sequence[Host],
        job: Job,
        fanout: int,
        sink: Sink,
    ) -> None:
        self.gateway = gateway
        self.name = name
        self.hosts = list(hosts)
        self.job = job
        self.fanout = fanout
        self.sink = sink
        self._ended: set[int] = set()
        self._splitters: dict[int, dict[str, LineSplitter]] = {}
        self._returned: dict[int, Returned] = {}
        #: Answers the relay's import requests (the job forwards imports), once per relay.
        self.imports: Optional[ImportServer] = None

    def start(self, timeout: float = 30.0) -> None:
        """Send the relay its code, the bootstrap bundle and the job (once); a relay that
        dies or refuses meanwhile makes its hosts unreachable."""
        try:
            self._start(timeout)
        except Exception as exc:  # whatever it was, these hosts cannot be served
            last = (str(exc).strip().splitlines() or [""])[-1]
            self.lost(f"cannot start the relay ({type(exc).__name__}: {last})")

    def _start(self, timeout: float) -> None:
        from ..imports import ImportServer, answering_channel, install_source
        from ..source import prepare_request

        assert self.gateway is not None
        package = self.gateway.remote_modules("relay", timeout=timeout)
        channel = self.gateway.remote_exec(f"from {package} import relay\nrelay.serve(channel)")
        self.channel = channel
        channel.setcallback(self._on_records, endmarker=_END)
        names: tuple[str, ...] = bootstrap.REMOTE_MODULES
        setup: dict[str, Any] = {"imports": None}
        if self.job.imports is not None:  # the hosts' finder asks the relay, the relay us
            names = (*names, "imports")
            # Code objects always: compiled here once (the cache derives them anyway), the
            # relay passes them to the hosts whose bytecode is ours.
            self.imports = ImportServer(self.job.imports, magic=bootstrap.CODE_MAGIC)
            setup["imports"] = answering_channel(self.gateway, self.imports)
            setup["install"] = prepare_request(install_source(bootstrap.WORKER_PACKAGE), {})
            setup["magic"] = bootstrap.CODE_MAGIC
        channel.send(
            {
                "stage1": bootstrap.STAGE1,
                "stage2": bootstrap.STAGE2,
                "start": bootstrap.START,
                "package": bootstrap.WORKER_PACKAGE,
                "modules": {name: bootstrap.module_payload(name, "source") for name in names},
                "request": prepare_request(self.job.source, {}),
                "timeout": self.job.timeout,
                "fanout": self.fanout,
                "hosts": [self._entry(index, host) for index, host in enumerate(self.hosts)],
                **setup,
            }
        )

    def _entry(self, index: int, host: Host) -> Optional[tuple]:
        """The host's entry for the relay; None (it is reported unreachable) if it has none."""
        try:
            return host_entry(host)
        except XnetError as exc:
            self._ended.add(index)
            self.sink.end(Failed(host.name, UNREACHABLE, str(exc), 0.0, f"{type(exc).__name__}"))
            return None

    def lost(self, why: str) -> None:
        """End every host not ended yet as unreachable (the relay did not open, or died)."""
        if self.sink.cancelled.is_set():
            return  # the run is stopping: the runner reports them interrupted
        now = time.monotonic()
        for index, host in enumerate(self.hosts):
            if index not in self._ended:
                self._ended.add(index)
                duration = now - self.sink.started.get(host.name, now)
                self.sink.end(Failed(host.name, UNREACHABLE, f"relay {self.name}: {why}", duration))

    # -- records (the relay gateway's receiving thread) ------------------------------------

    def _on_records(self, batch: Any) -> None:
        if batch is _END:
            if self.imports is not None:
                log.info(
                    "relay %s: answered %d import requests (%d refused) for %d hosts",
                    self.name,
                    self.imports.answers,
                    self.imports.refused,
                    len(self.hosts),
                )
            if len(self._ended) < len(self.hosts) and not self.sink.cancelled.is_set():
                self.lost(self._why_closed())
            return
        if not isinstance(batch, list):
            return
        for record in batch:
            if (
                isinstance(record, tuple)
                and len(record) >= 2
                and isinstance(record[1], int)
                and 0 <= record[1] < len(self.hosts)
                and record[1] not in self._ended
            ):
                self._record(record[0], record[1], record[2:])

    def _record(self, kind: str, index: int, rest: tuple) -> None:
        name = self.hosts[index].name
        sink = self.sink
        if kind == "S":
            sink.started[name] = time.monotonic()
            self._splitters[index] = {"out": LineSplitter(), "err": LineSplitter()}
            sink.put(Started(name))
        elif kind == "R":
            sink.put(Running(name))
        elif kind in ("o", "e") and index in self._splitters:
            stream = "out" if kind == "o" else "err"
            sink.output(name, stream, self._splitters[index][stream].feed(str(rest[0])))
        elif kind == "L":
            sink.put(Output(name, "log", str(rest[0])))
        elif kind == "v":
            value, text = rest
            self._returned[index] = Returned.of(value, text)
        elif kind in ("x", "f"):
            self._ended.add(index)
            for stream, splitter in self._splitters.pop(index, {}).items():
                sink.output(name, stream, splitter.rest())
            duration = time.monotonic() - sink.started.get(name, time.monotonic())
            if kind == "x":
                code, text = rest
                returned = self._returned.pop(index, None)
                sink.end(sink.job_end(self.job, name, int(code), text, duration, returned))
            else:
                outcome, error, detail, code = rest
                sink.end(Failed(name, outcome, error, duration, detail, code))

    def _why_closed(self) -> str:
        """Why the relay's channel closed before every host ended."""
        try:
            self.channel.waitclose(0)
        except RemoteError as exc:
            lines = str(exc).strip().splitlines()
            return f"relay failed: {lines[-1] if lines else exc}"
        except Exception:  # the connection was lost, or it is still open: the same here
            pass
        assert self.gateway is not None
        transport = self.gateway.transport
        describe = getattr(transport, "exit_description", None)
        if describe is None or transport.wait(1.0) is None:
            return "relay lost"
        return f"relay lost (its worker {describe()})"


def relay_hosts(served: Mapping[str, Sequence[Host]]) -> set[str]:
    """The names of every host some relay serves."""
    return {host.name for hosts in served.values() for host in hosts}
