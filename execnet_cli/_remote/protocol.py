"""The gateway protocol, without I/O: message kinds, channel ids and channel state rules.

Rules, in one place:

1. Both sides speak the same frames (see ``framing``). Channel id 0 is the gateway
   itself; every other id names one channel.
2. Channel ids are chosen by parity, with no negotiation: the side that opened the
   connection (the controller) allocates odd ids, the worker even ids.
3. ``CHANNEL_EXEC`` opens a channel on the worker and runs code there. When the code
   ends, the worker closes the channel: ``CHANNEL_CLOSE`` on success,
   ``CHANNEL_CLOSE_ERROR`` with the formatted traceback on failure.
4. A channel has two directions. Closing is one message from the closing side and
   ends both directions; ``CHANNEL_LAST_MESSAGE`` ends only the sender's direction
   (its object was dropped, but it still accepts data for its callback).
5. What ``send`` does once a channel is closed depends on who closed it and how
   (``send_outcome``): after a normal close by the far side the item is discarded
   (the far side finished and cannot want it: execnet raised here, racing with the
   far side's exit); after a close by this side, or by the far side with an error,
   or after the connection was lost, ``send`` raises and says which happened.
6. Data for a channel id the receiver does not know (already closed and dropped) is
   discarded.
7. ``GATEWAY_TERMINATE`` asks the worker to stop; the worker ends every channel and
   exits. End of stream means the same. ``WORKER_READY`` is the worker's first
   message, carrying its interpreter facts, so the controller knows the bootstrap
   worked before it returns a gateway.
8. ``STATUS`` on a fresh channel asks the worker for its status; the answer is one
   data item on that channel, then a close.
"""

from __future__ import annotations

import itertools
import threading

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Optional, Tuple

    ExecRequest = Tuple[str, Optional[str], Optional[str], dict]


class MessageType:
    """Message kinds; the numbers are the wire values (plain ints: no enum import)."""

    STATUS = 0
    RECONFIGURE = 1
    GATEWAY_TERMINATE = 2
    CHANNEL_EXEC = 3
    CHANNEL_DATA = 4
    CHANNEL_CLOSE = 5
    CHANNEL_CLOSE_ERROR = 6
    CHANNEL_LAST_MESSAGE = 7
    WORKER_READY = 8

    @classmethod
    def name_of(cls, value: int) -> str:
        for name, number in vars(cls).items():
            if number == value and name.isupper():
                return name
        return f"UNKNOWN({value})"


class _Named:
    """A named constant whose ``value`` is its description."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def __repr__(self) -> str:
        return f"<{self.name}>"


class CloseReason:
    """Why a channel no longer takes data, as seen from this side."""

    CLOSED_HERE = _Named("CLOSED_HERE", "closed by this side")
    FAR_CLOSED = _Named("FAR_CLOSED", "closed by the far side")
    FAR_CLOSED_WITH_ERROR = _Named("FAR_CLOSED_WITH_ERROR", "closed by the far side with an error")
    CONNECTION_LOST = _Named("CONNECTION_LOST", "the gateway connection is gone")


class SendOutcome:
    """What ``Channel.send`` must do in a given state."""

    SEND = _Named("SEND", "send")
    DISCARD = _Named("DISCARD", "discard")
    RAISE = _Named("RAISE", "raise")


def send_outcome(reason: Optional[_Named]) -> _Named:
    """Rule 5: the fate of an item sent on a channel closed for ``reason``."""
    if reason is None:
        return SendOutcome.SEND
    if reason is CloseReason.FAR_CLOSED:
        return SendOutcome.DISCARD
    return SendOutcome.RAISE


def reason_for_close_message(msgtype: int) -> _Named:
    """Rule 4: the close reason a received close message sets."""
    if msgtype == MessageType.CHANNEL_CLOSE_ERROR:
        return CloseReason.FAR_CLOSED_WITH_ERROR
    return CloseReason.FAR_CLOSED


class ChannelIds:
    """Rule 2: thread-safe allocation of channel ids of this side's parity."""

    def __init__(self, is_controller: bool) -> None:
        self._counter = itertools.count(1 if is_controller else 2, 2)
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            return next(self._counter)


def check_exec_request(obj: object) -> ExecRequest:
    """Validate a decoded CHANNEL_EXEC payload; raise ValueError describing the flaw.

    The payload is (source, file name, function to call, keyword arguments).
    """
    if not (isinstance(obj, tuple) and len(obj) == 4):
        raise ValueError("exec request must be a 4-tuple")
    source, filename, call_name, kwargs = obj
    if not isinstance(source, str):
        raise ValueError("exec request source must be a str")
    if filename is not None and not isinstance(filename, str):
        raise ValueError("exec request file name must be a str or None")
    if call_name is not None and not isinstance(call_name, str):
        raise ValueError("exec request call name must be a str or None")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ValueError("exec request keyword arguments must be a dict with str keys")
    return source, filename, call_name, kwargs
