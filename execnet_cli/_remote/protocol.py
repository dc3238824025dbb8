"""The gateway protocol, without I/O: message kinds, channel ids and channel states.

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
   (its object was dropped, but it still accepts data for its callback). A channel
   object dropped while open closes it (``CHANNEL_CLOSE``, or ``CHANNEL_LAST_MESSAGE``
   when it had a callback).
5. What ``send`` does once a channel is closed depends on who closed it and how (each
   state's ``send``): after a normal close by the far side the item is discarded (the
   far side finished and cannot want it: execnet raised here, racing with the far
   side's exit); after a close by this side, or by the far side with an error, or
   after the connection was lost, ``send`` raises and says which happened.
6. Data is taken only while the channel receives (``OPEN``). Data for a channel id the
   receiver does not know (already closed and dropped), or for a channel whose
   receiving direction has ended, is discarded.
7. ``GATEWAY_TERMINATE`` asks the worker to stop; the worker ends every channel and
   exits. End of stream means the same. ``WORKER_READY`` is the worker's first
   message, carrying its interpreter facts, so the controller knows the bootstrap
   worked before it returns a gateway.
8. ``STATUS`` on a fresh channel asks the worker for its status; the answer is one
   data item on that channel, then a close.

Channel states (rule 4, 5, 6), as this side sees a channel; ``TRANSITIONS`` is the
whole table and ``ChannelState.apply`` the only place a state changes:

- ``OPEN``: both directions work. Only here does the channel take data.
- ``FAR_DONE_SENDING``: the far side sends no more (``CHANNEL_LAST_MESSAGE``); this
  side may still send.
- ``CLOSED_HERE``, ``FAR_CLOSED``, ``FAR_CLOSED_WITH_ERROR``, ``CONNECTION_LOST``: closed,
  for the reason the name gives. The first reason sticks, except that closing here
  after a normal far close makes later sends raise instead of discarding.

Events: ``CLOSE`` (this side closes), ``FAR_CLOSE``, ``FAR_ERROR`` (a close with an
error, or data that cannot be decoded), ``FAR_DONE`` (``CHANNEL_LAST_MESSAGE``) and
``LOST`` (the stream ended). Far events are legal in every state before the stream
ends, because both sides' messages may cross (a late close changes nothing but the
errors recorded); after it ends, only this side's ``CLOSE`` is: anything else is a
bug of ours and raises ``ChannelStateError``.
"""

from __future__ import annotations

import itertools
from _thread import allocate_lock

from .errors import XnetError

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Dict, List, Optional, Tuple

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
    SOURCES = 9  # a worker of another magic asks for our sources, we send them (bootstrap)

    @classmethod
    def name_of(cls, value: int) -> str:
        for name, number in vars(cls).items():
            if number == value and name.isupper():
                return name
        return f"UNKNOWN({value})"


class Named:
    """A named constant whose ``value`` is its description."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def __repr__(self) -> str:
        return f"<{self.name}>"


class SendOutcome:
    """What ``Channel.send`` does in a given state (rule 5)."""

    SEND = Named("SEND", "send")
    DISCARD = Named("DISCARD", "discard")
    RAISE = Named("RAISE", "raise")


class Event(Named):
    """Something that happens to a channel (see the module's rules)."""

    __slots__ = ()


class State(Named):
    """A channel state: ``value`` says why it no longer takes data, once it does not."""

    __slots__ = ("receiving", "send")

    def __init__(self, name: str, value: str, receiving: bool, send: Named) -> None:
        super().__init__(name, value)
        self.receiving = receiving  # rule 6: data is taken
        self.send = send  # rule 5: what send does


OPEN = State("OPEN", "open", True, SendOutcome.SEND)
FAR_DONE_SENDING = State("FAR_DONE_SENDING", "the far side sends no more", False, SendOutcome.SEND)
CLOSED_HERE = State("CLOSED_HERE", "closed by this side", False, SendOutcome.RAISE)
FAR_CLOSED = State("FAR_CLOSED", "closed by the far side", False, SendOutcome.DISCARD)
FAR_CLOSED_WITH_ERROR = State(
    "FAR_CLOSED_WITH_ERROR", "closed by the far side with an error", False, SendOutcome.RAISE
)
CONNECTION_LOST = State(
    "CONNECTION_LOST", "the gateway connection is gone", False, SendOutcome.RAISE
)

CLOSE = Event("CLOSE", "this side closes")
FAR_CLOSE = Event("FAR_CLOSE", "the far side closed")
FAR_ERROR = Event("FAR_ERROR", "the far side closed with an error, or sent undecodable data")
FAR_DONE = Event("FAR_DONE", "the far side sends no more")
LOST = Event("LOST", "the stream ended")

_FAR_EVENTS = (FAR_CLOSE, FAR_ERROR, FAR_DONE, LOST)


def _stays(state: State) -> Dict[Event, State]:
    """A closed state that no far event changes."""
    return dict.fromkeys(_FAR_EVENTS, state)


#: state -> {event: next state}; an event missing for a state is illegal there.
TRANSITIONS: Dict[State, Dict[Event, State]] = {
    OPEN: {
        CLOSE: CLOSED_HERE,
        FAR_CLOSE: FAR_CLOSED,
        FAR_ERROR: FAR_CLOSED_WITH_ERROR,
        FAR_DONE: FAR_DONE_SENDING,
        LOST: CONNECTION_LOST,
    },
    FAR_DONE_SENDING: {
        CLOSE: CLOSED_HERE,
        FAR_CLOSE: FAR_CLOSED,
        FAR_ERROR: FAR_CLOSED_WITH_ERROR,
        FAR_DONE: FAR_DONE_SENDING,
        LOST: CONNECTION_LOST,
    },
    CLOSED_HERE: {CLOSE: CLOSED_HERE, **_stays(CLOSED_HERE)},
    FAR_CLOSED: {CLOSE: CLOSED_HERE, **_stays(FAR_CLOSED)},
    FAR_CLOSED_WITH_ERROR: {
        CLOSE: FAR_CLOSED_WITH_ERROR,
        **_stays(FAR_CLOSED_WITH_ERROR),
    },
    CONNECTION_LOST: {CLOSE: CONNECTION_LOST},
}


class ChannelStateError(XnetError, RuntimeError):
    """An event the state table does not allow: an internal error, never the far side's."""


class ChannelState:
    """One channel's state and what the far side reported; ``apply`` alone changes it.

    Not thread-safe by itself: the owner (``channel.ChannelRegistry``) serialises calls.
    """

    __slots__ = ("errors", "lost", "state")

    def __init__(self) -> None:
        self.state: State = OPEN
        self.errors: List[BaseException] = []  # errors the far side closed with, in order
        self.lost: Optional[BaseException] = None  # why the stream ended, once it has

    def apply(self, event: Event, error: Optional[BaseException] = None) -> State:
        """Make the transition ``event`` causes; return the state before it.

        ``error``: for ``FAR_ERROR`` the remote error (kept even when the state stays),
        for ``LOST`` why the stream ended.
        """
        before = self.state
        after = TRANSITIONS[before].get(event)
        if after is None:
            raise ChannelStateError(f"channel event {event.name} is illegal in state {before.name}")
        if error is not None:
            if event is LOST:
                self.lost = error
            else:
                self.errors.append(error)
        self.state = after
        return before


class ChannelIds:
    """Rule 2: thread-safe allocation of channel ids of this side's parity."""

    def __init__(self, is_controller: bool) -> None:
        self._counter = itertools.count(1 if is_controller else 2, 2)
        self._lock = allocate_lock()

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
