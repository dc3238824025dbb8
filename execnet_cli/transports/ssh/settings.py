"""The ``ssh=`` value of a spec, OpenSSH options and ``ssh_config`` files → ``SSHSettings``.

execnet passes its ``ssh=`` value to the OpenSSH client, so specs in the wild carry
OpenSSH flags: ``ssh=-p 2222 -i KEY -o StrictHostKeyChecking=accept-new user@host``.
We accept those (and ``[user@]host[:port]``, ``ssh://user@host:port``) and merge them
with the config files as OpenSSH does: the command line comes first, then ``-F`` (or
``ssh_config=``) or else ``~/.ssh/config`` and ``/etc/ssh/ssh_config``; for each key
the first value obtained wins (identity files accumulate). Mechanically, the command
line becomes a leading ``Host *`` block and paramiko's ``SSHConfig`` does the lookup,
so ``%h``/``%p``/``%r`` tokens see the merged values.

A flag or ``-o`` option we do not implement is a ``SpecError`` naming it: silently
ignoring e.g. ``-o ForwardAgent=yes`` would surprise. Keys in config files that we do
not implement are ignored, as config files are shared with OpenSSH (see docs/ssh.md).

No network I/O here; ``load_config_text`` reads files, everything else is pure.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
from typing import Dict, List, Optional, Sequence, Tuple

from ...errors import SpecError
from ...records import Record
from .config import load_config_text, lookup
from .names import (
    check_host_name,
    check_jump,
    check_user_name,
    expand_proxy_command,
)

#: ``-o`` keys we implement (lower case), with what they mean to us (for the error text).
SUPPORTED_OPTIONS: Dict[str, str] = {
    "hostname": "the real host name or address",
    "user": "the remote user",
    "port": "the remote port",
    "identityfile": "a private key file (may repeat)",
    "identitiesonly": "only the identity files, no other agent keys",
    "identityagent": "ssh-agent socket path, SSH_AUTH_SOCK or none",
    "stricthostkeychecking": (
        "yes/ask (refuse unknown keys; xnet run asks once under ask), accept-new/no (record)"
    ),
    "userknownhostsfile": "known_hosts files (first one records accepted keys)",
    "globalknownhostsfile": "system known_hosts files",
    "hashknownhosts": "hash host names when recording keys",
    "connecttimeout": "seconds for TCP connect and ssh handshake",
    "proxyjump": "jump hosts: [user@]host[:port][,...]",
    "proxycommand": "a command whose stdin/stdout reach the server",
    "compression": "zlib compression (off by default: it is slower on fast links)",
    "addressfamily": "any, inet or inet6",
    "serveraliveinterval": "seconds between keepalive messages",
    "batchmode": "yes (we never prompt for ssh credentials anyway)",
    "loglevel": "accepted, without effect (we log through the logging module)",
    "passwordauthentication": "no (only public keys are used)",
    "kbdinteractiveauthentication": "no (only public keys are used)",
    "pubkeyauthentication": "yes",
    "preferredauthentications": "publickey",
}
#: Keys whose value must be exactly one of these for us to accept it.
FIXED_VALUES: Dict[str, Tuple[str, ...]] = {
    "batchmode": ("yes",),
    "passwordauthentication": ("no",),
    "kbdinteractiveauthentication": ("no",),
    "pubkeyauthentication": ("yes",),
    "preferredauthentications": ("publickey",),
}
#: Flags that take an argument, and the option each stands for.
FLAG_OPTIONS = {"-p": "port", "-i": "identityfile", "-l": "user", "-J": "proxyjump"}
#: Flags without an argument that describe what we always do anyway.
NOOP_FLAGS = {"-q": "quiet", "-T": "no tty", "-x": "no X11", "-a": "no agent forwarding"}
SWITCH_FLAGS = {
    "-C": ("compression", "yes"),
    "-4": ("addressfamily", "inet"),
    "-6": ("addressfamily", "inet6"),
}

DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
MAX_JUMP_DEPTH = 8


class CommandLine(Record):
    """The ``ssh=`` value taken apart (the ssh target): destination, options in order,
    ``-F`` file (a ``Record``: a frozen value, as the dataclass it was)."""

    __slots__ = ("host", "options", "config_file")  # noqa: RUF023 (the order __init__ takes)
    host: str
    options: Tuple[Tuple[str, str], ...]
    config_file: Optional[str]

    def __init__(
        self,
        host: str,
        options: Tuple[Tuple[str, str], ...] = (),
        config_file: Optional[str] = None,
    ) -> None:
        self._set(host, options, config_file)

    def render(self) -> str:
        """The ``ssh=`` value for this target, quoted so that it parses back the same."""
        flags = {option: flag for flag, option in FLAG_OPTIONS.items()}
        words: List[str] = []
        for key, value in self.options:
            words += [flags[key], value] if key in flags else ["-o", f"{key}={value}"]
        if self.config_file is not None:
            words += ["-F", self.config_file]
        return shlex.join([*words, self.host])


class SSHSettings(Record):
    """Everything needed to reach one host (``jump``: the hop to tunnel through).

    A ``Record`` (a frozen value, as the dataclass it was: ~8 M instructions less of every
    ``xnet`` start); ``replace`` makes a copy with some fields changed."""

    __slots__ = (  # noqa: RUF023 (the order __init__ takes them)
        "host",
        "hostname",
        "port",
        "user",
        "identity_files",
        "identities_only",
        "identity_agent",
        "strict_host_key_checking",
        "user_known_hosts_files",
        "global_known_hosts_files",
        "hash_known_hosts",
        "connect_timeout",
        "jump",
        "proxy_command",
        "compression",
        "address_family",
        "server_alive_interval",
    )
    host: str
    hostname: str
    port: int
    user: str
    identity_files: Tuple[str, ...]
    identities_only: bool
    identity_agent: Optional[str]
    strict_host_key_checking: str
    user_known_hosts_files: Tuple[str, ...]
    global_known_hosts_files: Tuple[str, ...]
    hash_known_hosts: bool
    connect_timeout: Optional[float]
    jump: Optional[SSHSettings]
    proxy_command: Optional[str]
    compression: bool
    address_family: str
    server_alive_interval: float

    def __init__(
        self,
        host: str,
        hostname: str,
        port: int,
        user: str,
        identity_files: Tuple[str, ...] = (),
        identities_only: bool = False,
        identity_agent: Optional[str] = None,
        strict_host_key_checking: str = "ask",
        user_known_hosts_files: Tuple[str, ...] = DEFAULT_USER_KNOWN_HOSTS,
        global_known_hosts_files: Tuple[str, ...] = DEFAULT_GLOBAL_KNOWN_HOSTS,
        hash_known_hosts: bool = False,
        connect_timeout: Optional[float] = None,
        jump: Optional[SSHSettings] = None,
        proxy_command: Optional[str] = None,
        compression: bool = False,
        address_family: str = "any",
        server_alive_interval: float = 0.0,
    ) -> None:
        self._set(
            *(host, hostname, port, user, identity_files, identities_only, identity_agent),
            *(strict_host_key_checking, user_known_hosts_files, global_known_hosts_files),
            *(hash_known_hosts, connect_timeout, jump, proxy_command, compression),
            *(address_family, server_alive_interval),
        )

    def describe(self) -> str:
        """``user@host`` plus ``:port`` when not 22 (the name used in messages)."""
        where = self.host if self.port == 22 else f"{self.host}:{self.port}"
        return f"{self.user}@{where}"

    @property
    def known_hosts_files(self) -> Tuple[str, ...]:
        """The user's known_hosts files, then the system's, as OpenSSH reads them."""
        return (*self.user_known_hosts_files, *self.global_known_hosts_files)

    @property
    def known_hosts_name(self) -> str:
        """The name known_hosts files use for this server, as OpenSSH writes it."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


