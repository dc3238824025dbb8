"""The sending half of rsync: one scan, one read of each file, any number of receivers.

Standard library only, Python 3.8. It runs where the source is: in the controller for a
push (to every target at once), in a worker for a pull (its one target is the controller).
The messages are described in ``rsync.py``.

Everything travels pipelined, never a round trip per file: the manifest streams out as it
is scanned, each receiver answers each batch of it with what it needs, and the data
streams back in need order: small files many to a message, big ones in chunks, changed
big files as block deltas. Files are served in manifest order, each once for all the
targets that need it (one read, whatever the number of targets); a target gets at most
``WINDOW`` bytes ahead of what it has acknowledged, so memory stays bounded on both sides.

One loop does it all: ``_produce`` is a generator that says when it must wait (``WAIT``:
for a need, a signature, or room in a window), and ``run`` handles the targets' messages
meanwhile. A target that fails (its channel closes, it breaks the protocol, its time runs
out) is dropped with the reason; the others go on.
"""

from __future__ import annotations

import os
import queue
import time
from collections import deque

from .rsync_delta import Matcher, Signing, block_size, copies_all
from .rsync_tree import (
    ITEM,
    Changed,
    RsyncProtocolError,
    fd_sha256,
    pack_entries,
    unpack_needs,
)

#: Largest data item sent (bytes): files always travel as a stream of such chunks.
CHUNK_SIZE = 256 * 1024
#: A small-file batch is sent once it holds this many bytes, or BATCH_ITEMS files.
BATCH_BYTES = 256 * 1024
BATCH_ITEMS = 1000
#: Bytes (flow-control weight) sent to one target and not yet acknowledged.
WINDOW = 8 << 20
#: Manifest entries per message.
ENTRY_BATCH = 1000
#: Message overhead in the wire estimates (frame header, tuple, opcode).
OVERHEAD = 16
#: Files from this size on are hashed here while the receiver hashes its old version.
PRECOMPUTE_MIN = 4 << 20
WAIT, POLL = "wait", "poll"
CLOSED = object()  # endmarker: a target's channel has closed


class Target:
    """One receiver of a send: its channel, what it asked for, its progress and result."""

    def __init__(self, channel, name=""):
        self.channel = channel
        self.name = name
        self.needs = deque()  # (index, how, arg) not served yet
        self.decided = 0  # manifest entries the receiver has decided on
        self.needs_complete = False
        self.need_count = 0
        self.sigs = {}  # index -> (block, old size, weak, strong)
        self.in_flight = 0
        self.batch, self.batch_credit = [], 0
        self.sent = deque()  # (index, size) of files answered, not yet acknowledged
        self.files_total = self.bytes_total = 0  # what the receiver needs
        self.files_done = self.bytes_done = 0  # what it has acknowledged (progress)
        self.wire_sent = self.wire_received = 0
        self.literal = self.matched = 0
        self.listed_bytes = 0  # sizes of what a dry run would send
        self.changes = []  # (what, relpath): "send", "make"
        self.deleted = []
        self.errors = []  # (relpath, message) from the receiver
        self.stats = {}
        self.failure = None
        self.detail = None  # the full error (a remote traceback), when there is one
        self.done = False  # the receiver said "done"
        self.finished = False  # done, or failed
        self.started = time.monotonic()
        self.duration = 0.0

    def __repr__(self):
        return f"<Target {self.name or self.channel!r}>"


