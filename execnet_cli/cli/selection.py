"""What a ``--hosts``/``-H`` value (or ``xnet hosts``' PATTERN) selects: one function for
every form, ``resolve_selection``.

- ``-``: host names read from standard input;
- ``@PATH``: host names read from a file (``@./failed`` for a file named like a run state);
- a pattern of the inventory (``web,!web03``, ``web&prod``, see ``inventory.patterns``);
- ad-hoc hosts beside or instead of inventory names: ``[user@]host[:port]`` terms of a
  ``,`` list that look like an address (``user@db``, ``db:2222``, ``db.example.com``,
  ``10.0.0.5``, ``[::1]``) and that the inventory does not know are reached over ssh
  with its defaults. A bare word must be an inventory name: an unknown one is reported
  with close names (it is usually a typo), not tried over the network.

Names read from stdin or a file: one or more a line, separated by spaces or commas; a
``#`` starts a comment; each is an inventory name or pattern term, or an ad-hoc host.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, TextIO

from ..errors import XnetError
from ..inventory import Host, Inventory, NoHostSelected, PatternError
from ..inventory.ranges import top_level
from .shell_hosts import adhoc_host

__all__ = ["SelectionError", "looks_adhoc", "read_names", "resolve_selection"]

#: A term that names an address rather than an inventory entry: has a user, a port, a dot
#: (a domain name or IPv4 address) or brackets around an IPv6 address.
_ADDRESS_LIKE = re.compile(r"[^@\s]+@.+|.*:[0-9]{1,5}|[^\[\]*?~]*\.[^\[\]*?]*|\[[0-9A-Fa-f:.]+\]")


class SelectionError(XnetError, ValueError):
    """A selection that cannot be read (an unreadable ``@FILE``): a usage error."""


def looks_adhoc(term: str) -> bool:
    """Whether ``term`` reads as an address (see the module's docstring)."""
    return _ADDRESS_LIKE.fullmatch(term) is not None


def resolve_selection(
    value: str, inventory: Inventory, stdin: Optional[TextIO] = None
) -> list[Host]:
    """The hosts ``value`` selects in ``inventory`` (see the module's docstring).

    Raises ``PatternError`` (``NoHostSelected`` when nothing is selected) or
    ``SelectionError``.
    """
    if value == "-":
        names = read_names((stdin or sys.stdin).read())
        return _names(inventory, names, "standard input")
    elif value.startswith("@"):
        path = Path(value[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SelectionError(f"cannot read host names from {path}: {reason}") from None
        return _names(inventory, read_names(text), str(path))
    return _pattern_or_adhoc(inventory, value)


def read_names(text: str) -> list[str]:
    """Host names (or pattern terms) from text: spaces, commas or lines apart; ``#`` comments."""
    names: list[str] = []
    for line in text.splitlines():
        for word in line.split("#", 1)[0].split():
            names += [term for term in _terms(word) if term]
    return names


def _names(inventory: Inventory, names: Sequence[str], source: str) -> list[Host]:
    if not names:
        raise NoHostSelected(f"no host names in {source}", "", 0)
    return _pattern_or_adhoc(inventory, ",".join(names))


def _pattern_or_adhoc(inventory: Inventory, value: str) -> list[Host]:
    try:
        return inventory.hosts(value)
    except NoHostSelected:
        raise
    except PatternError as exc:
        hosts = _with_adhoc(inventory, value)
        if hosts is not None:
            return hosts
        if exc.message.startswith("unknown host or group"):
            hint = " (a host outside the inventory: user@NAME, NAME:PORT or a dotted name)"
            raise PatternError(exc.message + hint, exc.pattern, exc.column) from None
        raise


def _with_adhoc(inventory: Inventory, value: str) -> Optional[list[Host]]:
    """``value`` as a ``,`` list of inventory terms and ad-hoc hosts, or None if it is not
    one (the pattern's own error is then the one to show)."""
    found: dict[str, Host] = {}
    adhoc = False
    for term in _terms(value):
        if term in inventory.all or term in inventory.groups or not looks_adhoc(term):
            try:
                selected = inventory.hosts(term)
            except PatternError:
                return None
            found.update((h.name, h) for h in selected)
            continue
        host = adhoc_host(term)
        if host is None:
            return None
        found[host.name] = host
        adhoc = True
    return list(found.values()) if adhoc else None


def _terms(value: str) -> list[str]:
    """``value`` split at its top-level commas (a range's own commas stay: ``web[01,03]``)."""
    cuts = [-1, *(i for i, _ in top_level(value, ",")), len(value)]
    return [value[a + 1 : b].strip() for a, b in itertools.pairwise(cuts)]
