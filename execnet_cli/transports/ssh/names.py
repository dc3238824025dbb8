"""Which host and user names may reach ssh (OpenSSH's rules), and quoting for ProxyCommand.

A host name ends up in shell commands: ``ProxyCommand`` and ``Match exec`` run under
``/bin/sh`` with ``%h``/``%n`` substituted. OpenSSH therefore refuses, before reading any
config, a host name that starts with ``-`` or holds whitespace, a control character or any of
``' ` " $ \\ ; & < > | ( ) { } ,`` ("hostname contains invalid characters"), and a user name
that starts with ``-``, holds a control character or any of ``' ` " ; & < > | ( ) { }``,
whitespace before a ``-``, or ends in ``\\``. We apply the same rules to every name that comes
from a spec or an inventory (destination, user, ProxyJump hops), before any lookup or token
expansion, and again to the final values just before a ProxyCommand runs.

Second lock: ``expand_proxy_command`` shell-quotes each value it substitutes, so a name that
passes the rules but means something to the shell (``~root``, ``a*``, a user ``$HOME``)
reaches the command as one literal word.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from typing import Dict, Optional

from ...errors import SpecError

__all__ = [
    "check_host_name",
    "check_user_name",
    "expand_proxy_command",
    "host_name_error",
    "jump_error",
    "user_name_error",
]

HOST_FORBIDDEN = frozenset("'`\"$\\;&<>|(){},")
USER_FORBIDDEN = frozenset("'`\";&<>|(){}")
HOST_RULE = (
    "a host name must not start with '-' nor contain whitespace, control characters or any "
    "of ' ` \" $ \\ ; & < > | ( ) { } ,"
)
USER_RULE = (
    "a user name must not start with '-' nor contain control characters or any of "
    "' ` \" ; & < > | ( ) { }"
)
#: ProxyCommand's tokens, as in ssh_config(5): %% and these.
PROXY_TOKENS = ("h", "n", "p", "r")


def _control(char: str) -> bool:
    return unicodedata.category(char) == "Cc"


def _show(char: str) -> str:
    if _control(char):
        return f"a control character ({char!r})"
    if char.isspace():
        return f"whitespace ({char!r})"
    return repr(char)


def host_name_error(name: str) -> Optional[str]:
    """Why OpenSSH would refuse ``name`` as a host name (one sentence), or None."""
    if not name:
        return "the host name is empty"
    if name.startswith("-"):
        return f"host name {name!r} starts with '-' (it would be read as an option); {HOST_RULE}"
    for char in name:
        if char in HOST_FORBIDDEN or char.isspace() or _control(char):
            return f"host name {name!r} contains {_show(char)}; {HOST_RULE}"
    return None


def user_name_error(name: str) -> Optional[str]:
    """Why OpenSSH would refuse ``name`` as a remote user name (one sentence), or None."""
    if not name:
        return "the user name is empty"
    if name.startswith("-"):
        return f"user name {name!r} starts with '-' (it would be read as an option); {USER_RULE}"
    for index, char in enumerate(name):
        if char in USER_FORBIDDEN or _control(char):
            return f"user name {name!r} contains {_show(char)}; {USER_RULE}"
        if char.isspace() and name[index + 1 : index + 2] == "-":
            return f"user name {name!r} has whitespace before '-' (it could pass as an option)"
    if name.endswith("\\"):
        return f"user name {name!r} ends with '\\'"
    return None


def jump_error(value: str) -> Optional[str]:
    """The first bad host or user name among ``[user@]host[:port]`` hops of a ProxyJump list.

    Only the characters are judged here (``[``, ``]`` and ``:`` of an address or port are
    legal); the hop syntax itself is checked where the hops are parsed.
    """
    for hop in value.split(","):
        hop = hop.strip()
        if hop.startswith("ssh://"):
            hop = hop[len("ssh://") :]
        if not hop:
            continue  # an empty hop is a syntax error, reported where hops are parsed
        user, at, host = hop.rpartition("@")
        problem = (user_name_error(user) if at else None) or host_name_error(host)
        if problem:
            return f"ProxyJump hop {hop!r}: {problem}"
    return None


def _checked(value: str, problem: Optional[str], where: str) -> str:
    """``value``, or a ``SpecError`` saying where it came from and what is wrong with it."""
    if problem:
        raise SpecError(f"{where}: {problem}")
    return value


def check_host_name(name: str, where: str) -> str:
    return _checked(name, host_name_error(name), where)


def check_user_name(name: str, where: str) -> str:
    return _checked(name, user_name_error(name), where)


def check_jump(value: str, where: str) -> str:
    return _checked(value, jump_error(value), where)


def expand_proxy_command(
    template: str, *, host: str, hostname: str, port: int, user: str, where: str
) -> str:
    """``template`` with ``%%``, ``%h``, ``%n``, ``%p``, ``%r`` replaced, values shell-quoted.

    ``host`` is the name as given (``%n``), ``hostname`` the real one (``%h``). The names are
    checked first; an unknown token is an error, as in OpenSSH.
    """
    check_host_name(host, where)
    check_host_name(hostname, where)
    check_user_name(user, where)
    values: Dict[str, str] = {"%": "%", "h": hostname, "n": host, "p": str(port), "r": user}

    def substitute(match: re.Match[str]) -> str:
        token = match.group(1)
        if token not in values:
            shown = f"%{token}" if token else "a lone '%' at the end"
            raise SpecError(
                f"{where}: ProxyCommand {template!r}: unknown token {shown} (known: %%, "
                + ", ".join(f"%{t}" for t in PROXY_TOKENS)
                + ")"
            )
        return "%" if token == "%" else shlex.quote(values[token])

    return re.sub(r"%(.?)", substitute, template, flags=re.DOTALL)
