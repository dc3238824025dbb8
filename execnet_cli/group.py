"""Groups of gateways, multi-channels, and the module-level ``makegateway``.

A Group owns its gateways: ``terminate`` ends them all within one shared deadline
(ask every worker to stop first, then wait, then kill the rest), and at interpreter
exit every group still alive is terminated, so no worker outlives its controller.
What opening needs besides a spec (its gateways for ``via=``, the fork servers popen
workers are forked from) is its ``OpenContext`` (``transports.opening``), closed by
``terminate`` after the gateways.

The gateway stack (``gateway``, ``connect``, channels and their wire format) is imported
with the first gateway opened, not with this module: ``xnet sh`` straight on ssh session
channels uses a group only to cut its handshakes short (``opening``) and never opens one.
"""

from __future__ import annotations

import atexit
import itertools
import queue
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

from ._remote.execmodel import get_execmodel
from .errors import SpecError
from .spec import XSpec
from .transports.opening import OpenContext

if TYPE_CHECKING:
    from ._remote.channel import Channel
    from .gateway import Gateway

#: ``make_receive_queue`` without an endmarker (the channel's own default: none).
_NO_ENDMARKER = object()

_groups: weakref.WeakSet[Group] = weakref.WeakSet()


class Group:
    """Gateways opened together, addressed by id (``gw0``, ``gw1``, ...) or index."""

    defaultspec = "popen"

    def __init__(self, xspecs: Sequence[Union[str, XSpec]] = (), execmodel: str = "thread") -> None:
        self._gateways: List[Gateway] = []
        self._autoidcounter = itertools.count()
        self._autoidlock = threading.Lock()
        self._gateways_lock = threading.Lock()
        self._context = OpenContext(self)
        self.set_execmodel(execmodel)
        _groups.add(self)
        for xspec in xspecs:
            self.makegateway(xspec)

    def __repr__(self) -> str:
        return f"<Group {[gw.id for gw in self._gateways]!r}>"

    def set_execmodel(self, execmodel: str, remote_execmodel: Optional[str] = None) -> None:
        """Set the local and the workers' execution models (before opening gateways)."""
        if self._gateways:
            raise ValueError("cannot change the execmodel of a group that has gateways")
        self.execmodel = get_execmodel(execmodel)
        self.remote_execmodel = get_execmodel(remote_execmodel or execmodel)

    # -- membership ------------------------------------------------------------------

    def __getitem__(self, key: Union[int, str]) -> Gateway:
        if isinstance(key, int):
            return self._gateways[key]
        for gateway in self._gateways:
            if gateway.id == key:
                return gateway
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        from .gateway import Gateway

        if isinstance(key, Gateway):
            return key in self._gateways
        return any(gw.id == key for gw in self._gateways)

    def __len__(self) -> int:
        return len(self._gateways)

    def __iter__(self) -> Iterator[Gateway]:
        return iter(list(self._gateways))

    def allocate_id(self, spec: XSpec) -> None:
        """Give ``spec`` the next free ``gwN`` id unless it has one."""
        if spec.id is None:
            with self._autoidlock:
                while True:
                    candidate = f"gw{next(self._autoidcounter)}"
                    if candidate not in self:
                        break
                spec.id = candidate

    def _register(self, gateway: Gateway) -> None:
        with self._gateways_lock:
            if gateway.id in self:
                raise _duplicate_id(gateway.id)
            self._gateways.append(gateway)
        gateway._group = self

    def set_forkserver_preload(self, module_names: Sequence[str]) -> None:
        """Modules this group's fork servers import before forking popen workers.

        Every forked worker then starts with them imported (as multiprocessing's
        ``set_forkserver_preload``). A module the controller has imported must come from
        the same file there, else the server is not used. Applies to servers started
        after the call.
        """
        self._context.set_forkserver_preload(module_names)

    def _unregister(self, gateway: Gateway) -> None:
        with self._gateways_lock:
            if gateway in self._gateways:
                self._gateways.remove(gateway)

    # -- opening ---------------------------------------------------------------------

    def opening(self) -> Any:
        """A block whose connections ``terminate`` cuts short, as it does a gateway's
        open (``transports.cancel``): for what opens without a gateway (``xnet sh``'s
        commands over ssh)."""
        return self._context.scope.opening()

    def makegateway(
        self,
        spec: Union[str, XSpec, None] = None,
        *,
        before_ready: Optional[Callable[[Gateway], Any]] = None,
    ) -> Gateway:
        """Open a gateway for ``spec`` (default: ``popen``, this interpreter).

        ``before_ready(gateway)`` may start work (``remote_exec``) that travels right
        behind the bootstrap, without waiting for the worker to say ready.
        """
        if spec is None:
            spec = self.defaultspec
        if not isinstance(spec, XSpec):
            spec = XSpec(spec)
        self.allocate_id(spec)
        if spec.id in self:
            raise _duplicate_id(spec.id)
        from .connect import open_gateway

        remote_model = spec.fields.execmodel or self.remote_execmodel.backend
        gateway = open_gateway(spec, remote_model, self._context, before_ready)
        try:
            self._register(gateway)
        except SpecError:  # opened meanwhile in another thread under the same id
            gateway.exit()
            raise
        return gateway

    # -- running ---------------------------------------------------------------------

    def remote_exec(self, source: Any, **kwargs: Any) -> MultiChannel:
        """``remote_exec`` on every gateway; returns their channels as one.

        The request is prepared and serialized once: every gateway gets the same bytes.
        """
        gateways = list(self)
        if not gateways:
            return MultiChannel([])
        from ._remote.serializer import dumps_parts
        from .source import prepare_request

        request = dumps_parts(prepare_request(source, kwargs))
        return MultiChannel([gw._exec_request(request) for gw in gateways])

    def terminate(self, timeout: Optional[float] = None) -> None:
        """End every gateway: all are asked at once, then waited for, then killed.

        Newest first, so a gateway opened ``via=`` another ends before its carrier.
        """
        gateways = list(reversed(self._gateways))
        if gateways:  # none opened: the gateway stack need not be imported (at exit either)
            from .gateway import EXIT_TIMEOUT

            for gateway in gateways:
                gateway._begin_exit()
            deadline = time.monotonic() + (EXIT_TIMEOUT if timeout is None else timeout)
            for gateway in gateways:
                gateway._finish_exit(deadline)
        self._context.close()


