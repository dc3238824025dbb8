"""``execnet.gateway_io`` of the alias: worker command lines and their IO.

execnet's proxy internals (``ProxyIO``, ``serve_proxy_io``, ``RIO_*``) are not here: our
``via=`` relays bytes with its own protocol (``_remote/via.py``).
"""

from __future__ import annotations

from execnet_cli.compat.commandlines import (
    Popen2IOMaster,
    create_io,
    popen_args,
    popen_bootstrapline,
    shell_split_path,
    ssh_args,
    vagrant_ssh_args,
)
from execnet_cli.compat.wire import Message, Popen2IO

__all__ = [
    "Message",
    "Popen2IO",
    "Popen2IOMaster",
    "create_io",
    "popen_args",
    "popen_bootstrapline",
    "shell_split_path",
    "ssh_args",
    "vagrant_ssh_args",
]
