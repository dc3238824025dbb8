"""RSync: send a directory tree to one or many gateways at once (execnet's API).

    rsync = RSync("src/", callback=None, verbose=True)
    rsync.add_target(gw1, "/srv/app", delete=True)
    rsync.add_target(gw2, "app")
    rsync.send()

``add_target`` starts the remote half (``_remote/rsync.py``, which states the
protocol) in each gateway; ``send`` scans the source once, sends every target the
manifest, and then serves all targets together from one event loop: each asks for the
files it lacks and gets them as a stream of chunks of at most ``CHUNK_SIZE`` bytes, with
at most ``WINDOW`` bytes unacknowledged per target, so memory stays bounded on both
sides whatever the file sizes. Paths the far side names are checked against the
manifest: it can only ever get files that ``filter`` let into the scan.

Subclass hooks, as in execnet: ``filter(path)`` (full source path; False leaves it out)
and ``_report_send_file(gateway, relpath)`` (called for every file whose content is
sent; prints it when ``verbose``). ``callback(kind, size, channel)``: ``("list", total
bytes needed, channel)`` once per target, ``("ack", size, channel)`` per needed file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from queue import SimpleQueue
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Tuple

from ._remote import rsync as rsync_worker
from ._remote.channel import Channel
from .errors import RSyncError

log = logging.getLogger("execnet_cli.rsync")

#: Largest data item sent (bytes): files always travel as a stream of such chunks.
CHUNK_SIZE = 256 * 1024
#: Bytes sent to one target and not yet reported written; sending pauses beyond this.
#: Must exceed the worker's CREDIT_BYTES, or a big file would stall.
WINDOW = 4 << 20
#: Manifest entries per message.
ENTRY_BATCH = 1000
OPTIONS = ("delete", "checksum")

assert WINDOW > rsync_worker.CREDIT_BYTES + CHUNK_SIZE

Entry = Tuple[str, str, int, int, int, Optional[str]]
_CLOSED = object()  # endmarker: the target's channel has closed
#: How a scanned file is opened: never through a link, never blocking on a fifo.
OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


class _Changed(Exception):
    """A scanned file is not the same file any more."""


class _Target:
    """One destination of a ``send()``: its channel and its progress."""

    def __init__(
        self,
        channel: Channel,
        destdir: str,
        finished: Optional[Callable[[], None]],
        options: Dict[str, bool],
    ) -> None:
        self.channel = channel
        self.destdir = destdir
        self.finished = finished
        self.options = options
        self.needs: List[Tuple[str, Optional[str]]] = []
        self.need_index = 0
        self.needs_complete = False
        #: Files announced and not yet acknowledged, in order: [relpath, bytes sent,
        #: bytes the far side reported written ("got")]. Only the last one is in progress.
        self.unacked: List[List[Any]] = []
        self.current: Optional[IO[bytes]] = None
        self.in_flight = 0
        self.finish_sent = False
        self.done = False

    @property
    def gateway(self) -> Any:
        return self.channel.gateway


class RSync:
    """Sends a directory (or one file) to several gateways, as execnet's ``RSync`` does.

    Symlinks are recreated as links: an absolute link into the source tree becomes a
    relative one (so it points into the copy), any other link is kept as it is. Other
    special files (sockets, fifos, devices) are skipped.
    """

    def __init__(self, sourcedir: Any, callback: Optional[Callable] = None, verbose: bool = True):
        self._sourcedir = str(sourcedir)
        self._verbose = verbose
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable")
        self._callback = callback
        self._targets: List[_Target] = []
        self._events: SimpleQueue = SimpleQueue()
        self._hashes: Dict[str, str] = {}
        self._files: Dict[str, Entry] = {}
        #: relpath -> (st_dev, st_ino) of each regular file as scanned.
        self._identity: Dict[str, Tuple[int, int]] = {}
        #: (relpath, why) of files not sent because they changed after the scan.
        self.skipped: List[Tuple[str, str]] = []

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
        """Sync into ``destdir`` on ``gateway`` at the next ``send()``.

        Options: ``delete=True`` removes what the destination has beyond the source;
        ``checksum=True`` compares the content (sha256) of files whose size and mtime
        match, instead of trusting them.
        """
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise TypeError(f"unknown rsync option(s) {', '.join(unknown)}; known: {OPTIONS}")
        channel = gateway.remote_exec(rsync_worker)
        target = _Target(
            channel, str(destdir), finishedcallback, {k: bool(v) for k, v in options.items()}
        )
        events = self._events
        channel.setcallback(lambda item: events.put((target, item)), endmarker=_CLOSED)
        channel.send(("rsync", rsync_worker.PROTOCOL, target.destdir, target.options))
        self._targets.append(target)

    # -- sending ---------------------------------------------------------------------

    def send(self, raises: bool = True) -> None:
        """Sync the source to every target added since the last ``send()``.

        Without targets: OSError, or nothing at all when ``raises`` is False.
        """
        targets, self._targets = self._targets, []
        if not targets:
            if raises:
                raise OSError("no targets: add_target() first (a send() uses up its targets)")
            return
        self._sourcedir = os.path.normpath(self._sourcedir)
        self._hashes = {}
        self._identity = {}
        self.skipped = []
        try:
            manifest = self._scan()
            self._files = {e[0]: e for e in manifest if e[1] == "f"}
            for target in targets:
                for start in range(0, len(manifest), ENTRY_BATCH):
                    target.channel.send(("entries", manifest[start : start + ENTRY_BATCH]))
                target.channel.send(("end_entries", len(manifest)))
            pending = len(targets)
            while pending:
                target, item = self._events.get()
                if target.done:
                    continue
                self._handle(target, item)
                if target.done:
                    pending -= 1
                else:
                    self._pump(target)
        finally:
            for target in targets:
                if target.current is not None:
                    target.current.close()
                if not target.done and not target.channel.isclosed():
                    target.channel.close()

    def _handle(self, target: _Target, item: Any) -> None:
        if item is _CLOSED:
            target.done = True
            target.channel.waitclose()  # raises the remote error, if there is one
            raise RSyncError(f"rsync to {target.gateway}: connection closed unexpectedly")
        if not isinstance(item, tuple) or not item:
            raise RSyncError(f"rsync to {target.gateway}: unexpected message {item!r:.100}")
        op = item[0]
        if op == "got":
            if not target.unacked:
                raise RSyncError(f"rsync to {target.gateway}: progress report out of place")
            target.unacked[0][2] += item[1]
            target.in_flight -= item[1]
        elif op == "ack":
            self._ack(target, item[1])
        elif op == "need":
            for relpath, digest in item[1]:
                if relpath not in self._files:
                    raise RSyncError(f"rsync to {target.gateway}: asked for unknown {relpath!r}")
                target.needs.append((relpath, digest))
        elif op == "need_end":
            if item[1] != len(target.needs):
                raise RSyncError(f"rsync to {target.gateway}: need list incomplete")
            target.needs_complete = True
            if self._callback is not None:
                total = sum(self._files[rel][2] for rel, _ in target.needs)
                self._callback("list", total, target.channel)
        elif op == "done":
            if not target.finish_sent:
                raise RSyncError(f"rsync to {target.gateway}: done before finish")
            target.done = True
            if target.finished is not None:
                target.finished()
            target.channel.waitclose()
        else:
            raise RSyncError(f"rsync to {target.gateway}: unexpected message {op!r:.100}")

    def _ack(self, target: _Target, relpath: Any) -> None:
        unacked = target.unacked
        in_progress = unacked[-1] if unacked and target.current is not None else None
        if not unacked or unacked[0][0] != relpath or unacked[0] is in_progress:
            raise RSyncError(f"rsync to {target.gateway}: unexpected ack for {relpath!r:.200}")
        _, sent, reported = unacked.pop(0)
        target.in_flight -= sent - reported  # the ack covers the file's last bytes
        if self._callback is not None:
            self._callback("ack", self._files[relpath][2], target.channel)

    def _pump(self, target: _Target) -> None:
        """Send ``target`` what it needs next, until its window is full."""
        if not target.needs_complete:
            return
        send = target.channel.send
        while target.in_flight < WINDOW:
            current = target.current
            if current is not None:
                data = current.read(CHUNK_SIZE)
                if data:
                    send(("chunk", data))
                    target.unacked[-1][1] += len(data)
                    target.in_flight += len(data)
                    continue
                current.close()
                target.current = None
                send(("eof", target.unacked[-1][1]))
            if target.need_index >= len(target.needs):
                if not target.finish_sent:
                    send(("finish",))
                    target.finish_sent = True
                return
            relpath, remote_digest = target.needs[target.need_index]
            target.need_index += 1
            target.unacked.append([relpath, 0, 0])
            self._start_file(target, relpath, remote_digest)

    def _start_file(self, target: _Target, relpath: str, remote_digest: Optional[str]) -> None:
        try:
            source = self._open_scanned(relpath)
        except _Changed as exc:
            self._skip(relpath, str(exc))
            target.channel.send(("gone", relpath))
            return
        if remote_digest is not None:
            try:
                same = self._sha256(relpath, source) == remote_digest
            except OSError:
                same = False
            if same:
                source.close()
                target.channel.send(("same", relpath))
                return
            source.seek(0)
        self._report_send_file(target.gateway, relpath)
        target.channel.send(("file", relpath))
        target.current = source

    def _open_scanned(self, relpath: str) -> IO[bytes]:
        """Open the file the scan saw, never through a link; ``_Changed`` if it is another.

        The scan used ``lstat``; between it and now the name may have become a link, a
        fifo, or another file (a hard link to a secret): ``O_NOFOLLOW`` and ``O_NONBLOCK``
        make opening it harmless, and ``fstat`` tells whether it is still the same file.
        """
        path = self._source_path(relpath)
        flags = OPEN_FLAGS if relpath else OPEN_FLAGS & ~getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags)  # the root itself may be a link the user named
        except OSError as exc:
            raise _Changed(f"changed since it was scanned ({exc.strerror or exc})") from None
        st = os.fstat(fd)
        entry = self._files[relpath]
        if not stat.S_ISREG(st.st_mode):
            what = "no longer a regular file"
        elif (st.st_dev, st.st_ino) != self._identity.get(relpath):
            what = "another file now has its name"
        elif st.st_size != entry[2]:
            what = f"size {entry[2]} became {st.st_size}"
        else:
            return os.fdopen(fd, "rb")
        os.close(fd)
        raise _Changed(f"changed since it was scanned ({what})")

    def _skip(self, relpath: str, why: str) -> None:
        log.warning("rsync: %s: %s; not sent", self._source_path(relpath), why)
        self.skipped.append((relpath, why))

    def _sha256(self, relpath: str, source: IO[bytes]) -> str:
        digest = self._hashes.get(relpath)
        if digest is None:
            hasher = hashlib.sha256()
            for block in iter(lambda: source.read(rsync_worker.HASH_BLOCK), b""):
                hasher.update(block)
            digest = self._hashes[relpath] = hasher.hexdigest()
        return digest

    def _source_path(self, relpath: str) -> str:
        if not relpath:
            return self._sourcedir
        return os.path.join(self._sourcedir, *relpath.split("/"))

    # -- scanning --------------------------------------------------------------------

    def _scan(self) -> List[Entry]:
        """The manifest: the root, then every entry ``filter`` keeps, parents first."""
        root = self._sourcedir
        st = os.stat(root)
        if stat.S_ISDIR(st.st_mode):
            manifest: List[Entry] = [("", "d", 0, st.st_mtime_ns, st.st_mode & 0o7777, None)]
            manifest.extend(self._walk(root))
        elif stat.S_ISREG(st.st_mode):
            self._identity[""] = (st.st_dev, st.st_ino)
            manifest = [("", "f", st.st_size, st.st_mtime_ns, st.st_mode & 0o7777, None)]
        else:
            raise RSyncError(f"cannot sync {root!r}: not a directory or a regular file")
        return manifest

    def _walk(self, root: str) -> Iterator[Entry]:
        stack: List[Tuple[str, str]] = [(root, "")]
        while stack:
            directory, reldir = stack.pop()
            subdirs = []
            for name in sorted(os.listdir(directory)):
                path = os.path.join(directory, name)
                if not self.filter(path):
                    continue
                relpath = f"{reldir}/{name}" if reldir else name
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue
                mode = st.st_mode
                if stat.S_ISREG(mode):
                    self._identity[relpath] = (st.st_dev, st.st_ino)
                    yield (relpath, "f", st.st_size, st.st_mtime_ns, mode & 0o7777, None)
                elif stat.S_ISDIR(mode):
                    yield (relpath, "d", 0, st.st_mtime_ns, mode & 0o7777, None)
                    subdirs.append((path, relpath))
                elif stat.S_ISLNK(mode):
                    yield (relpath, "l", 0, 0, 0, self._link_target(path))
                else:
                    log.warning("rsync: skipping %s: not a file, directory or symlink", path)
            stack.extend(reversed(subdirs))

    def _link_target(self, path: str) -> str:
        """The link as the copy should have it: absolute links into the tree made relative."""
        target = os.readlink(path)
        if os.path.isabs(target):
            inside = os.path.relpath(target, self._sourcedir)
            if (
                inside != os.curdir
                and inside != os.pardir
                and not inside.startswith(os.pardir + os.sep)
            ):
                return os.path.relpath(target, os.path.dirname(path))
        return target
