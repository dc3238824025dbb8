"""XSpec: execnet's gateway specification strings, ``key=value//key2//env:NAME=value``.

Parsed once. The attributes keep execnet's raw values (the string given, True for a bare
key, None when absent): execnet code and pytest-xdist read them, and xdist sets some
(``chdir``). ``fields`` holds the same settings typed and checked
(``transports.opening.SpecFields``: seconds as a float, ``nice`` as an int, the sudo user,
the ssh target, the socket address...), and is all the rest of the package reads. A bad
value is a SpecError naming the key when the spec is built or the attribute set.

Unlike execnet, an unknown key is an error that names it (a typo like ``pyhton=`` must
not silently start the default interpreter). Known keys not given read as None.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from typing import Any, Dict, List, Optional, Tuple, Union

from ._remote.execmodel import EXECMODELS
from .errors import SpecError
from .suggest import did_you_mean
from .transports.opening import SpecFields

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
    "forward_imports": "serve the worker's missing imports from these directories "
    "(os.pathsep-separated; bare: the main script's directory)",
}
#: The keys that name a transport, in the order the first one present wins.
TRANSPORT_KEYS = ("popen", "ssh", "socket", "vagrant_ssh")
#: Keys whose value is a plain string (a bare key or an empty value is an error).
TEXT_KEYS = ("python", "chdir", "id", "via", "installvia", "ssh_config", "secret_file")
#: What ``sudo=`` may name: a user as useradd allows it (no shell metacharacters).
USER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$")
TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")

Value = Union[str, bool, None]


class XSpec:
    """A parsed gateway specification; attributes are the keys, ``fields`` their typed form."""

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
    forward_imports: Value = None

    _spec: str
    _fields: SpecFields
    env: Dict[str, str]

    def __init__(self, string: str) -> None:
        if not isinstance(string, str) or not string:
            raise SpecError(f"empty gateway spec {string!r}")
        self._set_raw(string)
        where = f"spec {string!r}"
        typed: Dict[str, Any] = {"text": string, "env": self.env}
        for key in KNOWN_KEYS:
            value = self.__dict__.get(key)
            if value is not None:
                typed.update(parse_value(key, value, where))
        object.__setattr__(self, "_fields", SpecFields(kind=self._kind(), **typed))

    @classmethod
    def from_fields(cls, fields: SpecFields) -> XSpec:
        """A spec from typed values (an inventory host): nothing is parsed; ``fields.text``
        is its string form, for display. The execnet attributes are rendered from them."""
        spec = object.__new__(cls)
        object.__setattr__(spec, "_spec", fields.text)
        for key, value in raw_values(fields).items():
            object.__setattr__(spec, key, value)
        object.__setattr__(spec, "env", dict(fields.env))
        object.__setattr__(spec, "_fields", replace(fields, env=spec.env))
        return spec

    def _set_raw(self, string: str) -> None:
        """The execnet attributes from ``string``: unknown and duplicate keys refused."""
        object.__setattr__(self, "_spec", string)
        env: Dict[str, str] = {}
        for key, value in split_spec(string):
            if key.startswith("env:"):
                env[key[4:]] = str(value)
            else:
                object.__setattr__(self, key, value)
        object.__setattr__(self, "env", env)

    def __setattr__(self, name: str, value: Any) -> None:
        """Setting a key (pytest-xdist sets ``chdir``; a group sets ``id``) updates
        ``fields`` too, checked as at construction."""
        object.__setattr__(self, name, value)
        if name in KNOWN_KEYS:
            where = f"spec {self._spec!r}"
            updates = _unset(name) if value is None else parse_value(name, value, where)
            object.__setattr__(self, "_fields", replace(self._fields, kind=self._kind(), **updates))
        elif name == "env":
            object.__setattr__(self, "_fields", replace(self._fields, env=value))

    def __getattr__(self, name: str) -> None:
        # Only reached for names that are not keys: keep execnet's "unset is None"
        # for private probing, but make typos loud.
        raise AttributeError(f"XSpec has no key {name!r}")

    @property
    def fields(self) -> SpecFields:
        """The settings, typed and checked: what opening a gateway reads."""
        return self._fields

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

    def _kind(self) -> Optional[str]:
        for key in TRANSPORT_KEYS:
            if getattr(self, key):
                return key
        return None

    @property
    def transport(self) -> Optional[str]:
        """The transport key present in this spec, if any."""
        return self._fields.kind


#: The largest niceness increment that means anything (niceness spans -20..19).
NICE_RANGE = 40


def split_spec(string: str) -> List[Tuple[str, Union[str, bool]]]:
    """``key=value`` parts in order (a bare key is True); unknown and repeated keys refused."""
    parts: List[Tuple[str, Union[str, bool]]] = []
    seen = set()
    for part in string.split("//"):
        key, sep, raw = part.partition("=")
        if key.startswith("env:"):
            if not sep:
                raise SpecError(f"spec {string!r}: {key!r} needs a value (env:NAME=value)")
        elif key not in KNOWN_KEYS:
            raise SpecError(
                f"spec {string!r}: unknown key {key!r}{did_you_mean(key, KNOWN_KEYS)}; known "
                f"keys: {', '.join(sorted(KNOWN_KEYS))}, env:NAME"
            )
        elif key in seen:
            raise SpecError(f"spec {string!r}: duplicate key {key!r}")
        seen.add(key)
        parts.append((key, raw if sep else True))
    return parts


def raw_values(fields: SpecFields) -> Dict[str, Value]:
    """The execnet attributes (strings, True for a flag) that typed ``fields`` stand for."""
    from .transports.sockets import format_hostport

    raw: Dict[str, Value] = {}
    if fields.kind is not None:
        raw[fields.kind] = True
    if fields.ssh is not None:
        raw["ssh"] = fields.ssh.render()
    if fields.socket is not None:
        raw["socket"] = format_hostport(*fields.socket)
    for key in (*TEXT_KEYS, "execmodel"):
        raw[key] = getattr(fields, key)
    for key in ("spawn", "dont_write_bytecode"):
        raw[key] = True if getattr(fields, key) else None
    if fields.nice is not None:
        raw["nice"] = str(fields.nice)
    if fields.connect_timeout is not None:
        raw["connect_timeout"] = f"{fields.connect_timeout:g}"
    if fields.sudo is not None:
        raw["sudo"] = fields.sudo
    if fields.forward_imports is not None:
        raw["forward_imports"] = os.pathsep.join(fields.forward_imports) or True
    return raw


# -- typed values -------------------------------------------------------------------------


def parse_value(key: str, value: Value, where: str) -> Dict[str, Any]:
    """The ``SpecFields`` entries for ``key=value``; SpecError naming the key if it is bad."""
    if key in ("popen", "vagrant_ssh"):
        return {}
    if key in TEXT_KEYS:
        return {key: _text(key, value, where)}
    if key == "execmodel":
        model = _text(key, value, where)
        if model not in EXECMODELS:
            raise SpecError(f"{where}: execmodel={model!r} is not one of {', '.join(EXECMODELS)}")
        return {key: model}
    if key in ("spawn", "dont_write_bytecode"):
        return {key: _flag(key, value, where)}
    if key == "nice":
        increment = _number(int, key, value, where, "an integer")
        if not -NICE_RANGE <= increment <= NICE_RANGE:
            raise SpecError(
                f"{where}: nice={increment} is not between -{NICE_RANGE} and {NICE_RANGE}"
            )
        return {key: increment}
    if key == "connect_timeout":
        seconds = _number(float, key, value, where, "a number")
        if seconds <= 0:
            raise SpecError(f"{where}: connect_timeout must be positive")
        return {key: seconds}
    if key == "sudo":
        return {key: sudo_user(value, where)}
    if key == "ssh":
        from .transports.ssh.settings import parse_command_line

        if not isinstance(value, str) or not value.strip():
            raise SpecError(f"{where}: ssh= needs a host ([user@]host[:port])")
        return {key: parse_command_line(value)}
    if key == "socket":
        return {key: socket_address(value, where)}
    if key == "forward_imports":
        return {key: forward_roots(value, where)}
    raise AssertionError(f"no parser for spec key {key!r}")  # pragma: no cover


def _unset(key: str) -> Dict[str, Any]:
    """The ``SpecFields`` entries of a key set to None."""
    if key in ("popen", "vagrant_ssh"):
        return {}
    return {key: False if key in ("spawn", "dont_write_bytecode") else None}


def _text(key: str, value: Value, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(f"{where}: {key}= needs a value")
    return value


def _flag(key: str, value: Value, where: str) -> bool:
    if value is True or value is False:
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise SpecError(f"{where}: {key}={value!r} is not true or false")


def _number(kind: Any, key: str, value: Value, where: str, what: str) -> Any:
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    raise SpecError(f"{where}: {key}={value!r} is not {what}")


def sudo_user(value: Value, where: str) -> Optional[str]:
    """The user a ``sudo=`` value names (``true``: root); None for no sudo."""
    if value is None or value is False:
        return None
    text = "true" if value is True else value.strip()
    if text.lower() == "true":
        return "root"
    if text.lower() in ("", *FALSE_WORDS):
        return None
    if not USER_NAME.match(text):
        raise SpecError(f"{where}: sudo={value!r} is not a user name")
    return text


def forward_roots(value: Value, where: str) -> Optional[Tuple[str, ...]]:
    """``forward_imports``: the directories to serve imports from (absolute); () for the
    default (the main script's directory), None for ``false``."""
    if value is True or value is None or value is False:
        return () if value is True else None
    word = value.strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return () if word in TRUE_WORDS else None
    roots = []
    for directory in value.split(os.pathsep):
        absolute = os.path.abspath(os.path.expanduser(directory)) if directory else ""
        if not absolute or not os.path.isdir(absolute):
            raise SpecError(f"{where}: forward_imports: {directory!r} is not a directory")
        roots.append(absolute)
    return tuple(roots)


def socket_address(value: Value, where: str) -> Tuple[str, int]:
    """``socket=host:port`` (a bare ``socket``: any port on loopback, for installvia)."""
    from .transports.sockets import parse_hostport

    if value is True:
        return ("127.0.0.1", 0)
    try:
        return parse_hostport(str(value))
    except ValueError as exc:
        raise SpecError(f"{where}: socket= {exc}") from None
