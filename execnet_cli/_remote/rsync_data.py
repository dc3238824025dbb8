"""The receiving half of rsync, its data: files asked for arrive here, whole or as deltas.

Standard library only, Python 3.8. ``Receiver`` (``rsync_recv``) decides what to ask for;
this takes what comes, in the order asked (anything else is a protocol error): batches
of small files, and big files or deltas streamed in chunks up to their "eof", with an
"ack" every ``CREDIT_BYTES`` so the sender keeps a bounded amount in flight. Each file is
written into a temporary created exclusively beside its target and renamed into place
once complete; what cannot be written is reported and the sync goes on.
"""

from __future__ import annotations

import os
import stat

from .fdio import write_all
from .rsync_delta import Patcher, block_size
from .rsync_tree import Changed, RsyncProtocolError, create_temp, credit, open_regular

#: Report progress ("ack") after this many bytes of one streamed file.
CREDIT_BYTES = 1 << 20


class DataReceiver:
    """The data half of a ``Receiver``: it uses the receiver's ``entries``, ``expected``,
    ``signed``, ``stats``, ``changes``, ``skipped``, ``channel`` and its places (``at``,
    ``dirs``, ``clean``, ``touch``, ``set_meta``, ``error``, ``send``, ``flush_errors``)."""

    def next_expected(self, index, hows):
        if not self.expected or self.expected[0][0] != index or self.expected[0][1] not in hows:
            raise RsyncProtocolError(f"data for entry {index!r:.50}, which is not the next needed")
        return self.expected.popleft()[1]

    def receive_batch(self, msg):
        if len(msg) != 2 or not isinstance(msg[1], list):
            raise RsyncProtocolError("malformed batch")
        for item in msg[1]:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise RsyncProtocolError(f"malformed batch item {item!r:.100}")
            index, data = item
            how = self.next_expected(index, ("new", "sum", "delta"))
            entry = self.entries[index]
            try:
                if isinstance(data, bytes):
                    if how == "delta":
                        raise RsyncProtocolError(f"whole data for {entry[0]!r}, asked as a delta")
                    self.write_file(entry, writer(data))
                    self.stats["literal"] += len(data)
                elif data is None:
                    if how == "new":
                        raise RsyncProtocolError(f"'same' for {entry[0]!r}, which is new here")
                    self.set_meta(entry[0], entry[4], entry[3])
                elif isinstance(data, str):
                    self.skipped.append((entry[0], data))
                else:
                    raise RsyncProtocolError(f"malformed batch item for {entry[0]!r}")
            except OSError as exc:
                self.error(entry[0], exc)
        self.send(("ack", credit(msg), len(msg[1])))
        self.flush_errors()

    def receive_stream(self, msg):
        """A file in chunks ("file") or a delta ("delta"), up to its "eof"."""
        if len(msg) != 2:
            raise RsyncProtocolError("malformed stream header")
        op, index = msg
        how = self.next_expected(index, ("delta",) if op == "delta" else ("new", "sum", "delta"))
        entry = self.entries[index]
        state = {"credit": credit(msg), "total": 0}
        part = "ops" if op == "delta" else "chunk"
        old = None
        try:
            if op == "delta":
                dev_ino_size = self.signed.pop(index, None)
                if how != "delta" or dev_ino_size is None:
                    raise RsyncProtocolError(f"a delta for {entry[0]!r}, never signed")
                old = self.at(entry[0], open_regular)
                now = os.fstat(old)
                if (now.st_dev, now.st_ino, now.st_size) != dev_ino_size:
                    raise Changed("changed during the sync")

            def body(fd):
                patcher = (
                    None if old is None else Patcher(old, block_size(entry[2]), now.st_size, fd)
                )
                self.stream_parts(part, state, fd, patcher)
                return state["total"] if patcher is None else patcher.written

            self.write_file(entry, body)
        except (OSError, Changed) as exc:
            self.error(entry[0], exc)
            if not state.get("eof"):
                self.stream_parts(part, state, None, None)  # the rest of it, unused
        finally:
            if old is not None:
                os.close(old)
        self.send(("ack", state["credit"], 1))
        self.flush_errors()

    def stream_parts(self, part, state, fd, patcher):
        """Take the stream's messages up to its "eof", writing them to ``fd`` unless None."""
        while True:
            msg = self.channel.receive()
            if not (isinstance(msg, tuple) and len(msg) == 2 and msg[0] in (part, "eof")):
                raise RsyncProtocolError(f"unexpected message in a file: {msg!r:.200}")
            size = credit(msg)
            self.received += size
            state["credit"] += size
            if msg[0] == "eof":
                state["eof"] = True
                if fd is None:
                    return  # discarded anyway
                if msg[1] is None:
                    raise Changed("the source changed while it was sent; not updated")
                if msg[1] != state["total"]:
                    raise RsyncProtocolError(f"{msg[1]!r} bytes announced, {state['total']} sent")
                return
            if part == "chunk":
                if not isinstance(msg[1], bytes):
                    raise RsyncProtocolError("a chunk that is not bytes")
                state["total"] += len(msg[1])
                self.stats["literal"] += len(msg[1])
                if fd is not None:
                    write_all(fd, msg[1])
            else:
                if not isinstance(msg[1], list):
                    raise RsyncProtocolError("malformed delta ops")
                for op in msg[1]:
                    if patcher is not None:
                        self.stats["literal"] += patcher.apply(op)
                    state["total"] += len(op) if isinstance(op, bytes) else 0
            if state["credit"] >= CREDIT_BYTES:
                self.send(("ack", state["credit"], 0))
                state["credit"] = 0

    def write_file(self, entry, body):
        """Write a new version of the entry's file through ``body(fd)`` (which returns the
        bytes it wrote), then put it in place."""
        relpath = entry[0]
        self.clean(self.dirs.where(relpath)[0])
        size = self.at(relpath, lambda dir_fd, name: _write_at(dir_fd, name, entry, body))
        self.stats["files"] += 1
        self.stats["bytes"] += size
        self.changes.append(("send", entry[0]))
        self.touch(entry[0])


def _write_at(dir_fd, name, entry, body):
    """Write ``name`` through ``body(fd)`` into a temporary, put it in place: bytes written."""
    fd, temp = create_temp(dir_fd, name)
    try:
        size = body(fd)
        os.fchmod(fd, stat.S_IMODE(entry[4]))
        os.utime(fd, ns=(entry[3], entry[3]))
        # Still locked while renamed: never judged stale by a concurrent sync.
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(temp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    os.close(fd)
    return size


def writer(data):
    """A ``write_file`` body writing ``data``."""

    def write(fd):
        write_all(fd, data)
        return len(data)

    return write
