"""Reading inventory YAML, ours or Ansible's, into plain definitions with file positions.

We walk PyYAML's node graph (``compose``) rather than the constructed objects, because only
nodes remember where they came from: every group, host range and variable keeps its
``Mark``, so a bad value anywhere is reported at its own line and column. libyaml's parser is
used when present (it is several times faster on large inventories) and gives the same marks.

The format is detected from the top level: ``all:`` means Ansible; ``groups:``, ``hosts:`` or
``vars:`` mean ours; anything else is read as Ansible's top-level groups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import yaml

from .hostpattern import PatternError, expand_list
from .inventory_schema import (
    InventoryError,
    Mark,
    Var,
    ansible_var,
    check_name,
    did_you_mean,
    is_name,
    xnet_var,
)

__all__ = ["Definitions", "GroupDef", "read_yaml"]

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_EAGER = frozenset(k for k in yaml.SafeLoader.yaml_implicit_resolvers if k)


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader, with a shortcut in tag resolution, which dominates large files.

    A plain scalar whose first character no implicit resolver watches (most host names)
    can only be a string; the stock resolver reaches the same answer, more slowly.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            if not value:
                return _NULL
            if value[0] not in _EAGER:
                return _STR
        return super().resolve(kind, value, implicit)

    def descend_resolver(self, *args: Any) -> None:  # no path resolvers: nothing to track
        pass

    def ascend_resolver(self) -> None:
        pass


_OUR_TOP = ("groups", "hosts", "vars")
_OUR_GROUP = ("hosts", "children", "vars", "priority")
_ANSIBLE_GROUP = ("hosts", "children", "vars")
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_BRACKETS = re.compile(r"\[[^\]]*\]")


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


VarFn = Callable[..., Var]


class _Reader:
    """Node helpers bound to one source: positions, typed values, checked mappings."""

    def __init__(self, source: str, loader: Any) -> None:
        self.source = source
        self.loader = loader

    def mark(self, node: yaml.Node) -> Mark:
        return Mark(self.source, node.start_mark.line + 1, node.start_mark.column + 1)

    def fail(self, node: yaml.Node, message: str) -> InventoryError:
        return InventoryError(message, self.mark(node))

    def value(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    @staticmethod
    def is_null(node: Optional[yaml.Node]) -> bool:
        return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL)

    def pairs(self, node: yaml.Node, what: str) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping; duplicate keys are errors, not overrides.

        YAML merge keys (``<<: *defaults``, common in Ansible inventories) are honoured: the
        merged entries come first and the mapping's own entries override them.
        """
        if self.is_null(node):
            return
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"expected a mapping of {what}, got {_describe(node)}")
        if any(knode.tag == _MERGE for knode, _ in node.value):
            yield from self._merged_pairs(node, what)
            return
        seen: dict[str, yaml.Node] = {}
        for knode, vnode in node.value:
            key = self.key(knode, what)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise self.fail(knode, f"duplicate key {key!r} (first at line {first})")
            seen[key] = knode
            yield key, knode, vnode

    def _merged_pairs(
        self, node: yaml.MappingNode, what: str
    ) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        own = yaml.MappingNode(node.tag, [(k, v) for k, v in node.value if k.tag != _MERGE])
        for _ in self.pairs(own, what):  # duplicates among the mapping's own keys
            pass
        try:
            self.loader.flatten_mapping(node)
        except yaml.MarkedYAMLError as exc:
            raise _yaml_error(exc, self.source) from None
        latest = {self.key(k, what): (k, v) for k, v in node.value}
        for key, (knode, vnode) in latest.items():
            yield key, knode, vnode

    def key(self, knode: yaml.Node, what: str) -> str:
        if knode.tag == _STR:
            return str(knode.value)
        if isinstance(knode, yaml.ScalarNode):
            return str(self.value(knode))
        raise self.fail(knode, f"expected a name as key in {what}, got {_describe(knode)}")

    def words(self, node: yaml.Node, what: str) -> Iterator[tuple[str, yaml.Node]]:
        """Items of a comma-separated string or of a list of strings."""
        if self.is_null(node):
            return
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for item in items:
            if not isinstance(item, yaml.ScalarNode) or item.tag != _STR:
                raise self.fail(item, f"expected {what}, got {_describe(item)}")
            yield item.value, item

    def expand(self, text: str, node: yaml.Node) -> list[str]:
        """Host ranges of a scalar; a range error points inside the scalar when it can."""
        if "[" not in text and "," not in text and "]" not in text:
            self.check_host(text, node)
            return [text]
        try:
            names = expand_list(text)
        except PatternError as exc:
            mark = self.mark(node)
            one_line = node.start_mark.line == node.end_mark.line
            if one_line and exc.column:
                quoted = 1 if getattr(node, "style", None) in ("'", '"') else 0
                mark = Mark(mark.file, mark.line, mark.column + quoted + exc.column - 1)
            raise InventoryError(f"bad host range {text!r}: {exc.message}", mark) from None
        # Bracket values are letters or digits, so checking each comma-separated piece with
        # its ranges replaced by one digit checks every name the piece expands to; only on
        # failure are the real names checked, to name the culprit.
        for piece in _BRACKETS.sub("0", text).split(","):
            if piece.strip() and not is_name(piece.strip()):
                for name in names:
                    self.check_host(name, node)
        for name in names:
            if name in ("all", "ungrouped"):
                self.check_host(name, node)
        return names

    def check_host(self, name: str, node: yaml.Node) -> None:
        if name in ("all", "ungrouped"):
            raise self.fail(node, f"{name!r} is a group, not a host name")
        if not is_name(name):
            check_name(name, "host", self.mark(node))

    def vars(self, node: yaml.Node, fn: VarFn) -> dict[str, Var]:
        out: dict[str, Var] = {}
        keys: dict[str, str] = {}
        for name, knode, vnode in self.pairs(node, "variables"):
            marks = None
            if isinstance(vnode, yaml.MappingNode):
                marks = {
                    str(k.value): self.mark(v)
                    for k, v in vnode.value
                    if isinstance(k, yaml.ScalarNode)
                }
            where = self.mark(vnode) if not self.is_null(vnode) else self.mark(knode)
            value = self.value(vnode)
            try:
                var = fn(name, value, where, marks)
            except InventoryError as exc:
                if exc.message.startswith("unknown variable"):
                    exc.mark = self.mark(knode)  # point at the name, not the value
                raise
            if var.key and fn is xnet_var and var.key in keys:
                raise self.fail(knode, f"{name!r} and {keys[var.key]!r} set the same thing")
            if var.key:
                keys[var.key] = name
            out[name] = var._replace(raw=value)
        return out

    def priority(self, node: yaml.Node, name: str = "priority") -> int:
        value = self.value(node)
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(node, f"{name}: expected a whole number, got {_describe(node)}")
        return value


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    if node.tag == _STR:
        return f"the string {node.value!r}"
    return f"{node.value!r}"


