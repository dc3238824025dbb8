"""Options and error reporting shared by the ``xnet`` commands that read an inventory.

``hosts``, ``run``, ``sh`` and ``ping`` take the same ``-i`` option and report inventory and
pattern errors the same way: one line on stderr, exit status 2, no traceback; a pattern
that selects no host is status 5 (``NoHostSelected``: nothing wrong with it, nothing to do).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click

from ..inventory import (
    Host,
    Inventory,
    InventoryError,
    NoHostSelected,
    PatternError,
    load_inventory,
)

__all__ = [
    "EXIT_NO_HOST",
    "EXIT_USAGE",
    "fail",
    "fanout_option",
    "inventory_option",
    "load_user_inventory",
    "select_hosts",
    "timeout_option",
    "user_errors",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Exit status for a bad inventory, pattern or command line (click uses 2 for usage errors).
EXIT_USAGE = 2
#: Exit status when the pattern selects no host (see ``exitcodes``).
EXIT_NO_HOST = 5

inventory_option = click.option(
    "-i",
    "--inventory",
    "inventories",
    multiple=True,
    metavar="FILE",
    type=click.Path(),  # completes file names
    help="Inventory file or directory (repeatable; later files win). Default: $XNET_INVENTORY, "
    "then ./xnet.yaml, then the config file's inventory, then "
    "$XDG_CONFIG_HOME/xnet/inventory.yaml, then local workers.",
)


def complete_hosts(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of host and group names (``completion``), imported on use."""
    from .completion import complete_hosts as complete

    return complete(ctx, param, incomplete)


def fanout_option(
    help: str = "Hosts worked on at once (connecting and running).",
) -> Callable[[F], F]:
    """``-f/--fanout N``: how many hosts at once (``fleet.runner`` is imported only by the
    commands that take it)."""
    from ..fleet.runner import DEFAULT_FANOUT

    return click.option(
        "-f",
        "--fanout",
        type=click.IntRange(min=1),
        default=DEFAULT_FANOUT,
        envvar="XNET_FANOUT",
        metavar="N",
        show_default=True,
        help=help,
    )


def timeout_option(help: str) -> Callable[[F], F]:
    """``-t/--timeout SECONDS``: how long a host may take."""
    return click.option(
        "-t",
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        envvar="XNET_TIMEOUT",
        metavar="SECONDS",
        help=help,
    )


def fail(message: str, status: int = EXIT_USAGE) -> NoReturn:
    """Report one line on stderr and leave with ``status``."""
    click.echo(f"xnet: error: {' '.join(message.split())}", err=True)
    raise click.exceptions.Exit(status)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can fix (inventory, pattern) into ``fail``."""
    try:
        yield
    except NoHostSelected as exc:
        fail(str(exc), EXIT_NO_HOST)
    except (InventoryError, PatternError) as exc:
        fail(str(exc))


def load_user_inventory(inventories: Sequence[str]) -> Inventory:
    """The inventory the user means: ``-i``, else the usual places, where the config
    file's ``inventory`` comes after ``./xnet.yaml`` (see ``config``)."""
    from .config import current

    inventory = load_inventory(inventories, configured=current().inventories)
    for notice in inventory.notices:
        click.echo(f"xnet: warning: {notice}", err=True)
    return inventory


def select_hosts(inventories: Sequence[str], pattern: str) -> tuple[Inventory, list[Host]]:
    """Load the inventory the user means and resolve the hosts ``pattern`` selects
    (a pattern, ``-``, ``@FILE``, ad-hoc hosts, or a recorded run's set, ``@failed``:
    ``selection``)."""
    from .selection import SelectionError, resolve_selection

    with user_errors():
        inventory = load_user_inventory(inventories)
        try:
            return inventory, resolve_selection(pattern, inventory)
        except SelectionError as exc:
            fail(str(exc))
