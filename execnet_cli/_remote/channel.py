"""Channels: the two-way, message-based conversation between two execution points.

Used on both sides of a gateway. A channel's state changes only through the
gateway's receiver thread (far-side events) or through this side's own calls
(``close``); the rules are in ``protocol``. Items wait in a ``SimpleQueue`` (C-level,
far cheaper than ``queue.Queue``) until received, or go straight to a callback.
"""

from __future__ import annotations

import threading
from _queue import Empty, SimpleQueue
from time import monotonic

from .errors import ChannelClosed, RemoteError, TimeoutError
from .logs import get_logger
from .protocol import CloseReason, MessageType, SendOutcome, send_outcome
from .reading import BUSY, LED, PASSIVE
from .serializer import dumps_parts

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

    from .engine import BaseGateway

    Callback = Callable[[Any], Any]

log = get_logger("execnet_cli.channel")

NO_ENDMARKER_WANTED = object()
_END = object()  # queue sentinel: nothing more will arrive


#: While another thread reads the stream, how long a waiter sleeps between checks.
WAIT_SLICE = 0.002


def _slice(deadline: Optional[float]) -> float:
    if deadline is None:
        return WAIT_SLICE
    return max(0.0, min(WAIT_SLICE, deadline - monotonic()))


class Channel:
    """A channel of a gateway, with execnet's API."""

    RemoteError = RemoteError
    TimeoutError = TimeoutError
    _executing = False

    def __init__(self, gateway: BaseGateway, id: int) -> None:
        self.gateway = gateway
        self.id = id
        self._items: Optional[SimpleQueue] = SimpleQueue()
        self._send_closed: Optional[CloseReason] = None  # why send no longer works
        self._receive_closed = threading.Event()  # nothing more will arrive
        self._remote_errors: List[RemoteError] = []
        self._lost_error: Optional[BaseException] = None

    def __repr__(self) -> str:
        return f"<Channel id={self.id} {'closed' if self.isclosed() else 'open'}>"

    # -- sending -------------------------------------------------------------------

    def send(self, item: Any) -> None:
        """Send ``item`` (a serializable value) to the other side.

        Raises ChannelClosed if this side closed the channel, the far side closed it
        with an error, or the connection is gone. After a normal close by the far side
        the item is discarded (logged at debug level): the far side has finished.
        """
        reason = self._send_closed
        if reason is not None:
            outcome = send_outcome(reason)
            if outcome is SendOutcome.DISCARD:
                log.debug("discarding item for %r: %s", self, reason.value)
                return
            raise ChannelClosed(f"cannot send to {self!r}: {reason.value}{self._error_suffix()}")
        parts = dumps_parts(item, Channel)
        self.gateway._send(MessageType.CHANNEL_DATA, self.id, parts)

    def _error_suffix(self) -> str:
        if self._remote_errors:
            last = self._remote_errors[-1].formatted.strip().splitlines()
            return f" ({last[-1] if last else 'remote error'})"
        if self._lost_error is not None:
            return f" ({self._lost_error})"
        return ""

    # -- receiving -----------------------------------------------------------------

    def receive(self, timeout: Optional[float] = None) -> Any:
        """Return the next item; wait at most ``timeout`` seconds (None: forever).

        Raises EOFError once the channel is closed and drained, RemoteError if the
        far side closed it with an error, TimeoutError when the time runs out.
        """
        items = self._items
        if items is None:
            raise OSError(f"{self!r} has a callback; receive() is not available")
        try:  # an empty queue is the common case of a loop: no exception for it
            item = self._wait_for_item(items, timeout) if items.empty() else items.get_nowait()
        except Empty:  # another thread took the item
            item = self._wait_for_item(items, timeout)
        if item is _END:
            items.put(_END)  # every later receive sees the end too
            error = self._getremoteerror()
            if error is not None:
                raise error
            raise EOFError(f"{self!r}: no more items ({self._end_description()})")
        return item

    def _wait_for_item(self, items: SimpleQueue, timeout: Optional[float]) -> Any:
        """Wait for the next item, reading the stream ourselves when nobody else does."""
        reader = self.gateway._reader
        deadline = None if timeout is None else monotonic() + timeout

        def arrived() -> bool:
            return not items.empty()

        while True:
            outcome = reader.lead(arrived, deadline)
            try:
                if outcome == LED:
                    return items.get_nowait()
                if outcome == PASSIVE:
                    return items.get() if deadline is None else items.get(True, timeout)
                return items.get(True, _slice(deadline))
            except Empty:
                if deadline is not None and monotonic() >= deadline:
                    raise self.TimeoutError(f"no item within {timeout!r} seconds") from None

    def _end_description(self) -> str:
        if self._lost_error is not None:
            return str(self._lost_error)
        return (self._send_closed or CloseReason.FAR_CLOSED).value

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return self.receive()
        except EOFError:
            raise StopIteration from None

    next = __next__

    def setcallback(self, callback: Callback, endmarker: object = NO_ENDMARKER_WANTED) -> None:
        """Deliver every item to ``callback`` instead of the receive queue.

        Items already queued go to the callback at once, in this thread; later items go
        in the gateway's receiver thread. With an ``endmarker``, the callback gets it
        once when the channel closes.
        """
        gateway = self.gateway
        with gateway._receive_lock:
            items = self._items
            if items is None:
                raise OSError(f"{self!r} has a callback already")
            self._items = None
            while True:
                try:
                    item = items.get_nowait()
                except Empty:
                    if not self._receive_closed.is_set():
                        gateway._channels.set_callback(self, callback, endmarker)
                    break
                if item is _END:
                    if endmarker is not NO_ENDMARKER_WANTED:
                        callback(endmarker)
                    break
                callback(item)

    # -- closing -------------------------------------------------------------------

    def isclosed(self) -> bool:
        """True once the channel is closed (it may still hold items to receive)."""
        return self._send_closed is not None or self._receive_closed.is_set()

    def close(self, error: Any = None) -> None:
        """Close the channel, with an optional error text for the other side."""
        if self._executing:
            raise OSError("cannot explicitly close the channel of a running remote_exec")
        self._close_here(error)

    def _close_here(self, error: Any = None) -> None:
        if self._send_closed is None and not self._receive_closed.is_set():
            if error is not None:
                parts = dumps_parts(str(error))
                self.gateway._send_quietly(MessageType.CHANNEL_CLOSE_ERROR, self.id, parts)
            else:
                self.gateway._send_quietly(MessageType.CHANNEL_CLOSE, self.id, ())
        if self._send_closed in (None, CloseReason.FAR_CLOSED):
            self._send_closed = CloseReason.CLOSED_HERE
        self._mark_receive_closed()

    def waitclose(self, timeout: Optional[float] = None) -> None:
        """Wait until the other side closed the channel (or the connection ended).

        Raises RemoteError if it closed with an error, EOFError if the connection was
        lost first, TimeoutError when ``timeout`` seconds pass.
        """
        if not self._wait_closed(timeout):
            raise self.TimeoutError(f"{self!r} still open after {timeout!r} seconds")
        error = self._getremoteerror()
        if error is not None:
            raise error
        if self._lost_error is not None and self._send_closed is CloseReason.CONNECTION_LOST:
            raise EOFError(str(self._lost_error))

    def _wait_closed(self, timeout: Optional[float]) -> bool:
        """Wait for the receive side to close, reading the stream when nobody else does."""
        closed = self._receive_closed
        if closed.is_set():
            return True
        reader = self.gateway._reader
        deadline = None if timeout is None else monotonic() + timeout
        while not closed.is_set():
            outcome = reader.lead(closed.is_set, deadline)
            if outcome == PASSIVE:
                return closed.wait(timeout)
            if outcome == BUSY:
                closed.wait(_slice(deadline))
            if deadline is not None and monotonic() >= deadline:
                return closed.is_set()
        return True

    def _getremoteerror(self) -> Optional[RemoteError]:
        """The error the far side closed with (execnet API, used by pytest-xdist)."""
        if self._remote_errors:
            return self._remote_errors[0]
        return None

    def makefile(self, mode: str = "w", proxyclose: bool = False) -> Any:
        """A file object over this channel: "w" sends what is written, "r" reads items."""
        if mode == "w":
            return ChannelFileWrite(self, proxyclose)
        if mode == "r":
            return ChannelFileRead(self, proxyclose)
        raise ValueError(f"mode {mode!r} not available (use 'r' or 'w')")

    def reconfigure(self, py2str_as_py3str: bool = True, py3str_as_py2str: bool = False) -> None:
        """Accepted for execnet compatibility; there are no Python 2 strings to map."""

    # -- events from the receiver thread ---------------------------------------------

    def _far_closed(self, reason: CloseReason, error: Optional[RemoteError]) -> None:
        if error is not None:
            self._remote_errors.append(error)
        if self._send_closed is None:
            self._send_closed = reason
        self._mark_receive_closed()

    def _far_done_sending(self) -> None:
        self._mark_receive_closed()

    def _connection_lost(self, exc: BaseException) -> None:
        self._lost_error = exc
        if self._send_closed is None:
            self._send_closed = CloseReason.CONNECTION_LOST
        self._mark_receive_closed()

    def _mark_receive_closed(self) -> None:
        if not self._receive_closed.is_set():
            self._receive_closed.set()
            items = self._items
            if items is not None:
                items.put(_END)
            self.gateway._channels.finished(self)

    def __del__(self) -> None:
        try:
            if self._send_closed is None and not self._receive_closed.is_set():
                msg = (
                    MessageType.CHANNEL_LAST_MESSAGE
                    if self._items is None
                    else MessageType.CHANNEL_CLOSE
                )
                self.gateway._send_deferred(msg, self.id)
        except Exception:  # interpreter shutdown or a dead gateway: nothing to tell
            pass