# -- the command line --------------------------------------------------------------------


def parse_command_line(value: str) -> CommandLine:
    """Split an execnet ``ssh=`` value into destination, options and ``-F`` file."""
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise SpecError(f"ssh={value!r}: {exc}") from None
    options: List[Tuple[str, str]] = []
    config_file: Optional[str] = None
    destination: Optional[str] = None
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("-") or word == "-":
            if destination is not None:
                raise SpecError(
                    f"ssh={value!r}: more than one destination ({destination!r}, {word!r}); "
                    "a remote command cannot be given (the worker is the command)"
                )
            destination = word
            continue
        flag, attached = word[:2], word[2:]
        if flag in FLAG_OPTIONS or flag in ("-o", "-F"):
            if attached:
                argument = attached
            elif index < len(words):
                argument = words[index]
                index += 1
            else:
                raise SpecError(f"ssh={value!r}: {flag} needs an argument")
            if flag == "-F":
                config_file = argument
            elif flag == "-o":
                options.append(parse_option(argument, value))
            else:
                options.append((FLAG_OPTIONS[flag], argument))
            continue
        for letter in word[1:]:  # grouped switches, e.g. -qT
            switch = "-" + letter
            if switch in SWITCH_FLAGS:
                options.append(SWITCH_FLAGS[switch])
            elif switch not in NOOP_FLAGS:
                raise SpecError(
                    f"ssh={value!r}: the ssh flag {switch} is not supported; supported: "
                    f"{', '.join(sorted([*FLAG_OPTIONS, '-o', '-F', *SWITCH_FLAGS, *NOOP_FLAGS]))}"
                )
    if destination is None:
        raise SpecError(f"ssh={value!r}: no host given")
    user, host, port = split_destination(destination, value)
    if user is not None:
        options.insert(0, ("user", user))
    if port is not None:
        options.insert(0, ("port", port))
    check_conflicts(options, value)
    check_names(host, options, value)
    return CommandLine(host, tuple(options), config_file)


