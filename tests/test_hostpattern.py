"""Host ranges, folding, HostSet algebra and host patterns (pure: no files, no I/O)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execnet_cli._remote.errors import XnetError
from execnet_cli.inventory.hostpattern import (
    HostSet,
    PatternError,
    Term,
    expand,
    expand_list,
    fold,
    natural_key,
    natural_sorted,
    parse_pattern,
    select,
)

# ----------------------------------------------------------------------------- expand


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("web01", ["web01"]),
        ("web[01-03]", ["web01", "web02", "web03"]),
        ("web[1-3]", ["web1", "web2", "web3"]),
        ("web[8-10]", ["web8", "web9", "web10"]),
        ("web[08-10]", ["web08", "web09", "web10"]),
        ("web[1-3,7]", ["web1", "web2", "web3", "web7"]),
        ("web[01-02,07]", ["web01", "web02", "web07"]),
        ("10.0.0.[1-3]", ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
        ("r[1-2]-n[1-2]", ["r1-n1", "r1-n2", "r2-n1", "r2-n2"]),
        ("[1-2]x", ["1x", "2x"]),
        ("www[01:03].example.com", ["www01.example.com", "www02.example.com", "www03.example.com"]),
        ("db-[a:c]", ["db-a", "db-b", "db-c"]),
        ("db-[a-c]", ["db-a", "db-b", "db-c"]),
        ("n[1:10:4]", ["n1", "n5", "n9"]),
        ("n[1-10/4]", ["n1", "n5", "n9"]),
        ("n[007]", ["n007"]),
        ("n[ 1 - 2 ]".replace(" - ", "-"), ["n1", "n2"]),
    ],
)
def test_expand(text: str, names: list[str]) -> None:
    assert expand(text) == names


def test_expand_size_of_a_product() -> None:
    names = expand("rack[1-4]-node[01-32]")
    assert len(names) == 128 and len(set(names)) == 128
    assert names[0] == "rack1-node01" and names[-1] == "rack4-node32"


def test_expand_list_skips_blanks_and_splits_outside_brackets() -> None:
    assert expand_list("web[1-2,5], db1,,") == ["web1", "web2", "web5", "db1"]


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("web[01-", 4, "never closed"),
        ("web01]", 6, "without a matching"),
        ("web[3-1]", 5, "backwards"),
        ("web[1-x]", 5, "expected a number"),
        ("web[]", 5, "got nothing"),
        ("web[1-2,x]", 9, "'x'"),
        ("a[1[2]]", 4, "nest"),
        ("n[1-5/0]", 3, "step of 0"),
        ("n[1-99999999]", 3, "too large"),
    ],
)
def test_expand_errors_point_at_the_problem(text: str, column: int, words: str) -> None:
    with pytest.raises(PatternError) as info:
        expand(text)
    assert info.value.column == column
    assert words in info.value.message
    assert isinstance(info.value, XnetError) and isinstance(info.value, ValueError)


def test_expand_refuses_huge_products() -> None:
    with pytest.raises(PatternError, match="more than"):
        expand("a[1-1000]b[1-1000]c[1-10]")


# ----------------------------------------------------------------------------- fold


@pytest.mark.parametrize(
    ("names", "text"),
    [
        (["web01", "web02", "web03", "web07"], "web[01-03,07]"),
        (["web1", "web2", "web10"], "web[1-2,10]"),
        (["web09", "web10"], "web[09-10]"),
        (["web1", "web01"], "web[1,01]"),
        (["db"], "db"),
        (["web5"], "web5"),
        ([], ""),
        (expand("rack[1-4]-node[01-32]"), "rack[1-4]-node[01-32]"),
        (expand("10.0.0.[1-9]"), "10.0.0.[1-9]"),
        (["web2", "db1", "web10", "db2", "alpha"], "alpha,db[1-2],web[2,10]"),
        (expand_list("a[1-2]b[1-2],a3b1"), "a[1-2]b[1-2],a3b1"),
        (["x9.lan", "x10.lan"], "x[9-10].lan"),
    ],
)
def test_fold(names: list[str], text: str) -> None:
    assert fold(names) == text
    assert set(expand_list(text)) == set(names)


def test_natural_order() -> None:
    names = ["web10", "web2", "db1", "web1", "web01"]
    assert sorted(names, key=natural_key) == ["db1", "web1", "web01", "web2", "web10"]
    assert list(HostSet(names)) == ["db1", "web1", "web01", "web2", "web10"]


@given(st.lists(st.text(alphabet="ab-0019\x00\x01\u0660\u00e9", max_size=8), max_size=30))
def test_natural_sorted_is_sorted_by_natural_key(names: list[str]) -> None:
    assert natural_sorted(names) == sorted(names, key=natural_key)
    assert list(HostSet(names)) == sorted(set(names), key=natural_key)


def test_natural_sorted_edges() -> None:
    names = ["a10", "a9", "a09", "a", "a0", "a00", "", "9", "a\x00", "a1b", "a1", "b"]
    assert natural_sorted(names) == sorted(names, key=natural_key)


# Names made of a few shared pieces, so that hypothesis produces foldable neighbours.
_texts = st.sampled_from(["web", "db", "rack", "n", "x.", "-node", ".lan", "a-b", ""])
_numbers = st.builds(
    lambda value, width: str(value).zfill(width), st.integers(0, 130), st.integers(0, 3)
)
_structured = st.builds(
    lambda a, n1, b, n2, c: f"{a}{n1}{b}{n2 or ''}{c}" or "x",
    _texts,
    _numbers,
    _texts,
    st.none() | _numbers,
    _texts,
)
_anything = st.text(alphabet="ab.-09", min_size=1, max_size=6)
_names = _structured | _anything
_name_sets = st.frozensets(_names, max_size=60)


@given(_name_sets)
@settings(max_examples=200, deadline=None)
def test_expand_of_fold_gives_the_set_back(names: frozenset[str]) -> None:
    assert set(expand_list(fold(names))) == names


@given(_name_sets)
@settings(max_examples=100, deadline=None)
def test_fold_is_canonical(names: frozenset[str]) -> None:
    text = fold(names)
    assert fold(expand_list(text)) == text
    assert fold(sorted(names, reverse=True)) == text


@st.composite
def _range_texts(draw: st.DrawFn) -> str:
    """Random range notation: text pieces around one or two bracketed lists of runs."""

    def bracket() -> str:
        items = []
        for _ in range(draw(st.integers(1, 3))):
            lo = draw(st.integers(0, 120))
            hi = lo + draw(st.integers(0, 15))
            width = draw(st.integers(0, 3))
            first = str(lo).zfill(width) if width else str(lo)
            items.append(first if hi == lo else f"{first}-{hi}")
        return "[" + ",".join(items) + "]"

    parts = [draw(st.sampled_from(["web", "n", "10.0.0.", ""])), bracket()]
    if draw(st.booleans()):
        parts += [draw(st.sampled_from(["-node", "x", "."])), bracket()]
    parts.append(draw(st.sampled_from(["", ".lan", "b"])))
    return "".join(parts)


@given(_range_texts())
@settings(max_examples=200, deadline=None)
def test_fold_of_expand_expands_to_the_same_names(text: str) -> None:
    names = set(expand(text))
    folded = fold(names)
    assert set(expand_list(folded)) == names
    assert fold(expand_list(folded)) == folded


# ----------------------------------------------------------------------------- HostSet


def test_hostset_parses_ranges_and_displays_folded() -> None:
    hs = HostSet("web[01-12]")
    assert len(hs) == 12 and "web07" in hs and "web7" not in hs
    assert str(hs - "web[04-06]") == "web[01-03,07-12]"
    assert repr(HostSet(["a1", "a2"])) == "HostSet('a[1-2]')"
    assert HostSet("a[1-3]") == {"a1", "a2", "a3"}
    assert not HostSet() and HostSet("x")
    assert HostSet("a[1-2]") <= HostSet("a[1-3]") and HostSet("a[1-3]") >= HostSet("a1")
    assert hash(HostSet("a[1-2]")) == hash(HostSet(["a2", "a1"]))


@given(_name_sets, _name_sets, _name_sets)
@settings(max_examples=100, deadline=None)
def test_set_algebra_laws(a: frozenset[str], b: frozenset[str], c: frozenset[str]) -> None:
    A, B, C = HostSet(a), HostSet(b), HostSet(c)
    assert A | B == B | A and A & B == B & A
    assert (A | B) | C == A | (B | C) and (A & B) & C == A & (B & C)
    assert A & (B | C) == (A & B) | (A & C)
    assert A - (B | C) == (A - B) & (A - C)
    assert A - (B & C) == (A - B) | (A - C)
    assert A ^ B == (A - B) | (B - A)
    assert not (A - B) & B
    assert set(A | B) == a | b and set(A - B) == a - b


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
        ("web,", [("|", "web", 1)]),
    ],
)
def test_parse_pattern(pattern: str, terms: list[tuple[str, str, int]]) -> None:
    assert parse_pattern(pattern) == tuple(Term(*t) for t in terms)


def test_term_kinds() -> None:
    assert [t.kind for t in parse_pattern("web,w*,w?1,~w.*")] == ["name", "glob", "glob", "regex"]


@pytest.mark.parametrize(
    ("pattern", "column"), [("", 1), (" , ", 1), ("a&&b", 3), ("a!&b", 3), ("a&", 3), ("a,!", 4)]
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
