"""The remote half of ``RSync``: sent with ``remote_exec(module)``, runs in the worker.

Standard library only, Python 3.8 syntax: it runs in whatever interpreter the far side
has. Nothing from the controller is trusted: every path is checked before it is used.

Protocol (``execnet_cli.rsync`` is the other half; items are tuples, ``PROTOCOL = 1``):

    controller -> here                      here -> controller
    ("rsync", 1, destdir, options)
    ("entries", [entry, ...])  (batches)
    ("end_entries", count)
                                            ("need", [(relpath, sha256 or None), ...])
                                            ("need_end", count)
    per needed file, in need order:
      ("same", relpath)                     ("ack", relpath)
      ("gone", relpath)                     ("ack", relpath)
      ("file", relpath), ("chunk", bytes)*, ("eof", size)
                                            ("got", n) per CREDIT_BYTES written,
                                            ("ack", relpath) once the file is in place
                                            (flow control: the ack covers the rest)
    ("finish",)                             ("done", {"files":, "bytes":, "deleted":})

An entry is ``(relpath, kind, size, mtime_ns, mode, link_target)``; kind is "d", "f" or
"l"; relpath "" is the root (destdir itself), others are "/"-joined names whose parent
is a directory entry sent before them. A file is needed unless its size and mtime match
(then only a changed mode is fixed); with equal sizes but other mtimes, or with the
``checksum`` option, the need carries our sha256 so the controller can answer "same".
A file arrives in a temporary file beside its target, which is renamed into place once
complete, with the source's mode and mtime. Directory modes are applied at the end
(always with owner rwx kept, so later syncs can write). With ``delete``, whatever a
synced directory holds beyond the manifest is removed.
"""

from __future__ import annotations

import os
import re
import stat

try:
    import fcntl
except ImportError:  # not on Windows: stale temporaries are then left alone
    fcntl = None  # type: ignore[assignment]

PROTOCOL = 1
KINDS = ("d", "f", "l")
NEED_BATCH = 1000
#: Report progress ("got") after this many bytes of one file: the sender's window moves
#: on before a big file is complete, and small files cost no message beyond their ack.
CREDIT_BYTES = 1 << 20
HASH_BLOCK = 1 << 20
#: Temporaries are ``.NAME.TOKEN.xnet-tmp`` beside their target, TOKEN 12 random hex digits
#: (earlier versions used the worker's pid): only names of this form are ever cleaned up.
TEMP_SUFFIX = ".xnet-tmp"
TEMP_NAME = re.compile(r"\A\..+\.(?:[0-9a-f]{12}|[0-9]+)\.xnet-tmp\Z", re.DOTALL)
#: A temporary that nobody holds locked and that is empty is taken for stale only once
#: it is this old (seconds): its creator locks it right after creating it.
STALE_EMPTY_AGE = 5.0
TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


class RsyncProtocolError(ValueError):
    """The controller sent something this side must not act on."""


def check_relpath(relpath):
    """The "/"-separated components of ``relpath``, refusing anything that could escape."""
    if not isinstance(relpath, str):
        raise RsyncProtocolError(f"path {relpath!r} is not a string")
    if relpath == "":
        return []
    parts = relpath.split("/")
    for part in parts:
        if part in ("", ".", "..") or "\x00" in part or (os.altsep and os.altsep in part):
            raise RsyncProtocolError(f"refusing path {relpath!r}")
    return parts


def check_entry(entry):
    """Validate the shape and types of one manifest entry; return it as a tuple."""
    if not isinstance(entry, (tuple, list)) or len(entry) != 6:
        raise RsyncProtocolError(f"malformed entry {entry!r}")
    relpath, kind, size, mtime_ns, mode, target = entry
    check_relpath(relpath)
    if kind not in KINDS:
        raise RsyncProtocolError(f"entry {relpath!r}: unknown kind {kind!r}")
    for value in (size, mtime_ns, mode):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise RsyncProtocolError(f"entry {relpath!r}: bad number {value!r}")
    if kind == "l" and (not isinstance(target, str) or not target or "\x00" in target):
        raise RsyncProtocolError(f"entry {relpath!r}: bad link target {target!r}")
    return relpath, kind, size, mtime_ns, mode, target


def temp_token():
    return os.urandom(6).hex()


