"""What a ``--hosts``/``-H`` value selects: one function for every form, ``resolve_selection``.

- ``@ok``, ``@failed``, ``@unreachable``, ``@timed-out``, ``@not-run``: the hosts the last
  run recorded in that set (``fleet.lastrun``); ``@NAME:STATE`` the same from the run
  saved with ``--save-run NAME``;
- a pattern of the inventory (``web,!web03``, ``web&prod``, see ``inventory.patterns``).
"""

from __future__ import annotations

from typing import Optional, TextIO

from ..errors import XnetError
from ..fleet.lastrun import LastRunError, load_state, parse_reference, state_hint
from ..inventory import Host, Inventory, NoHostSelected

__all__ = ["SelectionError", "resolve_selection"]


class SelectionError(XnetError, ValueError):
    """A selection that cannot be read (no recorded run): a usage error."""


def resolve_selection(
    value: str, inventory: Inventory, stdin: Optional[TextIO] = None
) -> list[Host]:
    """The hosts ``value`` selects in ``inventory`` (see the module's docstring).

    Raises ``PatternError`` (``NoHostSelected`` when nothing is selected) or
    ``SelectionError``.
    """
    reference = parse_reference(value)
    if reference is not None:
        return _from_run(inventory, value, *reference)
    hint = state_hint(value)
    if hint:
        raise SelectionError(f"{value}: no such set of a recorded run{hint}")
    return inventory.hosts(value)


def _from_run(inventory: Inventory, value: str, run: Optional[str], state: str) -> list[Host]:
    """The hosts a recorded run put in ``state``, as the inventory now defines them."""
    try:
        names = load_state(run, state)
    except LastRunError as exc:
        raise SelectionError(str(exc)) from None
    what = "the last run" if run is None else f"the run saved as {run!r}"
    if not names:
        raise NoHostSelected(f"{what} has no host in {state!r}: {value} selects nothing")
    missing = [name for name in names if name not in inventory.all]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise SelectionError(f"{value}: not in the inventory now: {shown}")
    return [inventory.host(name) for name in names]
