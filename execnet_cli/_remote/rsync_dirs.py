"""Directories under a sync's root, opened one name at a time and never through a link.

Standard library only, Python 3.8, POSIX (``dir_fd``). Both rsync halves reach every path
under their root through these: a directory scanned or made can be swapped for a symlink
while the sync runs (by anyone who may write in the tree), and a path walked again by name
would then lead outside the root: data written, files deleted or chmodded, secrets read
there. Here each component is opened with ``O_NOFOLLOW|O_DIRECTORY`` relative to its
parent's fd, and the final name is used relative to that fd (``*at`` calls), so a link
met on the way is an error, never followed. A directory once opened stays held (the
``KEEP`` most recently used), so what is written goes where it was checked to be.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections import OrderedDict

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: How a directory under the root is opened: never through a link.
DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC
#: How the root itself is opened: it may be a link the user named.
ROOT_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
#: Directory fds kept open at once, per sync: the current one and its parents, mostly (a
#: pull from 64 hosts holds 64 times this many in the controller).
KEEP = 8


def open_root(path, expected=None):
    """An fd on the directory ``path``; ``expected`` (st_dev, st_ino): what it must be."""
    fd = os.open(path, ROOT_FLAGS)
    if expected is not None:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != tuple(expected):
            os.close(fd)
            raise OSError(errno.ESTALE, "another directory now has its name", path)
    return fd


class Dirs:
    """The fds of directories under ``root_fd``, by "/"-joined relpath ("" is the root).

    ``expect(relpath)`` may give the (st_dev, st_ino) a directory had when it was scanned:
    one that is not that directory any more is refused. Several threads may share this:
    use ``call``, which holds the fd open while ``func`` runs.
    """

    def __init__(self, root_fd, expect=None):
        self.root_fd = root_fd
        self.expect = expect
        self.held = OrderedDict()  # relpath -> fd, least recently used first
        self.lock = threading.RLock()

    def call(self, reldir, func):
        """``func(fd of reldir)``, the directory opened safely (or OSError)."""
        with self.lock:
            return func(self._fd(reldir))

    def at(self, relpath, func):
        """``func(fd of its directory, its name)`` for a path below the root."""
        reldir, name = self.where(relpath)
        return self.call(reldir, lambda fd: func(fd, name))

    def where(self, relpath):
        """The directory ``relpath`` is in (its relpath) and its name there."""
        parent, _, name = relpath.rpartition("/")
        return parent, name

    def _fd(self, reldir):
        if not reldir:
            if self.root_fd is None:
                raise FileNotFoundError(errno.ENOENT, "the destination does not exist yet")
            return self.root_fd
        held = self.held.get(reldir)
        if held is not None:
            self.held.move_to_end(reldir)
            return held
        parent, _, name = reldir.rpartition("/")
        fd = os.open(name, DIR_FLAGS, dir_fd=self._fd(parent))
        expected = self.expect(reldir) if self.expect is not None else None
        if expected is not None:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != expected:
                os.close(fd)
                raise OSError(errno.ESTALE, "another directory now has its name")
        self.held[reldir] = fd
        while len(self.held) > KEEP:
            os.close(self.held.popitem(last=False)[1])
        return fd

    def forget(self, relpath):
        """Close what is held of ``relpath`` and below (it was removed or replaced)."""
        with self.lock:
            prefix = relpath + "/"
            for held in [p for p in self.held if p == relpath or p.startswith(prefix)]:
                os.close(self.held.pop(held))

    def close(self):
        with self.lock:
            for fd in self.held.values():
                os.close(fd)
            self.held.clear()
            if self.root_fd is not None:
                os.close(self.root_fd)
                self.root_fd = None


class Landing(Dirs):
    """A receiver's directories; for a single-file source, also where that file lands.

    The source's root entry ("") is then that file: ``single`` holds (the fd of the
    directory it lands in, None while that does not exist; its name there), and that
    directory's relpath is None. This is the one place that knows it.
    """

    def __init__(self, root_fd):
        super().__init__(root_fd)
        self.single = None

    def where(self, relpath):
        if not relpath and self.single is not None:
            return None, self.single[1]
        return super().where(relpath)

    def call(self, reldir, func):
        if reldir is None:
            if self.single[0] is None:
                raise FileNotFoundError(errno.ENOENT, "its directory does not exist yet")
            return func(self.single[0])
        return super().call(reldir, func)

    def close(self):
        super().close()
        if self.single is not None and self.single[0] is not None:
            os.close(self.single[0])
            self.single = (None, self.single[1])


def lstat_at(dir_fd, name):
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


def remove_at(dir_fd, name, st):
    """Remove ``name`` (``st``: its lstat) from the directory ``dir_fd``, a tree with all it
    holds, each level opened without following links."""
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    try:
        for child in os.listdir(fd):
            remove_at(fd, child, lstat_at(fd, child))
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