def _duplicate_id(gwid: Any) -> SpecError:
    return SpecError(f"the group already has a gateway with id {gwid!r}")


class MultiChannel:
    """The channels of one ``Group.remote_exec``, used together."""

    def __init__(self, channels: List[Channel]) -> None:
        self._channels = channels

    def __len__(self) -> int:
        return len(self._channels)

    def __iter__(self) -> Iterator[Channel]:
        return iter(self._channels)

    def __getitem__(self, key: int) -> Channel:
        return self._channels[key]

    def __contains__(self, channel: object) -> bool:
        return channel in self._channels

    def send_each(self, item: Any) -> None:
        """Send ``item`` on every channel."""
        for channel in self._channels:
            channel.send(item)

    def receive_each(self, withchannel: bool = False) -> List[Any]:
        """One item from every channel, in channel order."""
        if withchannel:
            return [(ch, ch.receive()) for ch in self._channels]
        return [ch.receive() for ch in self._channels]

    def make_receive_queue(self, endmarker: object = _NO_ENDMARKER) -> queue.Queue:
        """A queue of ``(channel, item)`` from all channels, filled by callbacks (and
        ``endmarker``, if given, as each channel's last item)."""
        items: queue.Queue = queue.Queue()
        marker = () if endmarker is _NO_ENDMARKER else (endmarker,)

        def make_callback(channel: Channel) -> Any:
            def deliver(item: Any) -> None:
                items.put((channel, item))

            return deliver

        for channel in self._channels:
            channel.setcallback(make_callback(channel), *marker)
        return items

    def waitclose(self, timeout: Optional[float] = None) -> None:
        """Wait for every channel to close; re-raise the first remote error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        first_error: Optional[BaseException] = None
        for channel in self._channels:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                channel.waitclose(remaining)
            except channel.RemoteError as exc:
                if first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error


default_group = Group()


def makegateway(spec: Union[str, XSpec, None] = None) -> Gateway:
    """Open a gateway in the default group."""
    return default_group.makegateway(spec)


def set_execmodel(execmodel: str, remote_execmodel: Optional[str] = None) -> None:
    """Set the default group's execution models."""
    default_group.set_execmodel(execmodel, remote_execmodel)


def _terminate_all_groups() -> None:
    for group in list(_groups):
        try:
            group.terminate()  # each within the gateways' EXIT_TIMEOUT
        except Exception:  # at exit, ending the rest matters more than reporting
            pass


atexit.register(_terminate_all_groups)

__all__: Tuple[str, ...] = (
    "Group",
    "MultiChannel",
    "default_group",
    "makegateway",
    "set_execmodel",
)
