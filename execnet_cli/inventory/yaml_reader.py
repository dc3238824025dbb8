"""Reading inventory YAML into a node graph, and the helpers that walk it with positions.

We walk a node graph rather than constructed objects, because only nodes remember where they
came from: every group, host range and variable keeps its ``Mark``, so a bad value anywhere is
reported at its own line and column. ``formats.py`` walks the graph of our format and of
Ansible's; the helpers here (``NodeReader``) give it positions, typed values, mappings
checked for duplicate keys and YAML merge keys.

Two readers build that graph. PyYAML's ``compose`` (on libyaml when present) reads any YAML;
it is the authority on what a file means and where each part of it sits, but it builds a
Python object per node (and ``yaml.load`` is slower still: it composes the same nodes, then
constructs). ``fast_reader`` reads the subset of YAML inventories are written in, one line at
a time, into the same nodes at the same positions, and gives up on anything else, which
``compose`` then reads. When walking the fast graph finds an error, the file is read again
with ``compose`` and the error reported from there: errors are rare, and their positions then
come from libyaml. Errors found later, on the whole inventory (cycles, ``via``, ...), point at
marks kept while reading, which are the same either way.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from . import fast_reader
from .fast_reader import EAGER, NULL, STR
from .ranges import PatternError, expand_list
from .schema import InventoryError, Mark, Var, check_name, is_name, xnet_var

if TYPE_CHECKING:  # PyYAML loads when a file needs it: the fast reader reads most of them
    import yaml

__all__ = ["NodeReader", "describe", "read_yaml"]  # and Loader, made on first use

_MERGE = "tag:yaml.org,2002:merge"
_BRACKETS = re.compile(r"\[[^\]]*\]")


@functools.cache
def _loader_class() -> Any:
    import yaml

    base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc,valid-type]
        """The safe loader, with a shortcut in tag resolution, which dominates large files.

        A plain scalar whose first character no implicit resolver watches (most host names)
        can only be a string; the stock resolver reaches the same answer, more slowly.
        """

        def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
            if kind is yaml.ScalarNode and implicit[0]:
                if not value:
                    return NULL
                if value[0] not in EAGER:
                    return STR
            return super().resolve(kind, value, implicit)  # type: ignore[no-any-return]

        def descend_resolver(self, *args: Any) -> None:  # no path resolvers: nothing to track
            pass

        def ascend_resolver(self) -> None:
            pass

    return Loader


def __getattr__(name: str) -> Any:
    """``Loader``, PyYAML's safe loader with our shortcut, is made (and PyYAML imported)
    when first asked for."""
    if name == "Loader":
        return _loader_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


VarFn = Callable[..., Var]


class NodeReader:
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
            return fast_reader.construct(node)
        return self.loader.construct_object(node, deep=True)

    @staticmethod
    def is_null(node: Optional[yaml.Node]) -> bool:
        return node is None or node.tag == NULL

    def pairs(self, node: yaml.Node, what: str) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping; duplicate keys are errors, not overrides.

        YAML merge keys (``<<: *defaults``, common in Ansible inventories) are honoured: the
        merged entries come first and the mapping's own entries override them.
        """
        if self.is_null(node):
            return
        if node.id != "mapping":
            raise self.fail(node, f"expected a mapping of {what}, got {describe(node)}")
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
        from yaml import MappingNode  # merge keys come only from PyYAML's graph

        own = MappingNode(node.tag, [(k, v) for k, v in node.value if k.tag != _MERGE])
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
                        source, f"expected a mapping to merge into {what}, got {describe(source)}"
                    )
                merged.extend(self._flatten(source, what, active))
        return merged + own

    def key(self, knode: yaml.Node, what: str) -> str:
        if knode.tag == STR:
            return str(knode.value)
        if knode.id == "scalar":
            return str(self.value(knode))
        raise self.fail(knode, f"expected a name as key in {what}, got {describe(knode)}")

    def words(self, node: yaml.Node, what: str) -> Iterator[tuple[str, yaml.Node]]:
        """Items of a comma-separated string or of a list of strings."""
        if self.is_null(node):
            return
        items = node.value if node.id == "sequence" else [node]
        for item in items:
            if item.tag != STR:
                raise self.fail(item, f"expected {what}, got {describe(item)}")
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

    def group_name(self, name: str, knode: yaml.Node) -> str:
        return check_name(name, "group", self.mark(knode))

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
            raise self.fail(node, f"{name}: expected a whole number, got {describe(node)}")
        return value


def describe(node: yaml.Node) -> str:
    """A node as an error message names it: "a list", "the string 'x'", ..."""
    if node.id == "mapping":
        return "a mapping"
    if node.id == "sequence":
        return "a list"
    if node.tag == NULL:
        return "nothing"
    if node.tag == STR:
        return f"the string {node.value!r}"
    return f"{node.value!r}"


#: Walks one source's root node (None for an empty document) with a reader bound to it.
Walk = Callable[[NodeReader, Optional["yaml.Node"]], None]


def read_yaml(text: str, source: str, walk: Walk) -> None:
    """Walk the node graph of one YAML source (``source`` names it in errors).

    The fast reader's graph when it takes the text and the walk finds no error in it, else
    ``compose``'s. ``walk`` may thus run twice over one source, so what it records must come
    out the same when repeated: every step of a walk sets a value or inserts a key.
    """
    try:
        root = fast_reader.compose(text)
        if root is not None:
            walk(NodeReader(source), root)
            return
    except Exception:  # read again, for libyaml's verdict and positions
        pass
    import yaml

    loader = _loader_class()(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            raise _yaml_error(exc, source) from None
        except yaml.YAMLError as exc:
            raise InventoryError(f"YAML: {exc}", Mark(source)) from None
        walk(NodeReader(source, loader), node)
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.MarkedYAMLError, source: str) -> InventoryError:
    mark = exc.problem_mark or exc.context_mark
    what = " ".join(p for p in (exc.context, exc.problem) if p) or "malformed YAML"
    where = Mark(source, mark.line + 1, mark.column + 1) if mark else Mark(source)
    return InventoryError(f"YAML syntax: {what}", where)
