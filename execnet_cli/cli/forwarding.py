"""What ``xnet run`` runs, and which of this controller's modules its hosts may import.

``CODE``, ``-m pkg.mod[:func]`` or ``--file SCRIPT`` say what runs; ``--forward-imports``
(on by default for ``-m`` and ``--file``, and when ``--forward-path`` is given) lets
the hosts import what they lack from here, under a deny-by-default policy whose roots
are: the ``--forward-path`` directories, then the package of the ``-m`` target, or the
script's directory, or (for CODE) the current directory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import click

from ..fleet.jobs import Job, call_job, python_job
from .options import fail

if TYPE_CHECKING:  # the import server loads the gateway stack: ``xnet sh`` needs none
    from ..imports import Root

__all__ = ["forwarding_options", "run_job"]

_OPTIONS = (
    click.option(
        "-m",
        "--module",
        "target",
        metavar="PKG.MOD[:FUNC]",
        help="Call FUNC() from module PKG.MOD on every host and show what it returns, or "
        "without :FUNC run the module as __main__ (python -m). Its package is imported "
        "from here when a host lacks it.",
    ),
    click.option(
        "-F",
        "--file",
        "script",
        type=click.Path(dir_okay=False),
        metavar="SCRIPT",
        help="Run SCRIPT (as @SCRIPT does); hosts import the modules beside it from here.",
    ),
    click.option(
        "--forward-imports/--no-forward-imports",
        default=None,
        help="Let hosts import from here the modules they lack (default: on with -m, "
        "--file and --forward-path). Their own modules always win.",
    ),
    click.option(
        "--forward-path",
        "forward_paths",
        multiple=True,
        type=click.Path(exists=True, file_okay=False),
        metavar="DIR",
        help="A directory hosts may import from, like a sys.path entry (repeatable). "
        "Nothing outside the allowed directories is ever sent.",
    ),
)


def forwarding_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add ``-m``, ``--file``, ``--forward-imports`` and ``--forward-path`` to ``command``."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def run_job(
    code: Optional[str],
    timeout: Optional[float],
    *,
    target: Optional[str],
    script: Optional[str],
    forward_imports: Optional[bool],
    forward_paths: tuple[str, ...],
) -> Job:
    """The job ``xnet run`` sends, with the import policy its options ask for."""
    from ..imports import ImportPolicy, Root

    given = [name for name, value in (("CODE", code), ("-m", target), ("--file", script)) if value]
    if len(given) != 1:
        raise click.UsageError(
            "give one of CODE, -m PKG.MOD[:FUNC] or --file SCRIPT"
            + (f" (not {' and '.join(given)})" if given else "")
        )
    forward = forward_imports
    if forward is None:
        forward = bool(target or script or forward_paths)
    roots = [Root(os.path.abspath(path)) for path in forward_paths]
    if target:
        _check_target(target)
        roots += _target_roots(target, forward_paths) if forward else []
        return call_job(target, timeout, ImportPolicy(tuple(roots)) if forward else None)
    if script:
        code = "@" + script
    assert code is not None
    source, filename = read_code(code)
    if code.startswith("@"):
        roots.append(Root(os.path.dirname(os.path.abspath(code[1:]))))
    elif not roots:
        roots.append(Root(os.getcwd()))
    policy = ImportPolicy(tuple(roots)) if forward else None
    return python_job(source, filename, timeout, policy)


def _check_target(target: str) -> None:
    from ..imports import check_name

    module, _, function = target.partition(":")
    why = check_name(module)
    if why is None and ":" in target and not function.isidentifier():
        why = f"{function!r} is not a function name"
    if why is not None:
        raise click.BadParameter(why, param_hint="'-m'")


def _target_roots(target: str, forward_paths: tuple[str, ...]) -> list[Root]:
    """The root serving the ``-m`` target's top-level package, found as ``python -m``
    would (the ``--forward-path`` directories first, then here, then ``sys.path``)."""
    from ..imports import module_root

    module = target.partition(":")[0]
    search = [*map(os.path.abspath, forward_paths), os.getcwd(), *(p for p in sys.path if p)]
    found: Any = module_root(module.partition(".")[0], search)
    if isinstance(found, str):
        fail(
            f"-m {target}: {found} (searched --forward-path, the current directory and "
            "sys.path); --no-forward-imports runs what the hosts have"
        )
    return [found]


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
