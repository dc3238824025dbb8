"""``xnet shell HOST``: an interactive Python prompt on remote hosts; ``--sh``: a login shell.

The command picks the hosts (``shell_hosts``), starts a ``Session`` of remote engines
(``shell_session``, ``shell_remote``; the far side is ``_remote/shell.py``) and reads
statements from the terminal or a pipe (``shell_repl``); ``--sh`` relays a remote
terminal instead (``shell_term``). Exit statuses are ``xnet run``'s (``exitcodes``).
"""

from __future__ import annotations

import sys
from typing import Optional

import click

from ..group import Group
from ..inventory import Host, HostSet, Inventory, PatternError
from .exitcodes import EXIT_ERROR, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNREACHABLE
from .hostkeys import KeyQuestion, accept_new_option
from .options import complete_hosts, fail, fanout_option, inventory_option
from .selection import SelectionError, resolve_selection
from .shell_hosts import open_hosts, select
from .shell_repl import batch, interact
from .shell_session import Session, SessionEnded
from .shell_term import Terminal

__all__ = ["shell"]


@click.command("shell")
@click.argument("host", shell_complete=complete_hosts)
@inventory_option
@click.option(
    "--sh",
    "login_shell",
    is_flag=True,
    help="The user's login shell on HOST, on a real terminal (one host).",
)
@fanout_option("Hosts connected to at once.")
@click.option(
    "-t",
    "--timeout",
    "statement_timeout",  # not the config file's ``timeout`` (a job's): a session is yours
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Drop a host from the session when a statement runs longer there.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show whole tracebacks from many hosts.")
@accept_new_option
def shell(
    host: str,
    inventories: tuple[str, ...],
    login_shell: bool,
    fanout: int,
    statement_timeout: Optional[float],
    verbose: bool,
    accept_new: bool,
) -> None:
    """Python on HOST, interactively: the interpreter runs there, line editing here.

    HOST is an inventory host or pattern (several hosts: each statement runs on all of
    them, results shown folded), or user@host, host:port or a dotted name, reached over
    ssh. Tab completes names from the remote namespace; Ctrl-C interrupts the running
    statement; Ctrl-D or exit() ends the session. '%hosts PATTERN' changes the hosts.
    From a pipe, statements run without prompts (exit status 1 if one raised).

    \b
    Examples:
      xnet shell localhost
      xnet shell -i lab.yaml 'web[01-16]'
      printf 'import os\\nprint(os.getpid())\\n' | xnet shell deploy@build01
      xnet shell --sh -i lab.yaml web01

    \b
    Exit status: what exit(N) asked for; 0 at Ctrl-D; from a pipe 1 if a statement
    raised; 1 connection lost; 2 usage or inventory error; 3 unreachable; 5 no host
    selected; 70 internal error (see --debug); 130 interrupted. With --sh, the remote
    shell's exit status.
    """
    inventory, hosts = select(inventories, host)
    question = KeyQuestion(accept_new)
    if login_shell:
        if len(hosts) != 1:
            names = HostSet(h.name for h in hosts)
            fail(f"--sh takes one host; {host!r} selects {len(hosts)} ({names})")
        raise click.exceptions.Exit(_login_shell(inventory, hosts[0], fanout, question))
    raise click.exceptions.Exit(
        _python(inventory, hosts, fanout, statement_timeout, verbose, question)
    )


def _python(
    inventory: Inventory,
    hosts: list[Host],
    fanout: int,
    timeout: Optional[float],
    verbose: bool,
    question: KeyQuestion,
) -> int:
    interactive = sys.stdin.isatty()

    def read_line() -> Optional[str]:
        """A line for the remote ``input()``: from the terminal, or the pipe's next line."""
        if interactive:
            try:
                return input() + "\n"
            except EOFError:
                return None
        return sys.stdin.readline() or None

    session = Session(
        inventory,
        fanout=fanout,
        timeout=timeout,
        verbose=verbose,
        read_line=read_line,
        decide=question,
    )
    try:
        unreachable, errors = session.add(hosts)
        _report_failures(session, unreachable, errors, alone=not session.shells)
        _hint(session, question)
        if not session.shells:
            return EXIT_ERROR if errors else EXIT_UNREACHABLE
        command = _Commands(session, question)
        if interactive:
            click.echo(banner(session))
            status = interact(session, command, sys.stdout)
        else:
            status = batch(session, sys.stdin, command)
    except SessionEnded as exc:
        session.note(str(exc))
        return exc.status
    except KeyboardInterrupt:
        session.note("interrupted")
        return EXIT_INTERRUPTED
    finally:
        session.close()
    if status == EXIT_OK and unreachable:
        return EXIT_UNREACHABLE
    return status


def _report_failures(
    session: Session, unreachable: dict[str, str], errors: dict[str, str], alone: bool
) -> None:
    """One line per host that did not open; ``error:`` when no host is left."""
    for name, line in sorted({**unreachable, **errors}.items()):
        kind = "unreachable" if name in unreachable else "internal error (see --debug)"
        if alone:
            click.echo(f"xnet: error: {name}: {kind}: {line}", err=True)
        else:
            session.note(f"{name}: {kind}: {line}; not in the session")


def _hint(session: Session, question: KeyQuestion) -> None:
    """What became of the host keys refused (and how to accept them), once."""
    question.hint(session.refused)
    session.refused = []


class _Commands:
    """The ``%`` commands: ``%hosts`` shows the hosts, ``%hosts PATTERN`` changes them."""

    def __init__(self, session: Session, question: KeyQuestion) -> None:
        self.session = session
        self.question = question

    def __call__(self, line: str) -> None:
        name, _, argument = line[1:].partition(" ")
        session = self.session
        if name != "hosts":
            session.note(f"unknown command %{name}: there is %hosts [PATTERN]")
            return
        pattern = argument.strip()
        if pattern:
            try:
                if pattern == "-":
                    raise SelectionError("%hosts - : standard input is for statements")
                hosts = resolve_selection(pattern, session.inventory)
            except (PatternError, SelectionError) as exc:
                session.note(str(exc))
                return
            session.keep(h.name for h in hosts)
            unreachable, errors = session.add(hosts)
            _report_failures(session, unreachable, errors, alone=False)
            _hint(session, self.question)
        names = session.names
        click.echo(f"{names} ({len(names)} host{'s' if len(names) != 1 else ''})")


def banner(session: Session) -> str:
    """Which Python runs where, and how to leave."""
    kinds: dict[tuple[str, str], list[str]] = {}
    for name, remote in session.shells.items():
        facts = remote.facts
        kinds.setdefault((facts["version"], facts["platform"]), []).append(name)
    lines = []
    for (version, platform), names in sorted(kinds.items()):
        line = f"{HostSet(names)}: Python {version} on {platform}"
        if len(session.shells) == 1:
            facts = next(iter(session.shells.values())).facts
            line += f" ({facts['node']}, pid {facts['pid']})"
        lines.append(line)
    lines.append("Ctrl-D or exit() ends the session, Ctrl-C interrupts a statement, Tab completes.")
    if len(session.shells) > 1:
        lines.append("Each statement runs on every host; %hosts PATTERN changes the hosts.")
    return "\n".join(lines)


def _login_shell(inventory: Inventory, host: Host, fanout: int, question: KeyQuestion) -> int:
    group = Group()
    try:
        opened = open_hosts(group, inventory, [host], fanout, question)
        if host.name not in opened.gateways:
            session_less = {**opened.unreachable, **opened.errors}
            kind = "unreachable" if host.name in opened.unreachable else "internal error"
            click.echo(f"xnet: error: {host.name}: {kind}: {session_less[host.name]}", err=True)
            question.hint(opened.refused)
            return EXIT_UNREACHABLE if host.name in opened.unreachable else EXIT_ERROR
        status = Terminal(opened.gateways[host.name], sys.stdin.fileno(), sys.stdout.fileno()).run()
        if status is None:
            click.echo(f"xnet: {host.name}: connection lost", err=True)
            return EXIT_FAILED
        return status
    finally:
        group.terminate(1.0)