def _group_name(r: _Reader, name: str, knode: yaml.Node) -> str:
    return check_name(name, "group", r.mark(knode))


# ------------------------------------------------------------------ xnet's own format


def _host_entries(r: _Reader, node: yaml.Node, defs: Definitions, group: GroupDef) -> None:
    """``hosts:`` as a string of ranges, a list of them, or a mapping range -> variables."""
    if isinstance(node, yaml.MappingNode):
        for key, knode, vnode in r.pairs(node, "host names"):
            names = r.expand(key, knode)
            defs.add_hosts(group, names, r.vars(vnode, xnet_var))
        return
    for text, item in r.words(node, "host names (a string or a list of strings)"):
        defs.add_hosts(group, r.expand(text, item), {})


def _read_xnet(r: _Reader, root: yaml.MappingNode, defs: Definitions) -> None:
    all_group = defs.group("all", r.mark(root))
    for key, knode, vnode in r.pairs(root, "sections"):
        if key == "vars":
            all_group.vars.update(r.vars(vnode, xnet_var))
        elif key == "hosts":
            _host_entries(r, vnode, defs, all_group)
        elif key == "groups":
            for name, gknode, gnode in r.pairs(vnode, "groups"):
                _read_xnet_group(r, _group_name(r, name, gknode), gknode, gnode, defs)
        else:
            hint = did_you_mean(key, _OUR_TOP)
            raise r.fail(knode, f"unknown section {key!r}{hint}; expected {', '.join(_OUR_TOP)}")


