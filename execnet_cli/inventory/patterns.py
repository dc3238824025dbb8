"""Host patterns: which hosts of an inventory ``web,!web03`` or ``web&prod`` stands for.

Patterns select hosts with set algebra (see ``select``). Evaluation follows Ansible rather than
reading left to right: the union of the plain terms (or everything when there is none),
intersected with every ``&`` term, minus every ``!`` term. Order therefore never matters,
which keeps patterns easy to reason about and makes ``a,b`` == ``b,a`` a law, not a
coincidence. Pure functions, no I/O.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple

from ..suggest import close_matches
from .hostset import HostSet, fold
from .ranges import NoHostSelected, PatternError, expand, top_level

__all__ = ["NoHostSelected", "PatternError", "Term", "parse_pattern", "select"]

#: Separators and the operation of the term they start: ``,`` and ``:`` union.
_OPS = {",": "|", ":": "|", "&": "&", "!": "!"}
_SEPARATORS = "".join(_OPS)
#: How many group names an unknown name's error lists when nothing is close to it.
_GROUPS_SHOWN = 12


class Term(NamedTuple):
    """One operand of a pattern: ``op`` is ``|``, ``&`` or ``!``; ``column`` is 1-based."""

    op: str
    text: str
    column: int

    @property
    def kind(self) -> str:
        """``regex`` (``~...``), ``glob`` (has ``*`` or ``?``) or ``name`` (host, group, range)."""
        if self.text.startswith("~"):
            return "regex"
        if "*" in self.text or "?" in self.text:
            return "glob"
        return "name"


def parse_pattern(pattern: str) -> tuple[Term, ...]:
    """Split a pattern into terms.

    ``,`` and ``:`` separate union terms; ``&`` and ``!`` start an intersection or difference
    term, alone (``web&prod``) or after a separator (``web:&prod``, ``all,!db``); ``&!`` is ``!``
    (an intersection with a complement is a difference). Separators
    inside ``[]``, ``()`` or ``{}`` belong to the term, so ranges and regexes keep theirs.
    An empty term (``a,,b``, ``a,``) is an error: it is a slip, never a way to say nothing.
    """
    if not pattern.strip(", :\t"):
        raise PatternError("empty pattern", pattern, 1)
    terms: list[Term] = []
    op, explicit, start = "|", False, 0

    def flush(end: int) -> None:
        raw = pattern[start:end]
        text = raw.strip()
        if text:
            col = start + 1 + len(raw) - len(raw.lstrip())
            terms.append(Term(op, text, col))
        elif explicit:
            sym = "&" if op == "&" else "!"
            raise PatternError(f"expected a name after {sym!r}", pattern, end + 1)
        else:  # "a,,b", "a,", ",a": a slip, never a way to say nothing
            raise PatternError("empty term (a separator with no name after it)", pattern, end + 1)

    for i, ch in top_level(pattern, _SEPARATORS):
        pending = pattern[start:i].strip()
        if ch in "&!" and not pending and explicit:
            if not (op == "&" and ch == "!"):  # "&!x" is "!x": A & (all - x) == A - x
                raise PatternError(f"two operators in a row before {ch!r}", pattern, i + 1)
        elif pending or ch in ",:":
            flush(i)
            op, explicit = "|", False
        if ch in "&!":
            op, explicit = _OPS[ch], True
        start = i + 1
    flush(len(pattern))
    return tuple(terms)


def _suggest(name: str, candidates: Iterable[str], groups: Collection[str]) -> str:
    """Close names if there are any, else the groups there are (a pattern is usually one)."""
    close = close_matches(name, candidates)
    if close:
        return "; close names: " + ", ".join(close)
    shown = sorted(g for g in groups if g not in ("all", "ungrouped"))
    if not shown:
        return ""
    more = f", ... ({len(shown)} in all)" if len(shown) > _GROUPS_SHOWN else ""
    return "; groups are: " + ", ".join(shown[:_GROUPS_SHOWN]) + more


def _match_term(
    term: Term, pattern: str, all_hosts: HostSet, groups: Mapping[str, HostSet]
) -> frozenset[str]:
    """The names one term stands for; unknown names and empty matches are errors."""
    kind = term.kind
    if kind == "regex":
        try:
            rx = re.compile(term.text[1:])
        except re.error as exc:
            raise PatternError(f"bad regex {term.text[1:]!r}: {exc}", pattern, term.column) from exc
        matcher = rx.match
    elif kind == "glob":
        texts = expand(term.text, term.column)
        matcher = re.compile("|".join(f"(?:{fnmatch.translate(t)})" for t in texts)).match
    else:
        if term.text in ("all", "*"):
            return all_hosts.names
        names = expand(term.text, term.column)
        found: set[str] = set()
        unknown: list[str] = []
        hosts = all_hosts.names
        for name in names:
            group = groups.get(name)
            if group is not None:
                found.update(group.names)
            if name in hosts:
                found.add(name)
            elif group is None:
                unknown.append(name)
        if unknown:
            what = unknown[0] if len(unknown) == 1 else fold(unknown)
            hint = _suggest(unknown[0], itertools.chain(groups, hosts), groups)
            noun = "host or group" if len(unknown) == 1 else "hosts or groups"
            raise PatternError(f"unknown {noun} {what!r}{hint}", pattern, term.column)
        return frozenset(found)
    found = set()
    for gname, members in groups.items():
        if matcher(gname):
            found.update(members.names)
    found.update(filter(matcher, all_hosts.names))
    if not found:
        raise NoHostSelected(f"{term.text!r} matches no host or group", pattern, term.column)
    return frozenset(found)


def select(
    pattern: str, all_hosts: Iterable[str], groups: Mapping[str, HostSet] | None = None
) -> HostSet:
    """Evaluate a pattern against a universe of hosts and named groups.

    A term is ``all`` (or ``*``), a host or group name (ranges allowed: ``web[01-03]``), a glob
    (``web*``) or a regex after ``~`` (matched from the start of the name, as Ansible does);
    globs and regexes match group names and host names alike. The result is
    ``(union of | terms, or all) & every & term - every ! term``. Every name must exist, every
    glob must match, and an empty result is an error: a pattern never silently selects nothing.
    """
    universe = all_hosts if isinstance(all_hosts, HostSet) else HostSet(list(all_hosts))
    groups = groups or {}
    terms = parse_pattern(pattern)
    plus = [t for t in terms if t.op == "|"]
    result: frozenset[str] = frozenset()
    if plus:
        result = frozenset().union(*(_match_term(t, pattern, universe, groups) for t in plus))
    else:
        result = universe.names
    for t in terms:
        if t.op == "&":
            result = result & _match_term(t, pattern, universe, groups)
    for t in terms:
        if t.op == "!":
            result = result - _match_term(t, pattern, universe, groups)
    if not result:
        raise NoHostSelected("selects no hosts", pattern)
    if len(result) == len(universe) and result == universe.names:
        return universe  # keeps its sorted order, computed once
    return HostSet(result)
