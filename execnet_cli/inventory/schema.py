"""Inventory variables: their names, types and checks, ours and Ansible's.

Kept apart from the YAML reader so that the schema (what a variable may hold) is one table,
readable on its own. Every check receives the value and its file position, so an error points
at the value itself, however deep in the file it sits.

Two vocabularies map onto the same settings:

- xnet's own (``transport``, ``address`` ...): an unknown name is an error with a did-you-mean.
  Names starting with ``x_`` are free for the user and never checked.
- Ansible's (``ansible_host`` ...), plus ``xnet_<setting>`` for settings Ansible has no word for.
  Other names are the playbooks' own variables: kept, never checked, except an ``ansible_*`` or
  ``xnet_*`` name that is a near miss of one we know, which is almost surely a typo.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, Optional

from .._remote.errors import XnetError
from ..suggest import did_you_mean
from ..transports.ssh import names as sshnames

__all__ = [
    "ANSIBLE_UNUSED",
    "ANSIBLE_VARS",
    "SETTINGS",
    "TRANSPORTS",
    "InventoryError",
    "Mark",
    "Unsupported",
    "Var",
    "ansible_var",
    "are_names",
    "check_name",
    "is_name",
    "unused_notice",
    "xnet_var",
]

TRANSPORTS = ("popen", "ssh", "socket")
# A host or group name: no spaces or pattern characters, and no leading ~ or - (see check_name).
_NAME_CHARS = r"[^\s,:&!*?\[\](){}/~-][^\s,:&!*?\[\](){}/]*"
_NAME = re.compile(_NAME_CHARS + r"\Z")
_NAME_LINES = re.compile("(?:" + _NAME_CHARS + r"\n)*\Z")  # names, one a line
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Mark(NamedTuple):
    """A position in an inventory source; line and column are 1-based (0 = unknown).
    (A NamedTuple: a frozen dataclass costs ~3.5 M instructions to create, every start.)"""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


class InventoryError(XnetError, ValueError):
    """A malformed inventory: ``str()`` is ``file:line:column: what was expected``."""

    def __init__(self, message: str, mark: Optional[Mark] = None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark

    @property
    def file(self) -> Optional[str]:
        return self.mark.file if self.mark else None

    @property
    def line(self) -> int:
        return self.mark.line if self.mark else 0

    @property
    def column(self) -> int:
        return self.mark.column if self.mark else 0

    def __str__(self) -> str:
        return f"{self.mark}: {self.message}" if self.mark else self.message


class Var(NamedTuple):
    """One variable: ``key`` is the setting it feeds (None for user data), ``value`` the
    checked value, ``raw`` the value as written."""

    name: str
    key: Optional[str]
    value: Any
    mark: Mark
    raw: Any = None


class Unsupported(NamedTuple):
    """An Ansible connection we cannot speak; an error only if such a host is selected."""

    connection: str


def is_name(text: str) -> bool:
    return _NAME.match(text) is not None


def are_names(names: list[str]) -> bool:
    """``is_name`` of every one, with one regex match (the fast reader's bulk path).

    A name holding a newline would pass as two names, so the lines are counted too."""
    if not names:
        return True
    text = "\n".join(names) + "\n"
    return text.count("\n") == len(names) and _NAME_LINES.match(text) is not None


def check_name(name: Any, what: str, mark: Mark) -> str:
    """Host and group names must survive patterns and spec strings unchanged."""
    if not isinstance(name, str) or not name:
        raise InventoryError(f"expected a {what} name, got {_kind(name)}", mark)
    if not _NAME.match(name):
        raise InventoryError(
            f"{name!r} is not a valid {what} name (no spaces or any of , : & ! * ? [ ] ( ) "
            "{ } / and no leading ~ or -)",
            mark,
        )
    return name


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _string(value: Any, name: str, mark: Mark, *, word: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InventoryError(f"{name}: expected a string, got {_kind(value)}", mark)
    text = str(value)
    if not text:
        raise InventoryError(f"{name}: expected a non-empty string", mark)
    if "//" in text:
        raise InventoryError(f"{name}: '//' cannot appear in a spec value", mark)
    if word and text.split() != [text]:  # any whitespace (str.split splits on str.isspace)
        raise InventoryError(f"{name}: expected one word, without spaces", mark)
    return text


def _word(value: Any, name: str, mark: Mark) -> str:
    return _string(value, name, mark, word=True)


def _address(value: Any, name: str, mark: Mark) -> str:
    text = _word(value, name, mark)
    if text.startswith("-"):
        raise InventoryError(f"{name}: an address cannot start with '-'", mark)
    return _ssh_name(sshnames.host_name_error, text, name, mark)


def _user(value: Any, name: str, mark: Mark) -> str:
    return _ssh_name(sshnames.user_name_error, _word(value, name, mark), name, mark)


def _jump(value: Any, name: str, mark: Mark) -> str:
    return _ssh_name(sshnames.jump_error, _word(value, name, mark), name, mark)


def _ssh_name(rule: Callable[[str], Optional[str]], text: str, name: str, mark: Mark) -> str:
    """OpenSSH's rules for names that reach ssh and its ProxyCommand shell (``ssh/names.py``)."""
    problem = rule(text)
    if problem:
        raise InventoryError(f"{name}: {problem}", mark)
    return text


def _host_ref(value: Any, name: str, mark: Mark) -> str:
    return check_name(_word(value, name, mark), "host", mark)


def _number(value: Any, name: str, mark: Mark) -> float:
    if isinstance(value, str):
        try:
            value = float(value) if "." in value else int(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InventoryError(f"{name}: expected a number, got {_kind(value)}", mark)
    return value


def _port(value: Any, name: str, mark: Mark) -> int:
    port = _number(value, name, mark)
    if port != int(port) or not 1 <= port <= 65535:
        raise InventoryError(f"{name}: expected a port number 1-65535, got {value!r}", mark)
    return int(port)


def _timeout(value: Any, name: str, mark: Mark) -> float:
    seconds = _number(value, name, mark)
    if seconds <= 0:
        raise InventoryError(f"{name}: expected a positive number of seconds, got {value!r}", mark)
    return seconds


def _count(value: Any, name: str, mark: Mark) -> int:
    number = _number(value, name, mark)
    if number != int(number) or number < 0:
        raise InventoryError(f"{name}: expected a whole number >= 0, got {value!r}", mark)
    return int(number)


def _transport(value: Any, name: str, mark: Mark) -> str:
    text = _word(value, name, mark)
    if text not in TRANSPORTS:
        hint = did_you_mean(text, TRANSPORTS)
        raise InventoryError(
            f"{name}: unknown transport {text!r}{hint}; expected one of {', '.join(TRANSPORTS)}",
            mark,
        )
    return text


_TRUE = ("yes", "true", "on", "1")
_FALSE = ("no", "false", "off", "0")


def _bool(value: Any, name: str, mark: Mark) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    raise InventoryError(f"{name}: expected true or false, got {_kind(value)}", mark)


def _sudo(value: Any, name: str, mark: Mark) -> bool | str:
    """``true`` runs as root, ``false`` not at all, a string runs as that user."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE and not value.isdigit():
        return _bool(value, name, mark)
    return _word(value, name, mark)


def _env(value: Any, name: str, mark: Mark, marks: Optional[Mapping[str, Mark]] = None) -> dict:
    if not isinstance(value, Mapping):
        raise InventoryError(f"{name}: expected a mapping of NAME: value, got {_kind(value)}", mark)
    env: dict[str, str] = {}
    for key, val in value.items():
        where = (marks or {}).get(key, mark)
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise InventoryError(f"{name}: {key!r} is not an environment variable name", where)
        if isinstance(val, bool):
            val = "1" if val else "0"
        if val is None or isinstance(val, (Mapping, list)):
            raise InventoryError(f"{name}.{key}: expected a string, got {_kind(val)}", where)
        env[key] = _string(val, f"{name}.{key}", where) if val != "" else ""
    return env


#: ``-o`` keys that have a variable of their own: ``ssh_options`` may not set them.
_OWN_VARIABLE = {
    "hostname": "address",
    "port": "port",
    "user": "user",
    "identityfile": "identity_file",
    "proxyjump": "proxy_jump",
    "connecttimeout": "connect_timeout",
}


def _ssh_option(key: Any, raw: Any, name: str, mark: Mark) -> tuple[str, str]:
    """One OpenSSH option as ``ssh=-o Key=Value`` takes it (see ``ssh/settings.py``)."""
    if not isinstance(key, str) or isinstance(raw, (Mapping, list)) or raw is None:
        raise InventoryError(f"{name}: expected Key: value, got {key!r}: {_kind(raw)}", mark)
    text = ("yes" if raw else "no") if isinstance(raw, bool) else str(raw)
    from ..transports.ssh import settings as sshsettings  # on use: renderers import us

    try:
        option = sshsettings.parse_option(f"{key}={text}", "")
    except XnetError as exc:
        raise InventoryError(f"{name}: {str(exc).partition(': ')[2]}", mark) from None
    own = _OWN_VARIABLE.get(option[0])
    if own is not None:
        raise InventoryError(f"{name}: {key} has a variable of its own: use {own!r}", mark)
    return option


def _ssh_options(
    value: Any, name: str, mark: Mark, marks: Optional[Mapping[str, Mark]] = None
) -> tuple[tuple[str, str], ...]:
    """``ssh_options``: OpenSSH options by name, ``{StrictHostKeyChecking: accept-new}``."""
    if not isinstance(value, Mapping):
        got = _kind(value)
        raise InventoryError(f"{name}: expected a mapping of Option: value, got {got}", mark)
    return tuple(
        _ssh_option(key, raw, name, (marks or {}).get(key, mark)) for key, raw in value.items()
    )


def _ssh_args(value: Any, name: str, mark: Mark) -> tuple[tuple[str, str], ...]:
    """Ansible's ``ansible_ssh_common_args``/``_extra_args``: ssh flags (``-o K=V``, ``-J``,
    ``-i``, ...), the ones ``ssh=`` takes (see ``ssh/settings.py``)."""
    text = _string(value, name, mark)
    from ..transports.ssh import settings as sshsettings  # on use: renderers import us

    try:
        line = sshsettings.parse_command_line(f"{text} xnet-placeholder")
    except XnetError as exc:
        problem = str(exc).partition(": ")[2]
        if problem.startswith("more than one destination"):
            problem = "expected ssh flags only, not a destination"
        raise InventoryError(f"{name}: {problem}", mark) from None
    if line.config_file is not None:
        raise InventoryError(f"{name}: -F is not supported here (use ssh_config in ~/.ssh)", mark)
    return line.options


Check = Callable[..., Any]

#: xnet's settings and the check each value must pass.
SETTINGS: dict[str, Check] = {
    "transport": _transport,
    "address": _address,
    "port": _port,
    "user": _user,
    "identity_file": _word,
    "python": _string,
    "via": _host_ref,
    "relay": _host_ref,
    "proxy_jump": _jump,
    "sudo": _sudo,
    "env": _env,
    "chdir": _string,
    "connect_timeout": _timeout,
    "ssh_options": _ssh_options,
    "known_hosts_file": _word,
    "retries": _count,
}
#: Settings whose check also takes the positions of the mapping's keys.
_KEYED = ("env", "ssh_options")
_ALIASES = {"hostname": "address"}


def _ansible_connection(value: Any, name: str, mark: Mark) -> str | Unsupported:
    text = _word(value, name, mark)
    if text == "local":
        return "popen"
    if text in ("ssh", "paramiko", "paramiko_ssh", "smart"):
        return "ssh"
    return Unsupported(text)


def _ansible_python(value: Any, name: str, mark: Mark) -> Optional[str]:
    text = _string(value, name, mark)
    return None if text.startswith("auto") else text


#: Ansible's connection variables we understand: name -> (setting, check).
ANSIBLE_VARS: dict[str, tuple[str, Check]] = {
    "ansible_host": ("address", _address),
    "ansible_ssh_host": ("address", _address),
    "ansible_port": ("port", _port),
    "ansible_ssh_port": ("port", _port),
    "ansible_user": ("user", _user),
    "ansible_ssh_user": ("user", _user),
    "ansible_ssh_private_key_file": ("identity_file", _word),
    "ansible_private_key_file": ("identity_file", _word),
    "ansible_python_interpreter": ("python", _ansible_python),
    "ansible_connection": ("transport", _ansible_connection),
    "ansible_timeout": ("connect_timeout", _timeout),
    "ansible_ssh_timeout": ("connect_timeout", _timeout),
    "ansible_become": ("_become", _bool),
    "ansible_become_user": ("_become_user", _word),
    "ansible_ssh_retries": ("retries", _count),
    "ansible_ssh_common_args": ("_ssh_common_args", _ssh_args),
    "ansible_ssh_extra_args": ("_ssh_extra_args", _ssh_args),
    "ansible_host_key_checking": ("_host_key_checking", _bool),
    "ansible_ssh_host_key_checking": ("_host_key_checking", _bool),
}
_KEYS_ONLY = "xnet logs in with keys only (identity_file, the ssh agent)"
_BY_CHANNEL = "xnet moves files over its own channels (xnet rsync), not sftp or scp"
#: Ansible variables we know but do not use, and why: an inventory that sets one is told
#: so (``unused_notices``), since nothing in an inventory may be silently ignored.
ANSIBLE_UNUSED: dict[str, str] = {
    "ansible_password": _KEYS_ONLY,
    "ansible_ssh_pass": _KEYS_ONLY,
    "ansible_ssh_password": _KEYS_ONLY,
    "ansible_become_method": "xnet becomes another user with sudo only",
    "ansible_become_password": "sudo's password comes from $XNET_SUDO_PASSWORD",
    "ansible_become_pass": "sudo's password comes from $XNET_SUDO_PASSWORD",
    "ansible_become_exe": "xnet runs sudo from the remote PATH",
    "ansible_become_flags": "xnet runs sudo with its own flags",
    "ansible_shell_type": "xnet runs no remote shell of its choosing (sh -c for xnet sh)",
    "ansible_shell_executable": "xnet runs no remote shell of its choosing (sh -c for xnet sh)",
    "ansible_sftp_extra_args": _BY_CHANNEL,
    "ansible_scp_extra_args": _BY_CHANNEL,
    "ansible_ssh_transfer_method": _BY_CHANNEL,
    "ansible_ssh_pipelining": "xnet always runs one worker over one ssh session",
    "ansible_pipelining": "xnet always runs one worker over one ssh session",
    "ansible_ssh_executable": "xnet speaks ssh itself; no ssh program is run",
    "ansible_network_os": "network devices are not supported",
    "ansible_remote_tmp": "xnet writes no temporary files on hosts",
}
#: Ansible variables we know and leave to others (``ansible_group_priority`` is read by
#: ``formats``), kept in ``Host.vars``.
_ANSIBLE_IGNORED = frozenset([*ANSIBLE_UNUSED, "ansible_group_priority"])


def unused_notice(var: Var) -> Optional[str]:
    """What to tell about a variable we know but do not use (None: it is used, or its
    value is what we do anyway)."""
    why = ANSIBLE_UNUSED.get(var.name)
    if why is None or (var.name == "ansible_become_method" and "sudo" in (var.value, var.raw)):
        return None
    return f"{var.mark}: {var.name} is not used: {why}"


_NEAR_MISS = 0.88


def xnet_var(name: str, value: Any, mark: Mark, marks: Optional[Mapping[str, Mark]] = None) -> Var:
    """Check one variable written in xnet's own format (``mark`` is the value's position)."""
    key = _ALIASES.get(name, name)
    check = SETTINGS.get(key)
    if check is not None:
        if value is None:
            return Var(name, key, None, mark)
        args = (marks,) if key in _KEYED else ()
        return Var(name, key, check(value, name, mark, *args), mark)
    if name.startswith("x_"):
        return Var(name, None, value, mark)
    if name in ANSIBLE_VARS:
        hint = f" (in xnet's format it is {ANSIBLE_VARS[name][0]!r})"
    else:
        hint = did_you_mean(name, [*SETTINGS, *_ALIASES])
    raise InventoryError(
        f"unknown variable {name!r}{hint}; known: {', '.join(SETTINGS)} "
        "(names of your own start with x_)",
        mark,
    )


def ansible_var(
    name: str, value: Any, mark: Mark, marks: Optional[Mapping[str, Mark]] = None
) -> Var:
    """Check one variable of an Ansible inventory: map what we know, keep the rest."""
    if name in ANSIBLE_VARS:
        key, check = ANSIBLE_VARS[name]
        return Var(name, key, None if value is None else check(value, name, mark), mark)
    if name.startswith("xnet_"):
        try:
            var = xnet_var(name[5:], value, mark, marks)
        except InventoryError as exc:
            if exc.message.startswith("unknown variable"):
                hint = did_you_mean(name, [f"xnet_{k}" for k in SETTINGS])
                raise InventoryError(f"unknown variable {name!r}{hint}", mark) from None
            raise
        if var.key is None:
            raise InventoryError(f"unknown variable {name!r}", mark)
        return var._replace(name=name)
    if name.startswith("ansible_") and name not in _ANSIBLE_IGNORED:
        hint = did_you_mean(name, [*ANSIBLE_VARS, *_ANSIBLE_IGNORED], n=1, cutoff=_NEAR_MISS)
        if hint:
            raise InventoryError(f"unknown variable {name!r}{hint}", mark)
    return Var(name, None, value, mark)
