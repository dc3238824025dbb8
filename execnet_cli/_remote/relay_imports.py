"""The relay's half of import forwarding: its hosts' imports, answered from one cache.

A relay whose job forwards imports gets a channel to an import server of the controller
(``execnet_cli.imports.server``) in its setup, and its hosts' bundle carries the finder
(``_remote/imports.py``). Each host's worker installs that finder with a channel to the
relay (``install``), and the relay answers what it asks (``HostImports``):

- from what the controller already answered this relay (``Upstream``: every answer is
  kept, keyed by the request: a module, "not found", a refusal, a data file), so a module
  crosses the controller-relay link once per relay, not once per host;
- else by asking the controller once: hosts asking the same thing at once wait for that
  one request. Requests upstream are pipelined; the controller answers them in order.

The controller's policy stays the only judge. The relay answers only with what the
controller answered it (a refusal or a "not found" is repeated as such); a request it
cannot key (malformed) is refused here and never asked. When the controller cannot be
asked (the link is gone, or no answer in ``UPSTREAM_TIMEOUT``), the host is refused with
that reason, and nothing is kept. Modules come from the controller with the modules of
their package that they import (``related``, passed on to each host once), as source and
as the controller's code objects (compiled once there for everyone): a host whose
bytecode magic number is the controller's gets both, others the source.
"""

from __future__ import annotations

import collections
import threading

from .serializer import dumps_parts

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

#: Seconds to wait for the controller's answer: less than the finder's own wait (60 s),
#: so that the host learns why rather than seeing a missing module.
UPSTREAM_TIMEOUT = 50.0
_END = object()
_MODULE_KINDS = ("module", "package")


def _key(request: Any) -> Optional[Tuple[str, ...]]:
    """The request as a cache key, if it is one the finder makes (else None: refused)."""
    if not isinstance(request, tuple) or not all(isinstance(p, str) for p in request):
        return None
    if (len(request) == 2 and request[0] in ("find", "modules")) or (
        len(request) == 3 and request[0] in ("stat", "list", "read")
    ):
        return request
    return None


def _is_module(answer: Any) -> bool:
    return isinstance(answer, tuple) and len(answer) >= 4 and answer[0] in _MODULE_KINDS


class _Slot:
    """One request asked upstream, and its answer once it came."""

    __slots__ = ("answer", "event", "key")

    def __init__(self, key: Tuple[str, ...]) -> None:
        self.key = key
        self.event = threading.Event()
        self.answer: Any = None


