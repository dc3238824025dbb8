"""Reading inventory YAML, ours or Ansible's, into plain definitions with file positions.

We walk a node graph rather than constructed objects, because only nodes remember where they
came from: every group, host range and variable keeps its ``Mark``, so a bad value anywhere is
reported at its own line and column.

Two readers build that graph. PyYAML's ``compose`` (on libyaml when present) reads any YAML;
it is the authority on what a file means and where each part of it sits, but it builds a
Python object per node (and ``yaml.load`` is slower still: it composes the same nodes, then
constructs), which dominates large inventories: 10,000 hosts listed one a line are 30,000
nodes. The fast reader (``_fast_compose``) reads the subset of YAML inventories are written
in, one line at a time: block mappings and sequences, one-line flow collections, plain and
simple quoted scalars, comments. It gives the same nodes at the same positions (the tests
compare the two graphs, and the definitions read from them, marks included) and keeps each
mapping's entries as compact tuples, so a long list of bare host names is taken in bulk.
Anything outside the subset (anchors, tags, block scalars, multi-line scalars, tabs, ...)
makes it give up, and ``compose`` reads the file. When walking the fast graph finds an error,
the file is read again with ``compose`` and the error reported from there: errors are rare,
and their positions then come from libyaml. Errors found later, on the whole inventory
(cycles, ``via``, ...), point at marks kept while reading, which are the same either way.

The format is detected from the top level: ``all:`` means Ansible; ``groups:``, ``hosts:`` or
``vars:`` mean ours; anything else is read as Ansible's top-level groups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import yaml

from .hostpattern import PatternError, expand_list
from .schema import (
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
_HOST_NAMES = re.compile(r"(?:[^\s,:&!*?\[\](){}/~-][^\s,:&!*?\[\](){}/]*\n)*\Z")


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
    """Node helpers bound to one source: positions, typed values, checked mappings.

    Nodes are PyYAML's or the fast reader's: both have ``id`` (``scalar``, ``sequence``,
    ``mapping``), ``tag``, ``value`` and ``start_mark``/``end_mark``. ``loader`` is the PyYAML
    loader that composed them (it constructs values and flattens merge keys), or None for the
    fast reader's nodes.
    """

    def __init__(self, source: str, loader: Any = None) -> None:
        self.source = source
        self.loader = loader

    def mark(self, node: yaml.Node) -> Mark:
        return Mark(self.source, node.start_mark.line + 1, node.start_mark.column + 1)

    def fail(self, node: yaml.Node, message: str) -> InventoryError:
        return InventoryError(message, self.mark(node))

    def value(self, node: yaml.Node) -> Any:
        if self.loader is None:
            return _construct(node)
        return self.loader.construct_object(node, deep=True)

    @staticmethod
    def is_null(node: Optional[yaml.Node]) -> bool:
        return node is None or node.tag == _NULL

    def pairs(self, node: yaml.Node, what: str) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping; duplicate keys are errors, not overrides.

        YAML merge keys (``<<: *defaults``, common in Ansible inventories) are honoured: the
        merged entries come first and the mapping's own entries override them.
        """
        if self.is_null(node):
            return
        if node.id != "mapping":
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
        latest = {self.key(k, what): (k, v) for k, v in self._flatten(node, what)}
        for key, (knode, vnode) in latest.items():
            yield key, knode, vnode

    def _flatten(
        self, node: yaml.Node, what: str, active: frozenset[int] = frozenset()
    ) -> list[tuple[yaml.Node, yaml.Node]]:
        """A mapping's pairs with its merge keys resolved, lowest precedence first.

        As the YAML merge-key spec says: the mapping's own keys win over merged ones, and
        in ``<<: [*a, *b]`` the earlier mapping wins. (Done here rather than with PyYAML's
        ``flatten_mapping``, whose order changed between 6.0.3 and 6.0.4.)
        """
        if id(node) in active:
            raise self.fail(node, f"a merge key in {what} refers to the mapping itself")
        active = active | {id(node)}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        own: list[tuple[yaml.Node, yaml.Node]] = []
        for knode, vnode in node.value:
            if knode.tag != _MERGE:
                own.append((knode, vnode))
                continue
            sources = vnode.value if vnode.id == "sequence" else [vnode]
            for source in reversed(sources):
                if source.id != "mapping":
                    raise self.fail(
                        source, f"expected a mapping to merge into {what}, got {_describe(source)}"
                    )
                merged.extend(self._flatten(source, what, active))
        return merged + own

    def key(self, knode: yaml.Node, what: str) -> str:
        if knode.tag == _STR:
            return str(knode.value)
        if knode.id == "scalar":
            return str(self.value(knode))
        raise self.fail(knode, f"expected a name as key in {what}, got {_describe(knode)}")

    def words(self, node: yaml.Node, what: str) -> Iterator[tuple[str, yaml.Node]]:
        """Items of a comma-separated string or of a list of strings."""
        if self.is_null(node):
            return
        items = node.value if node.id == "sequence" else [node]
        for item in items:
            if item.tag != _STR:
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
        if "all" in names or "ungrouped" in names:
            for name in names:
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
            if vnode.id == "mapping":
                marks = {str(k.value): self.mark(v) for k, v in vnode.value if k.id == "scalar"}
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
    if node.id == "mapping":
        return "a mapping"
    if node.id == "sequence":
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    if node.tag == _STR:
        return f"the string {node.value!r}"
    return f"{node.value!r}"


