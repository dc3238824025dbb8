"""The one error tree of execnet_cli.

This module is shipped to remote interpreters, so it imports nothing but the standard
library. ``execnet_cli.errors`` re-exports it and adds the errors that only the local
side raises. Lower-layer errors (``OSError``, ``struct.error`` ...) are translated once,
at the boundary where they happen, with ``raise ... from exc``. No error carries an exit
code: only the CLI maps errors to exit codes, in one table.

    XnetError
    ├── DataFormatError               bytes that are not a valid message or value
    │   ├── DumpError                 a value we refuse to serialize (names the type)
    │   ├── LoadError                 garbage, truncated data, unknown opcode or version
    │   └── FrameTooLarge             a message larger than the maximum frame size
    ├── RemoteError                   the far side raised; .formatted is its traceback
    ├── TimeoutError (+ builtins.TimeoutError, an OSError, as in execnet)
    ├── ChannelClosed (+ OSError)     send on a channel that can no longer take data
    └── GatewayError                  (execnet_cli.errors) opening or running a gateway
        ├── SpecError (+ ValueError)  a spec with an unknown or malformed key
        └── HostNotFound              the gateway could not be started or reached
            └── ...                   transport-specific causes (see execnet_cli.errors)
"""

from __future__ import annotations

import builtins


class XnetError(Exception):
    """Base of every error execnet_cli raises on purpose."""


class DataFormatError(XnetError):
    """Data that cannot be serialized or deserialized."""


class DumpError(DataFormatError):
    """A value of a type the serializer does not support."""


class LoadError(DataFormatError):
    """Bytes that do not decode to a value: garbage, truncation, unknown opcode."""


class FrameTooLarge(DataFormatError):
    """A message larger than the protocol allows; send big data in chunks instead."""


class RemoteError(XnetError):
    """An exception raised on the other side, carried as its formatted traceback."""

    def __init__(self, formatted: str) -> None:
        super().__init__(formatted)
        self.formatted = formatted

    def __str__(self) -> str:
        return self.formatted

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self.formatted}"

    def warn(self) -> None:
        """Write the error to stderr (for errors nobody received)."""
        import sys

        sys.stderr.write(f"Warning: unhandled {self!r}\n")


class TimeoutError(XnetError, builtins.TimeoutError):
    """A wait with a timeout ran out (an OSError, like execnet's and the builtin)."""


class ChannelClosed(XnetError, OSError):
    """A channel that can no longer take data; the message says who closed it and why."""
