"""Ranges, one axis of host names: expanding ``web[01-12]``, folding numbers, the scanner."""

from __future__ import annotations

import pytest

from execnet_cli.errors import XnetError
from execnet_cli.inventory import PatternError, expand, expand_list
from execnet_cli.inventory.ranges import fold_numbers, split_top


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


@pytest.mark.parametrize(
    ("values", "text"),
    [
        (["01", "02", "03", "07"], "[01-03,07]"),
        (["09", "10"], "[09-10]"),
        (["1", "01"], "[1,01]"),
        (["2", "10", "1"], "[1-2,10]"),
        (["5"], "5"),
    ],
)
def test_fold_numbers(values: list[str], text: str) -> None:
    assert fold_numbers(values) == text


def test_split_top_keeps_bracketed_separators() -> None:
    pieces = split_top("a[1,2],b(c,d),{e,f}g,", ",")
    assert pieces == [("a[1,2]", 1), ("b(c,d)", 8), ("{e,f}g", 15), ("", 22)]
    assert split_top("x]y,z", ",", column=5) == [("x]y", 5), ("z", 9)]
