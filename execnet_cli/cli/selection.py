"""What a ``--hosts``/``-H`` value (or ``xnet hosts``' PATTERN) selects: one function for
every form, ``resolve_selection``.

- ``-``: host names read from standard input;
- ``@ok``, ``@failed``, ``@unreachable``, ``@timed-out``, ``@not-run``: the hosts the last
  run recorded in that set (``fleet.lastrun``); ``@NAME:STATE`` the same from the run
  saved with ``--save-run NAME``;
- any other ``@PATH``: host names read from a file (``@./failed`` for a file named like a
  run state); a missing file one typo away from a set says which set was meant;
- a pattern of the inventory (``web,!web03``, ``web&prod``, see ``inventory.patterns``);
- ad-hoc hosts beside or instead of inventory names: ``[user@]host[:port]`` terms of a
  ``,`` list that look like an address (``user@db``, ``db:2222``, ``db.example.com``,
  ``10.0.0.5``, ``[::1]``) and that the inventory does not know are reached over ssh
  with its defaults; ranges expand as in patterns (``ops@10.0.0.[1-4]``) and each host is
  named as written, so reports, ``--outdir`` and reruns (``-H @failed``) reach the same
  user, address and port. A bare word must be an inventory name: an unknown one is reported
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
from ..fleet.lastrun import LastRunError, load_state, parse_reference, state_hint
from ..inventory import Host, Inventory, NoHostSelected, PatternError
from ..inventory.ranges import expand, top_level

__all__ = ["SelectionError", "adhoc_host", "looks_adhoc", "read_names", "resolve_selection"]

#: A term that names an address rather than an inventory entry: has a user, a port, a dot
#: (a domain name or IPv4 address) or brackets around an IPv6 address. Patterns as text:
#: ``re`` compiles them when first used (most runs name inventory entries only).
_ADDRESS_LIKE = r"[^@\s]+@.+|.*:[0-9]{1,5}|[^\[\]*?~]*\.[^\[\]*?]*|\[[0-9A-Fa-f:.]+\]"


_ADHOC = (
    r"(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9_.-]*)@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_][A-Za-z0-9_.-]*)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


def adhoc_host(text: str) -> Optional[Host]:
    """``[user@]host[:port]`` as an ssh ``Host`` named as written (two terms for one address,
    as another user or port, stay two hosts, and the name selects the same target again),
    or None."""
    match = re.fullmatch(_ADHOC, text)
    if match is None:
        return None
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        return None
    address = match["host"].strip("[]")
    return Host(name=text, transport="ssh", address=address, port=port, user=match["user"])


class SelectionError(XnetError, ValueError):
    """A selection that cannot be read (an unreadable ``@FILE``, no recorded run): a usage
    error."""


def looks_adhoc(term: str) -> bool:
    """Whether ``term`` reads as an address (see the module's docstring)."""
    return re.fullmatch(_ADDRESS_LIKE, term) is not None


def resolve_selection(
    value: str, inventory: Inventory, stdin: Optional[TextIO] = None
) -> list[Host]:
    """The hosts ``value`` selects in ``inventory`` (see the module's docstring).

    Raises ``PatternError`` (``NoHostSelected`` when nothing is selected) or
    ``SelectionError``.
    """
    reference = parse_reference(value)
    if value == "-":
        names = read_names((stdin or sys.stdin).read())
        return _names(inventory, names, "standard input")
    elif reference is not None:
        return _from_run(inventory, value, *reference)
    elif value.startswith("@"):
        path = Path(value[1:])
        hint = state_hint(value)
        if hint and not path.exists():
            raise SelectionError(f"{value}: no such set of a recorded run{hint}")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SelectionError(f"cannot read host names from {path}: {reason}") from None
        return _names(inventory, read_names(text), str(path))
    return _pattern_or_adhoc(inventory, value)


def _from_run(inventory: Inventory, value: str, run: Optional[str], state: str) -> list[Host]:
    """The hosts a recorded run put in ``state``, as the inventory now defines them (an
    ad-hoc host is named as it was written, so it needs no inventory)."""
    try:
        names = load_state(run, state)
    except LastRunError as exc:
        raise SelectionError(str(exc)) from None
    what = "the last run" if run is None else f"the run saved as {run!r}"
    if not names:
        raise NoHostSelected(f"{what} has no host in {state!r}: {value} selects nothing")
    hosts = [_recorded_host(inventory, name) for name in names]
    missing = [name for name, host in zip(names, hosts) if host is None]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise SelectionError(f"{value}: not in the inventory now: {shown}")
    return [host for host in hosts if host is not None]


def _recorded_host(inventory: Inventory, name: str) -> Optional[Host]:
    """The host a recorded name means now: the inventory's, else an ad-hoc address, else
    None (an inventory host that is gone)."""
    if name in inventory.all:
        return inventory.host(name)
    return adhoc_host(name) if looks_adhoc(name) else None


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
    one (the pattern's own error is then the one to show). The inventory terms are one
    pattern, so ``web,!web03,ops@db`` leaves web03 out as ``web,!web03`` does."""
    terms: list[str] = []
    adhoc: list[Host] = []
    for term in _terms(value):
        names = _adhoc_names(term, inventory)
        if names is None:
            terms.append(term)
            continue
        for name in names:
            host = adhoc_host(name)
            if host is None:
                return None
            adhoc.append(host)
    if not adhoc:
        return None
    found: dict[str, Host] = {}
    if terms:
        try:
            found.update((h.name, h) for h in inventory.hosts(",".join(terms)))
        except NoHostSelected:
            pass  # the ad-hoc hosts are still selected
        except PatternError:
            return None
    found.update((h.name, h) for h in adhoc)
    return list(found.values())


def _adhoc_names(term: str, inventory: Inventory) -> Optional[list[str]]:
    """The addresses ``term`` names with its ranges expanded (``ops@10.0.0.[1-4]``, which
    is also how such hosts are folded in reports), or None if it is an inventory term."""
    if term in inventory.all or term in inventory.groups:
        return None
    try:
        names = expand(term)
    except PatternError:
        names = [term]  # brackets of an IPv6 address, not a range
    if all(looks_adhoc(name) and name not in inventory.all for name in names):
        return names
    return None


def _terms(value: str) -> list[str]:
    """``value`` split at its top-level commas (a range's own commas stay: ``web[01,03]``)."""
    cuts = [-1, *(i for i, _ in top_level(value, ",")), len(value)]
    return [value[a + 1 : b].strip() for a, b in itertools.pairwise(cuts)]
