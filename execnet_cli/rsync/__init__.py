"""RSync: send a directory tree (or one file) to one or many gateways at once (execnet's API).

    rsync = RSync("src/", callback=None, verbose=True)
    rsync.add_target(gw1, "/srv/app", delete=True)
    rsync.add_target(gw2, "app")
    rsync.send()

``add_target`` starts the remote half in each gateway (``program``); ``send`` scans the
source once and serves every target from one loop (``_remote/rsync_send``): the manifest
streams out, each target answers with what it lacks, and each needed file is read once
and streamed to every target that needs it: small files many to a message, big ones in
chunks, changed big files as block deltas (``_remote/rsync_delta``), with a bounded window
per target. Paths a target names are checked against the manifest: it can only ever get
files that ``filter`` let into the scan. ``pull`` goes the other way, from one gateway.

Subclass hooks, as in execnet: ``filter(path)`` (full source path; False leaves it out)
and ``_report_send_file(gateway, relpath)`` (called for every file whose content is
sent; prints it when ``verbose``). ``callback(kind, size, channel)``: ``("list", total
bytes needed, channel)`` once per target, ``("ack", size, channel)`` per needed file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Callable, Optional

from .._remote.rsync_delta import DELTA_MIN
from .._remote.rsync_send import CHUNK_SIZE, WINDOW, Sender, Target
from .._remote.rsync_tree import PROTOCOL, Excludes, Tree, identity
from ..errors import RSyncError
from . import program
from .excludes import Rule, translate
from .pull import pull
from .results import SyncResult, error_line

__all__ = [
    "CHUNK_SIZE",
    "DELTA_MIN",
    "OPTIONS",
    "WINDOW",
    "RSync",
    "RSyncError",
    "SyncResult",
    "error_line",
    "pull",
]

log = logging.getLogger("execnet_cli.rsync")

#: What ``add_target`` accepts: ``delete`` removes what the destination has beyond the
#: source (but what ``excludes`` protect); ``checksum`` compares content, not size and
#: mtime; ``dry_run`` reports and changes nothing; ``delta`` (default: not for local
#: popen gateways, where copying is cheaper than comparing) sends changed big files as
#: block deltas.
OPTIONS = ("delete", "checksum", "dry_run", "delta")


class _Added:
    """A target added and not yet sent to."""

    def __init__(self, gateway: Any, target: Target, dest: str, finished: Any, dry_run: bool):
        self.gateway = gateway
        self.target = target
        self.dest = dest
        self.finished = finished
        self.dry_run = dry_run


class RSync:
    """Sends a directory (or one file) to several gateways, as execnet's ``RSync`` does.

    Symlinks are recreated as links: an absolute link into the source tree becomes a
    relative one (so it points into the copy), any other link is kept as it is. Other
    special files (sockets, fifos, devices) are skipped. ``excludes``: ``.gitignore``-style
    patterns (``excludes.py``) left out of the scan and protected from ``delete``.
    """

    def __init__(
        self,
        sourcedir: Any,
        callback: Optional[Callable[..., Any]] = None,
        verbose: bool = True,
        *,
        excludes: Iterable[str] = (),
    ) -> None:
        self._sourcedir = str(sourcedir)
        self._verbose = verbose
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable")
        self._callback = callback
        self._rules: list[Rule] = translate(excludes)
        self._added: list[_Added] = []
        #: (relpath, why) of what the last ``send`` did not send (changed while read, ...).
        self.skipped: list[tuple[str, str]] = []

    # -- hooks -----------------------------------------------------------------------

    def filter(self, path: str) -> bool:
        """Whether ``path`` (a full source path) is sent; override to leave things out."""
        return True

    def _report_send_file(self, gateway: Any, modified_rel_path: str) -> None:
        if self._verbose:
            print(f"{gateway} <= {modified_rel_path}")

    # -- targets ---------------------------------------------------------------------

    def add_target(
        self,
        gateway: Any,
        destdir: Any,
        finishedcallback: Optional[Callable[[], None]] = None,
        **options: Any,
    ) -> None:
        """Sync into ``destdir`` on ``gateway`` at the next ``send()`` (``OPTIONS``)."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise TypeError(f"unknown rsync option(s) {', '.join(unknown)}; known: {OPTIONS}")
        settings = {key: bool(value) for key, value in options.items()}
        settings.setdefault("delta", not _is_local(gateway))
        settings["excludes"] = self._rules  # type: ignore[assignment]
        try:  # named in the far side's errors; a sync onto the source itself is refused
            settings["source"] = [self._sourcedir, identity(self._sourcedir)]  # type: ignore[assignment]
        except OSError:
            pass  # missing: send() says so
        channel = program.start(gateway)
        channel.send(("rsync", PROTOCOL, "push", str(destdir), settings))
        target = Target(channel, str(getattr(gateway, "id", None) or gateway))
        dry_run = bool(settings.get("dry_run"))
        self._added.append(_Added(gateway, target, str(destdir), finishedcallback, dry_run))

    # -- sending ---------------------------------------------------------------------

    def send(
        self,
        raises: bool = True,
        *,
        check: bool = True,
        timeout: Optional[float] = None,
        hooks: Any = None,
        stop: Any = None,
    ) -> Optional[list[SyncResult]]:
        """Sync the source to every target added since the last ``send()``.

        Without targets: OSError, or None when ``raises`` is False (as execnet). Returns each
        target's ``SyncResult``; with ``check`` (the default), the first target that
        failed raises ``RSyncError`` once all the others are done. ``timeout`` (seconds)
        fails the targets still running then; ``hooks`` gets the sender's events
        (``_remote/rsync_send.Sender``), for progress displays; once ``stop`` (a
        ``threading.Event``) is set, the targets still running fail as interrupted.
        """
        added, self._added = self._added, []
        if not added:
            if raises:
                raise OSError("no targets: add_target() first (a send() uses up its targets)")
            return None
        tree = Tree(self._sourcedir, Excludes(self._rules), keep=self.filter)
        deadline = None if timeout is None else time.monotonic() + timeout
        targets = [a.target for a in added]
        sender = Sender(tree, targets, _Hooks(self, added, hooks), deadline, stop)
        sender.run()
        for item in added:
            if item.target.failure == "timed out":
                item.target.failure = f"timed out after {timeout:g} s"
        self.skipped = list(tree.skipped)
        for index, why in sender.skipped.items():
            relpath = tree.entries[index][0]
            log.warning("rsync: %s: %s; not sent", tree.path(relpath), why)
            self.skipped.append((relpath, why))
        results = [SyncResult.of_target(a.target, a.dest, self.skipped, a.dry_run) for a in added]
        if check:
            for item, result in zip(added, results):
                if not result.ok:
                    raise RSyncError(f"rsync to {item.gateway}: {result.error}")
                if result.errors:
                    path, reason = result.errors[0]
                    more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
                    raise RSyncError(f"rsync to {item.gateway}: {path}: {reason}{more}")
        return results


