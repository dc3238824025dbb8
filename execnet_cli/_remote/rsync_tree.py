"""The tree on disk, for both rsync halves: checks, excludes, scanning, safe opening, temporaries.

Standard library only, Python 3.8: this runs in the controller (pushing: scanning the
source; pulling: writing the copy) and in workers (the other way round). Nothing a peer
sends is trusted: ``check_entry`` validates every manifest entry before it is used.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import struct

from .errors import XnetError
from .rsync_dirs import Dirs, lstat_at, open_root

try:
    import fcntl
except ImportError:  # not on Windows: stale temporaries are then left alone
    fcntl = None  # type: ignore[assignment]

PROTOCOL = 2
KINDS = ("d", "f", "l")
#: Bytes read at a time when hashing a whole file.
HASH_BLOCK = 1 << 20
#: Temporaries are ``.NAME.TOKEN.xnet-tmp`` beside their target, TOKEN 12 random hex digits
#: (earlier versions used the worker's pid): only names of this form are ever cleaned up.
TEMP_SUFFIX = ".xnet-tmp"
TEMP_NAME = re.compile(r"\A\..+\.(?:[0-9a-f]{12}|[0-9]+)\.xnet-tmp\Z", re.DOTALL)
#: An empty temporary that nobody holds locked is taken for stale only once it is this old
#: (seconds): its creator locks it right after creating it.
STALE_EMPTY_AGE = 5.0
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
#: How a scanned file is opened: never through a link, never blocking on a fifo.
OPEN_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC


class RsyncProtocolError(XnetError, ValueError):
    """The peer sent something this side must not act on."""


class DestinationError(XnetError):
    """The destination cannot take the source (a file onto a directory, ...)."""


class Changed(XnetError):
    """A scanned file is not the same file any more."""


def machine_id():
    """What tells this machine (this boot of it) from others, to spot a sync onto itself."""
    for path in ("/proc/sys/kernel/random/boot_id", "/etc/machine-id"):
        try:
            with open(path) as file:
                return file.read().strip()
        except OSError:
            continue
    import socket

    return socket.gethostname()


def identity(path):
    """(machine, st_dev, st_ino) of ``path``: the same on both sides for the same file."""
    st = os.stat(path)
    return [machine_id(), st.st_dev, st.st_ino]


# -- what a peer may send ------------------------------------------------------------------


#: An empty, "." or ".." component (so also a leading, trailing or doubled "/"), or a NUL.
_BAD_PATH = re.compile(r"(?:\A|/)(?:\.\.?)?(?:/|\Z)|\x00")
#: A packed manifest entry: kind, size, mtime_ns, mode, then the lengths of the UTF-8
#: relpath and link target that follow it.
_ENTRY = struct.Struct("<cqqIHH")


def check_relpath(relpath):
    """The "/"-separated components of ``relpath``, refusing anything that could escape."""
    if not isinstance(relpath, str):
        raise RsyncProtocolError(f"path {relpath!r} is not a string")
    if relpath == "":
        return []
    if _BAD_PATH.search(relpath) or (os.altsep and os.altsep in relpath):
        raise RsyncProtocolError(f"refusing path {relpath!r}")
    return relpath.split("/")


def check_entry(entry):
    """Validate one manifest entry; return it as a tuple."""
    if not isinstance(entry, (tuple, list)) or len(entry) != 6:
        raise RsyncProtocolError(f"malformed entry {entry!r:.200}")
    relpath, kind, size, mtime_ns, mode, target = entry
    if relpath:
        check_relpath(relpath)
    if kind not in KINDS:
        raise RsyncProtocolError(f"entry {relpath!r}: unknown kind {kind!r}")
    for value in (size, mode):
        if type(value) is not int or value < 0:
            raise RsyncProtocolError(f"entry {relpath!r}: bad number {value!r}")
    if type(mtime_ns) is not int:
        raise RsyncProtocolError(f"entry {relpath!r}: bad mtime {mtime_ns!r}")
    if kind == "l" and (not isinstance(target, str) or not target or "\x00" in target):
        raise RsyncProtocolError(f"entry {relpath!r}: bad link target {target!r}")
    return relpath, kind, size, mtime_ns, mode, target


def pack_entries(entries):
    """A batch of manifest entries as one bytes value (cheap to send and to read)."""
    pack = _ENTRY.pack
    parts = []
    for relpath, kind, size, mtime_ns, mode, target in entries:
        name = relpath.encode("utf-8")
        link = target.encode("utf-8") if target else b""
        parts += (
            pack(kind.encode("ascii"), size, mtime_ns, mode, len(name), len(link)),
            name,
            link,
        )
    return b"".join(parts)


def unpack_entries(blob):
    """The checked entries of a packed batch (``pack_entries``)."""
    if not isinstance(blob, bytes):
        raise RsyncProtocolError("entries are not packed bytes")
    entries = []
    offset, end, head = 0, len(blob), _ENTRY.size
    try:
        while offset < end:
            kind, size, mtime_ns, mode, name_len, link_len = _ENTRY.unpack_from(blob, offset)
            offset += head
            relpath = blob[offset : offset + name_len].decode("utf-8")
            offset += name_len
            target = blob[offset : offset + link_len].decode("utf-8") if link_len else None
            offset += link_len
            if offset > end:
                raise RsyncProtocolError("truncated entries")
            entries.append(
                check_entry((relpath, kind.decode("latin-1"), size, mtime_ns, mode, target))
            )
    except (struct.error, UnicodeDecodeError) as exc:
        raise RsyncProtocolError(f"malformed entries: {exc}") from None
    return entries


#: A packed need: the entry's index and how it is needed (``NEED_HOWS``; +4: a 32-byte
#: sha256 follows).
_NEED = struct.Struct("<IB")
NEED_HOWS = ("new", "sum", "delta", "list")


def pack_needs(needs):
    """(index, how, sha256 digest or None) needs as one bytes value."""
    pack = _NEED.pack
    parts = []
    for index, how, digest in needs:
        code = NEED_HOWS.index(how)
        parts += (pack(index, code | 4), digest) if digest else (pack(index, code),)
    return b"".join(parts)


def unpack_needs(blob):
    """The (index, how, digest or None) of packed needs; the indexes are checked by the caller."""
    if not isinstance(blob, bytes):
        raise RsyncProtocolError("needs are not packed bytes")
    needs = []
    offset, end, head = 0, len(blob), _NEED.size
    while offset < end:
        if offset + head > end:
            raise RsyncProtocolError("truncated needs")
        index, code = _NEED.unpack_from(blob, offset)
        offset += head
        digest = None
        if code & 4:
            digest = blob[offset : offset + 32]
            offset += 32
        if code & ~4 >= len(NEED_HOWS) or offset > end:
            raise RsyncProtocolError(f"malformed need {code!r}")
        needs.append((index, NEED_HOWS[code & 3], digest))
    return needs


#: What one item or message header counts for in flow control and the wire estimate.
ITEM = 32


def credit(msg):
    """The flow-control weight of one data message, the same on both sides: its payload
    bytes and ``ITEM`` per item (empty files and copy ops count too)."""
    op = msg[0]
    if op == "batch":
        return sum(ITEM + (len(d) if isinstance(d, bytes) else 0) for _, d in msg[1])
    if op == "chunk":
        return len(msg[1]) + ITEM
    if op == "ops":
        return sum(len(o) if isinstance(o, bytes) else ITEM for o in msg[1]) + ITEM
    return ITEM


# -- excludes --------------------------------------------------------------------------------


class Excludes:
    """``.gitignore``-style rules, already translated to regular expressions by the controller.

    A rule is ``(regex, dir_only, negated)``; the regex matches a whole "/"-joined relative
    path. The last rule that matches decides, as in ``.gitignore``.
    """

    def __init__(self, rules=()):
        self.rules = []
        for rule in rules:
            if not (isinstance(rule, (tuple, list)) and len(rule) == 3):
                raise RsyncProtocolError(f"bad exclude rule {rule!r:.200}")
            regex, dir_only, negated = rule
            self.rules.append((re.compile(regex, re.DOTALL), bool(dir_only), bool(negated)))

    def __bool__(self):
        return bool(self.rules)

    def excluded(self, relpath, is_dir):
        verdict = False
        for regex, dir_only, negated in self.rules:
            if (is_dir or not dir_only) and regex.match(relpath):
                verdict = not negated
        return verdict


# -- scanning --------------------------------------------------------------------------------


class Tree:
    """A source tree as scanned: its manifest entries, and how to open what they name.

    ``keep(path)`` (a full path) and ``excludes`` leave entries out. Files and directories
    are remembered with their (st_dev, st_ino), and reached through directory fds
    (``rsync_dirs``): a name that became a link or another file after the scan is refused.
    ``close()`` once done.
    """

    def __init__(self, root, excludes=None, keep=None):
        self.root = os.path.normpath(root)
        self.excludes = excludes or Excludes()
        self.keep = keep
        self.entries = []
        self.identity = {}  # index -> (st_dev, st_ino) of regular files
        self.dir_identity = {}  # relpath -> (st_dev, st_ino) of directories
        self.skipped = []  # (relpath, why)
        self.dirs = None

    def path(self, relpath):
        if not relpath:
            return self.root
        return os.path.join(self.root, *relpath.split("/"))

    def scan(self):
        """Yield the manifest: the root, then every entry kept, parents first."""
        st = os.stat(self.root)  # the root may be a link the user named
        if stat.S_ISDIR(st.st_mode):
            self.dirs = Dirs(open_root(self.root, (st.st_dev, st.st_ino)), self.dir_identity.get)
            yield self._add(("", "d", 0, st.st_mtime_ns, stat.S_IMODE(st.st_mode), None))
            yield from self._walk()
        elif stat.S_ISREG(st.st_mode):
            self.identity[0] = (st.st_dev, st.st_ino)
            yield self._add(("", "f", st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode), None))
        else:
            raise DestinationError(f"cannot sync {self.root}: not a directory or a regular file")

    def _add(self, entry):
        self.entries.append(entry)
        return entry

    def _walk(self):
        stack = [""]
        keep, excludes = self.keep, self.excludes
        entries, identity = self.entries, self.identity
        while stack:
            reldir = stack.pop()
            subdirs = []
            try:
                found = self.dirs.call(reldir, _listing)
            except OSError as exc:
                self.skipped.append((reldir, _unlisted(exc)))
                continue
            for name, st in found:
                relpath = reldir + "/" + name if reldir else name
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:  # bytes that are no UTF-8: a name we cannot send
                    self.skipped.append((relpath, "its name is not valid UTF-8"))
                    continue
                if keep is not None and not keep(self.path(relpath)):
                    continue
                mode = st.st_mode
                if excludes and excludes.excluded(relpath, stat.S_ISDIR(mode)):
                    continue
                if stat.S_ISREG(mode):
                    identity[len(entries)] = (st.st_dev, st.st_ino)
                    entry = (relpath, "f", st.st_size, st.st_mtime_ns, stat.S_IMODE(mode), None)
                elif stat.S_ISDIR(mode):
                    entry = (relpath, "d", 0, st.st_mtime_ns, stat.S_IMODE(mode), None)
                    self.dir_identity[relpath] = (st.st_dev, st.st_ino)
                    subdirs.append(relpath)
                elif stat.S_ISLNK(mode):
                    try:
                        target = self._link_target(relpath)
                        target.encode("utf-8")
                    except UnicodeEncodeError:
                        self.skipped.append((relpath, "its target is not valid UTF-8"))
                        continue
                    except OSError:
                        continue
                    entry = (relpath, "l", 0, 0, 0, target)
                else:
                    self.skipped.append((relpath, "not a file, directory or symlink"))
                    continue
                entries.append(entry)
                yield entry
            stack.extend(reversed(subdirs))

    def _link_target(self, relpath):
        """The link as the copy should have it: absolute links into the tree made relative."""
        target = self.dirs.at(relpath, lambda fd, name: os.readlink(name, dir_fd=fd))
        if os.path.isabs(target):
            path = self.path(relpath)
            inside = os.path.relpath(target, self.root)
            if inside not in (os.curdir, os.pardir) and not inside.startswith(os.pardir + os.sep):
                return os.path.relpath(target, os.path.dirname(path))
        return target

    def open(self, index):
        """An fd on the file entry ``index`` names, the very file scanned, else ``Changed``.

        Between the scan (``lstat``) and now the name may have become a link, a fifo or
        another file (a hard link to a secret): ``O_NOFOLLOW`` and ``O_NONBLOCK`` make
        opening it harmless, and ``fstat`` tells whether it is still the same file.
        """
        relpath, _, size = self.entries[index][:3]
        try:
            if relpath:
                fd = self.dirs.at(relpath, _open_file)
            else:  # the root: the user's choice, a link or not
                fd = os.open(self.root, OPEN_FLAGS & ~_NOFOLLOW)
        except OSError as exc:
            raise Changed(f"changed since it was scanned ({exc.strerror or exc})") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = "no longer a regular file"
        elif (st.st_dev, st.st_ino) != self.identity.get(index):
            what = "another file now has its name"
        elif st.st_size != size:
            what = f"its size went from {size} to {st.st_size}"
        else:
            return fd
        os.close(fd)
        raise Changed(f"changed since it was scanned ({what})")

    def close(self):
        if self.dirs is not None:
            self.dirs.close()


def _unlisted(exc):
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ESTALE):  # a link or another dir now
        return "changed since it was scanned (not the directory listed)"
    return f"cannot list: {exc.strerror or exc}"


def _listing(fd):
    """(name, lstat) of what the directory ``fd`` holds, sorted by name."""
    found = []
    for name in os.listdir(fd):
        try:
            found.append((name, lstat_at(fd, name)))
        except OSError:
            continue  # gone since the listing
    found.sort()
    return found


def _open_file(dir_fd, name):
    return os.open(name, OPEN_FLAGS, dir_fd=dir_fd)


def fd_sha256(fd):
    """The sha256 digest of what ``fd`` holds, read from its start."""
    import hashlib

    digest = hashlib.sha256()
    offset = 0
    while True:
        block = os.pread(fd, HASH_BLOCK, offset)
        if not block:
            return digest.digest()
        digest.update(block)
        offset += len(block)


def open_regular(dir_fd, name, st=None):
    """An fd on the regular file ``name`` in the directory ``dir_fd`` (never through a
    link), checked against ``st``."""
    fd = os.open(name, OPEN_FLAGS, dir_fd=dir_fd)
    now = os.fstat(fd)
    if not stat.S_ISREG(now.st_mode) or (
        st is not None
        and (now.st_dev, now.st_ino, now.st_size) != (st.st_dev, st.st_ino, st.st_size)
    ):
        os.close(fd)
        raise Changed("changed during the sync")
    return fd


# -- temporaries -----------------------------------------------------------------------------


def temp_token():
    return os.urandom(6).hex()


def create_temp(dir_fd, name, token=temp_token):
    """Create a new temporary for ``name`` in the directory ``dir_fd``: (fd, its name), 0600.

    Exclusively (``O_EXCL``) and never through a link (``O_NOFOLLOW``), under an
    unpredictable name: whatever is planted in the directory is never written through.
    The file stays locked while we hold it, which tells a later sync it is not stale.
    """
    if len(name.encode("utf-8", "surrogateescape")) > 120:
        name = name[:40]
    for _ in range(64):
        temp = "." + name + "." + token() + TEMP_SUFFIX
        try:
            fd = os.open(temp, TEMP_FLAGS, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, temp
    raise FileExistsError(f"no free temporary name for {name}")


def is_stale_temp(dir_fd, name):
    """Whether ``name`` is a temporary of ours that no live sync holds (a killed worker's)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(name, OPEN_FLAGS, dir_fd=dir_fd)
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


def remove_stale_temps(dir_fd, names=None):
    """Remove the temporaries of ours in the directory ``dir_fd`` that a killed worker
    left behind."""
    if names is None:
        try:
            names = os.listdir(dir_fd)
        except OSError:
            return 0
    removed = 0
    for name in names:
        if TEMP_NAME.match(name) and is_stale_temp(dir_fd, name):
            try:
                os.unlink(name, dir_fd=dir_fd)
                removed += 1
            except OSError:
                pass
    return removed


def set_meta(dir_fd, name, mode, mtime_ns):
    """Mode and mtime of the regular file ``name`` in ``dir_fd``, through an fd (never a link)."""
    fd = open_regular(dir_fd, name)
    try:
        os.fchmod(fd, stat.S_IMODE(mode))
        os.utime(fd, ns=(mtime_ns, mtime_ns))
    finally:
        os.close(fd)


def error_message(exc):
    """What a report says of an error met at a path: its reason alone."""
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