def _group_name(r: _Reader, name: str, knode: yaml.Node) -> str:
    return check_name(name, "group", r.mark(knode))


# ------------------------------------------------------------------ xnet's own format


def _bare_hosts(node: yaml.Node) -> Optional[list[str]]:
    """A fast-read ``hosts:`` mapping of plain host names without variables, checked at once.

    This is the shape of a long inventory (a host a line); None when any entry needs the
    one-by-one path, which also reports every error.
    """
    entries = getattr(node, "entries", None)
    if not entries:
        return None
    names = [key for key, tag, _, _, value in entries if value is None and tag == _STR]
    if len(names) != len(entries) or not _HOST_NAMES.match("\n".join(names) + "\n"):
        return None
    unique = set(names)
    if len(unique) != len(names) or "all" in unique or "ungrouped" in unique:
        return None
    return names


def _host_entries(r: _Reader, node: yaml.Node, defs: Definitions, group: GroupDef) -> None:
    """``hosts:`` as a string of ranges, a list of them, or a mapping range -> variables."""
    bare = _bare_hosts(node)
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
            bare = _bare_hosts(vn)  # names without ':' (so without a port) or variables
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
                _read_ansible_group(r, _group_name(r, child, ck), ck, cv, defs, group)
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
    count = len(defs.sources)
    try:
        root = _fast_compose(text)
        if root is not None:
            _read_root(_Reader(source), root, defs)
            return
    except Exception:  # read again, for libyaml's verdict and positions
        # What the fast walk added is added again, to the same effect: every step of the walk
        # sets a value or inserts a key, so repeating the file's steps changes nothing.
        del defs.sources[count:]
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            raise _yaml_error(exc, source) from None
        except yaml.YAMLError as exc:
            raise InventoryError(f"YAML: {exc}", Mark(source)) from None
        _read_root(_Reader(source, loader), root, defs)
    finally:
        loader.dispose()


def _read_root(r: _Reader, root: Optional[yaml.Node], defs: Definitions) -> None:
    defs.sources.append(r.source)
    if r.is_null(root):
        raise InventoryError(
            "empty inventory: expected groups:, hosts: or vars:", Mark(r.source, 1, 1)
        )
    assert root is not None
    if root.id != "mapping":
        raise r.fail(root, f"expected a mapping at the top level, got {_describe(root)}")
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


# ------------------------------------------------------------------ the fast reader
#
# Lines are read one at a time against a stack of open block collections. A mapping entry is
# ``KEY:`` (its value, a nested block or null, comes later) or ``KEY: VALUE`` on one line; a
# sequence item is ``- VALUE``. KEY is a plain scalar without spaces; VALUE is a plain scalar,
# a quoted one without escapes, or a flow collection closed on the same line. Whatever else
# appears raises _Bail, and compose reads the file instead: giving up is always correct.

