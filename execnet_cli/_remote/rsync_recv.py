"""The receiving half of rsync: compare the manifest with the disk, ask, write, delete.

Standard library only, Python 3.8. It runs where the copy is: in a worker for a push, in
the controller for a pull. The messages are described in ``rsync.py``.

Nothing the peer sends is trusted: every entry is checked (``rsync_tree.check_entry``),
its parent must be a directory entry sent before it, and data is only taken for files
asked for, in the order asked. A file arrives in a temporary created exclusively beside
its target, renamed into place once complete: an interrupted sync leaves no half-written
file under a real name. Every path under the destination is reached through directory
fds opened without following links (``rsync_dirs``), and metadata is set through an fd:
a directory swapped for a symlink while the sync runs is an error there, never a way out.
What cannot be written is reported (path and reason) and the sync goes on.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
from collections import deque

from .rsync_data import DataReceiver
from .rsync_delta import DELTA_MIN, block_size, signature
from .rsync_dirs import Landing, lstat_at, open_root, remove_at
from .rsync_tree import (
    TEMP_NAME,
    DestinationError,
    Excludes,
    RsyncProtocolError,
    check_relpath,
    credit,
    error_message,
    fd_sha256,
    identity,
    open_regular,
    pack_needs,
    remove_stale_temps,
    set_meta,
    unpack_entries,
)


class Receiver(DataReceiver):
    """One sync into ``destdir``; ``run()`` serves the whole conversation (the data half:
    ``rsync_data``)."""

    def __init__(self, channel, destdir, options):
        self.channel = channel
        self.root = os.path.abspath(os.path.expanduser(destdir))
        self.delete = bool(options.get("delete"))
        self.checksum = bool(options.get("checksum"))
        self.dry_run = bool(options.get("dry_run"))
        self.delta = bool(options.get("delta", True))
        self.into = options.get("into")
        self.source = options.get("source")  # (name, identity) of the source, for checks
        self.excludes = Excludes(options.get("excludes") or ())
        self.entries = []
        self.children = {}  # dir relpath -> names the manifest has in it
        self.dir_index = {}  # dir relpath -> entry index
        self.synced = []  # [index, created, (mode, mtime_ns) found] of synced directories
        self.failed = set()  # relpaths of directories that could not be made
        self.touched = set()  # relpaths of directories we changed something in
        self.cleaned = set()
        self.needs = []  # the need batch being built: (index, how, arg)
        self.made = []
        self.errors = []  # (relpath, message) not reported yet
        self.expected = deque()  # (index, how) of needs to be answered, in order
        self.signed = {}  # index -> (dev, ino, size) of the old file a signature describes
        self.received = 0  # wire bytes in and out (about)
        self.sent_bytes = 0
        self.all_errors = []  # every (relpath, message), for a local receiver's report
        self.changes = []  # ("send" or "make", relpath), for reports
        self.deleted = []
        self.skipped = []  # (relpath, why) the sender did not send
        self.files_total = self.bytes_total = 0
        self.listed_bytes = 0  # sizes of what a dry run would send
        self.stats = {"files": 0, "bytes": 0, "literal": 0, "copied": 0, "deleted": 0, "made": 0}
        self.error_count = 0
        self.dirs = Landing(None)  # the destination's directories, once it exists

    def at(self, relpath, func):
        """``func(fd of its directory, its name)`` for an entry: no link followed on the way."""
        return self.dirs.at(relpath, func)

    def set_meta(self, relpath, mode, mtime_ns):
        self.at(relpath, lambda fd, name: set_meta(fd, name, mode, mtime_ns))

    def lstat(self, relpath):
        """The entry's lstat here, None if there is none (or, in a dry run, none yet)."""
        try:
            return self.at(relpath, lstat_at)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if self.dry_run and exc.errno == errno.ELOOP:
                return None  # below a link that the sync would replace by a directory
            raise

    def send(self, item, size=32):
        self.channel.send(item)
        self.sent_bytes += size

    # -- the conversation ----------------------------------------------------------------

    def run(self):
        try:
            self.converse()
        finally:
            self.dirs.close()

    def converse(self):
        total = None
        while True:
            msg = self.channel.receive()
            if not isinstance(msg, tuple) or not msg:
                raise RsyncProtocolError(f"unexpected message {msg!r:.200}")
            op = msg[0]
            if op == "entries" and total is None and len(msg) == 2:
                self.received += len(msg[1])
                for entry in unpack_entries(msg[1]):
                    self.add_entry(entry)
                self.flush_needs()
            elif op == "end_entries" and total is None and len(msg) == 2:
                if msg[1] != len(self.entries) or not self.entries:
                    raise RsyncProtocolError(
                        f"manifest incomplete: {len(self.entries)} of {msg[1]!r}"
                    )
                if self.delete:
                    self.delete_extras()
                total = len(self.expected)
                self.flush_needs()
                self.send(("need_end", total))
            elif op == "finish" and total is not None:
                if self.expected:
                    raise RsyncProtocolError(f"finish before {len(self.expected)} needed files")
                self.finish()
                return
            elif total is not None and op in ("batch", "file", "delta"):
                self.received += credit(msg)
                if op == "batch":
                    self.receive_batch(msg)
                else:
                    self.receive_stream(msg)
            else:
                raise RsyncProtocolError(f"unexpected message {msg!r:.200}")

    def error(self, relpath, exc):
        """Report what could not be done at ``relpath``, by its path here, and go on."""
        path = os.path.join(self.root, *relpath.split("/")) if relpath else self.root
        self.errors.append((path, error_message(exc)))
        self.all_errors.append(self.errors[-1])
        self.error_count += 1

    def flush_needs(self):
        if self.needs or self.made:
            packed = pack_needs(self.needs)
            size = len(packed) + 8 * len(self.made) + 32
            self.send(("need", packed, self.made, len(self.entries)), size)
            self.needs, self.made = [], []
        self.flush_errors()

    def flush_errors(self):
        if self.errors:
            self.send(("errors", self.errors))
            self.errors = []

    # -- the manifest ----------------------------------------------------------------------

    def add_entry(self, entry):
        """One checked entry (``unpack_entries``): compare it with the disk, decide."""
        relpath, kind, size, mtime_ns, mode, target = entry
        index = len(self.entries)
        if (index == 0) != (relpath == ""):
            raise RsyncProtocolError(f"entry {relpath!r}: the root entry comes first, once")
        parent, _, name = relpath.rpartition("/")
        if index:
            names = self.children.get(parent)
            if names is None:
                raise RsyncProtocolError(
                    f"entry {relpath!r}: its parent was not sent as a directory"
                )
            if name in names:
                raise RsyncProtocolError(f"duplicate entry {relpath!r}")
            names.add(name)
        elif kind == "l":
            raise RsyncProtocolError("the root entry cannot be a link")
        self.entries.append((relpath, kind, size, mtime_ns, mode, target))
        if index and parent in self.failed:
            if kind == "d":  # below a directory that could not be made: skipped, still checked
                self.children[relpath] = set()
                self.failed.add(relpath)
            return
        try:
            if index == 0:
                self.add_root(kind, size, mtime_ns, mode)
            elif kind == "d":
                self.add_dir(index, relpath, mode, mtime_ns)
            elif kind == "l":
                self.add_link(index, relpath, target)
            else:
                self.compare_file(index, self.lstat(relpath), size, mtime_ns, mode)
        except DestinationError:
            raise
        except OSError as exc:
            self.error(relpath, exc)
            if kind == "d":
                self.failed.add(relpath)

    def add_root(self, kind, size, mtime_ns, mode):
        if kind == "f" and self.into:
            check_relpath(self.into)
            self.root = os.path.join(self.root, self.into)
        path = self.root
        if kind == "d":
            self.children[""] = set()
            self.dir_index[""] = 0
        try:
            st = os.stat(path)  # the destination may be a link the user chose
        except FileNotFoundError:
            st = None
        if st is not None and self.source and identity(path) == self.source[1]:
            raise DestinationError(f"{path} is the source itself: nothing to sync")
        name = self.source[0] if self.source else "a " + ("directory" if kind == "d" else "file")
        if kind == "d":
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise DestinationError(f"cannot sync {name} onto {path}: not a directory")
            if st is None and not self.dry_run:
                os.makedirs(path)
            if st is not None or not self.dry_run:
                self.dirs.root_fd = open_root(path)
            found = None if st is None else (st.st_mode, st.st_mtime_ns)
            self.synced.append([0, st is None, found])
            return
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise DestinationError(f"cannot sync file {name} onto directory {path}")
        parent = os.path.dirname(path)
        if not os.path.isdir(parent) and not self.dry_run:
            os.makedirs(parent)
        landing = open_root(parent) if os.path.isdir(parent) else None
        self.dirs.single = (landing, os.path.basename(path))
        self.compare_file(0, self.lstat(""), size, mtime_ns, mode)

    def add_dir(self, index, relpath, mode, mtime_ns):
        self.children[relpath] = set()
        self.dir_index[relpath] = index
        st = self.lstat(relpath)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            self.remove(relpath, st)
            st = None
        if st is None:
            if not self.dry_run:
                self.at(relpath, lambda fd, name: os.mkdir(name, 0o700, dir_fd=fd))
            self.note_made(index)
            self.touch(relpath)
        found = None if st is None else (st.st_mode, st.st_mtime_ns)
        self.synced.append([index, st is None, found])

    def add_link(self, index, relpath, target):
        st = self.lstat(relpath)
        if st is not None:
            if stat.S_ISLNK(st.st_mode) and self.at(relpath, _readlink) == target:
                return
            self.remove(relpath, st)
        if not self.dry_run:
            self.at(relpath, lambda fd, name: os.symlink(target, name, dir_fd=fd))
        self.note_made(index)
        self.touch(relpath)

    def compare_file(self, index, st, size, mtime_ns, mode):
        relpath = self.entries[index][0]
        if st is not None and not stat.S_ISREG(st.st_mode):
            self.remove(relpath, st)
            st = None
        if st is None:
            self.need(index, "list" if self.dry_run else "new", None)
            return
        if st.st_size == size and st.st_mtime_ns == mtime_ns and not self.checksum:
            if stat.S_IMODE(st.st_mode) != stat.S_IMODE(mode):
                if not self.dry_run:
                    self.set_meta(relpath, mode, mtime_ns)
                self.note_made(index)
            return
        if self.dry_run:
            digest = self.digest(relpath, st) if st.st_size == size else None
            self.need(index, "list", digest)
        elif self.delta and size >= DELTA_MIN and st.st_size >= DELTA_MIN // 4:
            self.need(index, "delta", None)
            self.flush_needs()  # the sender hashes its file while we hash ours
            self.send_signature(index, relpath, st, size)
        elif st.st_size == size:
            self.need(index, "sum", self.digest(relpath, st))
        else:
            self.need(index, "new", None)

    def digest(self, relpath, st):
        fd = self.at(relpath, lambda dir_fd, name: open_regular(dir_fd, name, st))
        try:
            return fd_sha256(fd)
        finally:
            os.close(fd)

    def send_signature(self, index, relpath, st, size):
        block = block_size(size)
        fd = self.at(relpath, lambda dir_fd, name: open_regular(dir_fd, name, st))
        try:
            weak, strong = signature(fd, st.st_size, block)
        finally:
            os.close(fd)
        self.signed[index] = (st.st_dev, st.st_ino, st.st_size)
        self.send(("sig", index, block, st.st_size, weak, strong), len(weak) + len(strong) + 48)

    def need(self, index, how, arg):
        self.needs.append((index, how, arg))
        if how != "list":
            self.expected.append((index, how))
            self.files_total += 1
            self.bytes_total += self.entries[index][2]
        else:
            self.changes.append(("send", self.entries[index][0]))
            self.listed_bytes += self.entries[index][2]

    def note_made(self, index):
        self.made.append(index)
        self.changes.append(("make", self.entries[index][0]))
        self.stats["made"] += 1

    def touch(self, relpath):
        self.touched.add(relpath.rpartition("/")[0])

    def remove(self, relpath, st):
        if not self.dry_run:
            self.at(relpath, lambda fd, name: remove_at(fd, name, st))
            self.dirs.forget(relpath)
        self.stats["deleted"] += 1
        self.touch(relpath)

    def delete_extras(self):
        """Remove what synced directories hold beyond the manifest, but what excludes protect."""
        deleted = []
        for index, created, _ in self.synced:
            relpath = self.entries[index][0]
            if relpath in self.failed or (created and self.dry_run):
                continue
            try:
                names = self.dirs.call(relpath, os.listdir)
            except OSError as exc:
                self.error(relpath, exc)
                continue
            self.clean(relpath, names)
            keep = self.children[relpath]
            for name in sorted(names):
                if name in keep or TEMP_NAME.match(name):
                    continue
                child = relpath + "/" + name if relpath else name
                try:
                    st = self.at(child, lstat_at)
                except OSError:
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if self.excludes and self.excludes.excluded(child, is_dir):
                    continue
                try:
                    self.remove(child, st)
                except OSError as exc:
                    self.error(child, exc)
                    continue
                deleted.append(child + "/" if is_dir else child)
        if deleted:
            self.deleted.extend(deleted)
            self.send(("deleted", deleted))

    def clean(self, reldir, names=None):
        """Remove a killed sync's temporaries from the directory ``reldir`` (None: where a
        single file lands), once."""
        if reldir not in self.cleaned:
            self.cleaned.add(reldir)
            if not self.dry_run:
                self.dirs.call(reldir, lambda fd: remove_stale_temps(fd, names))

    def finish(self):
        """Directory modes and mtimes, deepest first (writing into a directory changes its
        mtime); owner rwx is always kept, so later syncs can write."""
        for index, created, found in reversed(self.synced):
            relpath, _, _, mtime_ns, mode, _ = self.entries[index]
            want = stat.S_IMODE(mode) | 0o700
            if relpath in self.failed or self.dry_run:
                continue
            unchanged = found is not None and (stat.S_IMODE(found[0]), found[1]) == (want, mtime_ns)
            if unchanged and not created and relpath not in self.touched:
                continue
            try:
                self.dirs.call(relpath, functools.partial(_dir_meta, mode=want, mtime_ns=mtime_ns))
            except OSError as exc:
                self.error(relpath, exc)
        self.stats["errors"] = self.error_count
        self.flush_errors()
        self.send(("done", self.stats))


def _dir_meta(fd, *, mode, mtime_ns):
    os.fchmod(fd, mode)
    os.utime(fd, ns=(mtime_ns, mtime_ns))


def _readlink(dir_fd, name):
    return os.readlink(name, dir_fd=dir_fd)
