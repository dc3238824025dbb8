"""The controller's half of import forwarding: answering one worker's requests.

``serve_imports(gateway, policy)`` makes ``_remote/imports`` importable in the worker
(``Gateway.remote_modules``), opens a channel for its requests, and has the worker put
its finder last on ``sys.meta_path``. The requests are answered in the gateway's
receiving thread (a channel callback): an answer is a stat and, at most once per file
for the whole process, a read (``cache.CACHE``).

A module travels as its source and, to a worker whose bytecode is this interpreter's
(the same ``MAGIC_NUMBER``), as its code object too, compiled once here for every
worker. With it go the modules of its package that it imports, and theirs
(``related``, whose list of them is worked out once per module for the process), up to
``PREFETCH_MODULES`` modules or ``PREFETCH_BYTES``: a package is then one round trip,
not one per module. Nothing is sent twice to one worker.

``ImportServer.answer`` is a function of the request alone (the policy decides, the
cache reads): nothing in it knows the gateway. A relay gets one (``answering_channel``,
sent in its setup by ``fleet.relays``) and answers the hosts behind it from what it was
sent (``_remote/relay_imports.py``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import weakref
from typing import Any, Optional

from .._remote.channel import Channel
from .._remote.relay_imports import answer_requests
from ..gateway import Gateway
from .cache import CACHE, FileCache
from .policy import Found, ImportPolicy, Refused
from .related import PREFETCH_BYTES, PREFETCH_MODULES, RELATED, RelatedModules

__all__ = ["ImportServer", "answering_channel", "install_source", "serve_imports", "server_of"]

log = logging.getLogger(__name__)

#: Worker side: put the finder in place with the channel the controller sends next;
#: answer with the worker's bytecode magic number.
_INSTALL = "from {package} import imports\nchannel.send(imports.install(channel.receive()))\n"
#: Answers are given one at a time in the whole process: they are Python work under the
#: GIL anyway, and the workers of a fan-out asking for the same files at once otherwise
#: contend for it and for the cache's locks (measured: a third more CPU at 32 hosts).
#: An answer under it is short: a stat per module sent, the related list being cached.
_ANSWERING = threading.Lock()

_servers: weakref.WeakKeyDictionary[Gateway, ImportServer] = weakref.WeakKeyDictionary()
_servers_lock = threading.Lock()


class ImportServer:
    """Answers a worker's import requests under ``policy`` (the worker's protocol is in
    ``_remote/imports.py``); counts what it sent."""

    def __init__(
        self,
        policy: ImportPolicy,
        cache: FileCache = CACHE,
        magic: Optional[bytes] = None,
        related: RelatedModules = RELATED,
    ) -> None:
        self.policy = policy
        self.cache = cache
        self.related = related  # what travels with a module, worked out once per process
        #: The worker's bytecode magic number: code objects are sent when it is ours.
        self.magic = magic
        self.sent: set[str] = set()  #: module names whose source this worker was sent
        self.refused = 0
        self.answers = 0  #: requests answered (round trips)

    def answer(self, request: Any) -> Any:
        """The answer to one request; a malformed one is refused, never raised."""
        self.answers += 1
        if not isinstance(request, tuple) or not request:
            return self._refuse(f"malformed import request {request!r:.80}")
        verb = request[0]
        if verb == "find" and len(request) == 2:
            return self._find(request[1])
        if verb in ("stat", "list", "read") and len(request) == 3:
            return self._data(verb, request[1], request[2])
        if verb == "modules" and len(request) == 2:
            listed = self.policy.modules(request[1])
            return self._refuse(listed.why) if isinstance(listed, Refused) else listed
        return self._refuse(f"unknown import request {verb!r:.40}")

    def _refuse(self, why: str) -> tuple[str, str]:
        self.refused += 1
        log.info("import request refused: %s", why)
        return ("refused", why)

    def _find(self, name: Any) -> Any:
        """``(kind, path, source, code, related)``: ``related`` holds the modules sent
        along, each as ``(name, kind, path, source, code)``."""
        found = self.policy.find(name)
        if isinstance(found, Refused):
            return self._refuse(found.why)
        if found is None:
            return None
        if found.kind == "namespace":  # no code: the worker makes an empty package
            return ("namespace", found.path, b"", None, [])
        try:
            kind, path, source, code = self._module(found)
        except OSError as exc:
            return self._refuse(f"{found.name}: cannot read {found.path}: {exc}")
        self.sent.add(found.name)
        return (kind, path, source, code, self._related(found))

    def _module(self, found: Found) -> tuple[str, str, bytes, Optional[bytes]]:
        same = self.magic == importlib.util.MAGIC_NUMBER  # code objects only for our magic
        source, code = self.cache.module(found.path, with_code=same)
        return found.kind, found.path, source, code

    def _related(self, found: Found) -> list[tuple[str, str, str, bytes, Optional[bytes]]]:
        """The modules ``found`` imports from its own package, and theirs, not sent yet."""
        related: list[tuple[str, str, str, bytes, Optional[bytes]]] = []
        size = 0
        for more in self.related.of(self.cache, self.policy, found):
            if len(related) >= PREFETCH_MODULES or size >= PREFETCH_BYTES:
                break
            if more.name in self.sent:
                continue
            try:
                kind, path, source, code = self._module(more)
            except OSError:
                continue
            related.append((more.name, kind, path, source, code))
            self.sent.add(more.name)
            size += len(source) + len(code or b"")
        return related

    def _data(self, verb: str, package: Any, path: Any) -> Any:
        target = self.policy.data_path(package, path)
        if isinstance(target, Refused):
            return self._refuse(target.why)
        if target is None:
            return None
        if verb == "stat":
            return "dir" if os.path.isdir(target) else "file" if os.path.isfile(target) else None
        if verb == "list":
            try:
                names = sorted(os.listdir(target))
            except OSError:
                return None
            return [n for n in names if not n.startswith(".") and n != "__pycache__"]
        if not os.path.isfile(target):
            return None
        try:
            return self.cache.read(target)
        except OSError as exc:
            return self._refuse(f"{package}: cannot read {path!r}: {exc}")


def server_of(gateway: Gateway) -> Optional[ImportServer]:
    """The import server of ``gateway``, if it forwards imports."""
    with _servers_lock:
        return _servers.get(gateway)


def serve_imports(
    gateway: Gateway, policy: ImportPolicy, timeout: Optional[float] = 30.0
) -> ImportServer:
    """Forward the imports ``gateway``'s worker cannot satisfy to this process, under
    ``policy``; a second call adds its roots to the first's (one finder per worker)."""
    with _servers_lock:
        server = _servers.get(gateway)
        if server is not None:
            server.policy = server.policy.merged(policy)
            return server
        server = _servers[gateway] = ImportServer(policy)
    try:
        _start(gateway, server, timeout)
    except BaseException:
        with _servers_lock:
            _servers.pop(gateway, None)
        raise
    return server


def answering_channel(gateway: Gateway, server: ImportServer) -> Channel:
    """A new channel of ``gateway`` on which ``server`` answers each request it gets (in
    the gateway's receiving thread), for a worker's finder or a relay."""
    requests = gateway.newchannel()

    def answer(request: Any) -> Any:
        with _ANSWERING:
            return server.answer(request)

    def report(request: Any) -> None:
        log.exception("answering import request %r", request)

    answer_requests(requests, answer, "the controller", report)
    return requests


def install_source(package: str) -> str:
    """The code that puts the finder in place in a worker (``package``: its modules')."""
    return _INSTALL.format(package=package)


def _start(gateway: Gateway, server: ImportServer, timeout: Optional[float]) -> None:
    package = gateway.remote_modules("imports", timeout=timeout)
    requests = answering_channel(gateway, server)
    installer = gateway.remote_exec(install_source(package))
    installer.send(requests)
    magic = installer.receive(timeout)
    installer.waitclose(timeout)
    server.magic = magic if isinstance(magic, bytes) else None