_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
#: Tags the fast reader gives plain scalars; ``<<`` (merge) and ``=`` (value) make it give up.
_FAST_TAGS = frozenset(
    [_STR, _NULL] + [f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "timestamp")]
)
#: Characters outside what the fast reader takes: tabs, CR and other line breaks, a BOM,
#: control characters, and what libyaml would refuse.
_UNSUPPORTED = re.compile(
    "[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
_UNSUPPORTED_ASCII = re.compile("[\x00-\x09\x0b-\x1f\x7f]")  # the same, for ASCII text
_MARKERS = ("---", "...", "%")  # documents and directives, at the start of a line
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_KEY = re.compile(r"[^\s\-?:,\[\]{}#&*!|>'\"%@`]\S{0,999}\Z")  # libyaml: keys < 1024
_NOT_FIRST = _INDICATORS | {" "}  # _KEY's first character, for ASCII text
_FLOW_PLAIN = re.compile(r"[^,\[\]{}#:]*")
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


class _Bail(Exception):
    """The text leaves the subset of YAML the fast reader handles."""


class _FastNode:
    """A node of the fast reader, shaped like PyYAML's; it is its own (0-based) mark."""

    __slots__ = ("column", "line")
    id = ""
    tag = ""

    @property
    def start_mark(self) -> _FastNode:
        return self

    end_mark = start_mark  # fast-read scalars end on the line they start on


class _FastScalar(_FastNode):
    __slots__ = ("style", "tag", "value")
    id = "scalar"

    def __init__(self, tag: str, value: str, line: int, column: int, style: str = "") -> None:
        self.tag, self.value, self.line, self.column, self.style = tag, value, line, column, style


class _FastSeq(_FastNode):
    __slots__ = ("value",)
    id = "sequence"
    tag = _SEQ

    def __init__(self, line: int, column: int) -> None:
        self.value: list[_FastNode] = []
        self.line, self.column = line, column


#: A mapping entry: key text, key tag, key line and column, value node (None: a block null).
Entry = tuple[str, str, int, int, Optional[_FastNode]]


class _FastMap(_FastNode):
    """A mapping whose entries stay compact tuples until ``value`` asks for key nodes."""

    __slots__ = ("_pairs", "entries")
    id = "mapping"
    tag = _MAP

    def __init__(self, line: int, column: int) -> None:
        self.entries: list[Entry] = []
        self._pairs: Optional[list[tuple[_FastNode, _FastNode]]] = None
        self.line, self.column = line, column

    @property
    def value(self) -> list[tuple[_FastNode, _FastNode]]:
        """(key node, value node) pairs; a block null sits just after its key's colon."""
        if self._pairs is None:
            self._pairs = [
                (
                    _FastScalar(tag, key, line, col),
                    _FastScalar(_NULL, "", line, col + len(key) + 1) if value is None else value,
                )
                for key, tag, line, col, value in self.entries
            ]
        return self._pairs


def _construct(node: Any) -> Any:
    """The Python value of a fast-read node, as PyYAML's safe constructor makes it."""
    if node.id == "scalar":
        if node.tag == _STR:
            return node.value
        if node.tag == _NULL:
            return None
        scalar = yaml.ScalarNode(node.tag, node.value)
        return _CONSTRUCTOR.yaml_constructors[node.tag](_CONSTRUCTOR, scalar)
    if node.id == "sequence":
        return [_construct(item) for item in node.value]
    return {_construct(k): _construct(v) for k, v in node.value}


def _plain_tag(text: str) -> str:
    """The tag of a plain scalar, resolved as ``_Loader`` does."""
    if text[0] not in _EAGER:
        return _STR
    tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))
    if tag not in _FAST_TAGS:
        raise _Bail
    return tag


def _fast_compose(text: str) -> Optional[_FastMap]:
    """The node graph ``compose`` would build for ``text``, or None outside the subset."""
    if (_UNSUPPORTED_ASCII if text.isascii() else _UNSUPPORTED).search(text):
        return None
    if text.startswith(_MARKERS) or any("\n" + m in text for m in _MARKERS):
        return None
    try:
        return _fast_block(text.split("\n"), text.isascii())
    except _Bail:
        return None


