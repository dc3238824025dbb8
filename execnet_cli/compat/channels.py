"""execnet's channel-side names that our engine spells differently.

- ``ChannelFile``, ``ChannelFileWrite``, ``ChannelFileRead``: the classes of
  ``channel.makefile("w" / "r")``.
- ``ChannelFactory(gateway)``: execnet's view of a gateway's channels (``new``,
  ``channels``, and the far-side events ``_local_close``/``_local_receive``, which here
  go through the gateway's own dispatch, as if the frame had arrived). Our gateways keep
  their channels in a registry and have no ``_channelfactory`` attribute.
- ``Unserializer(stream, channel_or_gateway, strconfig).load(versioned)``: reads one value
  in execnet's format (``_remote/compat_format.py``); channel references in it become
  channels of the given gateway (of the given channel's gateway), as in execnet.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .._remote import compat_format, serializer
from .._remote.channel import Channel
from .._remote.channelfiles import ChannelFileRead, ChannelFileWrite
from .._remote.framing import Frame
from .._remote.protocol import MessageType

#: The common base of both channel files.
ChannelFile = ChannelFileWrite.__bases__[0]


class Unserializer:
    """execnet's loader object: ``Unserializer(stream).load()`` reads one value."""

    #: Defaults for values Python 2 wrote (execnet's class attributes).
    py2str_as_py3str = True
    py3str_as_py2str = False

    def __init__(
        self,
        stream: Any,
        channel_or_gateway: Any = None,
        strconfig: Optional[Tuple[bool, bool]] = None,
    ) -> None:
        self.stream = stream
        gateway = channel_or_gateway
        if isinstance(channel_or_gateway, Channel):
            gateway = channel_or_gateway.gateway
        #: Makes the channel of an id found in the data (only a gateway can).
        self.channelfactory = gateway._channels.new if gateway is not None else None
        if strconfig is not None:
            self.py2str_as_py3str, self.py3str_as_py2str = strconfig

    def load(self, versioned: bool = False) -> Any:
        """The next value of the stream (a version byte first if ``versioned``)."""
        return compat_format.load_from(
            compat_format.StreamReader(self.stream),
            versioned,
            (self.py2str_as_py3str, self.py3str_as_py2str),
            self.channelfactory,
        )


class ChannelFactory:
    """The channels of one of our gateways, as execnet's ``ChannelFactory`` shows them."""

    def __init__(self, gateway: Any, startcount: int = 1) -> None:
        self.gateway = gateway
        self._registry = gateway._channels  # an execnet_cli gateway's registry

    def new(self, id: Optional[int] = None) -> Channel:
        """A new channel (a fresh id), or the channel of ``id``."""
        return self._registry.new(id)

    def channels(self) -> List[Channel]:
        """The channels alive now."""
        return list(self._channels.values())

    @property
    def _channels(self) -> Dict[int, Channel]:
        found = {}
        for id, inbox in list(self._registry._inboxes.items()):  # id -> inbox (weak channel)
            channel = inbox.channel()
            if channel is not None:
                found[id] = channel
        return found

    @property
    def count(self) -> int:
        return self._registry.count()

    def _local_close(self, id: int, remoteerror: Any = None, sendonly: bool = False) -> None:
        """The far side closed channel ``id`` (with ``remoteerror``), or only its sending
        direction (``sendonly``)."""
        if sendonly:
            self.gateway._dispatch(Frame(MessageType.CHANNEL_LAST_MESSAGE, id, b""))
        elif remoteerror is not None:
            text = serializer.dumps(str(getattr(remoteerror, "formatted", remoteerror)))
            self.gateway._dispatch(Frame(MessageType.CHANNEL_CLOSE_ERROR, id, text))
        else:
            self.gateway._dispatch(Frame(MessageType.CHANNEL_CLOSE, id, b""))

    def _local_receive(self, id: int, data: bytes) -> None:
        """Data for channel ``id`` arrived, in execnet's format (``dumps_internal``)."""
        item = compat_format.loads_internal(data, self._registry.new)
        payload = serializer.dumps(item, Channel)
        self.gateway._dispatch(Frame(MessageType.CHANNEL_DATA, id, payload))


__all__ = ["ChannelFactory", "ChannelFile", "ChannelFileRead", "ChannelFileWrite", "Unserializer"]
