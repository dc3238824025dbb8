"""The part of a gateway both sides share: sending frames and dispatching them.

Writes happen in the calling thread under one lock (no writer thread: a send costs
one ``writev``). Reading is ``reading.StreamReader``'s job: a background thread, or
the thread waiting for data. Dispatch sends data to a channel's queue or callback,
closes to channel state, and requests (exec, status) to the subclass. When the stream
ends, every channel ends.
"""

from __future__ import annotations

import threading
from collections import deque

from .channel import Channel, ChannelRegistry
from .errors import ChannelClosed, DataFormatError, RemoteError
from .execmodel import ExecModel, get_execmodel
from .framing import encode_frame
from .logs import get_logger
from .protocol import ChannelIds, MessageType, reason_for_close_message
from .reading import StreamReader
from .serializer import dumps_parts, loads

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Optional, Sequence

    from .framing import Buffer, Frame

log = get_logger("execnet_cli.gateway")


class BaseGateway:
    """A connection to the other side, with its channels."""

    _is_controller = True

    def __init__(self, io: Any, id: str, execmodel: str | ExecModel = "thread") -> None:
        self._io = io
        self.id = id
        self.execmodel = get_execmodel(execmodel)
        self._channels = ChannelRegistry(self, ChannelIds(self._is_controller).next)
        self._write_lock = threading.Lock()
        self._deferred: deque = deque()
        self._receive_lock = threading.RLock()
        self._receiver: Optional[threading.Thread] = None
        self._receiver_done = threading.Event()
        self._lost: Optional[BaseException] = None
        self._write_closed = False
        self._reader = StreamReader(
            io, id, self._dispatch, self._stream_closed, self._reader_finished
        )

    # -- sending ---------------------------------------------------------------------

    def _send(self, msgtype: int, channel_id: int, segments: Sequence[Buffer] = ()) -> None:
        frame = encode_frame(msgtype, channel_id, segments)
        with self._write_lock:
            self._write_locked(frame)
            while self._deferred:
                self._write_locked(encode_frame(*self._deferred.popleft()))
        if self._deferred:
            self._flush_deferred()

    def _write_locked(self, frame: Sequence[Buffer]) -> None:
        if self._write_closed:
            raise ChannelClosed(f"gateway {self.id!r}: the connection is closed")
        try:
            self._io.write(frame)
        except (OSError, ValueError) as exc:
            self._write_closed = True
            raise ChannelClosed(f"gateway {self.id!r}: the connection is closed ({exc})") from exc

    def _send_quietly(self, msgtype: int, channel_id: int, segments: Sequence[Buffer]) -> None:
        """Send, ignoring a dead connection (for close notices nobody may hear)."""
        try:
            self._send(msgtype, channel_id, segments)
        except ChannelClosed:
            pass

    def _send_deferred(self, msgtype: int, channel_id: int) -> None:
        """Send from a context that must not block or interleave (``__del__``).

        The message is queued; whoever holds or next takes the write lock sends it.
        """
        self._deferred.append((msgtype, channel_id, ()))
        self._flush_deferred()

    def _flush_deferred(self) -> None:
        while self._deferred and self._write_lock.acquire(blocking=False):
            try:
                while self._deferred:
                    self._write_locked(encode_frame(*self._deferred.popleft()))
            except ChannelClosed:
                self._deferred.clear()
            finally:
                self._write_lock.release()

    # -- channels --------------------------------------------------------------------

    def newchannel(self) -> Channel:
        """A new channel, to send over another channel or to pass to remote code."""
        return self._channels.new()

    # -- receiving -------------------------------------------------------------------

    def _start_receiver(self) -> None:
        self._receiver = threading.Thread(
            target=self._reader.background_loop, name=f"xnet-receiver-{self.id}", daemon=True
        )
        self._receiver.start()

    def hasreceiver(self) -> bool:
        return self._receiver is not None and self._receiver.is_alive()

    def _dispatch(self, frame: Frame) -> bool:
        """Handle one frame; False ends the receiver."""
        msgtype, channel_id, payload = frame
        if msgtype == MessageType.CHANNEL_DATA:
            self._deliver(channel_id, payload)
        elif msgtype == MessageType.CHANNEL_CLOSE or msgtype == MessageType.CHANNEL_CLOSE_ERROR:
            self._far_closed(msgtype, channel_id, payload)
        elif msgtype == MessageType.CHANNEL_LAST_MESSAGE:
            channel = self._lookup(channel_id)
            if channel is not None:
                channel._far_done_sending()
        elif msgtype == MessageType.GATEWAY_TERMINATE:
            return False
        elif msgtype == MessageType.CHANNEL_EXEC:
            self._handle_exec(channel_id, payload)
        elif msgtype == MessageType.STATUS:
            self._handle_status(channel_id)
        elif msgtype == MessageType.WORKER_READY:
            self._handle_ready(payload)
        elif msgtype == MessageType.RECONFIGURE:
            pass  # execnet's Python 2 string settings: nothing to do
        else:
            log.warning("gateway %r: ignoring message type %d", self.id, msgtype)
        return True

    def _lookup(self, channel_id: int) -> Optional[Channel]:
        entry = self._channels.callback_for(channel_id)
        if entry is not None:
            return entry[2]
        return self._channels.get(channel_id)

    def _deliver(self, channel_id: int, payload: Buffer) -> None:
        channels = self._channels
        with self._receive_lock:
            entry = channels._callbacks.get(channel_id)
            channel = entry[2] if entry is not None else channels._channels.get(channel_id)
            if channel is None:
                log.debug("gateway %r: dropping data for unknown channel %d", self.id, channel_id)
                return
            try:
                item = loads(payload, channels.new)
            except DataFormatError as exc:
                error = RemoteError(f"undecodable data on channel {channel_id}: {exc}")
                channel._far_closed(
                    reason_for_close_message(MessageType.CHANNEL_CLOSE_ERROR), error
                )
                return
            if entry is not None:
                try:
                    entry[0](item)
                except Exception:
                    log.exception("gateway %r: callback of %r failed", self.id, channel)
            else:
                items = channel._items
                if items is not None:
                    items.put(item)

    def _far_closed(self, msgtype: int, channel_id: int, payload: Buffer) -> None:
        error = None
        if msgtype == MessageType.CHANNEL_CLOSE_ERROR:
            try:
                text = loads(payload)
            except DataFormatError as exc:
                text = f"(undecodable error text: {exc})"
            error = RemoteError(text if isinstance(text, str) else repr(text))
        with self._receive_lock:
            channel = self._lookup(channel_id)
            if channel is None:
                if error is not None:
                    log.warning("gateway %r: error on a dropped channel: %s", self.id, error)
                return
            channel._far_closed(reason_for_close_message(msgtype), error)

    def _stream_closed(self, reason: BaseException) -> None:
        """The stream ended (any thread): end every channel at once."""
        self._lost = reason
        with self._receive_lock:
            self._channels.connection_lost(reason)

    def _reader_finished(self, reason: BaseException) -> None:
        """The background reader's last act: run the side's end-of-stream hook."""
        self._receiver_done.set()
        self._on_connection_lost(reason)

    # -- hooks for the two sides -------------------------------------------------------

    def _handle_exec(self, channel_id: int, payload: Buffer) -> None:
        log.warning("gateway %r: refusing exec request on channel %d", self.id, channel_id)
        text = "this side of the gateway does not run remote code"
        self._send_quietly(MessageType.CHANNEL_CLOSE_ERROR, channel_id, dumps_parts(text))

    def _handle_status(self, channel_id: int) -> None:
        log.warning("gateway %r: ignoring status request", self.id)

    def _handle_ready(self, payload: Buffer) -> None:
        log.warning("gateway %r: ignoring an unexpected ready message", self.id)

    def _on_connection_lost(self, reason: BaseException) -> None:
        """Called in the receiver thread once the stream has ended."""
