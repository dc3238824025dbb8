"""Inventory formats, ours and Ansible's: from a YAML source's nodes to plain definitions.

The format is detected from the top level: ``all:`` means Ansible; ``groups:``, ``hosts:`` or
``vars:`` mean ours; anything else is read as Ansible's top-level groups. Both formats give
the same ``Definitions`` (groups with their hosts, children and variables, and per-host
variables, each with its ``Mark``); ``model.Inventory`` builds on them. Reading the YAML and
the node helpers are ``yaml_reader.py``; what a variable may hold is ``schema.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ..suggest import did_you_mean
from .fast_reader import bare_hosts
from .schema import InventoryError, Mark, Var, ansible_var, xnet_var
from .yaml_reader import NodeReader, describe, read_yaml

if TYPE_CHECKING:  # the node types only: PyYAML loads when a file needs it (yaml_reader)
    import yaml

__all__ = ["Definitions", "GroupDef", "read_inventory"]

_OUR_TOP = ("groups", "hosts", "vars")
_OUR_GROUP = ("hosts", "children", "vars", "priority")
_ANSIBLE_GROUP = ("hosts", "children", "vars")


@dataclass
class GroupDef:
    """A group as the sources define it; several definitions of one name merge."""

    name: str
    mark: Mark
    hosts: dict[str, None] = field(default_factory=dict)  # an ordered set
    children: dict[str, Mark] = field(default_factory=dict)
    vars: dict[str, Var] = field(default_factory=dict)
    priority: int = 0


@dataclass
class Definitions:
    """Everything read from all sources so far, in the order read (later files win)."""

    groups: dict[str, GroupDef] = field(default_factory=dict)
    host_vars: dict[str, dict[str, Var]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def group(self, name: str, mark: Mark) -> GroupDef:
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = GroupDef(name, mark)
        return group

    def add_hosts(self, group: GroupDef, names: list[str], hostvars: dict[str, Var]) -> None:
        group.hosts.update(dict.fromkeys(names))
        if hostvars:
            for name in names:
                self.host_vars.setdefault(name, {}).update(hostvars)


# ------------------------------------------------------------------ xnet's own format


def _host_entries(r: NodeReader, node: yaml.Node, defs: Definitions, group: GroupDef) -> None:
    """``hosts:`` as a string of ranges, a list of them, or a mapping range -> variables."""
    bare = bare_hosts(node)
    if bare is not None:
        group.hosts.update(dict.fromkeys(bare))
        return
    if node.id == "mapping":
        for key, knode, vnode in r.pairs(node, "host names"):
            names = r.expand(key, knode)
            defs.add_hosts(group, names, r.vars(vnode, xnet_var))
        return
    for text, item in r.words(node, "host names (a string or a list of strings)"):
        defs.add_hosts(group, r.expand(text, item), {})


def _read_xnet(r: NodeReader, root: yaml.MappingNode, defs: Definitions) -> None:
    all_group = defs.group("all", r.mark(root))
    for key, knode, vnode in r.pairs(root, "sections"):
        if key == "vars":
            all_group.vars.update(r.vars(vnode, xnet_var))
        elif key == "hosts":
            _host_entries(r, vnode, defs, all_group)
        elif key == "groups":
            for name, gknode, gnode in r.pairs(vnode, "groups"):
                _read_xnet_group(r, r.group_name(name, gknode), gknode, gnode, defs)
        else:
            hint = did_you_mean(key, _OUR_TOP)
            raise r.fail(knode, f"unknown section {key!r}{hint}; expected {', '.join(_OUR_TOP)}")


def _read_xnet_group(
    r: NodeReader, name: str, knode: yaml.Node, node: yaml.Node, defs: Definitions
) -> None:
    group = defs.group(name, r.mark(knode))
    for key, kn, vn in r.pairs(node, f"group {name!r} settings"):
        if key == "hosts":
            _host_entries(r, vn, defs, group)
        elif key == "children":
            for child, cnode in r.words(vn, "group names (a string or a list of strings)"):
                for piece in (p.strip() for p in child.split(",")):
                    if piece:
                        r.group_name(piece, cnode)
                        group.children.setdefault(piece, r.mark(cnode))
        elif key == "vars":
            group.vars.update(r.vars(vn, xnet_var))
        elif key == "priority":
            group.priority = r.priority(vn)
        else:
            hint = did_you_mean(key, _OUR_GROUP)
            raise r.fail(
                kn, f"unknown key {key!r} in group {name!r}{hint}; expected {', '.join(_OUR_GROUP)}"
            )


# ------------------------------------------------------------------ Ansible's format


def _split_port(text: str) -> tuple[str, Optional[str]]:
    """``host:2222`` -> (host, "2222"); a colon inside brackets belongs to a range."""
    colon = text.rfind(":")
    if colon == -1 or text.count(":", 0, colon) > text.count("[", 0, colon):
        return text, None
    port = text[colon + 1 :]
    return (text[:colon], port) if port.isdigit() else (text, None)


def _read_ansible_group(
    r: NodeReader,
    name: str,
    knode: yaml.Node,
    node: yaml.Node,
    defs: Definitions,
    parent: Optional[GroupDef],
) -> None:
    group = defs.group(name, r.mark(knode))
    if parent is not None and parent.name != "all":
        parent.children.setdefault(name, r.mark(knode))
    for key, kn, vn in r.pairs(node, f"group {name!r} sections"):
        if key == "hosts":
            bare = bare_hosts(vn)  # names without ':' (so without a port) or variables
            if bare is not None:
                group.hosts.update(dict.fromkeys(bare))
                continue
            for host, hk, hv in r.pairs(vn, "hosts"):
                host, port = _split_port(host)
                hostvars = r.vars(hv, ansible_var)
                if port is not None:
                    port_var = ansible_var("ansible_port", port, r.mark(hk))._replace(raw=port)
                    hostvars = {"ansible_port": port_var, **hostvars}
                defs.add_hosts(group, r.expand(host, hk), hostvars)
        elif key == "children":
            for child, ck, cv in r.pairs(vn, "child groups"):
                _read_ansible_group(r, r.group_name(child, ck), ck, cv, defs, group)
        elif key == "vars":
            found = r.vars(vn, ansible_var)
            prio = found.get("ansible_group_priority")
            if prio is not None:
                value_node = next(  # through merge keys too, as r.vars found it
                    v for k, _, v in r.pairs(vn, "variables") if k == "ansible_group_priority"
                )
                group.priority = r.priority(value_node, "ansible_group_priority")
            group.vars.update(found)
        else:
            hint = did_you_mean(key, _ANSIBLE_GROUP)
            raise r.fail(
                kn,
                f"unknown key {key!r} in group {name!r}{hint}; "
                f"expected {', '.join(_ANSIBLE_GROUP)}",
            )


def _read_ansible(r: NodeReader, root: yaml.MappingNode, defs: Definitions) -> None:
    defs.group("all", r.mark(root))
    for name, knode, node in r.pairs(root, "groups"):
        _read_ansible_group(r, r.group_name(name, knode), knode, node, defs, None)


# ------------------------------------------------------------------ entry point


def read_inventory(text: str, source: str, defs: Definitions) -> None:
    """Add one YAML source, in either format (``source`` names it in errors), to ``defs``."""
    read_yaml(text, source, lambda r, root: _read_root(r, root, defs))
    defs.sources.append(source)


def _read_root(r: NodeReader, root: Optional[yaml.Node], defs: Definitions) -> None:
    if r.is_null(root):
        raise InventoryError(
            "empty inventory: expected groups:, hosts: or vars:", Mark(r.source, 1, 1)
        )
    assert root is not None
    if root.id != "mapping":
        raise r.fail(root, f"expected a mapping at the top level, got {describe(root)}")
    keys = [k.value for k, _ in root.value if k.id == "scalar"]
    if "all" not in keys and set(keys) & set(_OUR_TOP):
        _read_xnet(r, root, defs)
        return
    if "all" not in keys:
        for k, _ in root.value:
            hint = did_you_mean(str(k.value), _OUR_TOP, cutoff=0.75)
            if hint and k.value not in _OUR_TOP:
                raise r.fail(k, f"unknown section {k.value!r}{hint}")
    _read_ansible(r, root, defs)