class _Hooks:
    """The sender's events, turned into execnet's callbacks and hooks."""

    def __init__(self, rsync: RSync, added: list[_Added], more: Any) -> None:
        self.rsync = rsync
        self.by_target = {id(a.target): a for a in added}
        self.more = more

    def _more(self, name: str, *args: Any) -> None:
        method = getattr(self.more, name, None)
        if method is not None:
            method(*args)

    def on_start(self, targets: list[Target]) -> None:
        self._more("on_start", targets)

    def on_file(self, targets: list[Target], relpath: str) -> None:
        for target in targets:
            self.rsync._report_send_file(self.by_target[id(target)].gateway, relpath)
        self._more("on_file", targets, relpath)

    def on_list(self, target: Target) -> None:
        if self.rsync._callback is not None:
            self.rsync._callback("list", target.bytes_total, target.channel)
        self._more("on_list", target)

    def on_ack(self, target: Target, relpath: str, size: int) -> None:
        if self.rsync._callback is not None:
            self.rsync._callback("ack", size, target.channel)
        self._more("on_ack", target, relpath, size)

    def on_done(self, target: Target) -> None:
        finished = self.by_target[id(target)].finished
        if finished is not None:
            finished()
        self._more("on_done", target)


def _is_local(gateway: Any) -> bool:
    """A popen gateway on this machine: copying beats computing deltas there."""
    spec = getattr(gateway, "spec", None)
    return bool(getattr(spec, "popen", None)) and not getattr(spec, "via", None)
