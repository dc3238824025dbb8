"""What one sync to (or from) one place did: a ``SyncResult``, from either half's counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .._remote.rsync_recv import Receiver
from .._remote.rsync_send import Target

__all__ = ["SyncResult", "error_line"]


def error_line(exc: BaseException) -> str:
    """The one line a report shows for ``exc``: a remote traceback's last line, an OS
    error's path and reason, else ``Type: message``."""
    from .._remote.rsync_tree import DestinationError
    from ..errors import RemoteError

    text = str(exc).strip()
    if isinstance(exc, RemoteError):
        lines = text.splitlines()
        return lines[-1] if lines else "remote error"
    if isinstance(exc, DestinationError):
        return text
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True)
class SyncResult:
    """One destination's sync: ``ok`` once it completed (file errors aside), with its counts.

    ``wire_sent``/``wire_received`` are the protocol's bytes each way as counted by this
    side (message payloads; transport framing and encryption not included). ``files`` and
    ``file_bytes`` are the files written (or, in a dry run, that would be) and their
    sizes; ``literal`` the file bytes that travelled, ``matched`` those that block deltas
    spared. ``errors`` are (path, reason) the receiver could not write; ``skipped`` (path,
    reason) the sender did not send (changed while read, special files).
    """

    name: str
    dest: str
    ok: bool
    error: Optional[str] = None
    detail: Optional[str] = None
    files: int = 0
    file_bytes: int = 0
    wire_sent: int = 0
    wire_received: int = 0
    literal: int = 0
    matched: int = 0
    made: int = 0
    deleted: tuple[str, ...] = ()
    changes: tuple[tuple[str, str], ...] = ()
    errors: tuple[tuple[str, str], ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    duration: float = 0.0
    dry_run: bool = False

    @property
    def wire_bytes(self) -> int:
        return self.wire_sent + self.wire_received

    @property
    def clean(self) -> bool:
        """Completed, and every file written."""
        return self.ok and not self.errors

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` fields of this sync."""
        return {
            "dest": self.dest,
            "files": self.files,
            "file_bytes": self.file_bytes,
            "wire_bytes": self.wire_bytes,
            "wire_sent": self.wire_sent,
            "wire_received": self.wire_received,
            "literal_bytes": self.literal,
            "matched_bytes": self.matched,
            "made": self.made,
            "deleted": list(self.deleted),
            "changes": [f"{what} {path}" for what, path in self.changes],
            "errors": [{"path": path, "reason": reason} for path, reason in self.errors],
            "skipped": [{"path": path, "reason": reason} for path, reason in self.skipped],
            "dry_run": self.dry_run,
        }

    @classmethod
    def of_target(
        cls, target: Target, dest: str, skipped: list[tuple[str, str]], dry_run: bool
    ) -> SyncResult:
        """From the sending side's view of one target (a push)."""
        stats = target.stats
        sends = [path for what, path in target.changes if what == "send"]
        return cls(
            name=target.name,
            dest=dest,
            ok=target.done,
            error=target.failure,
            detail=getattr(target, "detail", None),
            files=len(sends) if dry_run else int(stats.get("files", 0)),
            file_bytes=target.listed_bytes if dry_run else int(stats.get("bytes", 0)),
            wire_sent=target.wire_sent,
            wire_received=target.wire_received,
            literal=target.literal,
            matched=target.matched,
            made=int(stats.get("made", 0)),
            deleted=tuple(target.deleted),
            changes=tuple(target.changes),
            errors=tuple(target.errors),
            skipped=tuple(skipped),
            duration=target.duration,
            dry_run=dry_run,
        )

    @classmethod
    def of_receiver(
        cls,
        receiver: Receiver,
        name: str,
        dest: str,
        duration: float,
        error: Optional[str] = None,
        detail: Optional[str] = None,
    ) -> SyncResult:
        """From the receiving side's view (a pull)."""
        stats = receiver.stats
        sends = [path for what, path in receiver.changes if what == "send"]
        return cls(
            name=name,
            dest=dest,
            ok=error is None,
            error=error,
            detail=detail,
            files=len(sends) if receiver.dry_run else stats["files"],
            file_bytes=receiver.listed_bytes if receiver.dry_run else stats["bytes"],
            wire_sent=receiver.sent_bytes,
            wire_received=receiver.received,
            literal=stats["literal"],
            matched=stats["copied"],
            made=stats["made"],
            deleted=tuple(receiver.deleted),
            changes=tuple(receiver.changes),
            errors=tuple(receiver.all_errors),
            skipped=tuple(receiver.skipped),
            duration=duration,
            dry_run=receiver.dry_run,
        )
