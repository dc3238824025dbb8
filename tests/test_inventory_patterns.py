"""Host patterns: parsing terms and selecting hosts with set algebra (pure: no I/O)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execnet_cli.inventory import HostSet, PatternError, Term, expand, parse_pattern, select

# ----------------------------------------------------------------------------- patterns


@pytest.mark.parametrize(
    ("pattern", "terms"),
    [
        ("web", [("|", "web", 1)]),
        ("web,db", [("|", "web", 1), ("|", "db", 5)]),
        ("web&prod", [("|", "web", 1), ("&", "prod", 5)]),
        ("all,!db", [("|", "all", 1), ("!", "db", 6)]),
        ("web:&prod:!db", [("|", "web", 1), ("&", "prod", 6), ("!", "db", 12)]),
        ("web!db", [("|", "web", 1), ("!", "db", 5)]),
        ("web&!db", [("|", "web", 1), ("!", "db", 6)]),
        ("!db", [("!", "db", 2)]),
        ("web[01:03]:db", [("|", "web[01:03]", 1), ("|", "db", 12)]),
        ("n[1-3,5],x", [("|", "n[1-3,5]", 1), ("|", "x", 10)]),
        ("~(?:web|db)0[1,2]!x", [("|", "~(?:web|db)0[1,2]", 1), ("!", "x", 19)]),
        (" web , db ", [("|", "web", 2), ("|", "db", 8)]),
    ],
)
def test_parse_pattern(pattern: str, terms: list[tuple[str, str, int]]) -> None:
    assert parse_pattern(pattern) == tuple(Term(*t) for t in terms)


def test_term_kinds() -> None:
    assert [t.kind for t in parse_pattern("web,w*,w?1,~w.*")] == ["name", "glob", "glob", "regex"]


@pytest.mark.parametrize(
    ("pattern", "column"),
    [
        ("", 1),
        (" , ", 1),
        ("a&&b", 3),
        ("a!&b", 3),
        ("a&", 3),
        ("a,!", 4),
        ("web,", 5),
        ("a,,b", 3),
        (",a", 1),
    ],
)
def test_parse_pattern_errors(pattern: str, column: int) -> None:
    with pytest.raises(PatternError) as info:
        parse_pattern(pattern)
    assert info.value.column == column


UNIVERSE = HostSet("web[01-04],db[1-2],bastion")
GROUPS = {
    "web": HostSet("web[01-04]"),
    "db": HostSet("db[1-2]"),
    "prod": HostSet("web[01-02],db1"),
    "staging": HostSet("web[03-04],db2"),
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("all", "bastion,db[1-2],web[01-04]"),
        ("*", "bastion,db[1-2],web[01-04]"),
        ("web", "web[01-04]"),
        ("web,db", "db[1-2],web[01-04]"),
        ("web&prod", "web[01-02]"),
        ("web:&prod", "web[01-02]"),
        ("all,!db", "bastion,web[01-04]"),
        ("!db", "bastion,web[01-04]"),
        ("web:&prod:!web02", "web01"),
        ("prod&!web", "db1"),
        ("web[01-02],bastion", "bastion,web[01-02]"),
        ("web0*", "web[01-04]"),
        ("w?b01", "web01"),
        ("prod*", "db1,web[01-02]"),  # globs match group names too, as in Ansible
        ("~db", "db[1-2]"),
        ("~web0[13]", "web[01,03]"),
        ("~sta", "db2,web[03-04]"),
        ("web[01-02]*,db1", "db1,web[01-02]"),
        ("&prod", "db1,web[01-02]"),
    ],
)
def test_select(pattern: str, expected: str) -> None:
    assert str(select(pattern, UNIVERSE, GROUPS)) == expected


def test_select_is_order_independent() -> None:
    terms = ["web", "db", "&prod", "!web02"]
    results = {select(",".join(p), UNIVERSE, GROUPS) for p in itertools.permutations(terms)}
    assert results == {HostSet("web01,db1")}


def test_unknown_name_says_so_and_lists_close_names() -> None:
    with pytest.raises(PatternError) as info:
        select("web&prdo", UNIVERSE, GROUPS)
    msg = str(info.value)
    assert info.value.column == 5
    assert "unknown host or group 'prdo'" in msg and "prod" in msg
    assert msg.startswith("in pattern 'web&prdo' at column 5:")


def test_unknown_name_without_close_names_lists_groups() -> None:
    with pytest.raises(PatternError, match=r"groups are: db, prod, staging, web"):
        select("zzzzzz", UNIVERSE, GROUPS)


def test_partly_unknown_range_names_the_missing_hosts() -> None:
    with pytest.raises(PatternError, match=r"unknown hosts or groups 'web\[05-09\]'"):
        select("web[01-09]", UNIVERSE, GROUPS)


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("web&db", "selects no hosts"),
        ("web,!web", "selects no hosts"),
        ("x*", "'x*' matches no host or group"),
        ("~zz", "matches no host or group"),
        ("~web(", "bad regex"),
        ("web[1-", "never closed"),
    ],
)
def test_select_never_silently_selects_nothing(pattern: str, words: str) -> None:
    with pytest.raises(PatternError, match=words.replace("(", r"\(").replace("*", r"\*")):
        select(pattern, UNIVERSE, GROUPS)


def test_select_accepts_plain_iterables() -> None:
    assert select("a*", ["a1", "a2", "b1"]) == HostSet("a[1-2]")


_group_names = ["g1", "g2", "g3"]


@given(
    st.frozensets(st.sampled_from(expand("h[1-12]")), min_size=1),
    st.lists(st.frozensets(st.sampled_from(expand("h[1-12]"))), min_size=3, max_size=3),
)
@settings(max_examples=100, deadline=None)
def test_pattern_algebra_matches_set_algebra(
    universe: frozenset[str], members: list[frozenset[str]]
) -> None:
    groups = {name: HostSet(m & universe) for name, m in zip(_group_names, members)}
    g1, g2, g3 = (groups[n].names for n in _group_names)

    def check(pattern: str, expected: frozenset[str]) -> None:
        if expected:
            assert select(pattern, universe, groups).names == expected
        else:
            with pytest.raises(PatternError):
                select(pattern, universe, groups)

    check("g1,g2", g1 | g2)
    check("g2,g1", g1 | g2)
    check("g1&g2", g1 & g2)
    check("g2:&g1", g1 & g2)
    check("g1,!g2", g1 - g2)
    check("!g1", universe - g1)
    check("g1:&g2:!g3", (g1 & g2) - g3)
    check("!g3,g1&g2", (g1 & g2) - g3)
    check("all,!g1,!g2", universe - (g1 | g2))  # De Morgan: all - (g1 | g2)
    check("g1,g2,!g3", (g1 | g2) - g3)