def parse_option(argument: str, value: str) -> Tuple[str, str]:
    """``Key=Value`` or ``Key Value`` of ``-o``, validated against what we implement."""
    match = re.match(r"\s*(\w+)(?:\s*=\s*|\s+)(.*)$", argument, re.DOTALL)
    if not match or not match.group(2).strip():
        raise SpecError(f"ssh={value!r}: -o {argument!r} is not Key=Value")
    key, raw = match.group(1), match.group(2).strip()
    lower = key.lower()
    if lower not in SUPPORTED_OPTIONS:
        raise SpecError(
            f"ssh={value!r}: the ssh option {key} is not supported; supported: "
            + ", ".join(sorted(SUPPORTED_OPTIONS))
        )
    allowed = FIXED_VALUES.get(lower)
    if allowed is not None and raw.lower() not in allowed:
        raise SpecError(f"ssh={value!r}: {key}={raw} is not supported ({SUPPORTED_OPTIONS[lower]})")
    if "\n" in raw or "\r" in raw:
        raise SpecError(f"ssh={value!r}: -o {key} has a line break")
    return lower, raw


def split_destination(dest: str, value: str) -> Tuple[Optional[str], str, Optional[str]]:
    """``[user@]host[:port]``, ``[user@][v6addr]:port`` or ``ssh://[user@]host[:port]``."""
    text = dest[len("ssh://") :] if dest.startswith("ssh://") else dest
    user = None
    if "@" in text:
        user, _, text = text.rpartition("@")
    port = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise SpecError(f"ssh={value!r}: bad address {dest!r}")
        port = rest[1:] or None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host = text  # a bare IPv6 address has several colons
    if not host or user == "":
        raise SpecError(f"ssh={value!r}: bad destination {dest!r}")
    return user, host, port


def check_conflicts(options: Sequence[Tuple[str, str]], value: str) -> None:
    """Two different values for one key on one command line are a mistake, not a choice."""
    seen: Dict[str, str] = {}
    for key, raw in options:
        if key == "identityfile":
            continue
        if key in seen and seen[key] != raw:
            raise SpecError(f"ssh={value!r}: {key} given twice ({seen[key]!r} and {raw!r})")
        seen[key] = raw


def check_names(host: str, options: Sequence[Tuple[str, str]], value: str) -> None:
    """Host and user names as OpenSSH accepts them (see ``names``), before any lookup."""
    where = f"ssh={value!r}"
    check_host_name(host, where)
    for key, raw in options:
        if key == "user":
            check_user_name(raw, where)
        elif key == "hostname":
            check_host_name(raw, f"{where}: HostName")
        elif key == "proxyjump" and raw.lower() != "none":
            check_jump(raw, where)


# -- resolving -------------------------------------------------------------------------


def resolve(line: CommandLine, config_text: str = "", *, _depth: int = 0) -> SSHSettings:
    """Merge the command line with the config for ``line.host`` into settings."""
    check_host_name(line.host, "ssh host")  # before Match exec or tokens can see it
    block = ["Host *"] + [f"{key} {raw}" for key, raw in line.options]
    found = lookup(config_text, line.host, "\n".join(block))
    return settings_from_lookup(line, found, config_text, _depth)


