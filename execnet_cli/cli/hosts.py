"""``xnet hosts``: the dry run. Shows what a pattern selects and how each host would be reached."""

from __future__ import annotations

import json
from collections.abc import Sequence

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ..inventory import Host, HostSet, Inventory
from . import config
from .options import complete_hosts, inventory_option, select_hosts

__all__ = ["COLUMNS", "hosts", "plain_lines", "render_table", "render_tree"]

#: The settings shown per host, as (heading, Host attribute).
COLUMNS = (
    ("HOST", "name"),
    ("TRANSPORT", "transport"),
    ("ADDRESS", "address"),
    ("PORT", "port"),
    ("USER", "user"),
    ("PYTHON", "python"),
    ("VIA", "via"),
    ("JUMP", "proxy_jump"),
)


def _cells(host: Host) -> list[str]:
    return ["-" if getattr(host, attr) is None else str(getattr(host, attr)) for _, attr in COLUMNS]


def plain_lines(selected: Sequence[Host]) -> list[str]:
    """One host a line, columns aligned, no heading: easy to read and to ``cut``/``awk``."""
    rows = [_cells(h) for h in selected]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]


def render_table(console: Console, selected: Sequence[Host]) -> None:
    """The terminal view: a table with headings and the selection folded in the caption."""
    names = HostSet(h.name for h in selected)
    table = Table(box=None, caption=f"{len(names)} hosts: {names}", caption_justify="left")
    for heading, _ in COLUMNS:
        table.add_column(heading, no_wrap=True)
    for host in selected:
        table.add_row(*(Text(c) for c in _cells(host)))
    console.print(table)


def render_tree(console: Console, inventory: Inventory, selected: Sequence[Host]) -> None:
    """Groups under ``all`` as a tree; each shows its own selected hosts, folded."""
    chosen = HostSet(h.name for h in selected)

    def add(parent: Tree, group: str) -> None:
        members = inventory.groups.get(group, HostSet()) & chosen
        if not members:
            return
        node = parent.add(Text(f"{group} ({len(members)})", style="bold"))
        direct = inventory.direct_hosts(group) & chosen
        if direct:
            node.add(Text(str(direct), overflow="fold"))  # wrap long host lists, never crop
        for child in inventory.children(group):
            add(node, child)

    root = Tree(Text(f"all ({len(chosen)})", style="bold"))
    for group in inventory.children("all"):
        add(root, group)
    console.print(root)


@click.command("hosts")
@click.argument("pattern", required=False, default="all", shell_complete=complete_hosts)
@inventory_option
@click.option("--tree", is_flag=True, help="Show the selected hosts by group.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per host and line.")
def hosts(pattern: str, inventories: tuple[str, ...], tree: bool, as_json: bool) -> None:
    """List the hosts PATTERN selects (default: all) and the settings each would use.

    \b
    Patterns: web01  web[01-03]  web,db  web&prod  'all,!db'  'web:&prod:!db'  'web*'  '~db0[12]'
    Nothing is contacted: this only reads the inventory.
    """
    if tree and as_json:
        raise click.UsageError("--tree and --json cannot be combined")
    inventory, selected = select_hosts(inventories, pattern)
    if as_json:
        for host in selected:
            click.echo(json.dumps(host.as_dict(), default=str))  # YAML dates, sets: as text
        return
    console = config.console()
    if tree and not console.is_terminal:  # a pipe gets whole lines, however long
        console = config.console(width=1_000_000)
    if tree:
        render_tree(console, inventory, selected)
    elif console.is_terminal:
        render_table(console, selected)
    else:
        for line in plain_lines(selected):
            click.echo(line)
