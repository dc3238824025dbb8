"""``xnet run`` (Python code) and ``xnet sh`` (a shell command) on every selected host.

The command layer only picks hosts, builds the job, feeds each event to a ``GroupResult``
and a renderer, and maps the outcomes to an exit status (``exitcodes``); running is
``runner``'s, showing is ``render``'s.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import click
from rich.console import Console

from ..fleet.jobs import Job, python_job, shell_job
from ..fleet.results import GroupResult
from ..fleet.runner import DEFAULT_FANOUT, Runner, carriers_for
from ..inventory import Host, Inventory
from .exitcodes import EXIT_INTERRUPTED, exit_status
from .options import (
    fail,
    fanout_option,
    inventory_option,
    select_hosts,
    timeout_option,
    user_errors,
)
from .render import GatherRenderer, JsonRenderer, Renderer, StreamRenderer

__all__ = ["RunOptions", "read_code", "run", "run_options", "sh"]


@dataclass(frozen=True)
class RunOptions:
    """The options ``run`` and ``sh`` share, gathered into one value by ``run_options``."""

    inventories: tuple[str, ...]
    pattern: str
    fanout: int
    timeout: Optional[float]
    as_json: bool
    gather: bool
    verbose: bool


_RUN_OPTIONS = (
    inventory_option,
    click.option(
        "-H",
        "--hosts",
        "pattern",
        default="all",
        show_default=True,
        metavar="PATTERN",
        help="Hosts to run on: web, 'web[01-03]', 'web&prod', 'all,!db' (see xnet hosts).",
    ),
    fanout_option("Hosts worked on at once (connecting and running).", DEFAULT_FANOUT),
    timeout_option(
        "Fail a host whose job runs longer (connecting is bounded by the "
        "inventory's connect_timeout)."
    ),
    click.option("--json", "as_json", is_flag=True, help="One JSON object per host and line."),
    click.option(
        "--gather/--no-gather",
        default=True,
        help="Show identical output once under its folded host set (default), or stream "
        "'host: line' as lines arrive.",
    ),
    click.option("-v", "--verbose", is_flag=True, help="Show remote tracebacks in full."),
)
_FIELDS = tuple(f.name for f in fields(RunOptions))


def run_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add the shared options to ``command``, which receives them as ``options=RunOptions``."""

    @functools.wraps(command)
    def collect(**kwargs: Any) -> None:
        options = RunOptions(**{name: kwargs.pop(name) for name in _FIELDS})
        command(options=options, **kwargs)

    decorated: Callable[..., None] = collect
    for option in reversed(_RUN_OPTIONS):  # decorators apply bottom-up
        decorated = option(decorated)
    return decorated


def read_code(code: str) -> tuple[str, str]:
    """The Python source CODE stands for, and the file name its tracebacks show.

    ``-`` reads standard input; ``@path`` reads a file. The source is compiled here first:
    a syntax error is one usage error, not the same failure from every host.
    """
    if code == "-":
        source, filename = sys.stdin.read(), "<stdin>"
    elif code.startswith("@"):
        path = Path(code[1:])
        try:
            source, filename = path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
    else:
        source, filename = code, "<xnet run>"
    try:
        compile(source, filename, "exec")
    except SyntaxError as exc:
        where = f"{filename}:{exc.lineno}" if exc.lineno else filename
        fail(f"{where}: {type(exc).__name__}: {exc.msg}")
    except ValueError as exc:  # null bytes
        fail(f"{filename}: {exc}")
    return source, filename


def _execute(job: Job, options: RunOptions) -> None:
    """Run ``job`` on the selected hosts, show it, and leave with the table's status.

    Each event goes to the result first, then to the renderer, which draws from it.
    """
    inventory, hosts = select_hosts(options.inventories, options.pattern)
    carriers = _carriers(inventory, hosts)
    result = GroupResult()
    renderer = _renderer(options, result, [h.name for h in hosts])
    start = time.monotonic()
    try:
        with Runner(hosts, job, fanout=options.fanout, carriers=carriers) as runner:
            for event in runner.events():
                result.add(event)
                renderer.handle(event)
    except KeyboardInterrupt:
        renderer.finish(time.monotonic() - start, interrupted=True)
        click.echo("xnet: interrupted; every gateway was ended", err=True)
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    renderer.finish(time.monotonic() - start)
    raise click.exceptions.Exit(exit_status(result.outcomes))


def _renderer(options: RunOptions, result: GroupResult, names: list[str]) -> Renderer:
    if options.as_json:
        return JsonRenderer(sys.stdout, result)
    out, err = Console(highlight=False), Console(stderr=True, highlight=False)
    kind = GatherRenderer if options.gather else StreamRenderer
    return kind(out, err, result, names, options.verbose)


def _carriers(inventory: Inventory, hosts: list[Host]) -> list[Host]:
    """Hosts that selected hosts reach ``via``, opened too but not run on."""
    with user_errors():
        return carriers_for(hosts, inventory.host)


@click.command("run")
@click.argument("code")
@run_options
def run(code: str, options: RunOptions) -> None:
    """Run Python CODE on every selected host; show what it prints and how it ended.

    CODE is source text, '-' for standard input, or @FILE for a file. It runs as
    __main__ in a fresh interpreter on each host; sys.exit(N) sets that host's exit code.

    \b
    Examples:
      xnet run 'import platform; print(platform.node())'
      xnet run -i lab.yaml --hosts web @check.py
      xnet run --json 'import os; print(os.cpu_count())' | jq -r .stdout

    \b
    Exit status: 0 all ok, 1 some host failed, 3 some unreachable (none failed),
    2 usage or inventory error, 70 internal error (see --debug), 130 interrupted.
    """
    source, filename = read_code(code)
    _execute(python_job(source, filename, options.timeout), options)


@click.command("sh")
@click.argument("command")
@run_options
def sh(command: str, options: RunOptions) -> None:
    """Run the shell COMMAND on every selected host (sh -c, started by its worker).

    Output streams back as it comes; each host's exit status is reported. COMMAND '-'
    reads the command from standard input.

    \b
    Examples:
      xnet sh 'uptime'
      xnet sh -i lab.yaml --hosts 'web,!web03' --no-gather 'tail -n 20 /var/log/syslog'

    \b
    Exit status: 0 all exited 0, 1 some host exited non-zero or failed, 3 some
    unreachable (none failed), 2 usage or inventory error, 70 internal error (see
    --debug), 130 interrupted.
    """
    if command == "-":
        command = sys.stdin.read()
    _execute(shell_job(command, options.timeout), options)
