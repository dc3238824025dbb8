"""The part of a gateway both sides share: sending frames and dispatching them.

Writing is ``sending.Sender``'s job (in the calling thread, one ``writev`` a frame);
reading is ``reading.StreamReader``'s: a background thread, or the thread waiting for
data. Dispatch hands channel messages to the ``channel.ChannelRegistry`` (data, closes:
the state changes happen there) and requests (exec, status) to the subclass. When the
stream ends, every channel ends.
"""

from __future__ import annotations

from .channel import Channel, ChannelRegistry
from .errors import DataFormatError, RemoteError
from .execmodel import ExecModel, get_execmodel
from .logs import get_logger
from .protocol import ChannelIds, MessageType
from .reading import StreamReader
from .sending import Sender
from .serializer import dumps_parts, loads
from .threads import Event

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    import threading
    from typing import Any, Optional

    from .framing import Buffer, FrameTuple

log = get_logger("execnet_cli.gateway")


class BaseGateway:
    """A connection to the other side, with its channels."""

    _is_controller = True

    def __init__(self, io: Any, id: str, execmodel: str | ExecModel = "thread") -> None:
        self._io = io
        self.id = id
        self.execmodel = get_execmodel(execmodel)
        self._sender = Sender(io, id)
        self._send = self._sender.send
        self._reader = StreamReader(
            io, id, self._dispatch, self._stream_closed, self._reader_finished
        )
        self._channels = ChannelRegistry(
            self, ChannelIds(self._is_controller).next, self._sender, self._reader
        )
        self._deliver = self._channels.deliver
        self._receiver: Optional[threading.Thread] = None
        self._receiver_done = Event()

    # -- channels --------------------------------------------------------------------

    def newchannel(self) -> Channel:
        """A new channel, to send over another channel or to pass to remote code."""
        return self._channels.new()

    # -- receiving -------------------------------------------------------------------

    def _start_receiver(self) -> None:
        import threading  # a worker starts its receiver without it (``WorkerGateway``)

        push = getattr(self._io, "push_frames", None)  # transports/base.py
        loop = push(self) if push is not None else None
        self._receiver = threading.Thread(
            target=loop or self._reader.background_loop,
            name=f"xnet-receiver-{self.id}",
            daemon=True,
        )
        self._receiver.start()

    def hasreceiver(self) -> bool:
        return self._receiver is not None and self._receiver.is_alive()

    def _dispatch(self, frame: FrameTuple) -> bool:
        """Handle one frame; False ends the receiver."""
        msgtype, channel_id, payload = frame
        if msgtype == MessageType.CHANNEL_DATA:
            self._deliver(channel_id, payload)
        elif msgtype == MessageType.CHANNEL_CLOSE:
            self._channels.far_closed(channel_id, None)
        elif msgtype == MessageType.CHANNEL_CLOSE_ERROR:
            self._channels.far_closed(channel_id, self._remote_error(payload))
        elif msgtype == MessageType.CHANNEL_LAST_MESSAGE:
            self._channels.far_done_sending(channel_id)
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
        elif msgtype == MessageType.SOURCES:
            self._handle_sources_request()
        else:
            log.warning("gateway %r: ignoring message type %d", self.id, msgtype)
        return True

    def _dispatch_inline(self, frame: FrameTuple) -> Optional[bool]:
        """``_dispatch`` for a thread that must never wait on us: paramiko's transport
        thread, which also takes in the window adjusts a blocked send waits for. None:
        not handled, the frame could run a callback, send, or wait for a lock held
        elsewhere; the receiver thread must take it (and what follows, in order)."""
        msgtype = frame[0]
        if msgtype == MessageType.WORKER_READY or msgtype == MessageType.GATEWAY_TERMINATE:
            return self._dispatch(frame)
        if not MessageType.CHANNEL_DATA <= msgtype <= MessageType.CHANNEL_LAST_MESSAGE:
            return None
        channels = self._channels
        if not channels.hold_quiet(frame[1]):
            return None
        try:
            return self._dispatch(frame)
        finally:
            channels.release()

    def _stream_closed(self, reason: BaseException) -> None:
        """The stream ended (any thread): end every channel at once."""
        self._channels.connection_lost(reason)

    def _reader_finished(self, reason: BaseException) -> None:
        """The background reader's last act: run the side's end-of-stream hook."""
        self._receiver_done.set()
        self._on_connection_lost(reason)

    # -- hooks for the two sides -------------------------------------------------------

    def _handle_exec(self, channel_id: int, payload: Buffer) -> None:
        log.warning("gateway %r: refusing exec request on channel %d", self.id, channel_id)
        text = "this side of the gateway does not run remote code"
        self._sender.send_quietly(MessageType.CHANNEL_CLOSE_ERROR, channel_id, dumps_parts(text))

    def _handle_status(self, channel_id: int) -> None:
        log.warning("gateway %r: ignoring status request", self.id)

    def _handle_ready(self, payload: Buffer) -> None:
        log.warning("gateway %r: ignoring an unexpected ready message", self.id)

    def _handle_sources_request(self) -> None:
        log.warning("gateway %r: ignoring a request for sources", self.id)

    @staticmethod
    def _remote_error(payload: Buffer) -> RemoteError:
        """The error a ``CHANNEL_CLOSE_ERROR`` carries (its text, however it came)."""
        try:
            text = loads(payload)
        except DataFormatError as exc:
            text = f"(undecodable error text: {exc})"
        return RemoteError(text if isinstance(text, str) else repr(text))

    def _on_connection_lost(self, reason: BaseException) -> None:
        """Called in the receiver thread once the stream has ended."""
