"""Inventories: which hosts exist, how to reach each, and which of them a pattern selects.

The other layers import from here, not from the modules, which split by concern:

- ``ranges``: one axis of names, ``web[01-12]`` expanded and numbers folded back (RangeSet);
- ``hostset``: ``HostSet``, set algebra, natural order, folding whole names (NodeSet);
- ``patterns``: the pattern algebra (``web,!web03``, ``web&prod``) and ``select``;
- ``schema``: what each variable may hold, ours and Ansible's; ``Mark``, ``InventoryError``;
- ``fast_reader`` and ``yaml_reader``: YAML into a node graph with positions (a fast
  line reader for the plain subset, PyYAML's ``compose`` for the rest, merge keys);
- ``formats``: our format and Ansible's, from nodes to definitions;
- ``sources``: where an inventory comes from, reading its files;
- ``model``: ``Inventory`` (groups, precedence, resolution) and ``Host``.
"""

from __future__ import annotations

from .hostset import HostSet, fold, natural_key, natural_sorted
from .model import DEFAULT_INVENTORY, Host, Inventory, load_inventory
from .patterns import Term, parse_pattern, select
from .ranges import MAX_EXPANSION, NoHostSelected, PatternError, expand, expand_list
from .schema import InventoryError, Mark
from .sources import find_inventories

__all__ = [
    "DEFAULT_INVENTORY",
    "MAX_EXPANSION",
    "Host",
    "HostSet",
    "Inventory",
    "InventoryError",
    "Mark",
    "NoHostSelected",
    "PatternError",
    "Term",
    "expand",
    "expand_list",
    "find_inventories",
    "fold",
    "load_inventory",
    "natural_key",
    "natural_sorted",
    "parse_pattern",
    "select",
]