def settings_from_lookup(
    line: CommandLine, found: Dict[str, object], config_text: str, depth: int
) -> SSHSettings:
    host = line.host
    where = f"ssh host {host!r}"

    def text(key: str) -> Optional[str]:
        value = found.get(key)
        return None if value is None else str(value).strip()

    port = parse_int(text("port") or "22", "Port", where, 1, 65535)
    checking = (text("stricthostkeychecking") or "ask").lower()
    policies = {"yes": "yes", "ask": "ask", "accept-new": "accept-new", "no": "no", "off": "no"}
    if checking not in policies:
        raise SpecError(f"{where}: StrictHostKeyChecking={checking} is not understood")
    family = (text("addressfamily") or "any").lower()
    if family not in ("any", "inet", "inet6"):
        raise SpecError(f"{where}: AddressFamily={family} is not understood")
    timeout = text("connecttimeout")
    alive = text("serveraliveinterval")
    agent = text("identityagent")
    files = found.get("identityfile") or []
    assert isinstance(files, list)
    proxy_command = text("proxycommand")
    proxy_jump = text("proxyjump")
    if proxy_jump is not None and proxy_jump.lower() == "none":
        proxy_jump = None
    if proxy_command is not None and proxy_command.lower() == "none":
        proxy_command = None
    if proxy_jump and any(
        jumps_to_itself(hop, proxy_jump, host, port) for hop in proxy_jump.split(",")
    ):
        proxy_jump = None  # `Host *.lab / ProxyJump gate.lab` also matches gate.lab itself
    if proxy_jump and proxy_command:  # the first one obtained wins, as in OpenSSH
        given = {key for key, _ in line.options}
        if "proxyjump" in given and "proxycommand" not in given:
            proxy_command = None
        elif "proxycommand" in given and "proxyjump" not in given:
            proxy_jump = None
        else:
            raise SpecError(f"{where}: both ProxyJump and ProxyCommand are set; choose one")
    settings = SSHSettings(
        host=host,
        hostname=text("hostname") or host,
        port=port,
        user=text("user") or getpass.getuser(),
        identity_files=tuple(os.path.expanduser(str(f)) for f in files),
        identities_only=yes_no(text("identitiesonly") or "no", "IdentitiesOnly", where),
        identity_agent=os.path.expanduser(agent) if agent else None,
        strict_host_key_checking=policies[checking],
        user_known_hosts_files=file_list(text("userknownhostsfile"), DEFAULT_USER_KNOWN_HOSTS),
        global_known_hosts_files=file_list(
            text("globalknownhostsfile"), DEFAULT_GLOBAL_KNOWN_HOSTS
        ),
        hash_known_hosts=yes_no(text("hashknownhosts") or "no", "HashKnownHosts", where),
        connect_timeout=parse_seconds(timeout, "ConnectTimeout", where) if timeout else None,
        proxy_command=proxy_command,
        compression=yes_no(text("compression") or "no", "Compression", where),
        address_family=family,
        server_alive_interval=parse_seconds(alive, "ServerAliveInterval", where) if alive else 0.0,
    )
    check_host_name(settings.hostname, f"{where}: HostName")
    check_user_name(settings.user, f"{where}: User")
    if proxy_command:  # its tokens are expanded when it runs; a bad one is an error now
        proxy_command_line(settings)
    if proxy_jump:
        settings = settings.replace(jump=resolve_jumps(line, proxy_jump, config_text, depth))
    return settings


def jumps_to_itself(hop: str, value: str, host: str, port: int) -> bool:
    """Whether the ProxyJump ``hop`` is the host itself: same name and port (a jump host on
    another port of the same address is another server, as for OpenSSH)."""
    if not hop.strip():
        return False
    _, hop_host, hop_port = split_destination(hop.strip(), value)
    return hop_host == host and int(hop_port or 22) == port


def proxy_command_line(settings: SSHSettings) -> str:
    """The ProxyCommand to run: tokens expanded, each substituted value shell-quoted."""
    return expand_proxy_command(
        settings.proxy_command or "",
        host=settings.host,
        hostname=settings.hostname,
        port=settings.port,
        user=settings.user,
        where=f"ssh host {settings.host!r}",
    )


