"""The ``xnet`` command line: a click group whose subcommands live in this package's modules.

Subcommands are imported only when invoked (or listed by ``--help``): ``xnet serve``
must not pay for rich and PyYAML, which only the inventory commands need.
``xnet --debug CMD`` logs ``execnet_cli`` at DEBUG level on stderr for that command (the
traceback of an internal error among it).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any, Dict, List, Optional

import click

from .._version import __version__

#: Subcommand name -> "module:attribute" of its click command.
SUBCOMMANDS: Dict[str, str] = {
    "compat-path": "execnet_cli.cli.compat:compat_path",
    "hosts": "execnet_cli.cli.hosts:hosts",
    "rsync": "execnet_cli.cli.rsync:rsync",
    "run": "execnet_cli.cli.run:run",
    "serve": "execnet_cli.cli.serve:serve",
    "sh": "execnet_cli.cli.run:sh",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted({*super().list_commands(ctx), *SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = target.partition(":")
        command: Any = getattr(importlib.import_module(module_name), attribute)
        return command


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
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Run Python and shell commands on many hosts at once, over execnet_cli gateways."""
    if debug:
        ctx.call_on_close(debug_logging())