class Sender:
    """Sends the ``tree`` (an ``rsync_tree.Tree``) to ``targets``; ``run()`` does it all.

    ``hooks`` may define ``on_start(targets)``, ``on_file(targets, relpath)`` (content
    about to be sent),
    ``on_list(target)`` (its needs are known), ``on_ack(target, relpath, size)`` and
    ``on_done(target)``. ``deadline`` (``time.monotonic()``) fails every target still
    running then; so does ``stop`` (a ``threading.Event``) once set, as "interrupted".
    """

    def __init__(self, tree, targets, hooks=None, deadline=None, stop=None):
        self.tree = tree
        self.stop = stop
        self.targets = list(targets)
        self.hooks = hooks
        self.deadline = deadline
        self.events = queue.SimpleQueue()
        self.skipped = {}  # index -> why, for files found changed when opened
        self.precomputed = {}  # index -> rsync_delta.Signing of our file, for deltas
        self._live = None
        for target in self.targets:
            target.channel.setcallback(
                lambda item, target=target: self.events.put((target, item)), endmarker=CLOSED
            )

    def _hook(self, name, *args):
        method = getattr(self.hooks, name, None)
        if method is not None:
            method(*args)

    def live(self):
        """The targets still under way (kept, not rebuilt: asked for once per file)."""
        if self._live is None or any(t.finished for t in self._live):
            self._live = [t for t in self.targets if not t.finished]
        return self._live

    # -- the loop ------------------------------------------------------------------------

    def run(self):
        self._hook("on_start", self.targets)
        try:
            for command in self._produce():
                if command == WAIT:
                    self._next_event()
                elif self.stop is not None and self.stop.is_set():
                    raise _Stop
                self._drain()
            while self.live():
                self._next_event()
        except _Stop:
            pass
        finally:
            for target in self.targets:
                if not target.finished:
                    self._fail(target, "interrupted")
            for signing in self.precomputed.values():
                signing.join()
            self.tree.close()

    def _next_event(self):
        while True:
            wait = None if self.deadline is None else self.deadline - time.monotonic()
            if wait is not None and wait <= 0:
                for target in self.live():
                    self._fail(target, "timed out")
                raise _Stop
            if self.stop is not None and self.stop.is_set():
                raise _Stop  # the targets still running fail as interrupted
            try:  # bounded waits keep a stop responsive
                target, item = self.events.get(timeout=0.2 if wait is None else min(wait, 0.2))
            except queue.Empty:
                continue
            self._handle(target, item)
            return

    def _drain(self):
        while True:
            try:
                target, item = self.events.get_nowait()
            except queue.Empty:
                return
            self._handle(target, item)

    def _fail(self, target, why, detail=None):
        if target.finished:
            return
        target.failure = why
        target.detail = detail
        target.finished = True
        target.duration = time.monotonic() - target.started
        try:
            if not target.channel.isclosed():
                target.channel.close()
        except Exception:
            pass

    def _send(self, target, msg, weight=0, wire=OVERHEAD):
        if target.finished:
            return
        try:
            target.channel.send(msg)
        except Exception as exc:
            self._fail(target, f"connection lost: {exc}")
            return
        target.in_flight += weight
        target.wire_sent += wire

    def _broadcast(self, msg, wire=OVERHEAD):
        for target in self.live():
            self._send(target, msg, 0, wire)

    # -- what the targets say ------------------------------------------------------------

    def _handle(self, target, item):
        if target is None or target.finished:
            return  # a signature computed here is ready, or a target gone
        if item is CLOSED:
            self._fail(target, *_closed_reason(target.channel))
            return
        try:
            self._dispatch(target, item)
        except (RsyncProtocolError, ValueError, TypeError, KeyError, IndexError) as exc:
            self._fail(target, f"protocol error: {exc}")

    def _dispatch(self, target, item):
        if not isinstance(item, tuple) or not item:
            raise RsyncProtocolError(f"unexpected message {item!r:.100}")
        op, args = item[0], item[1:]
        target.wire_received += OVERHEAD
        if op == "need" and len(args) == 3:
            self._need(target, *args)
        elif op == "sig" and len(args) == 5:
            index, block, old_size, weak, strong = args
            self._entry(index, "f")
            if not (isinstance(weak, bytes) and isinstance(strong, bytes)):
                raise RsyncProtocolError("malformed signature")
            target.wire_received += len(weak) + len(strong)
            target.sigs[index] = (block, old_size, weak, strong)
        elif op == "need_end" and len(args) == 1:
            if args[0] != target.need_count:
                raise RsyncProtocolError("need list incomplete")
            target.needs_complete = True
            self._hook("on_list", target)
        elif op == "ack" and len(args) == 2:
            weight, files = args
            if not (
                isinstance(weight, int) and isinstance(files, int) and files <= len(target.sent)
            ):
                raise RsyncProtocolError(f"bad ack {args!r:.100}")
            target.in_flight -= weight
            target.bytes_done += weight  # about the file bytes taken (items weigh a little)
            for _ in range(files):
                index, size = target.sent.popleft()
                target.files_done += 1
                self._hook("on_ack", target, self.tree.entries[index][0], size)
        elif op in ("errors", "deleted") and len(args) == 1 and isinstance(args[0], list):
            for value in args[0]:
                if op == "errors":
                    relpath, message = value
                    target.errors.append((str(relpath), str(message)))
                else:
                    target.deleted.append(str(value))
                target.wire_received += 40
        elif op == "done" and len(args) == 1 and isinstance(args[0], dict):
            target.stats = args[0]
            target.done = target.finished = True
            target.duration = time.monotonic() - target.started
            self._hook("on_done", target)
        else:
            raise RsyncProtocolError(f"unexpected message {op!r:.100}")

    def _entry(self, index, kind=None):
        entries = self.tree.entries
        if not isinstance(index, int) or not 0 <= index < len(entries):
            raise RsyncProtocolError(f"no entry {index!r:.50}")
        if kind is not None and entries[index][1] != kind:
            raise RsyncProtocolError(f"entry {index} is not a file")
        return entries[index]

    def _need(self, target, packed, made, upto):
        last = target.needs[-1][0] if target.needs else -1
        needs = unpack_needs(packed)
        for index, how, arg in needs:
            entry = self._entry(index, "f")
            if index <= last or index >= upto:
                raise RsyncProtocolError(f"need {index!r} {how!r} out of place")
            last = index
            target.needs.append((index, how, arg))
            if how == "delta" and entry[2] >= PRECOMPUTE_MIN and index not in self.precomputed:
                self.precomputed[index] = Signing(
                    lambda index=index: self.tree.open(index),
                    block_size(entry[2]),
                    lambda: self.events.put((None, "signed")),
                )
            if how != "list":
                target.need_count += 1
                target.files_total += 1
                target.bytes_total += entry[2]
        for index in made:
            target.changes.append(("make", self._entry(index)[0]))
        target.decided = max(target.decided, upto)
        target.wire_received += len(packed) + 8 * len(made)

    # -- what the targets get ------------------------------------------------------------

    def _produce(self):
        batch = []
        for entry in self.tree.scan():
            batch.append(entry)
            if len(batch) >= ENTRY_BATCH:
                packed = pack_entries(batch)
                self._broadcast(("entries", packed), len(packed) + OVERHEAD)
                batch = []
                yield POLL
        packed = pack_entries(batch)
        self._broadcast(("entries", packed), len(packed) + OVERHEAD)
        self._broadcast(("end_entries", len(self.tree.entries)))
        while True:
            index = yield from self._next_index()
            if index is None:
                break
            wanting = []
            for target in self.live():
                if target.needs and target.needs[0][0] == index:
                    wanting.append((target, target.needs.popleft()))
            yield from self._serve(index, wanting)
        for target in self.live():
            yield from self._flush(target)
        self._broadcast(("finish",))

    def _next_index(self):
        """The next file some target needs, once every target has decided on it."""
        while True:
            live = self.live()
            heads = [t.needs[0][0] for t in live if t.needs]
            if heads:
                low = min(heads)
                if all(t.needs_complete or t.decided > low for t in live):
                    return low
            elif all(t.needs_complete for t in live):
                return None
            for target in live:
                yield from self._flush(target)  # hold nothing back while waiting
            yield WAIT

    def _serve(self, index, wanting):
        relpath, _, size = self.tree.entries[index][:3]
        try:
            fd = self.tree.open(index)
        except Changed as exc:
            self.skipped[index] = str(exc)
            for target, (_, how, _) in wanting:
                if how != "list":
                    yield from self._add(target, (index, str(exc)), 0)
            return
        try:
            yield from self._serve_open(index, relpath, size, fd, wanting)
        finally:
            os.close(fd)

    def _serve_open(self, index, relpath, size, fd, wanting):
        digest = []
        whole, deltas = [], []
        for target, (_, how, arg) in wanting:
            if how in ("sum", "list") and arg is not None:
                if not digest:
                    digest.append(fd_sha256(fd))
                if arg == digest[0]:
                    if how == "sum":
                        yield from self._add(target, (index, None), 0)
                    continue
            if how == "list":
                target.changes.append(("send", relpath))
                target.listed_bytes += size
            elif how == "delta":
                deltas.append(target)
            else:
                whole.append(target)
        if whole:
            self._hook("on_file", whole, relpath)
            for target in whole:
                target.changes.append(("send", relpath))
            if size <= CHUNK_SIZE:
                data = _read_exactly(fd, size)
                for target in whole:
                    yield from self._add(
                        target, (index, data if data is not None else _CHANGED), size
                    )
            else:
                yield from self._stream_whole(index, size, fd, whole)
        if deltas:
            yield from self._serve_deltas(index, relpath, size, fd, deltas)

    def _add(self, target, item, size):
        """Put one answer (file data, "same", or why not) in ``target``'s batch."""
        weight = ITEM + (len(item[1]) if isinstance(item[1], bytes) else 0)
        if target.batch and (
            target.batch_credit + weight > BATCH_BYTES or len(target.batch) >= BATCH_ITEMS
        ):
            yield from self._flush(target)
        target.batch.append(item)
        target.batch_credit += weight
        target.sent.append((item[0], size if isinstance(item[1], bytes) else 0))
        if isinstance(item[1], bytes):
            target.literal += size

    def _flush(self, target):
        if target.batch and not target.finished:
            yield from self._window([target], target.batch_credit)
            batch, weight = target.batch, target.batch_credit
            target.batch, target.batch_credit = [], 0
            self._send(target, ("batch", batch), weight, weight + OVERHEAD)

    def _window(self, targets, weight):
        """Wait until each of ``targets`` may take ``weight`` more (one message always may)."""
        while any(
            not t.finished and t.in_flight and t.in_flight + weight > WINDOW for t in targets
        ):
            yield WAIT

    def _stream_whole(self, index, size, fd, targets):
        for target in targets:
            yield from self._flush(target)
            self._send(target, ("file", index), ITEM)
            target.sent.append((index, size))
        offset = 0
        while offset < size:
            chunk = os.pread(fd, min(CHUNK_SIZE, size - offset), offset)
            if not chunk:
                break
            yield from self._window(targets, len(chunk) + ITEM)
            for target in targets:
                self._send(target, ("chunk", chunk), len(chunk) + ITEM, len(chunk) + OVERHEAD)
                target.literal += len(chunk)
            offset += len(chunk)
        total = offset if offset == size and not os.pread(fd, 1, size) else None
        for target in targets:
            self._send(target, ("eof", total), ITEM)

    def _serve_deltas(self, index, relpath, size, fd, targets):
        """Deltas, computed once for all the targets whose old files have one signature."""
        groups = {}
        for target in targets:
            while index not in target.sigs and not target.finished:
                yield WAIT
            if not target.finished:
                groups.setdefault(target.sigs.pop(index), []).append(target)
        for theirs, group in groups.items():
            yield from self._stream_delta(group, index, relpath, size, fd, *theirs)

    def _stream_delta(self, group, index, relpath, size, fd, block, old_size, weak, strong):
        signing = self.precomputed.get(index)
        while signing is not None and not signing.done.is_set():
            yield WAIT
        aligned = signing.result if signing is not None and signing.block == block else None
        try:
            matcher = Matcher(block, old_size, weak, strong, aligned)
        except (ValueError, TypeError, OSError) as exc:
            for target in group:
                self._fail(target, f"protocol error: bad signature for {relpath!r}: {exc}")
            return
        ops = matcher.ops(lambda offset, length: _pread_all(fd, length, offset), size)
        pending, weight, started, total = [], ITEM, False, 0
        try:
            for op in ops:
                pending.append(op)
                weight += len(op) if isinstance(op, bytes) else ITEM
                if weight >= CHUNK_SIZE or len(pending) >= BATCH_ITEMS:
                    if not started:
                        started = yield from self._start_delta(group, index, relpath, size)
                    yield from self._window(group, weight)
                    total += self._send_ops(group, pending, weight)
                    pending, weight = [], ITEM
        except OSError:
            total = None
        for target in group:
            target.matched += matcher.matched
        if not started:
            if total is None:
                answer = (index, _CHANGED)
            elif old_size == size and copies_all(pending, -(-old_size // block)):
                answer = (index, None)  # the same content: only its mtime differed
            else:
                answer = None
            if answer is not None:
                for target in group:
                    yield from self._add(target, answer, 0)
                return
            started = yield from self._start_delta(group, index, relpath, size)
        if total is not None and pending:
            yield from self._window(group, weight)
            total += self._send_ops(group, pending, weight)
        for target in group:
            self._send(target, ("eof", total), ITEM)

    def _start_delta(self, group, index, relpath, size):
        self._hook("on_file", group, relpath)
        for target in group:
            target.changes.append(("send", relpath))
            yield from self._flush(target)
            self._send(target, ("delta", index), ITEM)
            target.sent.append((index, size))
        return True

    def _send_ops(self, group, ops, weight):
        literal = sum(len(op) for op in ops if isinstance(op, bytes))
        for target in group:
            self._send(target, ("ops", ops), weight, weight + OVERHEAD)
            target.literal += literal
        return literal


_CHANGED = "changed while it was read"


class _Stop(Exception):
    """Every target ran out of time."""


def _read_exactly(fd, size):
    """The file's ``size`` bytes, or None when it holds another number of bytes now (a
    regular file reads short only at its end: one call, usually)."""
    data = os.pread(fd, size + 1, 0)
    if len(data) < size:
        data += _pread_all(fd, size + 1 - len(data), len(data))
    return data if len(data) == size else None


def _pread_all(fd, length, offset):
    parts = []
    while length > 0:
        part = os.pread(fd, length, offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
        length -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _closed_reason(channel):
    """Why a target's channel closed before it said "done": (one line, the whole error).

    The line is the remote traceback's last, its exception named without its module
    (a ``DestinationError`` says only what it is about).
    """
    try:
        channel.waitclose(0)
    except Exception as exc:
        text = str(exc).strip()
        lines = text.splitlines()
        line = lines[-1] if lines else type(exc).__name__
        name, colon, message = line.partition(": ")
        if colon and "." in name and " " not in name:
            name = name.rpartition(".")[2]
            line = message if name == "DestinationError" else f"{name}: {message}"
        return line, text
    return "connection closed unexpectedly", None
