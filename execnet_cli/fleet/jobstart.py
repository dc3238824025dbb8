"""Starting a host's job, at best right behind the worker's bootstrap (before it is ready).

Opening a gateway and then running the job costs a round trip after the worker is ready
(ready message in, job out) and, on a loaded controller, a chain of thread wake-ups per
host. A ``JobStart`` given to ``Group.makegateway(before_ready=...)`` sends the job's exec
request as soon as the bootstrap is written, so the worker finds it waiting once it has
started, and the job's channel already feeds a ``Collector``.

Not for jobs whose imports are forwarded (the import server must be in place first: those
start after the open, ``start_job``), nor for ``Job.early`` False (a ping times the round
trip), nor for carriers and relays. A worker that cannot
serve (an impossible ``chdir``) refuses the request (``_remote.worker``), and the open
fails as it would without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ..errors import ChannelClosed, RemoteError
from ..errors import TimeoutError as XnetTimeoutError
from .collect import CLOSED, Collector
from .jobs import Job

if TYPE_CHECKING:  # not imported by a run whose hosts all run ``sh`` direct
    from ..gateway import Gateway

__all__ = ["JobStart", "one_line", "start_job"]


class JobStart:
    """A host's job channel and its collector once started (``None`` before); each call
    (an open: a retry is another) starts the job afresh on ``gateway``."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.started: Optional[tuple[Any, Collector]] = None

    def __call__(self, gateway: Gateway) -> None:
        collector = Collector()
        channel = gateway.remote_exec(self.job.source)
        channel.setcallback(collector.on_item, endmarker=CLOSED)
        self.started = (channel, collector)

    def applies(self) -> bool:
        """Whether the job may travel behind the bootstrap."""
        return self.job.imports is None and self.job.early


def start_job(gateway: Gateway, job: Job, sent: JobStart) -> tuple[Any, Collector]:
    """The job's channel and collector on an open gateway: those sent with the bootstrap,
    else new ones, its imports served first. ChannelClosed when the worker is gone."""
    if sent.started is None:
        if job.imports is not None:
            from ..imports import serve_imports

            try:
                serve_imports(gateway, job.imports)
            except (RemoteError, EOFError, XnetTimeoutError) as exc:
                raise ChannelClosed(f"cannot forward imports: {one_line(exc)}") from exc
        sent(gateway)
    assert sent.started is not None  # set by the call above
    return sent.started


def one_line(exc: BaseException) -> str:
    """The line a summary shows: a remote traceback's last line, else ``Type: message``."""
    lines = str(exc).strip().splitlines()
    text = lines[-1] if lines else ""
    if isinstance(exc, RemoteError):
        return text or "remote error"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
