"""Channels: the two-way, message-based conversation between two execution points.

Used on both sides of a gateway. ``Channel`` is the handle user code holds, with
execnet's API. What arrives for a channel and its state live in its ``Inbox``, which
the ``ChannelRegistry`` owns: every state change is a ``protocol.ChannelState``
transition made by the registry under its receive lock, whether the gateway's reader
reports a far-side event or this side closes. Items wait in a ``SimpleQueue`` (C-level,
far cheaper than ``queue.Queue``) until received, or go straight to a callback.
"""

from __future__ import annotations

from _queue import Empty, SimpleQueue
from _thread import RLock, allocate_lock
from _weakref import ref
from time import monotonic

from .errors import ChannelClosed, DataFormatError, RemoteError, TimeoutError
from .logs import get_logger
from .protocol import (
    CLOSE,
    CONNECTION_LOST,
    FAR_CLOSE,
    FAR_DONE,
    FAR_ERROR,
    LOST,
    OPEN,
    ChannelState,
    MessageType,
    SendOutcome,
)
from .reading import BUSY, LED, PASSIVE
from .serializer import dumps_parts, loads
from .threads import Event as Flag

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, Iterator, Optional

    from .protocol import Event, State
    from .reading import StreamReader
    from .sending import Sender

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

    def __init__(self, registry: ChannelRegistry, inbox: Inbox) -> None:
        self.gateway = registry.gateway
        self.id = inbox.id
        self._registry = registry
        self._inbox = inbox
        self._sender = registry.sender
        self._reader = registry.reader

    def __repr__(self) -> str:
        return f"<Channel id={self.id} {'closed' if self.isclosed() else 'open'}>"

    # -- sending -------------------------------------------------------------------

    def send(self, item: Any) -> None:
        """Send ``item`` (a serializable value) to the other side.

        Raises ChannelClosed if this side closed the channel, the far side closed it
        with an error, or the connection is gone. After a normal close by the far side
        the item is discarded (logged at debug level): the far side has finished.
        """
        state = self._inbox.state
        if state is not OPEN:
            outcome = state.send
            if outcome is SendOutcome.DISCARD:
                log.debug("discarding item for %r: %s", self, state.value)
                return
            if outcome is SendOutcome.RAISE:
                raise ChannelClosed(f"cannot send to {self!r}: {state.value}{self._error_suffix()}")
        parts = dumps_parts(item, Channel)
        self._sender.send(MessageType.CHANNEL_DATA, self.id, parts)

    def _error_suffix(self) -> str:
        inbox = self._inbox
        if inbox.errors:
            last = str(inbox.errors[-1]).strip().splitlines()
            return f" ({last[-1] if last else 'remote error'})"
        if inbox.lost is not None:
            return f" ({inbox.lost})"
        return ""

    # -- receiving -----------------------------------------------------------------

    def receive(self, timeout: Optional[float] = None) -> Any:
        """Return the next item; wait at most ``timeout`` seconds (None: forever).

        Raises EOFError once the channel is closed and drained, RemoteError if the
        far side closed it with an error, TimeoutError when the time runs out.
        """
        items = self._inbox.items
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
        reader = self._reader
        deadline = None if timeout is None else monotonic() + timeout

        while True:
            outcome = reader.lead(items.empty, deadline)
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
        inbox = self._inbox
        if inbox.lost is not None:
            return str(inbox.lost)
        return inbox.state.value

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
        self._registry.set_callback(self._inbox, callback, endmarker)

    def can_wait_here(self) -> bool:
        """False in the thread that dispatches the gateway's incoming messages (where a
        callback runs): a ``receive`` there would wait for an item only it would read."""
        return not self._reader.dispatching_here()

    # -- closing -------------------------------------------------------------------

    def isclosed(self) -> bool:
        """True once the channel is closed (it may still hold items to receive)."""
        return self._inbox.state is not OPEN

    def close(self, error: Any = None) -> None:
        """Close the channel, with an optional error text for the other side."""
        if self._inbox.executing:
            raise OSError("cannot explicitly close the channel of a running remote_exec")
        self._registry.close(self._inbox, error)

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
        inbox = self._inbox
        if inbox.lost is not None and inbox.state is CONNECTION_LOST:
            raise EOFError(str(inbox.lost))

    def _wait_closed(self, timeout: Optional[float]) -> bool:
        """Wait for the receive side to close, reading the stream when nobody else does."""
        closed = self._inbox.closed
        if closed.is_set():
            return True
        reader = self._reader
        deadline = None if timeout is None else monotonic() + timeout
        while not closed.is_set():
            outcome = reader.lead(lambda: not closed.is_set(), deadline)
            if outcome == PASSIVE:
                return closed.wait(timeout)
            if outcome == BUSY:
                closed.wait(_slice(deadline))
            if deadline is not None and monotonic() >= deadline:
                return closed.is_set()
        return True

    def _getremoteerror(self) -> Optional[BaseException]:
        """The error the far side closed with (execnet API, used by pytest-xdist): a
        RemoteError."""
        errors = self._inbox.errors
        return errors[0] if errors else None

    def makefile(self, mode: str = "w", proxyclose: bool = False) -> Any:
        """A file object over this channel: "w" sends what is written, "r" reads items."""
        from .channelfiles import ChannelFileRead, ChannelFileWrite  # rarely used: on demand

        if mode == "w":
            return ChannelFileWrite(self, proxyclose)
        if mode == "r":
            return ChannelFileRead(self, proxyclose)
        raise ValueError(f"mode {mode!r} not available (use 'r' or 'w')")

    def reconfigure(self, py2str_as_py3str: bool = True, py3str_as_py2str: bool = False) -> None:
        """Accepted for execnet compatibility; there are no Python 2 strings to map."""

    def __del__(self) -> None:
        try:
            self._registry.dropped(self._inbox)
        except Exception:  # interpreter shutdown or a dead gateway: nothing to tell
            pass


