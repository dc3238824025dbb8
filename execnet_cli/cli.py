"""The ``xnet`` command line: a click group whose subcommands live in ``cli_*`` modules."""

from __future__ import annotations

import click

from ._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xnet")
def main() -> None:
    """Run Python and shell commands on many hosts at once, over execnet_cli gateways."""


def _register_subcommands() -> None:
    """Attach the subcommands; each lives in its own module to keep this one small."""
    from . import cli_hosts, cli_serve

    main.add_command(cli_hosts.hosts)
    main.add_command(cli_serve.serve)


_register_subcommands()
