"""A host's output, in memory while it is small and in a temporary file once it is not.

A run may print any amount: 50 MB from each of a few hosts, or a little from thousands.
``HostOutput`` keeps what one host printed as runs of ``(stream, text)`` in arrival order
(consecutive pieces of one stream are joined, so a million lines are one string, not a
million). Past ``HOST_MEMORY`` characters held, or while the whole run holds more than
its ``Spool``'s budget, a host's pieces are written to the spool: one unlinked temporary
file per run (not one per host: thousands of hosts must not cost thousands of open
files), read back in segments of at most ``HOST_MEMORY`` when shown. Memory stays bounded
by the budget plus ``HOST_MEMORY`` per host still running, whatever the output's size
(over the budget, a host holding ``SPILL_MIN`` is spilled: no write for every line).

Outputs are compared by a digest of their content (``key``), computed as they are
written, so gathering identical output from many hosts never needs it all in memory.

On disk a segment is a sequence of records: a one-byte stream tag, a four-byte length,
that many bytes of UTF-8 (``surrogatepass``: any ``str`` a job printed comes back).
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO, Optional

__all__ = ["HOST_MEMORY", "RUN_MEMORY", "HostOutput", "Spool"]

#: Characters of one host's output kept in memory before they are spilled.
HOST_MEMORY = 256 * 1024
#: Characters all hosts of a run may keep in memory; past it, every new piece is spilled.
RUN_MEMORY = 32 * 1024 * 1024
#: Over the run's budget, a host's pieces are spilled once they hold this many characters.
SPILL_MIN = 16 * 1024
#: What a piece costs beyond its characters (the str and tuple objects), roughly.
_PIECE_OVERHEAD = 100
_TAGS = {"out": b"o", "err": b"e", "log": b"l"}
_STREAMS = {tag[0]: name for name, tag in _TAGS.items()}
_HEADER = struct.Struct(">cI")
_MAX_RECORD = 1 << 30  # characters per record: 4 bytes of length hold their UTF-8

Run = tuple[str, str]  # (stream, text)


class Spool:
    """The temporary file a run's large outputs go to, and the run's memory budget."""

    def __init__(self, budget: int = RUN_MEMORY) -> None:
        self.budget = budget
        self.in_memory = 0  # characters (and overhead) held by every HostOutput of the run
        self._file: Optional[BinaryIO] = None
        self._size = 0

    @property
    def over_budget(self) -> bool:
        return self.in_memory > self.budget

    @property
    def size(self) -> int:
        """Bytes written to the file so far."""
        return self._size

    def write(self, data: bytes) -> tuple[int, int]:
        """Append ``data``; return where it is: (offset, length)."""
        if self._file is None:
            import tempfile  # here: it loads shutil, bz2 and lzma; most runs never spill

            # Open as long as the spool: closed by close() (or with the object).
            self._file = tempfile.TemporaryFile(prefix="xnet-output-", buffering=0)  # noqa: SIM115
        offset = self._size
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written:] if written else view
        self._size += len(data)
        return offset, len(data)

    def read(self, offset: int, length: int) -> bytes:
        assert self._file is not None
        parts = []
        fd = self._file.fileno()
        while length:
            data = os.pread(fd, length, offset)
            if not data:
                raise OSError(f"the output spool ended at {offset} (truncated?)")
            parts.append(data)
            offset += len(data)
            length -= len(data)
        return b"".join(parts)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class HostOutput:
    """What one host printed: ``(stream, text)`` runs in arrival order (iterate it).

    ``add`` pieces while the host runs, then ``freeze`` once; after that it is a value,
    equal to another when their contents are (``key``).
    """

    __slots__ = (
        "_digest",
        "_hash",
        "_hash_stream",
        "_memory",
        "_pieces",
        "_segments",
        "_spool",
        "chars",
    )

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._pieces: list[Run] = []
        self._memory = 0
        self._segments: list[tuple[int, int]] = []
        self._hash: Any = hashlib.blake2b(digest_size=16)
        self._hash_stream = ""
        self._digest: Optional[bytes] = None
        self.chars = 0  # characters in all

    def add(self, stream: str, text: str) -> None:
        if not text:
            return
        assert self._digest is None, "a frozen output takes no more pieces"
        self._pieces.append((stream, text))
        cost = len(text) + _PIECE_OVERHEAD
        self._memory += cost
        self._spool.in_memory += cost
        self.chars += len(text)
        if self._memory > HOST_MEMORY or (self._spool.over_budget and self._memory > SPILL_MIN):
            self._spill()

    def freeze(self) -> HostOutput:
        """End the output: join what is still in memory into runs, and compute ``key``."""
        if self._digest is None:
            runs = _joined(self._pieces)
            for stream, text in runs:
                self._hash_run(stream, _encode(text))
            self._pieces = runs
            self._digest = self._hash.digest()
        return self

    def discard(self) -> None:
        """Give back the memory this output holds (an identical one is kept instead)."""
        self._spool.in_memory -= self._memory
        self._memory = 0
        self._pieces = []
        self._segments = []

    @property
    def key(self) -> tuple[bytes, int]:
        """Equal for equal contents (a digest and the length), once frozen."""
        assert self._digest is not None, "freeze() first"
        return self._digest, self.chars

    @property
    def spilled(self) -> bool:
        return bool(self._segments)

    def __iter__(self) -> Iterator[Run]:
        """The runs, from the spool first (a segment at a time), then from memory."""
        for offset, length in self._segments:
            yield from _decode(self._spool.read(offset, length))
        yield from self._pieces

    def text(self, stream: str) -> str:
        """Everything printed on ``stream``, as one string (all of it in memory)."""
        return "".join(text for name, text in self if name == stream)

    def __bool__(self) -> bool:
        return self.chars > 0

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HostOutput):
            return self.key == other.key
        if isinstance(other, tuple):  # as runs: (("out", "a\nb\n"), ("err", "x\n"))
            return tuple(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        where = ", spilled" if self._segments else ""
        return f"<HostOutput {self.chars} characters{where}>"

    # -- spilling ------------------------------------------------------------------------

    def _spill(self) -> None:
        records = []
        for stream, text in _joined(self._pieces):
            for start in range(0, len(text), _MAX_RECORD):
                data = _encode(text[start : start + _MAX_RECORD])
                self._hash_run(stream, data)
                records += [_HEADER.pack(_TAGS[stream], len(data)), data]
        self._segments.append(self._spool.write(b"".join(records)))
        self._spool.in_memory -= self._memory
        self._memory = 0
        self._pieces = []

    def _hash_run(self, stream: str, data: bytes) -> None:
        """Hash the content independently of how it was cut: a mark where the stream changes."""
        if stream != self._hash_stream:
            self._hash.update(b"\xff" + _TAGS[stream])  # never in UTF-8
            self._hash_stream = stream
        self._hash.update(data)


def _joined(pieces: list[Run]) -> list[Run]:
    """Consecutive pieces of one stream joined into one run."""
    runs: list[Run] = []
    start = 0
    for i in range(1, len(pieces) + 1):
        if i == len(pieces) or pieces[i][0] != pieces[start][0]:
            stream = pieces[start][0]
            text = pieces[start][1] if i - start == 1 else "".join(t for _, t in pieces[start:i])
            runs.append((stream, text))
            start = i
    return runs


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> Iterator[Run]:
    view = memoryview(data)
    position = 0
    while position < len(data):
        tag, length = _HEADER.unpack_from(view, position)
        position += _HEADER.size
        text = bytes(view[position : position + length]).decode("utf-8", "surrogatepass")
        position += length
        yield _STREAMS[tag[0]], text