class ChannelRegistry:
    """The channels of one gateway by id, and the callbacks of those that have one."""

    def __init__(self, gateway: BaseGateway, allocate: Callable[[], int]) -> None:
        import weakref

        self._gateway = gateway
        self._allocate = allocate
        self._channels: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._callbacks: Dict[int, Tuple[Callback, object, Channel]] = {}
        self._lock = threading.Lock()
        self._finished = False

    def new(self, id: Optional[int] = None) -> Channel:
        """A new channel, with a fresh id or (for ids chosen by the far side) ``id``."""
        with self._lock:
            if id is None:
                id = self._allocate()
            else:
                existing = self._channels.get(id)
                if existing is not None:
                    return existing
            channel = Channel(self._gateway, id)
            self._channels[id] = channel
            if self._finished:
                channel._connection_lost(EOFError("the gateway connection is gone"))
            return channel

    def get(self, id: int) -> Optional[Channel]:
        return self._channels.get(id)

    def count(self) -> int:
        return len(self._channels)

    def set_callback(self, channel: Channel, callback: Callback, endmarker: object) -> None:
        # The channel is kept alive here: with a callback, nobody may hold it.
        self._callbacks[channel.id] = (callback, endmarker, channel)

    def callback_for(self, id: int) -> Optional[Tuple[Callback, object, Channel]]:
        return self._callbacks.get(id)

    def finished(self, channel: Channel) -> None:
        """A channel's receive side ended: fire its endmarker, forget its callback."""
        entry = self._callbacks.pop(channel.id, None)
        if entry is not None:
            callback, endmarker, _ = entry
            if endmarker is not NO_ENDMARKER_WANTED:
                try:
                    callback(endmarker)
                except Exception:
                    log.exception("endmarker callback of %r failed", channel)

    def connection_lost(self, exc: BaseException) -> None:
        """End every channel: the connection is gone."""
        with self._lock:
            self._finished = True
            channels = list(self._channels.values())
        for entry in list(self._callbacks.values()):
            if entry[2] not in channels:
                channels.append(entry[2])
        for channel in channels:
            channel._connection_lost(exc)


