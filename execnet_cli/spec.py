"""XSpec: execnet's gateway specification strings, ``key=value//key2//env:NAME=value``.

Unlike execnet, an unknown key is an error that names it (a typo like ``pyhton=`` must
not silently start the default interpreter). Known keys not given read as None.
"""

from __future__ import annotations

import difflib
from typing import Dict, Optional, Union

from .errors import SpecError

#: Keys a spec may carry, with what they mean (shown in errors and docs).
KNOWN_KEYS: Dict[str, str] = {
    "popen": "a local subprocess",
    "ssh": "an ssh connection: [user@]host[:port] or OpenSSH-style options and host",
    "socket": "a socket gateway server: host:port",
    "vagrant_ssh": "ssh into a vagrant machine (execnet compatibility)",
    "python": "the interpreter to start",
    "chdir": "the worker's working directory (created if missing)",
    "nice": "the worker's niceness increment",
    "dont_write_bytecode": "no .pyc files from the worker",
    "id": "the gateway id",
    "execmodel": "thread or main_thread_only",
    "via": "the id of a gateway to tunnel through",
    "installvia": "the id of a gateway in which to start a socket server",
    "ssh_config": "an OpenSSH client config file",
    "sudo": "run the worker through sudo (true, or a user name)",
    "connect_timeout": "seconds to wait for the connection and the worker",
    "secret_file": "file with the socket server secret (else $XNET_SECRET, ~/.config/xnet/secret)",
    "spawn": "popen: start a new interpreter, not a fork of the group's fork server",
}

Value = Union[str, bool, None]


class XSpec:
    """A parsed gateway specification; attributes are the keys."""

    popen: Value = None
    ssh: Value = None
    socket: Value = None
    vagrant_ssh: Value = None
    python: Value = None
    chdir: Value = None
    nice: Value = None
    dont_write_bytecode: Value = None
    id: Value = None
    execmodel: Value = None
    via: Value = None
    installvia: Value = None
    ssh_config: Value = None
    sudo: Value = None
    connect_timeout: Value = None
    secret_file: Value = None
    spawn: Value = None

    def __init__(self, string: str) -> None:
        self._spec = string
        self.env: Dict[str, str] = {}
        if not isinstance(string, str) or not string:
            raise SpecError(f"empty gateway spec {string!r}")
        seen = set()
        for part in string.split("//"):
            key, sep, raw = part.partition("=")
            value: Union[str, bool] = raw if sep else True
            if key.startswith("env:"):
                if not sep:
                    raise SpecError(f"spec {string!r}: {key!r} needs a value (env:NAME=value)")
                self.env[key[4:]] = raw
                continue
            if key not in KNOWN_KEYS:
                raise SpecError(_unknown_key_message(key, string))
            if key in seen:
                raise SpecError(f"spec {string!r}: duplicate key {key!r}")
            seen.add(key)
            setattr(self, key, value)

    def __getattr__(self, name: str) -> None:
        # Only reached for names that are not keys: keep execnet's "unset is None"
        # for private probing, but make typos loud.
        raise AttributeError(f"XSpec has no key {name!r}")

    def __repr__(self) -> str:
        return f"<XSpec {self._spec!r}>"

    def __str__(self) -> str:
        return self._spec

    def __hash__(self) -> int:
        return hash(self._spec)

    def __eq__(self, other: object) -> bool:
        return self._spec == getattr(other, "_spec", None)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def _samefilesystem(self) -> bool:
        return bool(self.popen) and self.chdir is None

    @property
    def transport(self) -> Optional[str]:
        """The transport key present in this spec, if any."""
        for key in ("popen", "ssh", "socket", "vagrant_ssh"):
            if getattr(self, key):
                return key
        return None


def _unknown_key_message(key: str, string: str) -> str:
    close = difflib.get_close_matches(key, list(KNOWN_KEYS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"spec {string!r}: unknown key {key!r}{hint}; known keys: "
        f"{', '.join(sorted(KNOWN_KEYS))}, env:NAME"
    )
