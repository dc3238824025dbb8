"""Inventories: which hosts exist, how to reach each, and which of them a pattern selects.

Variable precedence (lowest first; later wins), as in Ansible:

1. ``all``'s variables;
2. the host's groups, ordered by depth (a child group is deeper than its parent, so it wins),
   then by ``priority`` (``ansible_group_priority``), then by name (``b`` wins over ``a``);
3. the host's own variables (where a host is listed twice, the later listing wins).

``env`` merges key by key across those layers; every other setting is replaced whole, and a
``null`` resets it to the default. Several inventory files merge in the order given: groups
unite, and a later file's variable wins at the same level.

Where an inventory comes from is ``sources.py``; reading either format, ``formats.py``.
"""

from __future__ import annotations

import logging
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import FrozenInstanceError, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Optional, Union

from ..suggest import did_you_mean
from .formats import Definitions, read_inventory
from .hostset import HostSet
from .patterns import select
from .schema import ANSIBLE_UNUSED, InventoryError, Mark, Unsupported, Var, unused_notice
from .sources import find_inventories, read_sources

__all__ = ["DEFAULT_INVENTORY", "Host", "Inventory", "load_inventory"]

if TYPE_CHECKING:
    from ..spec import XSpec
    from ..transports.ssh.settings import CommandLine

DEFAULT_INVENTORY = """\
# xnet's embedded default inventory: one worker on this machine, started with popen.
groups:
  local:
    hosts: localhost
    vars:
      transport: popen
"""
DEFAULT_SOURCE = "<default inventory>"
log = logging.getLogger(__name__)


