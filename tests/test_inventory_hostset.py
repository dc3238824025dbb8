"""HostSet, natural order and folding whole names (pure: no files, no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execnet_cli.inventory import HostSet, expand, expand_list, fold, natural_key, natural_sorted

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