def _fast_block(lines: list[str], ascii_text: bool) -> Optional[_FastMap]:
    root: Optional[_FastMap] = None
    # Open collections, innermost last: [indent, node, is a mapping, is an indentless
    # sequence (``key:`` then ``- item`` at the key's own indent), last key awaits its value].
    stack: list[list[Any]] = []
    top: list[Any] = [-1, None, False, False, False]  # stack[-1], or a frame matching nothing
    entries: list[Entry] = []  # top's entries when it is a mapping
    key_match = _KEY.match
    for lineno, line in enumerate(lines):
        s = line.lstrip(" ")
        if not s or s[0] == "#":
            continue
        n = len(line) - len(s)
        # The common line, ``KEY:`` in the mapping at this indent (it ends any value the last
        # key waited for: that one is null), is taken here; the loop below does the rest. In
        # ASCII text (without tabs or control characters: see _fast_compose) the only space
        # is " ", and string tests do what _KEY does, faster.
        if (
            n == top[0]
            and top[2]
            and s[-1] == ":"
            and (
                (s[0] not in _NOT_FIRST and " " not in s and len(s) <= 1001)
                if ascii_text
                else key_match(s, 0, len(s) - 1)
            )
        ):
            key = s[:-1]
            tag = _STR if key[0] not in _EAGER else _plain_tag(key)
            entries.append((key, tag, lineno, n, None))
            top[4] = True
            continue
        item = s[0] == "-" and (len(s) == 1 or s[1] == " ")
        while True:
            if not stack:
                if root is not None or item:
                    raise _Bail  # a second top level, or a top-level sequence
                root = _FastMap(lineno, n)
                stack.append([n, root, True, False, False])
            frame = stack[-1]
            indent = frame[0]
            if frame[2]:
                if frame[4]:
                    frame[4] = False
                    if n > indent or (n == indent and item):  # the value is a block
                        child: _FastNode = _FastSeq(lineno, n) if item else _FastMap(lineno, n)
                        key, tag, kline, kcol, _ = frame[1].entries[-1]
                        frame[1].entries[-1] = (key, tag, kline, kcol, child)
                        stack.append([n, child, not item, n == indent, False])
                        continue
                if n == indent and not item:
                    frame[4] = _fast_entry(s, lineno, n, frame[1].entries)
                    break
            elif n == indent and item:
                frame[1].value.append(_fast_item(s, lineno, n))
                break
            elif frame[3] and n == indent:
                stack.pop()
                continue
            if n < indent:
                stack.pop()
                continue
            raise _Bail  # deeper than allowed: a multi-line scalar, or bad indentation
        top = stack[-1]
        if top[2]:
            entries = top[1].entries
    return root


def _fast_entry(s: str, lineno: int, n: int, entries: list[Entry]) -> bool:
    """Add ``KEY:`` or ``KEY: VALUE``; True when the value is still to come."""
    colon = s.find(": ")
    if colon == -1:
        if s[-1] != ":":
            raise _Bail
        key, rest = s[:-1], ""
    else:
        key, rest = s[:colon], s[colon + 2 :].lstrip(" ")
    if not _KEY.match(key):
        raise _Bail
    tag = _plain_tag(key)
    if not rest or rest[0] == "#":
        entries.append((key, tag, lineno, n, None))
        return True
    entries.append((key, tag, lineno, n, _fast_inline(rest, lineno, n + len(s) - len(rest))))
    return False


def _fast_item(s: str, lineno: int, n: int) -> _FastNode:
    rest = s[2:].lstrip(" ")
    if not rest or rest[0] == "#":
        raise _Bail  # a null item, or a block nested in an item
    return _fast_inline(rest, lineno, n + len(s) - len(rest))


def _fast_inline(v: str, lineno: int, col: int) -> _FastNode:
    """A value that starts on this line and ends on it, at column ``col``."""
    c = v[0]
    node: _FastNode
    if c == "'" or c == '"':
        node, end = _fast_quoted(v, 0, lineno, col)
    elif c == "[" or c == "{":
        node, end = _fast_flow(v, 0, lineno, col)
    else:
        if c in _INDICATORS and not (c == "-" and len(v) > 1 and v[1] != " "):
            raise _Bail
        cut = v.find(" #")
        text = (v if cut == -1 else v[:cut]).rstrip(" ")
        if ": " in text or text[-1] == ":":
            raise _Bail
        return _FastScalar(_plain_tag(text), text, lineno, col)
    tail = v[end:]
    if tail and (tail[0] != " " or tail.strip(" ")[:1] not in ("", "#")):
        raise _Bail
    return node