class _ChannelFile:
    def __init__(self, channel: Channel, proxyclose: bool) -> None:
        self.channel = channel
        self._proxyclose = proxyclose

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self._proxyclose:
            self.channel.close()

    def __repr__(self) -> str:
        state = "closed" if self.channel.isclosed() else "open"
        return f"<{type(self).__name__} channel={self.channel.id} {state}>"

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChannelFileWrite(_ChannelFile):
    """Each ``write`` sends its text (or bytes) as one item."""

    def write(self, out: Any) -> int:
        self.channel.send(out)
        return len(out)

    def flush(self) -> None:
        pass


class ChannelFileRead(_ChannelFile):
    """Reads the text of the items received, as one stream."""

    def __init__(self, channel: Channel, proxyclose: bool) -> None:
        super().__init__(channel, proxyclose)
        self._buffer: Optional[str] = ""

    def read(self, n: int = -1) -> str:
        try:
            while self._buffer is not None and (n < 0 or len(self._buffer) < n):
                self._buffer += self.channel.receive()
        except EOFError:
            pass
        buffer = self._buffer or ""
        if n < 0:
            out, rest = buffer, ""
        else:
            out, rest = buffer[:n], buffer[n:]
        self._buffer = rest
        return out

    def readline(self) -> str:
        buffer = self._buffer or ""
        while "\n" not in buffer:
            try:
                buffer += self.channel.receive()
            except EOFError:
                break
        i = buffer.find("\n")
        if i < 0:
            line, self._buffer = buffer, ""
        else:
            line, self._buffer = buffer[: i + 1], buffer[i + 1 :]
        return line