@dataclass(init=False, repr=False, eq=False)  # those four by hand, below: see the docstring
class Host:
    """One host's resolved settings: what the gateway layer needs to reach it.

    A frozen dataclass (``dataclasses.replace``, ``fields`` and ``asdict`` work on it) whose
    ``__init__``, ``__repr__``, ``__eq__``, ``__hash__`` and refusal to assign are written
    out rather than generated: generating and compiling them for its 18 fields was ~8 M
    instructions of every ``xnet`` start. They do what the generated ones did (``env``
    and ``vars`` out of the hash, ``vars`` out of the repr).
    """

    name: str
    groups: tuple[str, ...] = ()  # in the order their variables apply
    transport: str = "ssh"
    address: str = ""  # defaults to the name
    port: Optional[int] = None
    user: Optional[str] = None
    identity_file: Optional[str] = None
    python: Optional[str] = None
    via: Optional[str] = None
    relay: Optional[str] = None  # the host that opens this one in a relayed run (fleet.relays)
    proxy_jump: Optional[str] = None
    sudo: Union[bool, str] = False
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    chdir: Optional[str] = None
    connect_timeout: Optional[float] = None
    #: Connection attempts after a first that failed in a way that may pass (``--retries``).
    retries: Optional[int] = None
    #: More OpenSSH options, (lower-case key, value) as ``-o`` gives them; first wins.
    ssh_options: tuple[tuple[str, str], ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)

    def __init__(
        self,
        name: str,
        groups: tuple[str, ...] = (),
        transport: str = "ssh",
        address: str = "",
        port: Optional[int] = None,
        user: Optional[str] = None,
        identity_file: Optional[str] = None,
        python: Optional[str] = None,
        via: Optional[str] = None,
        relay: Optional[str] = None,
        proxy_jump: Optional[str] = None,
        sudo: Union[bool, str] = False,
        env: Optional[Mapping[str, str]] = None,
        chdir: Optional[str] = None,
        connect_timeout: Optional[float] = None,
        retries: Optional[int] = None,
        ssh_options: tuple[tuple[str, str], ...] = (),
        vars: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.__dict__.update(
            name=name,
            groups=groups,
            transport=transport,
            address=address or name,
            port=port,
            user=user,
            identity_file=identity_file,
            python=python,
            via=via,
            relay=relay,
            proxy_jump=proxy_jump,
            sudo=sudo,
            env={} if env is None else env,
            chdir=chdir,
            connect_timeout=connect_timeout,
            retries=retries,
            ssh_options=ssh_options,
            vars={} if vars is None else vars,
        )

    def _values(self, names: tuple[str, ...]) -> tuple[Any, ...]:
        return tuple(self.__dict__[name] for name in names)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values(_ALL_FIELDS) == other._values(_ALL_FIELDS)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values(_HASHED_FIELDS))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={self.__dict__[name]!r}" for name in _SHOWN_FIELDS)
        return f"{type(self).__qualname__}({shown})"  # without vars

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    @classmethod
    def _resolved(cls, name: str, groups: tuple[str, ...], fields: Mapping[str, Any]) -> Host:
        """A host from settings the inventory has checked, without the generated ``__init__``.

        That one writes each of the 15 frozen fields through ``object.__setattr__``; filling the
        instance dictionary at once is what makes resolving 10,000 hosts cheap. ``fields`` holds
        every field but ``name`` and ``groups`` (``address`` "" stands for the name).
        """
        host = object.__new__(cls)
        host.__dict__.update(fields, name=name, groups=groups)
        if not fields["address"]:
            host.__dict__["address"] = name
        return host

    def spec(self) -> str:
        """The execnet-style XSpec string for this host (``id`` is always the host name).

        Settings a transport cannot use are left out: ``port`` means nothing to popen, and
        ssh options (user, key, jump, timeout) only shape the ssh command line.
        """
        if self.transport == "popen":
            head = "popen"
        elif self.transport == "ssh":
            args: list[str] = []
            if self.port:
                args += ["-p", str(self.port)]
            if self.identity_file:
                args += ["-i", self.identity_file]
            if self.user:
                args += ["-l", self.user]
            if self.proxy_jump:
                args += ["-J", self.proxy_jump]
            if self.connect_timeout:
                args += ["-o", f"ConnectTimeout={math.ceil(self.connect_timeout)}"]
            for key, value in self.ssh_options:
                args += ["-o", shlex.quote(f"{key}={value}")]
            head = "ssh=" + " ".join([*args, self.address])
        else:
            address = f"[{self.address}]" if ":" in self.address else self.address
            head = f"socket={address}:{self.port}"
        parts = [head, f"id={self.name}"]
        if self.python and self.transport != "socket":
            parts.append(f"python={self.python}")
        if self.connect_timeout and self.transport != "ssh":  # ssh has it in its options
            parts.append(f"connect_timeout={self.connect_timeout:g}")
        if self.chdir:
            parts.append(f"chdir={self.chdir}")
        parts += [f"env:{k}={v}" for k, v in self.env.items()]
        if self.via:
            parts.append(f"via={self.via}")
        if self.sudo:
            parts.append("sudo=true" if self.sudo is True else f"sudo={self.sudo}")
        return "//".join(parts)

    def xspec(self) -> XSpec:
        """The gateway spec to open this host with, built from the fields themselves: no
        command line to split back apart (a path with a space stays one path, 1.5 seconds
        stay 1.5). Its string form is ``spec()``, for display."""
        from ..spec import XSpec, sudo_user
        from ..transports.opening import SpecFields

        ssh = self.ssh_target()
        socket = (self.address, self.port or 0) if self.transport == "socket" else None
        fields = SpecFields(
            text=self.spec(),
            kind=self.transport,
            id=self.name,
            python=self.python if self.transport != "socket" else None,
            chdir=self.chdir,
            via=self.via,
            sudo=sudo_user(self.sudo, f"host {self.name!r}"),
            connect_timeout=None if ssh else self.connect_timeout,  # ssh: in its target
            env=dict(self.env),
            ssh=ssh,
            socket=socket,
        )
        return XSpec.from_fields(fields)

    def ssh_target(self) -> Optional[CommandLine]:
        """The ssh destination and options of an ssh host (``xspec().fields.ssh``), None
        for another transport: ``xnet sh`` straight on ssh needs only this of its spec."""
        if self.transport != "ssh":
            return None
        from ..transports.ssh.settings import command_line

        return command_line(
            self.address,
            port=self.port,
            user=self.user,
            identity_file=self.identity_file,
            proxy_jump=self.proxy_jump,
            connect_timeout=self.connect_timeout,
            options=self.ssh_options,
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``: name, groups, resolved settings, spec, raw variables."""
        out: dict[str, Any] = {"name": self.name, "groups": list(self.groups)}
        for key in _SETTING_FIELDS:
            value = getattr(self, key)
            out[key] = dict(value) if key == "env" else value
        out["ssh_options"] = dict(self.ssh_options)
        out["spec"] = self.spec()
        out["vars"] = dict(self.vars)
        return out


#: Host's fields in order, and those its hash takes (not env, vars): read from the
#: dataclass's own field list, so a field added there is compared, hashed and shown.
_ALL_FIELDS = tuple(Host.__dataclass_fields__)
_HASHED_FIELDS = tuple(
    name for name, spec in Host.__dataclass_fields__.items() if spec.hash is not False
)
_SHOWN_FIELDS = tuple(name for name, spec in Host.__dataclass_fields__.items() if spec.repr)

#: The resolved settings (``as_dict`` lists them between groups and ssh_options).
_SETTING_FIELDS = _ALL_FIELDS[2:-2]


class _Merged:
    """Variables merged so far: raw values by name, settings by key, and ``env``."""

    __slots__ = ("env", "raw", "settings")

    def __init__(self, raw: dict[str, Any], settings: dict[str, Var], env: dict[str, str]):
        self.raw, self.settings, self.env = raw, settings, env

    def copy(self) -> _Merged:
        return _Merged(dict(self.raw), dict(self.settings), self.env)  # env is never mutated

    def apply(self, layer: Mapping[str, Var]) -> None:
        """Lay one level of variables over what is merged; ``env`` merges key by key."""
        for var in layer.values():
            self.raw[var.name] = var.raw
            if var.key == "env":
                self.env = {} if var.value is None else {**self.env, **var.value}
            elif var.key:
                self.settings[var.key] = var


class Inventory:
    """Hosts and groups from one or more sources, checked once, resolved per host on demand.

    Building checks the structure (unknown children, cycles); variables were checked while
    reading. Resolving a host (``host``/``hosts``) checks what needs the whole picture:
    ``via`` must name a known host without a loop and is for popen hosts only (the gateway
    layer relays popen workers; ssh hosts use ``proxy_jump``); socket hosts need a port.
    A resolved ``Host`` holds only what its transport uses (a popen worker has no user or
    port), so the dry run shows what will happen, not what was inherited; ``Host.vars``
    keeps the rest.
    """

    def __init__(self, defs: Definitions) -> None:
        self.sources = tuple(defs.sources)
        self._defs = defs.groups
        self._host_vars = defs.host_vars
        self._parents: dict[str, list[str]] = {name: [] for name in self._defs}
        for name, group in self._defs.items():
            for child, mark in group.children.items():
                self._check_child(name, child, mark)
                if name != "all":
                    self._parents[child].append(name)
        self._check_cycles()
        self._depth: dict[str, int] = {}
        self._ancestors: dict[str, frozenset[str]] = {}
        members: dict[str, HostSet] = {}
        for name in self._defs:
            self._members(name, members)
        self._direct: Optional[dict[str, tuple[str, ...]]] = None  # host -> groups listing it
        grouped = frozenset().union(
            *(m.names for g, m in members.items() if g not in ("all", "ungrouped"))
        )
        self.all = HostSet(
            grouped.union(*(self._defs[g].hosts for g in ("all", "ungrouped") if g in self._defs))
        )
        orphans = self.all.names - grouped
        members["all"] = self.all
        members["ungrouped"] = members.get("ungrouped", HostSet()) | orphans
        self.groups: Mapping[str, HostSet] = MappingProxyType(members)
        self._cache: dict[str, Host] = {}
        self._order: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._merged: dict[tuple[str, ...], _Merged] = {}
        self._shared: dict[tuple[str, ...], dict[str, Any]] = {}

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_text(cls, text: str, source: str = "<string>") -> Inventory:
        defs = Definitions()
        read_inventory(text, source, defs)
        return cls(defs)

    @classmethod
    def from_files(cls, paths: Sequence[Union[str, Path]]) -> Inventory:
        """Load and merge files in order; a directory stands for its ``*.yaml``/``*.yml``."""
        defs = Definitions()
        for text, source in read_sources(paths):
            read_inventory(text, source, defs)
        return cls(defs)

    @classmethod
    def default(cls) -> Inventory:
        return cls.from_text(DEFAULT_INVENTORY, DEFAULT_SOURCE)

    def _check_child(self, parent: str, child: str, mark: Mark) -> None:
        if child == "all":
            raise InventoryError(f"group {parent!r}: 'all' cannot be a child group", mark)
        if child not in self._defs:
            hint = did_you_mean(child, [g for g in self._defs if g != "all"])
            raise InventoryError(
                f"group {parent!r} lists unknown child group {child!r}{hint}", mark
            )

    def _check_cycles(self) -> None:
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        path: list[str] = []

        def visit(name: str) -> None:
            state[name] = 1
            path.append(name)
            for child, mark in self._defs[name].children.items():
                if state.get(child) == 1:
                    loop = [*path[path.index(child) :], child]
                    raise InventoryError(f"cycle in children: {' -> '.join(loop)}", mark)
                if child not in state:
                    visit(child)
            path.pop()
            state[name] = 2

        for name in self._defs:
            if name not in state:
                visit(name)

    def _members(self, name: str, memo: dict[str, HostSet]) -> HostSet:
        found = memo.get(name)
        if found is None:
            group = self._defs[name]
            names = set(group.hosts)
            for child in group.children:
                names.update(self._members(child, memo).names)
            found = memo[name] = HostSet(frozenset(names))
        return found

    def _depth_of(self, name: str) -> int:
        """Longest path from ``all``: a group is always deeper than each of its parents."""
        depth = self._depth.get(name)
        if depth is None:
            parents = self._parents.get(name, [])
            depth = 1 + max((self._depth_of(p) for p in parents), default=0)
            self._depth[name] = depth
        return depth

    def _ancestors_of(self, name: str) -> frozenset[str]:
        found = self._ancestors.get(name)
        if found is None:
            found = frozenset([name]).union(
                *(self._ancestors_of(p) for p in self._parents.get(name, []))
            )
            self._ancestors[name] = found
        return found

    # -- queries -----------------------------------------------------------------------

    def select(self, pattern: str = "all") -> HostSet:
        """The hosts a pattern selects; raises ``PatternError`` (never returns empty)."""
        return select(pattern, self.all, self.groups)

    def hosts(self, pattern: str = "all") -> list[Host]:
        """Resolved hosts for a pattern, in natural order (only those are resolved)."""
        host = self.host
        return [host(name) for name in self.select(pattern)]

    def host_groups(self, name: str) -> tuple[str, ...]:
        """Every group of a host but ``all``, in precedence order (depth, priority, name)."""
        if self._direct is None:
            lists: dict[str, list[str]] = {}
            for group in self._defs.values():
                if group.name != "all":
                    for host in group.hosts:
                        lists.setdefault(host, []).append(group.name)
            self._direct = {host: tuple(groups) for host, groups in lists.items()}
        direct = self._direct.get(name, ())
        found = self._order.get(direct)
        if found is None:  # hosts listed in the same groups share the answer
            names = frozenset().union(*(self._ancestors_of(g) for g in direct))
            found = tuple(sorted(names, key=self._precedence)) if direct else ("ungrouped",)
            self._order[direct] = found
        return found

    def _precedence(self, group: str) -> tuple[int, int, str]:
        prio = self._defs[group].priority if group in self._defs else 0
        return (self._depth_of(group), prio, group)

    def children(self, group: str) -> list[str]:
        """Direct child groups by name; ``all``'s are the top-level groups, then ``ungrouped``."""
        if group == "all":
            top = [g for g, ps in self._parents.items() if not ps and g not in ("all", "ungrouped")]
            return sorted(top) + (["ungrouped"] if self.groups["ungrouped"] else [])
        defined = self._defs.get(group)
        return sorted(defined.children) if defined else []

    def direct_hosts(self, group: str) -> HostSet:
        """Hosts listed in the group itself, not through its children."""
        if group == "ungrouped":
            return self.groups["ungrouped"]
        defined = self._defs.get(group)
        return HostSet(defined.hosts.keys()) if defined else HostSet()

    # -- resolution --------------------------------------------------------------------

    def _layers(self, name: str, groups: tuple[str, ...]) -> list[dict[str, Var]]:
        layers = [self._defs["all"].vars] if "all" in self._defs else []
        layers += [self._defs[g].vars for g in groups if g in self._defs]
        layers.append(self._host_vars.get(name, {}))
        return layers

    def _group_level(self, groups: tuple[str, ...]) -> _Merged:
        """``all`` and group variables merged, once per distinct list of groups."""
        merged = self._merged.get(groups)
        if merged is None:
            merged = _Merged({}, {}, {})
            for layer in self._layers("", groups)[:-1]:
                merged.apply(layer)
            self._merged[groups] = merged
        return merged

    def _setting(self, name: str, key: str) -> Optional[Var]:
        for layer in reversed(self._layers(name, self.host_groups(name))):
            for var in layer.values():
                if var.key == key:
                    return var
        return None

    def host(self, name: str) -> Host:
        """Resolve one host's settings; ``KeyError`` if it is not in the inventory."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        if name not in self.all.names:
            raise KeyError(name)
        groups = self.host_groups(name)
        own = self._host_vars.get(name)
        if own:
            merged = self._group_level(groups).copy()
            merged.apply(own)
            fields = self._fields(name, merged)
        else:  # the common case: everything comes from groups, so hosts share the work
            shared = self._shared.get(groups)
            if shared is None:
                shared = self._shared[groups] = self._fields(name, self._group_level(groups))
            fields = shared
        if fields["via"] is not None:
            via = self._via_var(name)
            self._check_via(name, via)
            if fields["transport"] == "socket":
                raise InventoryError(
                    self._via_misuse(name, fields["transport"], via.value), via.mark
                )
        if fields["relay"] is not None and fields["relay"] not in self.all:
            var = self._setting(name, "relay")
            hint = did_you_mean(fields["relay"], self.all.names)
            raise InventoryError(
                f"host {name!r}: relay names unknown host {fields['relay']!r}{hint}",
                var.mark if var else None,
            )
        host = self._cache[name] = Host._resolved(name, groups, fields)
        return host

    def _fields(self, name: str, merged: _Merged) -> dict[str, Any]:
        """Host fields but name and groups, from merged variables (address "" = the name)."""
        settings = merged.settings

        def get(key: str, default: Any = None) -> Any:
            var = settings.get(key)
            return default if var is None or var.value is None else var.value

        transport = get("transport", "ssh")
        if isinstance(transport, Unsupported):
            raise InventoryError(
                f"host {name!r}: ansible_connection {transport.connection!r} is not supported "
                "(xnet speaks popen, ssh and socket)",
                settings["transport"].mark,
            )
        if transport == "socket" and get("port") is None:
            where = settings["transport"].mark if "transport" in settings else None
            raise InventoryError(f"host {name!r}: transport socket needs a port", where)
        sudo = get("sudo")
        if sudo is None:
            sudo = (get("_become_user") or True) if get("_become") else False
        ssh = transport == "ssh"
        options: tuple[tuple[str, str], ...] = ()
        if ssh:
            options = (
                *(get("ssh_options") or ()),
                *(get("_ssh_common_args") or ()),
                *(get("_ssh_extra_args") or ()),
            )
            if get("known_hosts_file"):
                options += (("userknownhostsfile", get("known_hosts_file")),)
            if get("_host_key_checking") is not None:
                checking = "yes" if get("_host_key_checking") else "accept-new"
                options += (("stricthostkeychecking", checking),)
        return {
            "transport": transport,
            "address": get("address", ""),
            "port": None if transport == "popen" else get("port"),
            "user": get("user") if ssh else None,
            "identity_file": get("identity_file") if ssh else None,
            "python": None if transport == "socket" else get("python", "python3" if ssh else None),
            "via": get("via"),
            "relay": get("relay"),
            "proxy_jump": get("proxy_jump") if ssh else None,
            "sudo": sudo,
            "env": MappingProxyType(merged.env),
            "chdir": get("chdir"),
            "connect_timeout": get("connect_timeout"),
            "retries": get("retries"),
            "ssh_options": options,
            "vars": MappingProxyType(merged.raw),
        }

    @property
    def notices(self) -> list[str]:
        """One line per variable the inventory sets that xnet knows but does not use
        (Ansible's ``ansible_password``, ...), at its first position: nothing is ignored
        silently."""
        found: dict[str, str] = {}
        layers = [g.vars for g in self._defs.values()] + list(self._host_vars.values())
        for layer in layers:
            for name in ANSIBLE_UNUSED.keys() & layer.keys():
                notice = unused_notice(layer[name])
                if notice is not None and name not in found:
                    found[name] = notice
        return [found[name] for name in sorted(found)]

    def _via_misuse(self, name: str, transport: str, relay: str) -> str:
        """The gateway layer relays popen workers and ssh connections, not sockets."""
        return (
            f"host {name!r}: via cannot be combined with transport {transport} "
            f"(popen and ssh hosts can go via {relay!r})"
        )

    def _via_var(self, name: str) -> Var:
        var = self._setting(name, "via")
        assert var is not None
        return var

    def _check_via(self, name: str, first: Var) -> None:
        """``via`` must name a host of this inventory, and following it must end."""
        chain: list[str] = [name]
        var: Optional[Var] = first
        while var is not None and var.value is not None:
            relay = var.value
            if relay not in self.all:
                hint = did_you_mean(relay, self.all.names)
                raise InventoryError(
                    f"host {chain[-1]!r}: via names unknown host {relay!r}{hint}", var.mark
                )
            if relay in chain:
                loop = " -> ".join([*chain[chain.index(relay) :], relay])
                raise InventoryError(f"via loop: {loop}", first.mark)
            chain.append(relay)
            var = self._setting(relay, "via")


# ------------------------------------------------------------------ loading


def load_inventory(
    paths: Sequence[Union[str, Path]] = (),
    environ: Optional[Mapping[str, str]] = None,
    cwd: Optional[Path] = None,
    configured: Sequence[Union[str, Path]] = (),
) -> Inventory:
    """Find (see ``find_inventories``) and load the inventory the user means."""
    files, origin = find_inventories(paths, environ, cwd, configured)
    log.debug("inventory from %s: %s", origin, [str(f) for f in files] or DEFAULT_SOURCE)
    return Inventory.from_files(files) if files else Inventory.default()
