"""Public error tree: the shared errors of ``_remote.errors`` plus local-only ones.

    XnetError
    ├── DataFormatError ── DumpError, LoadError, FrameTooLarge
    ├── RemoteError
    ├── TimeoutError
    ├── ChannelClosed
    ├── RSyncError (+ OSError)            a target failed or broke the rsync protocol
    └── GatewayError
        ├── SpecError (+ ValueError)      a gateway spec with a bad key or value
        └── HostNotFound                  could not start or reach the worker (execnet name;
            │                             raised as such for a name that does not resolve)
            ├── ConnectFailed             connection refused, timed out or cut
            ├── AuthenticationFailed      credentials refused (says which methods were tried)
            ├── HostKeyError              unknown or changed host key (says how to accept)
            │   └── UnknownHostKey        unknown, refused (carries the key to ask about)
            ├── InterpreterNotFound       the ``python`` to start does not exist there
            └── BootstrapError            the worker started but died before it was ready

Errors carry no exit codes; the CLI maps them in one table.
"""

from __future__ import annotations

from ._remote.errors import (
    ChannelClosed,
    DataFormatError,
    DumpError,
    FrameTooLarge,
    LoadError,
    RemoteError,
    TimeoutError,
    XnetError,
)

__all__ = [
    "AuthenticationFailed",
    "BootstrapError",
    "ChannelClosed",
    "ConnectFailed",
    "DataFormatError",
    "DumpError",
    "FrameTooLarge",
    "GatewayError",
    "HostKeyError",
    "HostNotFound",
    "InterpreterNotFound",
    "LoadError",
    "RSyncError",
    "RemoteError",
    "SpecError",
    "TimeoutError",
    "UnknownHostKey",
    "XnetError",
]


class GatewayError(XnetError):
    """Opening or running a gateway failed."""


class SpecError(GatewayError, ValueError):
    """A gateway specification that cannot be used; the message names the key."""


class HostNotFound(GatewayError):
    """The worker could not be started or reached (execnet's name for it)."""


class ConnectFailed(HostNotFound):
    """The connection was refused, timed out, or broke while being set up."""


class AuthenticationFailed(HostNotFound):
    """The far side refused our credentials."""


class HostKeyError(HostNotFound):
    """The host key is unknown or has changed; nothing was sent to that host."""


class UnknownHostKey(HostKeyError):
    """The host offered a key no known_hosts file lists, and the policy refused it.

    It carries what a caller needs to ask a person once for many hosts and to record the
    key afterwards (``transports.ssh.hostkeys.record_host_key``): ``name`` as known_hosts
    writes it, ``key_type``, ``fingerprint`` (SHA256), ``askable`` (the policy was
    ``ask``, OpenSSH's default, not ``yes``), and the ``settings`` and ``key`` objects.
    """

    def __init__(
        self,
        message: str,
        *,
        name: str,
        key_type: str,
        fingerprint: str,
        askable: bool,
        settings: object,
        key: object,
    ) -> None:
        super().__init__(message)
        self.name, self.key_type, self.fingerprint = name, key_type, fingerprint
        self.askable, self.settings, self.key = askable, settings, key


class InterpreterNotFound(HostNotFound):
    """The interpreter to start as the worker does not exist or cannot run."""


class BootstrapError(HostNotFound):
    """The worker process started but ended before it reported ready."""


class RSyncError(XnetError, OSError):
    """An rsync target failed, or its far side broke the rsync protocol.

    Also an ``OSError``, as it was before it joined the tree (callers catch that)."""