class Inbox(ChannelState):
    """One channel's receiving end and state, shared by its handle and the registry.

    The handle reads it; only the registry changes it (``ChannelState.apply`` and the
    delivery of items), under its receive lock.
    """

    __slots__ = ("callback", "channel", "closed", "endmarker", "executing", "id", "items")

    def __init__(self, id: int) -> None:
        super().__init__()
        self.id = id
        self.items: Optional[SimpleQueue] = SimpleQueue()  # None once a callback takes over
        self.callback: Optional[Callback] = None  # set while a callback receives
        self.endmarker: object = NO_ENDMARKER_WANTED
        self.closed = Flag()  # the receiving direction ended
        self.channel: Callable[[], Optional[Channel]] = _no_channel  # a weak reference
        self.executing = False  # remote_exec code runs with this channel (worker side)


def _no_channel() -> None:
    return None


class ChannelRegistry:
    """The channels of one gateway by id: creation, delivery, and every state change.

    The gateway's reader reports far-side events here (``deliver``, ``far_closed``,
    ``far_done_sending``, ``connection_lost``); channels report this side's
    (``close``, ``set_callback``, ``dropped``). ``sender`` and ``reader`` are what a
    channel uses of its gateway.
    """

    def __init__(
        self, gateway: Any, allocate: Callable[[], int], sender: Sender, reader: StreamReader
    ) -> None:
        self.gateway = gateway
        self.sender = sender
        self.reader = reader
        self._allocate = allocate
        #: Every live channel's inbox; a channel's ``__del__`` removes its own.
        self._inboxes: Dict[int, Inbox] = {}
        #: Channels with a callback: nobody may hold them, so they are kept here.
        self._kept: Dict[int, Channel] = {}
        self._lock = allocate_lock()  # ids and creation
        self._receive_lock = RLock()  # state changes and delivery
        self._lost: Optional[BaseException] = None
        self._new = self.new  # bound once: deliver passes it with every item

    # -- lookup ----------------------------------------------------------------------

    def new(self, id: Optional[int] = None) -> Channel:
        """A new channel, with a fresh id or (for ids chosen by the far side) ``id``."""
        with self._lock:
            if id is None:
                id = self._allocate()
            else:
                existing = self._inboxes.get(id)
                channel = existing.channel() if existing is not None else None
                if channel is not None:
                    return channel
            inbox = Inbox(id)
            channel = Channel(self, inbox)
            inbox.channel = ref(channel)
            self._inboxes[id] = inbox
            lost = self._lost
        if lost is not None:  # the stream ended before: so did this channel
            self._apply(inbox, LOST, lost)
        return channel

    def get(self, id: int) -> Optional[Channel]:
        """The live channel with ``id``, if any."""
        inbox = self._inboxes.get(id)
        return inbox.channel() if inbox is not None else None

    def count(self) -> int:
        """How many channels are alive."""
        return len(self._inboxes)

    # -- far-side events (the gateway's reader) --------------------------------------

    def deliver(self, id: int, payload: Any) -> None:
        """Rule 6: decode a data payload and hand it to the channel's queue or callback."""
        lock = self._receive_lock
        lock.acquire()  # not ``with``: half the cost, on every item
        try:
            inbox = self._inboxes.get(id)
            if inbox is None or not inbox.state.receiving:
                log.debug("gateway %r: dropping data for channel %d", self.gateway.id, id)
                return
            try:
                item = loads(payload, self._new)
            except DataFormatError as exc:
                error: Optional[RemoteError] = RemoteError(
                    f"undecodable data on channel {id}: {exc}"
                )
            else:
                items = inbox.items
                if items is not None:
                    items.put(item)
                    return
                error = None
                callback = inbox.callback
        finally:
            lock.release()
        if error is not None:
            self._apply(inbox, FAR_ERROR, error)
        elif callback is not None:  # a receiving inbox has a queue or a callback
            try:
                callback(item)
            except Exception:
                log.exception("gateway %r: callback of channel %d failed", self.gateway.id, id)

    def hold_quiet(self, id: int) -> bool:
        """For a reader that must never wait or run callbacks (ssh's transport thread):
        take the receive lock without waiting, if channel ``id`` has no callback. True:
        the caller may dispatch its frame, then must call ``release``."""
        lock = self._receive_lock
        if not lock.acquire(False):
            return False
        inbox = self._inboxes.get(id)
        if inbox is not None and inbox.callback is not None:
            lock.release()
            return False
        return True

    def release(self) -> None:
        self._receive_lock.release()

    def far_closed(self, id: int, error: Optional[RemoteError]) -> None:
        """The far side closed channel ``id``, with ``error`` or normally."""
        inbox = self._inboxes.get(id)
        if inbox is not None:
            self._apply(inbox, FAR_CLOSE if error is None else FAR_ERROR, error)
        elif error is not None:
            log.warning("gateway %r: error on a dropped channel: %s", self.gateway.id, error)

    def far_done_sending(self, id: int) -> None:
        """The far side sends no more on channel ``id`` (it dropped its channel)."""
        inbox = self._inboxes.get(id)
        if inbox is not None:
            self._apply(inbox, FAR_DONE)

    def connection_lost(self, exc: BaseException) -> None:
        """The stream ended: end every channel, and every channel made from now on."""
        with self._lock:
            self._lost = exc
            inboxes = list(self._inboxes.values())
        for inbox in inboxes:
            self._apply(inbox, LOST, exc)

    # -- this side's events (channels, and the worker running code) ------------------

    def close(self, inbox: Inbox, error: Any = None) -> None:
        """Close a channel from this side; tell the far side if it was open."""
        if self._apply(inbox, CLOSE) is not OPEN:
            return
        if error is not None:
            parts = dumps_parts(str(error))
            self.sender.send_quietly(MessageType.CHANNEL_CLOSE_ERROR, inbox.id, parts)
        else:
            self.sender.send_quietly(MessageType.CHANNEL_CLOSE, inbox.id, ())

    def set_executing(self, channel: Channel, executing: bool) -> None:
        """Mark ``channel`` as the one of running remote code: its code may not close it."""
        self._inboxes[channel.id].executing = executing

    def set_callback(self, inbox: Inbox, callback: Callback, endmarker: object) -> None:
        """Items queued go to ``callback`` now, in this thread; later ones as they come."""
        with self._receive_lock:
            items = inbox.items
            if items is None:
                raise OSError(f"{inbox.channel()!r} has a callback already")
            inbox.items = None
            while True:
                try:
                    item = items.get_nowait()
                except Empty:
                    channel = inbox.channel()  # alive: its own setcallback runs
                    if inbox.state.receiving and channel is not None:
                        inbox.callback = callback
                        inbox.endmarker = endmarker
                        self._kept[inbox.id] = channel
                    break
                if item is _END:
                    if endmarker is not NO_ENDMARKER_WANTED:
                        callback(endmarker)
                    break
                callback(item)

    def dropped(self, inbox: Inbox) -> None:
        """Rule 4: a channel is being collected; if it was open, tell the far side.

        Runs in ``__del__``: it must not block, so the notice is deferred.
        """
        if self._inboxes.get(inbox.id) is not inbox:
            return  # a newer channel object has the id now
        self._inboxes.pop(inbox.id, None)
        if inbox.state is OPEN:
            msgtype = (
                MessageType.CHANNEL_LAST_MESSAGE
                if inbox.items is None
                else MessageType.CHANNEL_CLOSE
            )
            self.sender.send_later(msgtype, inbox.id)

    # -- transitions -----------------------------------------------------------------

    def _apply(self, inbox: Inbox, event: Event, error: Optional[BaseException] = None) -> State:
        """Make one state transition; if it ends the receiving direction, wake waiters,
        end the queue, and give a callback its endmarker (outside the lock)."""
        with self._receive_lock:
            before = inbox.apply(event, error)
            if not before.receiving or inbox.state.receiving:
                return before
            inbox.closed.set()
            items = inbox.items
            if items is not None:
                items.put(_END)
            callback, inbox.callback = inbox.callback, None
            kept = self._kept.pop(inbox.id, None)  # alive until its endmarker is given
        if callback is not None and inbox.endmarker is not NO_ENDMARKER_WANTED:
            try:
                callback(inbox.endmarker)
            except Exception:
                log.exception("gateway %r: endmarker callback of %r failed", self.gateway.id, kept)
        return before