class Upstream:
    """What the controller answered this relay, and the asking of what it did not yet."""

    def __init__(self, channel: Any, magic: Any) -> None:
        self.channel = channel
        self.magic = magic  #: the controller's bytecode magic number: its code objects'
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()  # requests go out in the order they are waited on
        self.kept: Dict[Tuple[str, ...], Any] = {}  # request -> answer (modules: 4-tuples)
        self.related: Dict[str, List[str]] = {}  # module -> the modules sent along with it
        self.pending: Dict[Tuple[str, ...], _Slot] = {}
        self.waiting: Deque[_Slot] = collections.deque()
        self.lost: Optional[str] = None
        channel.setcallback(self._on_answer, endmarker=_END)

    def answer(self, request: Any) -> Any:
        """The controller's answer to ``request``, kept or asked for (once)."""
        key = _key(request)
        if key is None:
            return ("refused", f"malformed import request {request!r:.80}")
        with self.lock:
            if key in self.kept:
                return self.kept[key]
            slot = self.pending.get(key)
            ask = slot is None
            if slot is None:
                slot = self.pending[key] = _Slot(key)
        if ask:
            self._ask(slot)
        if not slot.event.wait(UPSTREAM_TIMEOUT):
            return self._fail(slot, f"no answer within {UPSTREAM_TIMEOUT:g} s")
        return slot.answer

    def _ask(self, slot: _Slot) -> None:
        with self.send_lock:
            with self.lock:
                lost = self.lost
                if lost is None:
                    self.waiting.append(slot)
            if lost is not None:
                self._fail(slot, lost)
                return
            try:
                self.channel.send(slot.key)
            except (OSError, ValueError) as exc:  # closed (ChannelClosed is an OSError)
                self._fail(slot, f"cannot ask the controller ({exc})", unsent=True)

    def _fail(self, slot: _Slot, why: str, unsent: bool = False) -> Any:
        """Answer ``slot`` with a refusal saying ``why``, keeping nothing. A request sent
        stays in ``waiting``: its answer, when it comes, is the next in order (and kept)."""
        with self.lock:
            if unsent and slot in self.waiting:
                self.waiting.remove(slot)
            if self.pending.get(slot.key) is slot:
                del self.pending[slot.key]
            if not slot.event.is_set():
                slot.answer = ("refused", "the relay could not ask the controller: " + why)
                slot.event.set()
        return slot.answer

    def _on_answer(self, answer: Any) -> None:
        """An answer from the controller (in the relay gateway's receiving thread)."""
        if answer is _END:
            with self.lock:
                self.lost = "the link to the controller is gone"
                slots = list(self.waiting)
            for slot in slots:
                self._fail(slot, "the link to the controller is gone")
            return
        with self.lock:
            if not self.waiting:
                return
            slot = self.waiting.popleft()
            if slot.key[0] == "find" and _is_module(answer) and len(answer) == 5:
                names = []
                for item in answer[4]:
                    if isinstance(item, tuple) and len(item) == 5 and isinstance(item[0], str):
                        self.kept.setdefault(("find", item[0]), tuple(item[1:5]))
                        names.append(item[0])
                self.related[slot.key[1]] = names
                answer = tuple(answer[:4])
            self.kept[slot.key] = answer
            if self.pending.get(slot.key) is slot:
                del self.pending[slot.key]
            slot.answer = answer
        slot.event.set()


class HostImports:
    """One host's import requests, answered from the relay's ``Upstream``; a module's
    related modules are passed on once to each host, like the controller does."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.same_magic = False  #: the host runs the controller's code objects
        self.sent: set = set()

    def answer(self, request: Any) -> Any:
        answer = self.upstream.answer(request)
        if _key(request) is None or request[0] != "find" or not _is_module(answer):
            return answer
        name = request[1]
        self.sent.add(name)
        related = []
        for other in self.upstream.related.get(name, ()):
            kept = self.upstream.kept.get(("find", other))
            if other not in self.sent and kept is not None and _is_module(kept):
                related.append((other, *self._module(kept)))
                self.sent.add(other)
        return (*self._module(answer), related)

    def _module(self, kept: Tuple[Any, ...]) -> Tuple[Any, ...]:
        kind, path, source, code = kept
        return (kind, path, source, code if self.same_magic else None)


def install(gateway: Any, request: Any, upstream: Upstream, timeout: float) -> HostImports:
    """Have the host's worker put the finder in place, asking this relay; ``request`` is
    the controller's exec request that installs it. Raises what the channel raises when
    the worker cannot (it died, or its answer did not come in ``timeout``)."""
    host = HostImports(upstream)
    requests = gateway.newchannel()
    answer_requests(requests, host.answer, "the relay")
    installer = gateway.newchannel()
    gateway.start_exec(installer, dumps_parts(tuple(request)))
    installer.send(requests)
    magic = installer.receive(timeout)
    host.same_magic = bool(magic) and magic == upstream.magic
    installer.waitclose(timeout)
    return host


def answer_requests(
    requests: Any,
    answer: Callable[[Any], Any],
    who: str,
    report: Optional[Callable[[Any], None]] = None,
) -> None:
    """Answer each request arriving on ``requests`` (in its gateway's receiving thread) with
    ``answer(request)``. A bug of ours becomes a refusal naming ``who`` (after ``report``),
    never a finder left waiting; a requester that is gone is not an error."""

    def on_request(request: Any) -> None:
        try:
            reply = answer(request)
        except Exception as exc:
            if report is not None:
                report(request)
            reply = ("refused", f"{who} failed to answer: {exc!r}")
        try:
            requests.send(reply)
        except OSError:
            pass

    requests.setcallback(on_request)
