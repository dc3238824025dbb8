"""Reading YAML: syntax errors, duplicate and merge keys, and the fast path's fallback to compose.

Most inventories are read by a line-at-a-time reader (``fast_reader``) that builds the node
graph PyYAML's compose would build; whatever it does not handle goes to compose, and so does
a file in which walking the fast graph finds an error. These tests hold ``read_yaml`` to that:
the same definitions, the same resolved hosts and the same errors either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from inventory_helpers import (
    ANSIBLE,
    EXAMPLES,
    LAB,
    PRECEDENCE,
    assert_error_at,
    error,
    listed_inventory,
    load,
    reader_fixture,  # noqa: F401
    with_line,
    write,
)

from execnet_cli.inventory import Inventory, InventoryError, fast_reader
from execnet_cli.inventory.formats import Definitions, read_inventory

FAST_COMPOSE = fast_reader.compose  # the `reader` fixture may stand in for it


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("groups:\n  web:\n    hosts: [a\n", 4, 1, "YAML syntax"),
        (
            "groups:\n  web: {hosts: w1}\n  web: {hosts: w2}\n",
            3,
            3,
            "duplicate key 'web' (first at line 2)",
        ),
    ],
)
def test_yaml_errors_name_file_line_column(
    tmp_path: Path, text: str, line: int, column: int, words: str, reader: str
) -> None:
    assert_error_at(tmp_path, text, line, column, words)


# ----------------------------------------------------------------------------- merge keys


def test_yaml_anchors_and_merge_keys(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """\
        all:
          children:
            web:
              vars: &defaults
                ansible_user: ops
                ansible_port: 2200
              hosts:
                a:
                  <<: *defaults
                  ansible_port: 22
                b:
                  <<: [{ansible_user: first}, *defaults]
        """,
    )
    assert (inv.host("a").port, inv.host("a").user) == (22, "ops")
    assert (inv.host("b").port, inv.host("b").user) == (2200, "first")


def test_merge_keys_still_catch_duplicates(tmp_path: Path) -> None:
    exc = error(tmp_path, "hosts:\n  a: {port: 1, <<: {port: 2}, port: 3}\n")
    assert "duplicate key 'port'" in exc.message and (exc.line, exc.column) == (2, 31)


def test_recursive_merge_key_is_an_error(tmp_path: Path) -> None:
    exc = error(tmp_path, "hosts:\n  a: &loop\n    port: 1\n    <<: *loop\n")
    assert "refers to the mapping itself" in exc.message


def test_ansible_group_priority_through_a_merge_key(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "all:\n"
        "  vars: &d {ansible_group_priority: 5}\n"
        "  children:\n"
        "    web:\n"
        "      hosts: {a: }\n"
        "      vars: {<<: *d}\n",
    )
    assert inv.host("a").name == "a"


# ----------------------------------------------------------------------------- both readers


@pytest.mark.parametrize(
    ("name", "text"),
    [
        *((p.name, p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))),
        ("lab", LAB),
        ("precedence", PRECEDENCE),
        ("ansible", ANSIBLE),
        ("listed", listed_inventory()),
    ],
)
def test_both_readers_define_and_resolve_the_same(
    name: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read() -> tuple[Definitions, list[dict[str, Any]]]:
        defs = Definitions()
        read_inventory(text, name, defs)
        inv = Inventory.from_text(text, name)
        return defs, [host.as_dict() for host in inv.hosts()]

    assert FAST_COMPOSE(text) is not None
    fast = read()
    monkeypatch.setattr(fast_reader, "compose", lambda text: None)
    slow = read()
    assert fast[0] == slow[0]  # every group, host and variable, with its position
    assert fast[1] == slow[1]  # every resolved setting


@pytest.mark.parametrize(
    ("number", "line", "column", "words"),
    [
        (7, "      web02: {port: seventy}", 21, "port: expected a number"),
        (11, "      prot: 2201", 7, "unknown variable 'prot' (did you mean 'port'?)"),
        (8, "      web01:", 7, "duplicate key 'web01' (first at line 6)"),
        (7, "      web/02:", 7, "'web/02' is not a valid host name"),
        (15, "      all:", 7, "'all' is a group, not a host name"),
        (9, "    hots: x", 5, "unknown key 'hots' in group 'web' (did you mean 'hosts'?)"),
        (9, "    priority:", 14, "priority: expected a whole number, got nothing"),
        (16, "    children: [wbe]", 16, "unknown child group 'wbe' (did you mean 'web'?)"),
        (14, "      db01: {transport: popen, via: web4}", 37, "via names unknown host 'web4'"),
        (14, "      db01: {transport: socket}", 25, "transport socket needs a port"),
    ],
)
def test_errors_found_on_the_fast_path_name_file_line_column(
    tmp_path: Path, number: int, line: str, column: int, words: str, reader: str
) -> None:
    """The fast reader takes each of these files; the errors point where compose's do."""
    text = with_line(number, line)
    assert FAST_COMPOSE(text) is not None
    assert_error_at(tmp_path, text, number, column, words)


def test_a_cycle_found_on_the_fast_path(tmp_path: Path, reader: str) -> None:
    text = with_line(9, "    children: [db]")
    assert FAST_COMPOSE(text) is not None
    exc = error(tmp_path, text)
    assert exc.message == "cycle in children: web -> db -> web" and (exc.line, exc.column) == (
        16,
        16,
    )


def test_an_error_in_a_later_file_leaves_no_trace(tmp_path: Path) -> None:
    good = write(tmp_path, listed_inventory(), "1.yaml")
    bad = write(tmp_path, with_line(11, "      prot: 2201"), "2.yaml")
    with pytest.raises(InventoryError, match="prot") as info:
        Inventory.from_files([good, bad])
    assert (info.value.file, info.value.line) == (str(bad), 11)
    assert Inventory.from_files([good, good]).sources == (str(good), str(good))