def _fast_quoted(v: str, p: int, lineno: int, col: int) -> tuple[_FastScalar, int]:
    """A quoted scalar closed on this line; double quotes without escapes."""
    quote = v[p]
    if quote == "'":
        parts = []
        i = p + 1
        while True:
            j = v.find("'", i)
            if j == -1:
                raise _Bail
            if v.startswith("'", j + 1):  # '' stands for '
                parts.append(v[i : j + 1])
                i = j + 2
                continue
            parts.append(v[i:j])
            break
        text = "".join(parts)
    else:
        j = v.find('"', p + 1)
        text = v[p + 1 : j]
        if j == -1 or "\\" in text:
            raise _Bail
    return _FastScalar(_STR, text, lineno, col + p, quote), j + 1


def _skip(v: str, p: int) -> int:
    while p < len(v) and v[p] == " ":
        p += 1
    if p == len(v):
        raise _Bail  # a flow collection not closed on its line
    return p


def _fast_flow(v: str, p: int, lineno: int, col: int) -> tuple[_FastNode, int]:
    """``[...]`` or ``{...}`` at ``v[p]``; returns the node and the index after it."""
    return (_fast_flow_seq if v[p] == "[" else _fast_flow_map)(v, p, lineno, col)


def _fast_flow_seq(v: str, p: int, lineno: int, col: int) -> tuple[_FastNode, int]:
    node = _FastSeq(lineno, col + p)
    p = _skip(v, p + 1)
    while v[p] != "]":
        item, p = _fast_flow_value(v, p, lineno, col)
        node.value.append(item)
        p = _skip(v, p)
        if v[p] == ",":
            p = _skip(v, p + 1)
        elif v[p] != "]":
            raise _Bail  # a pair in a sequence (``[a: b]``), or junk
    return node, p + 1


def _fast_flow_map(v: str, p: int, lineno: int, col: int) -> tuple[_FastNode, int]:
    node = _FastMap(lineno, col + p)
    p = _skip(v, p + 1)
    while v[p] != "}":
        if v[p] in _INDICATORS:
            raise _Bail  # only plain keys
        key, p = _fast_flow_plain(v, p, lineno, col)
        p = _skip(v, p)
        if v[p] != ":" or not v.startswith(" ", p + 1):
            raise _Bail
        p = _skip(v, p + 1)
        value: _FastNode
        if v[p] in ",}":  # a null: libyaml puts it where the next token starts
            value = _FastScalar(_NULL, "", lineno, col + p)
        else:
            value, p = _fast_flow_value(v, p, lineno, col)
            p = _skip(v, p)
        node.entries.append((key.value, key.tag, key.line, key.column, value))
        if v[p] == ",":
            p = _skip(v, p + 1)
        elif v[p] != "}":
            raise _Bail
    return node, p + 1


def _fast_flow_value(v: str, p: int, lineno: int, col: int) -> tuple[_FastNode, int]:
    c = v[p]
    if c == "'" or c == '"':
        return _fast_quoted(v, p, lineno, col)
    if c == "[" or c == "{":
        return _fast_flow(v, p, lineno, col)
    if c in _INDICATORS and not (c == "-" and v[p + 1 : p + 2].isalnum()):  # -1 is a number
        raise _Bail
    return _fast_flow_plain(v, p, lineno, col)


def _fast_flow_plain(v: str, p: int, lineno: int, col: int) -> tuple[_FastScalar, int]:
    """A plain scalar inside a flow collection: up to ``, [ ] { }``; ``:`` and ``#`` inside
    it (which libyaml versions read differently) make the reader give up."""
    end = _FLOW_PLAIN.match(v, p).end()  # type: ignore[union-attr]
    text = v[p:end].rstrip(" ")
    if end < len(v) and v[end] == ":" and not v.startswith(" ", end + 1):
        raise _Bail
    if end < len(v) and v[end] == "#":
        raise _Bail
    return _FastScalar(_plain_tag(text), text, lineno, col + p), end
