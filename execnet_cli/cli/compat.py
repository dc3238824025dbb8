"""``xnet compat-path``: where the opt-in ``execnet`` alias lives (see docs/xdist.md).

    PYTHONPATH=$(xnet compat-path) pytest -n 4

With that directory first on ``PYTHONPATH``, ``import execnet`` gives execnet_cli's
engine (pytest-xdist runs on it unchanged); without it, nothing changes.
"""

from __future__ import annotations

import click

from ..compat import alias_dir


@click.command("compat-path")
def compat_path() -> None:
    """Print the directory to put first on PYTHONPATH so that 'import execnet' is ours."""
    click.echo(str(alias_dir()))
