"""Shell completion: ``xnet completion bash|zsh|fish`` prints the script to source.

Completion itself is click's (the script calls ``xnet`` back with ``_XNET_COMPLETE`` set):
commands and options come from the commands' definitions, ``-i`` completes file names,
and host arguments (``-H``, the PATTERN of ``hosts`` and ``ping``, ``shell``'s HOST)
complete host and group names from the inventory the command would read (``-i`` given
before the word, else ``XNET_INVENTORY``, ``./xnet.yaml``, the config file's, the user's).
In a pattern only its last term is completed: ``web,d<Tab>`` offers ``web,db``,
``web&pr<Tab>`` ``web&prod``.

    source <(xnet completion bash)      # in ~/.bashrc
    xnet completion zsh > "${fpath[1]}/_xnet"
    xnet completion fish > ~/.config/fish/completions/xnet.fish
"""

from __future__ import annotations

import re
from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

__all__ = ["complete_hosts", "completion"]

#: Where the last term of a pattern starts: after a separator or an operator.
_LAST_TERM = re.compile(r"^(.*[,:&!])?([^,:&!]*)$", re.DOTALL)


def complete_hosts(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Host and group names that complete the last term of ``incomplete``."""
    match = _LAST_TERM.match(incomplete)
    head, term = (match.group(1) or "", match.group(2)) if match else ("", incomplete)
    if term.startswith(("~", "@")) or any(c in term for c in "*?["):
        return []  # a regex, a file or a range: nothing sensible to offer
    try:
        names = _names(ctx)
    except Exception:  # a broken inventory: no completion, never a traceback in the shell
        return []
    given = set(re.split(r"[,:&!]", head))
    return [
        CompletionItem(head + name, help=kind)
        for name, kind in names
        if name.startswith(term) and name != term and name not in given
    ]


def _names(ctx: click.Context) -> list[tuple[str, str]]:
    from ..inventory import load_inventory
    from .config import load_config

    inventories = ctx.params.get("inventories") or ()
    try:
        configured = load_config().inventories
    except ValueError:
        configured = ()
    inventory = load_inventory(inventories, configured=configured)
    groups = [(name, "group") for name in sorted(inventory.groups) if name != "ungrouped"]
    return groups + [(name, "host") for name in inventory.all]


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL: commands, options, files for -i, and host
    and group names from the inventory.

    \b
    bash:  source <(xnet completion bash)             (in ~/.bashrc; bash 4.4+)
    zsh:   xnet completion zsh > "${fpath[1]}/_xnet"  (then compinit)
    fish:  xnet completion fish > ~/.config/fish/completions/xnet.fish
    """
    root = click.get_current_context().find_root()
    cls = get_completion_class(shell)
    assert cls is not None  # the choice allows only the shells click knows
    script = cls(root.command, {}, "xnet", "_XNET_COMPLETE").source()
    click.echo(script)