def create_temp(directory, name, token=temp_token):
    """Create a new temporary for ``name`` in ``directory``: (fd, path), mode 0600.

    Exclusively (``O_EXCL``) and never through a link (``O_NOFOLLOW``), under an
    unpredictable name: whatever is planted in the directory is never written through.
    The file stays locked while we hold it, which tells a later sync it is not stale.
    """
    if len(name.encode("utf-8", "surrogateescape")) > 120:
        name = name[:40]
    for _ in range(64):
        path = os.path.join(directory, "." + name + "." + token() + TEMP_SUFFIX)
        try:
            fd = os.open(path, TEMP_FLAGS | getattr(os, "O_CLOEXEC", 0), 0o600)
        except FileExistsError:
            continue
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, path
    raise FileExistsError("no free temporary name in " + directory)


def is_stale_temp(path):
    """Whether ``path`` is a temporary of ours that no live sync holds (a killed worker's)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, OPEN_FLAGS | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False  # a link, gone, or unreadable: not ours to judge
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live sync holds it
        import time

        return st.st_size > 0 or time.time() - st.st_ctime > STALE_EMPTY_AGE
    finally:
        os.close(fd)


def remove_stale_temps(directory):
    """Remove the temporaries of ours in ``directory`` that a killed worker left behind."""
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if TEMP_NAME.match(name):
            path = os.path.join(directory, name)
            if is_stale_temp(path):
                try:
                    os.unlink(path)
                    removed += 1
                except OSError:
                    pass
    return removed


def file_sha256(path):
    import hashlib  # only needed when sizes match and mtimes do not

    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while True:
            block = source.read(HASH_BLOCK)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


class Receiver:
    """State of one sync into ``destdir``."""

    def __init__(self, channel, destdir, options):
        self.channel = channel
        self.destdir = destdir
        self.delete = bool(options.get("delete"))
        self.checksum = bool(options.get("checksum"))
        self.entries = {}  # relpath -> entry
        self.children = {}  # dir relpath -> set of names in the manifest
        self.dir_modes = []  # (path, mode) of synced directories
        self.needed = []  # relpaths, in the order the controller will answer
        self.stats = {"files": 0, "bytes": 0, "deleted": 0}
        self.cleaned = set()  # directories whose stale temporaries were removed

    def local_path(self, relpath):
        return os.path.join(self.destdir, *check_relpath(relpath))

    # -- the manifest ------------------------------------------------------------------

    def add_entry(self, entry):
        relpath, kind, size, mtime_ns, mode, target = check_entry(entry)
        if relpath in self.entries:
            raise RsyncProtocolError(f"duplicate entry {relpath!r}")
        if relpath == "":
            if self.entries:
                raise RsyncProtocolError("the root entry must come first")
        else:
            parent, _, name = relpath.rpartition("/")
            parent_entry = self.entries.get(parent)
            if parent_entry is None or parent_entry[1] != "d":
                raise RsyncProtocolError(
                    f"entry {relpath!r}: its parent was not sent as a directory"
                )
            self.children[parent].add(name)
        self.entries[relpath] = (relpath, kind, size, mtime_ns, mode, target)
        path = self.local_path(relpath)
        if relpath == "":
            parent_dir = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent_dir):
                os.makedirs(parent_dir)
        try:
            # destdir itself may be a symlink the user chose; below it, links are ours.
            st = os.stat(path) if relpath == "" else os.lstat(path)
        except FileNotFoundError:
            st = None
        if kind == "d":
            self.children[relpath] = set()
            if st is not None and not stat.S_ISDIR(st.st_mode):
                self.remove(path)
                st = None
            if st is None:
                os.mkdir(path)
            self.dir_modes.append((path, stat.S_IMODE(mode) | 0o700))
        elif kind == "l":
            if st is not None:
                if stat.S_ISLNK(st.st_mode) and os.readlink(path) == target:
                    return
                self.remove(path)
            os.symlink(target, path)
        else:
            self.compare_file(relpath, path, st, size, mtime_ns, mode)

    def compare_file(self, relpath, path, st, size, mtime_ns, mode):
        if st is not None and not stat.S_ISREG(st.st_mode):
            self.remove(path)
            st = None
        if st is None or st.st_size != size:
            self.need(relpath, None)
        elif st.st_mtime_ns != mtime_ns or self.checksum:
            self.need(relpath, file_sha256(path))
        elif stat.S_IMODE(st.st_mode) != stat.S_IMODE(mode):
            os.chmod(path, stat.S_IMODE(mode))

    def need(self, relpath, digest):
        self.needed.append((relpath, digest))

    def remove(self, path):
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            import shutil

            shutil.rmtree(path)
        else:
            os.unlink(path)
        self.stats["deleted"] += 1

    def delete_extras(self):
        for relpath, names in self.children.items():
            path = self.local_path(relpath)
            self.clean(path)
            for name in os.listdir(path):
                if name not in names and not TEMP_NAME.match(name):
                    self.remove(os.path.join(path, name))

    def clean(self, directory):
        if directory not in self.cleaned:
            self.cleaned.add(directory)
            remove_stale_temps(directory)

    def send_needs(self):
        needed = self.needed
        for start in range(0, len(needed), NEED_BATCH):
            self.channel.send(("need", needed[start : start + NEED_BATCH]))
        self.channel.send(("need_end", len(needed)))

    # -- the data ----------------------------------------------------------------------

    def receive_files(self):
        pending = [relpath for relpath, _ in self.needed]
        pending.reverse()
        while True:
            msg = self.channel.receive()
            if not isinstance(msg, tuple) or not msg:
                raise RsyncProtocolError(f"unexpected message {msg!r:.200}")
            op = msg[0]
            if op == "finish":
                if pending:
                    raise RsyncProtocolError(f"finish before {len(pending)} needed files")
                return
            if op not in ("same", "gone", "file") or len(msg) != 2:
                raise RsyncProtocolError(f"unexpected message {msg[:2]!r:.200}")
            if not pending or msg[1] != pending[-1]:
                raise RsyncProtocolError(f"{op} for {msg[1]!r}, which is not the next needed file")
            relpath = pending.pop()
            entry = self.entries[relpath]
            path = self.local_path(relpath)
            if op == "file":
                self.receive_file(path, entry)
            elif op == "same":
                set_meta(path, entry)
            self.channel.send(("ack", relpath))

    def receive_file(self, path, entry):
        directory, name = os.path.split(path)
        self.clean(directory)
        fd, temp = create_temp(directory, name)
        try:
            written = 0
            uncredited = 0
            while True:
                msg = self.channel.receive()
                if not isinstance(msg, tuple) or len(msg) != 2:
                    raise RsyncProtocolError(f"unexpected message in a file: {msg!r:.200}")
                if msg[0] == "eof":
                    if msg[1] != written:
                        raise RsyncProtocolError(
                            f"file {entry[0]!r}: {msg[1]} bytes announced, {written} received"
                        )
                    break
                if msg[0] != "chunk" or not isinstance(msg[1], bytes):
                    raise RsyncProtocolError(f"unexpected message in a file: {msg[0]!r:.200}")
                view = memoryview(msg[1])
                while view:
                    view = view[os.write(fd, view) :]
                written += len(msg[1])
                uncredited += len(msg[1])
                if uncredited >= CREDIT_BYTES:
                    self.channel.send(("got", uncredited))
                    uncredited = 0
            os.fchmod(fd, stat.S_IMODE(entry[4]))
            os.utime(fd, ns=(entry[3], entry[3]))
            os.replace(temp, path)  # still locked: never judged stale by a concurrent sync
        except BaseException:
            os.close(fd)
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise
        os.close(fd)
        self.stats["files"] += 1
        self.stats["bytes"] += written

    def finish(self):
        for path, mode in reversed(self.dir_modes):
            os.chmod(path, mode)


def set_meta(path, entry):
    os.chmod(path, stat.S_IMODE(entry[4]))
    os.utime(path, ns=(entry[3], entry[3]))


def serve(channel):
    """Run one sync: manifest in, needs out, files in, done."""
    first = channel.receive()
    if not (isinstance(first, tuple) and len(first) == 4 and first[0] == "rsync"):
        raise RsyncProtocolError(f"not an rsync request: {first!r:.200}")
    _, version, destdir, options = first
    if version != PROTOCOL:
        raise RsyncProtocolError(f"rsync protocol {version!r}, this side speaks {PROTOCOL}")
    if not isinstance(destdir, str) or not destdir or not isinstance(options, dict):
        raise RsyncProtocolError(f"bad destination {destdir!r} or options {options!r}")
    receiver = Receiver(channel, os.path.expanduser(destdir), options)
    count = 0
    while True:
        msg = channel.receive()
        if isinstance(msg, tuple) and len(msg) == 2 and msg[0] == "entries":
            for entry in msg[1]:
                receiver.add_entry(entry)
            count += len(msg[1])
        elif isinstance(msg, tuple) and len(msg) == 2 and msg[0] == "end_entries":
            if msg[1] != count or "" not in receiver.entries:
                raise RsyncProtocolError(f"manifest incomplete: {count} of {msg[1]!r} entries")
            break
        else:
            raise RsyncProtocolError(f"unexpected message {msg!r:.200}")
    if receiver.delete:
        receiver.delete_extras()
    receiver.send_needs()
    receiver.receive_files()
    receiver.finish()
    channel.send(("done", receiver.stats))


if __name__ == "__channelexec__":
    serve(channel)  # type: ignore[name-defined]  # noqa: F821
