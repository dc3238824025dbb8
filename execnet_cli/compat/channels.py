"""execnet's channel-side names that our engine spells differently.

- ``ChannelFile``, ``ChannelFileWrite``, ``ChannelFileRead``: the classes of
  ``channel.makefile("w" / "r")``.
- ``Unserializer(stream, channel_or_gateway, strconfig).load(versioned)``: reads one value
  in execnet's format (``_remote/compat_format.py``); channel references in it become
  channels of the given gateway (of the given channel's gateway), as in execnet.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from .._remote import compat_format
from .._remote.channel import Channel

try:  # the channel files moved to a module of their own
    from .._remote.channelfiles import ChannelFileRead, ChannelFileWrite  # type: ignore
except ImportError:
    from .._remote.channel import ChannelFileRead, ChannelFileWrite  # noqa: F401

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