def _read_xnet_group(
    r: _Reader, name: str, knode: yaml.Node, node: yaml.Node, defs: Definitions
) -> None:
    group = defs.group(name, r.mark(knode))
    for key, kn, vn in r.pairs(node, f"group {name!r} settings"):
        if key == "hosts":
            _host_entries(r, vn, defs, group)
        elif key == "children":
            for child, cnode in r.words(vn, "group names (a string or a list of strings)"):
                for piece in (p.strip() for p in child.split(",")):
                    if piece:
                        _group_name(r, piece, cnode)
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
    r: _Reader,
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
            for host, hk, hv in r.pairs(vn, "hosts"):
                host, port = _split_port(host)
                hostvars = r.vars(hv, ansible_var)
                if port is not None:
                    port_var = ansible_var("ansible_port", port, r.mark(hk))._replace(raw=port)
                    hostvars = {"ansible_port": port_var, **hostvars}
                defs.add_hosts(group, r.expand(host, hk), hostvars)
        elif key == "children":
            for child, ck, cv in r.pairs(vn, "child groups"):
                _read_ansible_group(r, _group_name(r, child, ck), ck, cv, defs, group)
        elif key == "vars":
            found = r.vars(vn, ansible_var)
            prio = found.get("ansible_group_priority")
            if prio is not None:
                value_node = next(v for k, v in vn.value if k.value == "ansible_group_priority")
                group.priority = r.priority(value_node, "ansible_group_priority")
            group.vars.update(found)
        else:
            hint = did_you_mean(key, _ANSIBLE_GROUP)
            raise r.fail(
                kn,
                f"unknown key {key!r} in group {name!r}{hint}; "
                f"expected {', '.join(_ANSIBLE_GROUP)}",
            )


def _read_ansible(r: _Reader, root: yaml.MappingNode, defs: Definitions) -> None:
    defs.group("all", r.mark(root))
    for name, knode, node in r.pairs(root, "groups"):
        _read_ansible_group(r, _group_name(r, name, knode), knode, node, defs, None)


# ------------------------------------------------------------------ entry point


def _yaml_error(exc: yaml.MarkedYAMLError, source: str) -> InventoryError:
    mark = exc.problem_mark or exc.context_mark
    what = " ".join(p for p in (exc.context, exc.problem) if p) or "malformed YAML"
    where = Mark(source, mark.line + 1, mark.column + 1) if mark else Mark(source)
    return InventoryError(f"YAML syntax: {what}", where)


def read_yaml(text: str, source: str, defs: Definitions) -> None:
    """Add one YAML source (``source`` names it in errors) to ``defs``."""
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            raise _yaml_error(exc, source) from None
        except yaml.YAMLError as exc:
            raise InventoryError(f"YAML: {exc}", Mark(source)) from None
        defs.sources.append(source)
        r = _Reader(source, loader)
        if r.is_null(root):
            raise InventoryError(
                "empty inventory: expected groups:, hosts: or vars:", Mark(source, 1, 1)
            )
        if not isinstance(root, yaml.MappingNode):
            raise r.fail(root, f"expected a mapping at the top level, got {_describe(root)}")
        keys = [k.value for k, _ in root.value if isinstance(k, yaml.ScalarNode)]
        if "all" not in keys and set(keys) & set(_OUR_TOP):
            _read_xnet(r, root, defs)
            return
        if "all" not in keys:
            for k, _ in root.value:
                hint = did_you_mean(str(k.value), _OUR_TOP, cutoff=0.75)
                if hint and k.value not in _OUR_TOP:
                    raise r.fail(k, f"unknown section {k.value!r}{hint}")
        _read_ansible(r, root, defs)
    finally:
        loader.dispose()
