"""The jobs ``xnet run`` and ``xnet sh`` send to every host (the local half).

A job is the source text of a call of a pure function from ``_remote.jobs`` (the remote
half, stdlib only and Python 3.8+, checked with the rest of ``_remote/``), which every
worker has in its bundle: ``run_python`` or ``run_shell``, which say what items come back.
"""

from __future__ import annotations
import __future__

import importlib.util
import marshal
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Dict, Optional, Union

from .._remote import jobs as remote_jobs
from .._remote.jobs import run_python, run_shell
from ..bootstrap import WORKER_PACKAGE
from ..records import Record

if TYPE_CHECKING:  # the import server (and the gateway stack) only where imports travel
    from ..imports import ImportPolicy

__all__ = [
    "SH_TIMED_OUT",
    "SH_TIMEOUT_GRACE",
    "Job",
    "call_job",
    "call_source",
    "python_job",
    "shell_job",
]

#: With a timeout, how much longer we wait for ``sh`` to report its own timeout.
SH_TIMEOUT_GRACE = 3.0
#: How ``run_shell`` starts its reason when it killed the command at the timeout.
SH_TIMED_OUT = "timed out after "


class Job(Record):
    """What to run on each host: source text ending in a call of a worker-side function.

    A ``Record`` (a frozen value, as the dataclass it was, cheaper to import);
    ``replace`` makes a copy with some fields changed."""

    __slots__ = (  # noqa: RUF023 (the order __init__ takes them)
        "kind",
        "source",
        "timeout",
        "imports",
        "returns",
        "command",
        "command_timeout",
        "early",
    )
    kind: str  # "run" or "sh"
    source: str
    #: Local limit on the run, after the gateway is open (None: no limit).
    timeout: Optional[float]
    #: Serve the imports the host lacks from these roots (``execnet_cli.imports``).
    imports: Optional[ImportPolicy]
    #: A function's call: a ``("return", ...)`` item comes before the exit (``call_job``).
    returns: bool
    #: ``sh``: the command and its own timeout, for hosts that run it without a remote
    #: Python (``direct``).
    command: Optional[str]
    command_timeout: Optional[float]
    #: May travel behind the bootstrap (``jobstart``); False where the job times its own
    #: round trip on the open gateway (``xnet ping``'s RTT).
    early: bool

    def __init__(
        self,
        kind: str,
        source: str,
        timeout: Optional[float] = None,
        imports: Optional[ImportPolicy] = None,
        returns: bool = False,
        command: Optional[str] = None,
        command_timeout: Optional[float] = None,
        early: bool = True,
    ) -> None:
        self._set(kind, source, timeout, imports, returns, command, command_timeout, early)


def python_job(
    code: str,
    filename: str = "<xnet run>",
    timeout: Optional[float] = None,
    imports: Optional[ImportPolicy] = None,
) -> Job:
    """Run ``code`` as ``__main__``; exit code as ``python -c`` would give it."""
    timeout = _finite(timeout)
    source = call_source(run_python, code=code, filename=filename, **_program(code, filename))
    return Job("run", source, timeout, imports)


#: Above this many bytes a program is compiled by each worker (sent as a literal in the
#: job's text, a big one would cost the worker more to read than to compile).
PROGRAM_LIMIT = 16384


def _program(code: str, filename: str) -> Dict[str, bytes]:
    """``run_python``'s ``program`` and ``magic``: ``code`` compiled here once, as the
    worker would compile it (in ``_remote.jobs``: its future flags, no ``-O``), for
    workers of our bytecode; nothing if it does not compile (the worker then reports
    why) or is too big."""
    try:
        program = compile(
            code, filename, "exec", __future__.annotations.compiler_flag, True, optimize=0
        )
    except (SyntaxError, ValueError):
        return {}
    data = marshal.dumps(program)
    if len(data) > PROGRAM_LIMIT:
        return {}
    return {"program": data, "magic": importlib.util.MAGIC_NUMBER}


def call_job(
    target: str, timeout: Optional[float] = None, imports: Optional[ImportPolicy] = None
) -> Job:
    """Call ``pkg.mod:func`` with no arguments (its value is reported), or run ``pkg.mod``
    as ``__main__`` (``python -m``), importing from ``imports`` what the host lacks."""
    source = call_source(run_python, code="", filename=f"<xnet run -m {target}>", target=target)
    return Job("run", source, _finite(timeout), imports, ":" in target)


def shell_job(command: str, timeout: Optional[float] = None) -> Job:
    """Run ``command`` with ``sh -c``; the worker enforces ``timeout`` (we wait a bit longer)."""
    timeout = _finite(timeout)
    local = None if timeout is None else timeout + SH_TIMEOUT_GRACE
    source = call_source(run_shell, command=command, timeout=timeout)
    return Job("sh", source, local, command=command, command_timeout=timeout)


def _finite(timeout: Optional[float]) -> Optional[float]:
    return timeout if timeout is not None and math.isfinite(timeout) else None


def call_source(function: Callable[..., Any], **kwargs: Union[str, bytes, float, None]) -> str:
    """A call of ``function``, a pure function of ``_remote.jobs``, as text built once per
    run: every worker's bundle has that module (``bootstrap.REMOTE_MODULES``), as code
    objects where its interpreter takes ours, so the job imports it rather than sending
    the function's source, which each worker would compile (~2 ms per host).
    """
    if function.__module__ != remote_jobs.__name__:
        raise ValueError(f"{function.__qualname__} is not a function of _remote.jobs")
    for key, value in kwargs.items():
        if not isinstance(value, (str, bytes, int, float, type(None))):
            raise TypeError(f"{key}={value!r}: only str, bytes, int, float and None are passed")
    args = "".join(f", {key}={value!r}" for key, value in kwargs.items())
    name = function.__name__
    return f"from {WORKER_PACKAGE}.jobs import {name}\n{name}(channel{args})\n"