#: Command-line options a jump host inherits (keys, known hosts, policy, timeouts).
INHERITED = {
    "identityfile",
    "identitiesonly",
    "identityagent",
    "stricthostkeychecking",
    "userknownhostsfile",
    "globalknownhostsfile",
    "hashknownhosts",
    "connecttimeout",
    "addressfamily",
    "serveraliveinterval",
}


def resolve_jumps(line: CommandLine, value: str, config_text: str, depth: int) -> SSHSettings:
    """The last hop of ``ProxyJump a,b,...``; each hop tunnels through the one before."""
    if depth >= MAX_JUMP_DEPTH:
        raise SpecError(f"ssh host {line.host!r}: ProxyJump chain longer than {MAX_JUMP_DEPTH}")
    inherited = tuple((k, v) for k, v in line.options if k in INHERITED)
    previous: Optional[SSHSettings] = None
    for hop in (h.strip() for h in value.split(",")):
        if not hop:
            raise SpecError(f"ssh host {line.host!r}: empty hop in ProxyJump={value!r}")
        user, host, port = split_destination(hop, value)
        where = f"ssh host {line.host!r}: ProxyJump hop {hop!r}"
        check_host_name(host, where)
        if user is not None:
            check_user_name(user, where)
        options = list(inherited)
        if user is not None:
            options.insert(0, ("user", user))
        if port is not None:
            options.insert(0, ("port", port))
        hop_line = CommandLine(host, tuple(options))
        if previous is None:
            settings = resolve(hop_line, config_text, _depth=depth + 1)
        else:  # a later hop goes through the previous one, whatever its config says
            hop_line = CommandLine(host, (("proxyjump", "none"), *options))
            settings = resolve(hop_line, config_text, _depth=depth + 1).replace(jump=previous)
        previous = settings
    assert previous is not None
    return previous


def settings_for(value: str, ssh_config: Optional[str] = None) -> SSHSettings:
    """Settings for a spec's ``ssh=`` value and optional ``ssh_config=`` file."""
    return settings_for_line(parse_command_line(value), ssh_config)


def settings_for_line(line: CommandLine, ssh_config: Optional[str] = None) -> SSHSettings:
    """Settings for an ssh target (a parsed ``ssh=`` value, or one built from typed values
    by ``command_line``) and optional ``ssh_config=`` file."""
    if line.config_file and ssh_config and line.config_file != ssh_config:
        raise SpecError(
            f"ssh host {line.host!r}: -F {line.config_file} and ssh_config={ssh_config} differ"
        )
    return resolve(line, load_config_text(line.config_file or ssh_config))


def command_line(
    host: str,
    *,
    port: Optional[int] = None,
    user: Optional[str] = None,
    identity_file: Optional[str] = None,
    proxy_jump: Optional[str] = None,
    connect_timeout: Optional[float] = None,
    options: Sequence[Tuple[str, str]] = (),
) -> CommandLine:
    """An ssh target from typed values (an inventory host): no shell words to split, so a
    path with a space stays one path, and 1.5 seconds stay 1.5. ``options``: more ``-o``
    options, (lower-case key, value), after those."""
    given = (
        ("port", port),
        ("user", user),
        ("identityfile", identity_file),
        ("proxyjump", proxy_jump),
        ("connecttimeout", connect_timeout),
    )
    options = (*((key, str(value)) for key, value in given if value), *options)
    check_names(host, options, host)
    return CommandLine(host, options)


# -- value helpers ---------------------------------------------------------------------


def yes_no(value: str, key: str, where: str) -> bool:
    lowered = value.lower()
    if lowered in ("yes", "true"):
        return True
    if lowered in ("no", "false"):
        return False
    raise SpecError(f"{where}: {key}={value} is not yes or no")


def parse_int(value: str, key: str, where: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SpecError(f"{where}: {key}={value!r} is not a number") from None
    if not low <= number <= high:
        raise SpecError(f"{where}: {key}={number} is out of range")
    return number


def parse_seconds(value: str, key: str, where: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SpecError(f"{where}: {key}={value!r} is not a number of seconds") from None
    if number < 0:
        raise SpecError(f"{where}: {key} must not be negative")
    return number


def file_list(value: Optional[str], default: Tuple[str, ...]) -> Tuple[str, ...]:
    """A whitespace-separated list of files (``none``: no file)."""
    if value is None:
        return default
    names = shlex.split(value)
    if [n.lower() for n in names] == ["none"]:
        return ()
    return tuple(os.path.expanduser(n) for n in names)
