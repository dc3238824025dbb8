"""The ``xnet`` command line: a click group whose subcommands live in this package's modules.

Subcommands are imported only when invoked (or listed by ``--help``): ``xnet serve``
must not pay for rich and PyYAML, which only the inventory commands need.
``xnet --debug CMD`` logs ``execnet_cli`` at DEBUG level on stderr for that command (the
traceback of an internal error among it).

A closed standard output (``xnet hosts | head -1``) ends any command quietly, with the
status SIGPIPE gives other tools (141): no traceback, no "Broken pipe", no summary.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Dict, List, Optional

import click

from .._version import __version__

#: Subcommand name -> "module:attribute" of its click command.
SUBCOMMANDS: Dict[str, str] = {
    "compat-path": "execnet_cli.cli.compat:compat_path",
    "completion": "execnet_cli.cli.completion:completion",
    "hosts": "execnet_cli.cli.hosts:hosts",
    "ping": "execnet_cli.cli.ping:ping",
    "rsync": "execnet_cli.cli.rsync:rsync",
    "run": "execnet_cli.cli.run:run",
    "serve": "execnet_cli.cli.serve:serve",
    "sh": "execnet_cli.cli.run:sh",
    "shell": "execnet_cli.cli.shell:shell",
}
#: The status after a write to a closed pipe: as SIGPIPE ends other tools (128 + 13).
EXIT_CLOSED_OUTPUT = 128 + signal.SIGPIPE


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module on first use."""

    #: When the command started (``time.monotonic``): what the summary's time counts from.
    started_at: Optional[float] = None

    def main(self, args: Optional[Sequence[str]] = None, *pos: Any, **kwargs: Any) -> Any:
        # From the command line (no args given): the process's start, interpreter start-up
        # and imports included; from a caller (a test's CliRunner): now.
        self.started_at = process_started() if args is None else time.monotonic()
        if args is None:  # a process of its own: optional modules load on first use
            from .startup import defer, settle

            settle()
            defer()
        return super().main(args, *pos, **kwargs)

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted({*super().list_commands(ctx), *SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = target.partition(":")
        command: Any = getattr(importlib.import_module(module_name), attribute)
        return command

    def shell_complete(self, ctx: click.Context, incomplete: str) -> List[Any]:
        """Command names without importing the commands (a Tab must be quick), and the
        group's own options."""
        from click.shell_completion import CompletionItem

        names = [CompletionItem(n) for n in self.list_commands(ctx) if n.startswith(incomplete)]
        return names + click.Command.shell_complete(self, ctx, incomplete)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_closed_output()
            raise click.exceptions.Exit(EXIT_CLOSED_OUTPUT) from None


def process_started() -> float:
    """When this process started, on ``time.monotonic``'s clock (Linux /proc; else now)."""
    now = time.monotonic()
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22, starttime: clock ticks after boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - age if 0 <= age < 60 else now


def _quiet_closed_output() -> None:
    """Point stdout and stderr at /dev/null: nothing more to write, and nothing to complain
    about at exit (Python flushes ``sys.stdout`` then, which would fail again)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass  # not a real file (a test's capture): nothing will be flushed to it
    os.close(devnull)


def debug_logging() -> Callable[[], None]:
    """Send ``execnet_cli``'s log records, DEBUG and up, to stderr; return the undo."""
    logger = logging.getLogger("execnet_cli")
    handler = logging.StreamHandler()  # the stderr of now: click's runner swaps it in tests
    handler.setFormatter(logging.Formatter("xnet: debug: %(name)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)

    return undo


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xnet")
@click.option(
    "--debug",
    is_flag=True,
    help="Log what xnet does on stderr, with the traceback of any internal error.",
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    envvar="XNET_COLOR",
    help="Colors in output: auto (at a terminal), always, never. Default: auto.",
)
@click.pass_context
def main(ctx: click.Context, debug: bool, color: str) -> None:
    """Run Python and shell commands on many hosts at once, over execnet_cli gateways.

    \b
    Exit status (the first that applies):
      128+N  stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP)
      141    standard output closed (| head)
      70     internal error (xnet --debug shows it)
      1      some host failed
      4      some host timed out, none failed
      3      some host unreachable, none failed or timed out
      0      all ok (or within --tolerate)
      2      bad usage, inventory or pattern
      5      the pattern selected no host

    \b
    Defaults: flags beat XNET_* environment variables (XNET_FANOUT, XNET_TIMEOUT,
    XNET_RETRIES, XNET_TOLERATE, XNET_COLOR, XNET_INVENTORY), which beat
    $XDG_CONFIG_HOME/xnet/config.yaml (keys fanout, timeout, retries, tolerate,
    color, inventory).
    """
    started = getattr(ctx.command, "started_at", None)
    ctx.meta["xnet.started"] = time.monotonic() if started is None else started
    if debug:
        ctx.call_on_close(debug_logging())
    if ctx.invoked_subcommand not in _WITHOUT_CONFIG:
        _apply_config(ctx, color)


#: Subcommands that take none of the config file's settings (and need not read it).
_WITHOUT_CONFIG = ("serve", "compat-path", "completion", None)


def _apply_config(ctx: click.Context, color: str) -> None:
    """Load the config file: its values become the subcommand's defaults (below flags and
    ``XNET_*``), its color applies unless ``--color``/``XNET_COLOR`` gave one."""
    from .config import ConfigError, load_config

    try:
        config = load_config()
    except ConfigError as exc:
        click.echo(f"xnet: error: {exc}", err=True)
        raise click.exceptions.Exit(2) from None
    ctx.meta["xnet.config"] = config
    source = ctx.get_parameter_source("color")
    explicit = source is not None and source.name != "DEFAULT"
    ctx.meta["xnet.color"] = color if explicit else config.color
    name = ctx.invoked_subcommand
    group = ctx.command
    command = group.get_command(ctx, name) if name and isinstance(group, click.Group) else None
    if name and command is not None:
        params = {p.name for p in command.params if p.name}
        ctx.default_map = {name: config.defaults_for(params)}
