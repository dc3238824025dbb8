"""The options of rolling runs and reruns (``--batch``, ``--canary``, ``--max-fail``,
``--order``, ``--save-run``, ``--diff``) and what a run says about them at its end.

``run``, ``sh`` and ``rsync`` take them with ``rolling_options``, which hands the command
one ``RollingOptions``; the rules are ``fleet.batches``', the records ``fleet.lastrun``'s.
After a run, ``remember`` records its outcome sets (``-H @failed`` next time) and
``report`` prints which batches ran, why the run stopped, and the sets to rerun, folded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import click

from ..fleet.batches import CANARY_FAILED, ORDERS, Amount, Rollout, plan
from ..fleet.lastrun import check_name, outcome_sets, record
from ..inventory import Host, HostSet
from ..records import Record

__all__ = ["RollingOptions", "remember", "report", "rolling_options"]


class RollingOptions(Record):
    """What ``rolling_options`` gathered for one command (a ``Record``: a frozen value, as
    the dataclass it was, cheaper to import)."""

    __slots__ = ("batch", "canary", "max_fail", "order", "save_run", "diff")  # noqa: RUF023
    batch: Optional[Amount]
    canary: Optional[int]
    max_fail: Optional[Amount]
    order: str
    save_run: Optional[str]
    diff: bool

    def __init__(
        self,
        batch: Optional[Amount] = None,
        canary: Optional[int] = None,
        max_fail: Optional[Amount] = None,
        order: str = "inventory",
        save_run: Optional[str] = None,
        diff: bool = False,
    ) -> None:
        self._set(batch, canary, max_fail, order, save_run, diff)

    @property
    def rolling(self) -> bool:
        """Whether the selection is worked through in more than one step."""
        return self.batch is not None or self.canary is not None or self.order == "group"

    def rollout(self, hosts: Sequence[Host]) -> Rollout:
        """The batches of ``hosts`` these options ask for, and their failure budget."""
        return Rollout(plan(hosts, self.batch, self.canary or 0, self.order), self.max_fail)


def _amount(least: int) -> Callable[[click.Context, click.Parameter, Optional[str]], Any]:
    def convert(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Any:
        if value is None:
            return None
        try:
            return Amount.parse(value, least)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


def _run_name(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    try:
        return check_name(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_OPTIONS = (
    click.option(
        "--batch",
        callback=_amount(1),
        metavar="N|P%",
        help="Work through the hosts N (or P% of them, rounded up) at a time; a batch "
        "starts when the one before it has ended.",
    ),
    click.option(
        "--canary",
        type=click.IntRange(min=1),
        metavar="N",
        help="Run the first N hosts alone first; stop there unless all of them succeed.",
    ),
    click.option(
        "--max-fail",
        callback=_amount(0),
        metavar="N|P%",
        help="Failure budget: start no further batch once more than N hosts (P% of the "
        "selection, rounded down) failed, timed out or were unreachable. Exit status 6.",
    ),
    click.option(
        "--order",
        type=click.Choice(ORDERS),
        default="inventory",
        show_default=True,
        help="Order of the hosts in batches; 'group' runs one group (rack) at a time.",
    ),
    click.option(
        "--save-run",
        metavar="NAME",
        callback=_run_name,
        help="Keep this run's outcome sets as NAME too: select them later with "
        "-H @NAME:failed (each run is -H @failed, @ok, @unreachable, @timed-out, @not-run).",
    ),
)
_DIFF = click.option(
    "--diff",
    is_flag=True,
    help="Show each distinct output as a unified diff against the most common one.",
)


def rolling_options(with_diff: bool = True) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Add the options to a command, which receives them as ``rolling=RollingOptions``."""
    names = [name for name in RollingOptions.__slots__ if with_diff or name != "diff"]

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def collect(**kwargs: Any) -> None:
            rolling = RollingOptions(**{name: kwargs.pop(name) for name in names})
            command(rolling=rolling, **kwargs)

        decorated: Callable[..., None] = collect
        for option in reversed((*_OPTIONS, _DIFF) if with_diff else _OPTIONS):
            decorated = option(decorated)
        return decorated

    return decorate


def remember(
    command: str,
    selection: str,
    hosts: Sequence[str],
    outcomes: Mapping[str, str],
    save_as: Optional[str],
) -> dict[str, list[str]]:
    """Record the run's outcome sets (a warning, never a failure, if that fails)."""
    sets = outcome_sets(hosts, outcomes)
    try:
        record(sets, command, selection, save_as)
    except OSError as exc:
        click.echo(f"xnet: warning: could not record this run: {exc}", err=True)
    return sets


#: The sets worth rerunning, in the order the summary names them.
_RERUN = ("failed", "unreachable", "timed-out", "not-run")


def report(
    rollout: Rollout, options: RollingOptions, sets: Mapping[str, list[str]], flag: str = "-H "
) -> None:
    """The lines after the summary: the batches that ran, why the run stopped, and each
    set to rerun, folded and quoted for ``-H`` (``flag``; rsync's HOSTS takes none)."""
    if options.rolling:
        numbered = sum(1 for b in rollout.batches if not b.canary)
        ran = ", ".join(
            f"{b.label if b.canary else f'batch {b.number}/{numbered}'} {HostSet(b.names)}"
            for b in rollout.ran
        )
        line = f"xnet: ran {ran}"
        if rollout.stopped_early:
            line += f"; stopped: {_why(rollout)}"
        click.echo(line, err=True)
    rerun = [f"{flag}@{state} = '{HostSet(sets[state])}'" for state in _RERUN if sets.get(state)]
    if rerun:
        click.echo(f"xnet: to rerun: {'; '.join(rerun)}", err=True)


def _why(rollout: Rollout) -> str:
    hosts = HostSet(rollout.counted)
    if rollout.reason == CANARY_FAILED:
        return f"the canary did not succeed ({hosts})" if hosts else "the canary did not succeed"
    count = len(hosts)
    return (
        f"failure budget spent: {count} {'host' if count == 1 else 'hosts'} not ok "
        f"({hosts}), --max-fail {rollout.max_fail} allows {rollout.limit}"
    )
