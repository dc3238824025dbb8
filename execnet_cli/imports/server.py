"""The controller's half of import forwarding: answering one worker's requests.

``serve_imports(gateway, policy)`` makes ``_remote/imports`` importable in the worker
(``Gateway.remote_modules``), opens a channel for its requests, and has the worker put
its finder last on ``sys.meta_path``. The requests are answered in the gateway's
receiving thread (a channel callback): an answer is a stat and, at most once per file
for the whole process, a read (``cache.CACHE``).

``ImportServer.answer`` is a function of the request alone (the policy decides, the
cache reads): nothing in it knows the gateway. A relay could answer the hosts behind it
the same way, from what it was itself sent (see docs/imports.md).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any, Optional

from ..gateway import Gateway
from .cache import CACHE, FileCache
from .policy import ImportPolicy, Refused

__all__ = ["ImportServer", "serve_imports", "server_of"]

log = logging.getLogger(__name__)

#: Worker side: put the finder in place with the channel the controller sends next.
_INSTALL = "from {package} import imports\nimports.install(channel.receive())\n"

_servers: weakref.WeakKeyDictionary[Gateway, ImportServer] = weakref.WeakKeyDictionary()
_servers_lock = threading.Lock()


class ImportServer:
    """Answers a worker's import requests under ``policy`` (the worker's protocol is in
    ``_remote/imports.py``); counts what it sent."""

    def __init__(self, policy: ImportPolicy, cache: FileCache = CACHE) -> None:
        self.policy = policy
        self.cache = cache
        self.sent: set[str] = set()  #: module names whose source this worker was sent
        self.refused = 0

    def answer(self, request: Any) -> Any:
        """The answer to one request; a malformed one is refused, never raised."""
        if not isinstance(request, tuple) or not request:
            return self._refuse(f"malformed import request {request!r:.80}")
        verb = request[0]
        if verb == "find" and len(request) == 2:
            return self._find(request[1])
        if verb in ("stat", "list", "read") and len(request) == 3:
            return self._data(verb, request[1], request[2])
        return self._refuse(f"unknown import request {verb!r:.40}")

    def _refuse(self, why: str) -> tuple[str, str]:
        self.refused += 1
        log.info("import request refused: %s", why)
        return ("refused", why)

    def _find(self, name: Any) -> Any:
        found = self.policy.find(name)
        if isinstance(found, Refused):
            return self._refuse(found.why)
        if found is None:
            return None
        try:
            source = self.cache.read(found.path)
        except OSError as exc:
            return self._refuse(f"{found.name}: cannot read {found.path}: {exc}")
        self.sent.add(found.name)
        return (found.kind, found.path, source)

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


def _start(gateway: Gateway, server: ImportServer, timeout: Optional[float]) -> None:
    package = gateway.remote_modules("imports", timeout=timeout)
    requests = gateway.newchannel()

    def on_request(request: Any) -> None:
        try:
            reply = server.answer(request)
        except Exception as exc:  # a bug of ours must not leave the worker waiting
            log.exception("answering import request %r", request)
            reply = ("refused", f"the controller failed to answer: {exc}")
        try:
            requests.send(reply)
        except OSError:
            pass  # the worker is gone

    requests.setcallback(on_request)
    installer = gateway.remote_exec(_INSTALL.format(package=package))
    installer.send(requests)
    installer.waitclose(timeout)
