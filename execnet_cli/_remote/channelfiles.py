"""File objects over a channel (``Channel.makefile``): each write sends one item; reads
take the text of the items received as one stream. Imported on first use.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Optional, Protocol

    class Channel(Protocol):
        """What a file needs of its channel (``channel.Channel`` has it)."""

        id: int

        def send(self, item: Any) -> None: ...
        def receive(self, timeout: Optional[float] = None) -> Any: ...
        def close(self, error: Any = None) -> None: ...
        def isclosed(self) -> bool: ...


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
