"""Block deltas, the rsync algorithm: signatures, matching, and patching. Stdlib only, Python 3.8.

The receiver cuts its old file into blocks of ``block_size(new size)`` bytes and sends, per
block, a weak checksum (``zlib.adler32``, which can roll) and a strong one (the first 16
bytes of its sha256). The sender walks its new file: where the window at the current
position has a known weak checksum and the strong one agrees, it says "copy old block j";
everything else travels as literal bytes. The receiver builds the new file from copies of
its old one and the literals.

Pure Python cannot roll a checksum byte by byte fast enough (~2 MB/s), so the walk has
two speeds. At the current position one ``zlib.adler32`` call (C) decides: matching
stretches (the whole old file, in an append) go at hashing speed. After a miss, the
positions ahead are checked in bulk: prefix sums from ``itertools.accumulate`` give every
window's sum at once, mapped through C builtins into a set lookup, and only the few
windows whose sum matches some block are checked exactly. A miss-run rolls through
``ROLL_BUDGET`` positions; past that (the file has really changed) it samples: one block's
worth of positions (which must hit a shifted old block if one lies there) every
``SAMPLE_MIN`` bytes, or every quarter of the run so far, aligned positions in between.
A sample that hits walks back block by block to where the match began; the literal
stays pending (as offsets, re-read when sent) as far back as a sample can reach, so an
insertion of any length costs its own bytes and a block or two, and a rewritten big file
costs a few block searches per doubling of its length.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import zlib
from array import array
from itertools import accumulate, compress, count, repeat
from operator import mod, sub

from .fdio import write_all

#: Files smaller than this are always sent whole.
DELTA_MIN = 256 * 1024
#: Bytes of the strong checksum kept per block.
STRONG = 16
#: Positions one bulk search step covers.
SEARCH_STEP = 1 << 18
#: Positions rolled through after a miss before the search thins out to samples.
ROLL_BUDGET = 512 << 10
#: Shortest distance between two samples of a long miss-run (then a quarter of the run).
SAMPLE_MIN = 1 << 20
#: Largest literal piece the matcher yields (the sender sends at most this much at once).
LITERAL_MAX = 256 * 1024
#: Longest copy run in one op: the receiver starts copying while the walk goes on.
RUN_MAX = 64 << 20
#: Bytes of the new file held at once while matching.
SPAN = 4 << 20
ADLER_MOD = 65521
_WEAK_ITEM = "I" if array("I").itemsize == 4 else "L"


def block_size(size):
    """The block size both sides use for a file of ``size`` bytes (the new size)."""
    shift = max(13, min(17, (int(size**0.5) * 8 - 1).bit_length()))
    return 1 << shift


def _weak_to_bytes(values):
    weak = array(_WEAK_ITEM, values)
    if weak.itemsize != 4:
        raise OSError("no 32-bit array type here")
    if sys.byteorder == "big":
        weak.byteswap()
    return weak.tobytes()


def _weak_from_bytes(data):
    weak = array(_WEAK_ITEM)
    weak.frombytes(data)
    if sys.byteorder == "big":
        weak.byteswap()
    return weak


def signature(fd, size, block):
    """(weak, strong) of the file on ``fd``: little-endian u32s, and 16 bytes per block."""
    weak = []
    strong = []
    step = block * max(1, (1 << 20) // block)
    offset = 0
    while offset < size:
        data = os.pread(fd, min(step, size - offset), offset)
        if not data:
            break
        view = memoryview(data)
        for start in range(0, len(data), block):
            piece = view[start : start + block]
            weak.append(zlib.adler32(piece))
            strong.append(hashlib.sha256(piece).digest()[:STRONG])
        offset += len(data)
    return _weak_to_bytes(weak), b"".join(strong)


class Matcher:
    """The sender's half: turns a new file into copy runs and literals against a signature."""

    def __init__(self, block, old_size, weak, strong, aligned=None):
        self.block = block
        # The new file's own signature, when the sender computed it while the receiver
        # computed the old one's: block-aligned positions then cost a dict lookup.
        self.aligned = None
        if aligned is not None:
            self.aligned = (_weak_from_bytes(aligned[0]), aligned[1])
        self.old_size = old_size
        weak = _weak_from_bytes(weak)
        blocks = len(weak)
        if len(strong) != blocks * STRONG or blocks != -(-old_size // block):
            raise ValueError("signature does not fit the file")
        self.table = {}  # adler32 -> {strong: block index}
        for index, value in enumerate(weak):
            self.table.setdefault(value, {}).setdefault(
                strong[index * STRONG : (index + 1) * STRONG], index
            )
        # Window sums (mod 65521) of the full blocks not matched yet: the bulk search's first
        # filter. A block already placed is not searched for again (it still matches where
        # the walk stands): once an append has matched the whole old file, the rest costs
        # no search at all.
        self.weak = weak
        self.strong = strong
        self.unplaced = {}
        for index in range(old_size // block):
            key = ((weak[index] & 0xFFFF) - 1) % ADLER_MOD
            self.unplaced.setdefault(key, set()).add(index)
        self.sums = set(self.unplaced)
        self.last = old_size % block  # a short last block, matched only at the end
        self.last_index = blocks - 1
        self.matched = 0

    def _lookup(self, view):
        candidates = self.table.get(zlib.adler32(view))
        if candidates is None:
            return None
        return candidates.get(hashlib.sha256(view).digest()[:STRONG])

    def _known(self, number):
        """``_lookup`` of the new file's block ``number``, from its precomputed signature."""
        weak, strong = self.aligned
        if number >= len(weak):
            return None
        candidates = self.table.get(weak[number])
        if candidates is None:
            return None
        return candidates.get(strong[number * STRONG : (number + 1) * STRONG])

    def _placed(self, index):
        if index * self.block + self.block > self.old_size:
            return  # the short last block is never searched for
        key = ((self.weak[index] & 0xFFFF) - 1) % ADLER_MOD
        indexes = self.unplaced.get(key)
        if indexes is not None:
            indexes.discard(index)
            if not indexes:
                del self.unplaced[key]
                self.sums.discard(key)

    def _search(self, view, start, stop):
        """The first offset in [start, stop] of ``view`` where a full block matches, or None.

        Window sums come from prefix sums; a window whose sum (mod 65521) some block has
        gets its whole adler32 from the prefix sums of the prefix sums, and only a window
        whose adler32 is known is hashed.
        """
        block = self.block
        sums, table = self.sums, self.table
        step = max(SEARCH_STEP, 4 * block)
        while start <= stop and sums:
            end = min(stop, start + step - 1)
            prefix = list(accumulate(view[start : end + block], initial=0))
            windows = map(sub, prefix[block:], prefix[: end - start + 1])
            hits = compress(count(), map(sums.__contains__, map(mod, windows, repeat(ADLER_MOD))))
            second = None
            for k in hits:
                if second is None:
                    second = list(accumulate(prefix, initial=0))
                low = (1 + prefix[k + block] - prefix[k]) % ADLER_MOD
                high = (
                    block + second[k + block + 1] - second[k + 1] - block * prefix[k]
                ) % ADLER_MOD
                candidates = table.get(high << 16 | low)
                if candidates is not None:
                    offset = start + k
                    digest = hashlib.sha256(view[offset : offset + block]).digest()[:STRONG]
                    index = candidates.get(digest)
                    if index is not None:
                        return offset, index
            start = end + 1
        return None

    def ops(self, read, size):
        """Yield ops for the new file of ``size`` bytes: (first block, count) or literal bytes.

        ``read(offset, length)`` reads the new file; at most ``SPAN`` bytes are held (and
        one literal piece).
        """
        block = self.block
        win = _Window(read)
        out = _Ops(max(1, RUN_MAX // block), win)
        pos = literal = run = 0  # the position, the pending literal's start, the miss-run's
        budget = ROLL_BUDGET
        sample = 0  # the next position sampled, once the budget is spent
        while pos + block <= size:
            sampling = budget <= 0 and pos >= sample
            short = pos + 2 * block > win.end and win.end < size  # too little for a sample
            if pos + block > win.end or (sampling and short):
                # What lies further back than a sample can reach goes out now.
                flush = pos - _interval(pos - run) - 2 * block
                if flush > literal:
                    out.literal(literal, flush)
                    literal = flush
                for op in out.drain():
                    yield op
                win.load(pos, min(size - pos, max(SPAN, 2 * block)))
                if win.end - pos < block:
                    raise OSError("the file shrank while it was read")
            view = memoryview(win.data)
            offset = pos - win.base
            if self.aligned is not None and pos % block == 0:
                index = self._known(pos // block)
            else:
                index = self._lookup(view[offset : offset + block])
            if index is None and budget > 0:
                stop = min(len(view) - block, offset + budget)
                found = self._search(view, offset + 1, stop)
                if found is None:
                    budget -= stop - offset
                    pos = win.base + stop + 1
                    sample = pos + _interval(pos - run)
                    continue
                budget -= found[0] - offset
                pos, index = win.base + found[0], found[1]
            elif index is None and sampling:
                stop = min(len(view) - block, offset + block)
                found = self._search(view, offset + 1, stop)
                sample = pos + _interval(pos - run)
                if found is not None:
                    pos, index = win.base + found[0], found[1]
                    first, back = self._extend_back(win, literal, pos, index)
                    if back:
                        out.literal(literal, first)
                        for earlier in range(index - back, index):
                            self._copy(out, earlier)
                        literal = pos
            if index is None:  # out of budget: aligned positions until the next sample
                pos += block - pos % block
                continue
            out.literal(literal, pos)
            self._copy(out, index)
            pos += block
            literal = run = pos
            budget = ROLL_BUDGET
        end = size
        tail = size - self.last
        if self.last and tail >= literal and self._lookup(win.get(tail, size)) == self.last_index:
            end = tail
        out.literal(literal, end)
        if end < size:
            out.copy(self.last_index)
            self.matched += self.last
        out.close()
        for op in out.drain():
            yield op

    def _copy(self, out, index):
        out.copy(index)
        self._placed(index)
        self.matched += self.block

    def _extend_back(self, win, floor, pos, index):
        """(start, blocks): how far before ``pos`` (not before ``floor``) the old blocks
        before ``index`` match too; a sample finds a match somewhere inside it."""
        block, back = self.block, 0
        while index - back > 0 and pos - block * (back + 1) >= floor:
            at = pos - block * (back + 1)
            piece = win.get(at, at + block)
            number = index - back - 1
            if zlib.adler32(piece) != self.weak[number]:
                break
            strong = self.strong[number * STRONG : (number + 1) * STRONG]
            if hashlib.sha256(piece).digest()[:STRONG] != strong:
                break
            back += 1
        return pos - block * back, back


def _interval(missed):
    """The distance to the next sample after a miss-run of ``missed`` bytes."""
    return max(SAMPLE_MIN, missed >> 2)


class _Window:
    """The part of the new file held in memory; other ranges are read again when asked."""

    def __init__(self, read):
        self.read = read
        self.base = 0
        self.data = b""
        self.end = 0

    def load(self, base, length):
        self.base, self.data = base, self.read(base, length)
        self.end = base + len(self.data)

    def get(self, start, end):
        if self.base <= start and end <= self.end:
            return self.data[start - self.base : end - self.base]
        data = self.read(start, end - start)
        if len(data) != end - start:
            raise OSError("the file shrank while it was read")
        return data


class _Ops:
    """Ops in order, with consecutive block copies merged into one (first, count) run.

    Literals are kept as spans of the new file and read (from ``window``) as they go out.
    """

    def __init__(self, longest, window):
        self.longest = longest
        self.window = window
        self.run = None
        self.pending = []

    def copy(self, index):
        run = self.run
        if run is not None and run[0] + run[1] == index and run[1] < self.longest:
            run[1] += 1
            return
        self.close()
        self.run = [index, 1]

    def literal(self, start, end):
        if start < end:
            self.close()
            self.pending.append(slice(start, end))

    def close(self):
        if self.run is not None:
            self.pending.append(tuple(self.run))
            self.run = None

    def drain(self):
        pending, self.pending = self.pending, []
        for item in pending:
            if isinstance(item, slice):
                for piece in range(item.start, item.stop, LITERAL_MAX):
                    yield self.window.get(piece, min(item.stop, piece + LITERAL_MAX))
            else:
                yield item


def copies_all(ops, blocks):
    """Whether ``ops`` copy the old file's blocks, all and in order: nothing changed."""
    expected = 0
    for op in ops:
        if isinstance(op, bytes) or op[0] != expected:
            return False
        expected += op[1]
    return expected == blocks


class Signing:
    """The sender's own file's block signature, computed in a thread while the receiver
    computes its old file's (hashing releases the GIL): the match then only looks blocks
    up. ``opener()`` gives an fd on the file; ``done()`` is called once the result is in."""

    def __init__(self, opener, block, done):
        self.block = block
        self.result = None
        self.done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(opener, done), name="xnet-rsync-sign", daemon=True
        )
        self._thread.start()

    def _run(self, opener, done):
        fd = None
        try:
            fd = opener()
            self.result = signature(fd, os.fstat(fd).st_size, self.block)
        except Exception:  # a changed or unreadable file: matched without it
            self.result = None
        finally:
            if fd is not None:
                os.close(fd)
            self.done.set()
            done()

    def join(self):
        self._thread.join()


def copy_range(source, target, offset, length):
    """Append ``length`` bytes of ``source`` from ``offset`` to ``target`` (in the kernel
    where it can: ``copy_file_range``)."""
    copy = getattr(os, "copy_file_range", None)
    while length > 0 and copy is not None:
        try:
            done = copy(source, target, length, offset)
        except OSError:
            break  # not supported here (old kernel, another file system): copy by hand
        if done <= 0:
            break
        offset += done
        length -= done
    while length > 0:
        data = os.pread(source, min(length, 1 << 20), offset)
        if not data:
            raise OSError(f"the old file ended {length} bytes early")
        write_all(target, data)
        offset += len(data)
        length -= len(data)


class Patcher:
    """The receiver's half: appends copies of old blocks and literals to a new file."""

    def __init__(self, old_fd, block, old_size, out_fd):
        self.old_fd = old_fd
        self.block = block
        self.old_size = old_size
        self.out_fd = out_fd
        self.written = 0
        self.copied = 0

    def apply(self, op):
        if isinstance(op, bytes):
            write_all(self.out_fd, op)
            self.written += len(op)
            return len(op)
        if not (isinstance(op, (tuple, list)) and len(op) == 2):
            raise ValueError(f"bad delta op {op!r:.100}")
        first, blocks = op
        if not (isinstance(first, int) and isinstance(blocks, int) and first >= 0 and blocks > 0):
            raise ValueError(f"bad delta op {op!r:.100}")
        offset = first * self.block
        length = min(blocks * self.block, self.old_size - offset)
        if length <= 0:
            raise ValueError(f"delta op {op!r:.100} is beyond the old file")
        copy_range(self.old_fd, self.out_fd, offset, length)
        self.written += length
        self.copied += length
        return 0
