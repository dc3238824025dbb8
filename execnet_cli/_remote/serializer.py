"""Safe serializer: builtin values to bytes and back, never executing anything.

This module is shipped as source to remote interpreters (Python >= 3.8), so it uses only
the standard library. It never pickles, evals or marshals: the loader builds values from a
closed set of builtin types, and any bad input raises ``LoadError`` (a ``DataFormatError``).

Format: one version byte (``1``), then one value as a prefix-form tree of opcodes. A
container opcode carries its item count and is followed by its items (a dict by key, value,
key, value ...). Numbers are little-endian; ``u8``/``u32`` are unsigned. Every sized opcode
has a short form (even opcode, u8 size) and a long form (the next, odd opcode, u32 size).

    ===========  ==============  ===============================================
    opcode       name            payload
    ===========  ==============  ===============================================
    0x00         NONE            -
    0x01         FALSE           -
    0x02         TRUE            -
    0x03         INT8            i64 (ints that fit 64 bits and no FIXINT)
    0x04         FLOAT           IEEE 754 double (nan, inf, -0.0 kept)
    0x05         COMPLEX         two doubles: real, imag
    0x06         CHANNEL         i64 channel id (loads needs a channel factory)
    0x08 / 0x09  STR1 / STR4     u8 / u32 n, n bytes of UTF-8 ('surrogatepass')
    0x0A / 0x0B  BYTES1 / 4      u8 / u32 n, n bytes
    0x0C / 0x0D  BIGINT1 / 4     u8 / u32 n, n bytes of two's complement
    0x0E / 0x0F  TUPLE1 / 4      u8 / u32 count, then count values
    0x10 / 0x11  LIST1 / 4       u8 / u32 count, then count values
    0x12 / 0x13  DICT1 / 4       u8 / u32 count, then count (key, value) pairs
    0x14 / 0x15  SET1 / 4        u8 / u32 count, then count values
    0x16 / 0x17  FROZENSET1 / 4  u8 / u32 count, then count values
    0x40 + n     FIXSTR          a str of n < 64 UTF-8 bytes: the n bytes
    0x80 + n     FIXINT          the int n, 0 <= n < 128; no payload
    ===========  ==============  ===============================================

Other opcodes are reserved and rejected. Types are dispatched on their exact type: other
types, subclasses included (IntEnum, a str subclass), raise ``DumpError``, so a receiver
never gets a type it did not expect. ``load`` reads one value from a file and raises
EOFError at a clean end of file, as execnet does.

Limits. The data may come from a host we do not trust (one bad worker must not take down
the controller), so ``loads`` bounds what any input can make it do:

- Depth: containers nest at most MAX_DEPTH (400) deep, in every position (items, dict keys
  and values, set members); deeper data raises LoadError, and ``dumps`` raises DumpError
  rather than produce it. Both directions are iterative (explicit stacks), so the bound is
  not about our own recursion: it protects whoever uses the value. CPython hashes nested
  tuples with unchecked C recursion (a set holding a 150,000-deep tuple overflowed the C
  stack: exit 139), and repr, ==, pickle and deepcopy recurse once or twice per level. At
  400 levels all of these work at the default recursion limit on CPython 3.8-3.13 (pickle
  and deepcopy fail from ~500), in any thread with a stack of 128 KiB (musl's default) or
  more; real data is far shallower.
"""

from __future__ import annotations

import struct
from itertools import chain

from .errors import DumpError, LoadError

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import IO, Any, Callable, Dict, List, Optional, Tuple

    ChannelFactory = Callable[[int], Any]

__all__ = ["MAX_DEPTH", "VERSION", "dump", "dumps", "dumps_parts", "load", "loads"]

VERSION = 1
#: Containers nest at most this deep (a value inside MAX_DEPTH containers); see "Limits".
MAX_DEPTH = 400
#: bytes and encoded str payloads at least this long become their own dumps_parts segment
BIG_SEGMENT = 1 << 16

OP_NONE, OP_FALSE, OP_TRUE, OP_INT8, OP_FLOAT, OP_COMPLEX, OP_CHANNEL = range(7)
OP_STR1, OP_STR4, OP_BYTES1, OP_BYTES4, OP_BIGINT1, OP_BIGINT4 = range(0x08, 0x0E)
OP_TUPLE1, OP_LIST1, OP_DICT1, OP_SET1, OP_FROZENSET1 = range(0x0E, 0x18, 2)
OP_FROZENSET4 = OP_FROZENSET1 + 1
OP_FIXSTR, OP_FIXINT = 0x40, 0x80
# A container's kind is its opcode >> 1 (the same for the u8 and the u32 form).
K_TUPLE, K_LIST, K_DICT, K_SET, K_FROZENSET = range(OP_TUPLE1 >> 1, (OP_FROZENSET1 >> 1) + 1)

_MAX_U32 = 0xFFFFFFFF
_I64 = 1 << 63
_unpack_u32 = struct.Struct("<I").unpack_from
_unpack_i64 = struct.Struct("<q").unpack_from
_unpack_f64 = struct.Struct("<d").unpack_from
_unpack_c128 = struct.Struct("<dd").unpack_from
_pack_op_i64 = struct.Struct("<Bq").pack
_pack_op_u32 = struct.Struct("<BI").pack
_pack_op_f64 = struct.Struct("<Bd").pack
_pack_op_c128 = struct.Struct("<Bdd").pack
_pack_u32 = struct.Struct("<I").pack

# Precomputed headers: a list lookup is cheaper than building a 1- or 2-byte bytes object.
_VERSION_BYTE = bytes((VERSION,))
_VERSION_BYTES4 = bytes((VERSION, OP_BYTES4))
_NONE, _FALSE, _TRUE = bytes((OP_NONE,)), bytes((OP_FALSE,)), bytes((OP_TRUE,))
_FIXINT_HDR = [bytes((OP_FIXINT + n,)) for n in range(128)]
_FIXSTR_HDR = [bytes((OP_FIXSTR + n,)) for n in range(64)]
_CONTAINER_OP = {tuple: OP_TUPLE1, list: OP_LIST1, dict: OP_DICT1, set: OP_SET1}
_CONTAINER_OP[frozenset] = OP_FROZENSET1
_HDR1 = {
    op: [bytes((op, n)) for n in range(256)]
    for op in (OP_STR1, OP_BYTES1, OP_BIGINT1, *_CONTAINER_OP.values())
}
_STR1_HDR, _BYTES1_HDR = _HDR1[OP_STR1], _HDR1[OP_BYTES1]
_CONTAINER_HDR = {tp: _HDR1[op] for tp, op in _CONTAINER_OP.items()}
_EMPTY = {K_TUPLE: tuple, K_LIST: list, K_DICT: dict, K_SET: set, K_FROZENSET: frozenset}


def _encode(obj: Any, channel_type: Any, bigs: Optional[List[int]]) -> List[bytes]:
    """Encode obj into a list of pieces; note the indexes of big pieces in bigs.

    Iterative: ``stack`` holds the suspended iterators of the enclosing containers and
    ``active`` the ids of the lists and dicts on the current path. That detects cycles
    while a shared (acyclic) sub-object is encoded once per reference, like a tree. Every
    cycle passes through a list or a dict: tuples are immutable, and set members hashable.
    """
    out = [_VERSION_BYTE]
    append = out.append
    active: Dict[int, None] = {}
    stack: List[Tuple[Any, Optional[int]]] = []
    it: Any = (obj,)  # the top level: a tuple, never resumed (pushed as None)
    try:
        while True:
            for obj in it:
                tp = type(obj)
                if tp is int:
                    if 0 <= obj < 128:
                        append(_FIXINT_HDR[obj])
                    elif -_I64 <= obj < _I64:
                        append(_pack_op_i64(OP_INT8, obj))
                    else:
                        raw = obj.to_bytes((obj.bit_length() + 8) >> 3, "little", signed=True)
                        n = len(raw)
                        append(_HDR1[OP_BIGINT1][n] if n < 256 else _header4(OP_BIGINT4, n))
                        append(raw)
                elif tp is str:
                    try:  # the strict codec is faster; it only fails on lone surrogates
                        raw = obj.encode()
                    except UnicodeEncodeError:
                        raw = obj.encode("utf-8", "surrogatepass")
                    n = len(raw)
                    if n < 64:
                        append(_FIXSTR_HDR[n])
                    elif n < 256:
                        append(_STR1_HDR[n])
                    else:
                        append(_header4(OP_STR4, n))
                        if n >= BIG_SEGMENT and bigs is not None:
                            bigs.append(len(out))
                    append(raw)
                elif obj is None:
                    append(_NONE)
                elif tp is bool:
                    append(_TRUE if obj else _FALSE)
                elif tp is float:
                    append(_pack_op_f64(OP_FLOAT, obj))
                elif tp is bytes:
                    n = len(obj)
                    if n < 256:
                        append(_BYTES1_HDR[n])
                    else:
                        append(_header4(OP_BYTES4, n))
                        if n >= BIG_SEGMENT and bigs is not None:
                            bigs.append(len(out))
                    append(obj)
                elif tp in _CONTAINER_HDR:
                    if len(stack) >= MAX_DEPTH:
                        raise DumpError(_too_deep(f"a {tp.__name__}"))
                    n = len(obj)
                    if n < 256:
                        append(_CONTAINER_HDR[tp][n])
                    else:
                        append(_header4(_CONTAINER_OP[tp] + 1, n))
                    if n:
                        key = None
                        if tp is list or tp is dict:
                            key = id(obj)
                            if key in active:
                                raise DumpError(
                                    f"recursive structure: a {tp.__name__} contains itself"
                                )
                            active[key] = None
                        stack.append((it if stack else None, key))
                        it = chain.from_iterable(obj.items()) if tp is dict else iter(obj)
                        break
                elif tp is complex:
                    append(_pack_op_c128(OP_COMPLEX, obj.real, obj.imag))
                elif channel_type is not None and isinstance(obj, channel_type):
                    cid = getattr(obj, "id", None)
                    if type(cid) is not int or not -_I64 <= cid < _I64:
                        raise DumpError(f"channel {obj!r} has no 64-bit integer id: {cid!r}")
                    append(_pack_op_i64(OP_CHANNEL, cid))
                else:
                    raise DumpError(f"cannot serialize {tp!r}")
            else:
                if not stack:
                    return out
                it, key = stack.pop()
                if key is not None:
                    del active[key]
                if it is None:
                    return out
    except RuntimeError as exc:  # a dict or set changed size while we iterated over it
        raise DumpError(f"cannot serialize a container changed during dumps: {exc}") from exc


def _header4(op: int, n: int) -> bytes:
    """The long-form header; refuse sizes a u32 cannot carry (rather than a struct.error)."""
    if n > _MAX_U32:
        raise DumpError(f"cannot serialize an object of {n} bytes or items (max {_MAX_U32})")
    return _pack_op_u32(op, n)


def dumps(obj: Any, channel_type: Any = None) -> bytes:
    """Serialize obj; instances of channel_type are encoded by their ``.id``."""
    return b"".join(_encode(obj, channel_type, None))


def dumps_parts(obj: Any, channel_type: Any = None) -> List[bytes]:
    """Like dumps, as segments for ``os.writev``; big payloads are passed through uncopied.

    Every bytes value (and encoded str) of at least BIG_SEGMENT bytes is its own segment,
    the very same object; the small pieces between them are joined.
    """
    if type(obj) is bytes and BIG_SEGMENT <= len(obj) <= _MAX_U32:  # a chunk of bulk data
        return [_VERSION_BYTES4 + _pack_u32(len(obj)), obj]
    bigs: List[int] = []
    out = _encode(obj, channel_type, bigs)
    segments: List[bytes] = []
    start = 0
    for i in bigs:
        segments += (b"".join(out[start:i]), out[i])
        start = i + 1
    segments.append(b"".join(out[start:]))
    return [segment for segment in segments if segment]


def dump(file: IO[bytes], obj: Any, channel_type: Any = None) -> None:
    """Write one value to a binary file in a single write call."""
    file.write(dumps(obj, channel_type))


def loads(data: Any, channel_factory: Optional[ChannelFactory] = None) -> Any:
    """Deserialize the one value that spans data (bytes, bytearray or memoryview).

    Raises only LoadError. Iterative: the container being filled lives in locals (items,
    left, kind), the enclosing ones on ``stack``. Sizes are checked against the remaining
    data before anything is allocated. Non-bytes data is read through a memoryview that
    is released before returning: a traceback must not keep a caller's bytearray locked.
    """
    # The shape of bulk data (a chunk of a stream), as a gateway's reader hands it over:
    # one bytes value of 256 bytes or more, checked as the loop below would.
    if (
        type(data) is memoryview
        and data.ndim == 1
        and len(data) > 6
        and data.format == "B"
        and data.c_contiguous
        and data[1] == OP_BYTES4
        and data[0] == VERSION
        and _unpack_u32(data, 2)[0] == len(data) - 6
    ):
        return data[6:].tobytes()
    view = flat = None
    is_bytes = type(data) is bytes
    if not is_bytes:
        try:
            view = memoryview(data)
        except TypeError as exc:
            raise LoadError(f"cannot load from {type(data)!r}: need a bytes-like object") from exc
        if view.c_contiguous:
            data = flat = view.cast("B")
        else:
            data, is_bytes = view.tobytes(), True
    end = len(data)
    pos = 0
    stack: List[Tuple[Any, int, int]] = []
    items: Optional[List[Any]] = None
    left = kind = 0
    raw: Any = None
    try:
        if not end:
            raise LoadError("truncated data: empty input, expected the format version byte")
        if data[0] != VERSION:
            raise LoadError(f"unsupported format version {data[0]} (this side reads version 1)")
        pos = 1
        while True:
            if pos >= end:
                raise LoadError(f"truncated data: expected an opcode at offset {pos}")
            op = data[pos]
            pos += 1
            if op >= OP_FIXINT:
                value = op - OP_FIXINT
            elif op >= OP_FIXSTR:
                stop = pos + op - OP_FIXSTR
                if stop > end:
                    raise _truncated(op, pos)
                raw = data[pos:stop]
                try:
                    value = raw.decode() if is_bytes else str(raw, "utf-8")
                except UnicodeDecodeError:
                    value = _decode_surrogates(raw, pos)
                pos = stop
            elif op >= OP_STR1:  # a u8 (even opcode) or u32 (odd) size follows
                if op > OP_FROZENSET4:
                    raise LoadError(f"unknown opcode 0x{op:02x} at offset {pos - 1}")
                if op & 1:
                    if pos + 4 > end:
                        raise _truncated(op, pos)
                    n = _unpack_u32(data, pos)[0]
                    pos += 4
                else:
                    if pos >= end:
                        raise _truncated(op, pos)
                    n = data[pos]
                    pos += 1
                if op >= OP_TUPLE1:  # a container: n is an item count
                    if len(stack) >= MAX_DEPTH:  # stack: one entry per open container
                        start = pos - 5 if op & 1 else pos - 2
                        raise LoadError(_too_deep(f"a container at offset {start}"))
                    if op >> 1 == K_DICT:
                        n *= 2
                    if n > end - pos:  # each item takes at least one byte
                        raise _truncated(op, pos, f"announces {n} items, {end - pos} bytes follow")
                    if not n:
                        value = _EMPTY[op >> 1]()
                    else:
                        stack.append((items, left, kind))
                        items, left, kind = [], n, op >> 1
                        continue
                else:  # n is a byte count
                    stop = pos + n
                    if stop > end:
                        raise _truncated(op, pos, f"announces {n} bytes, {end - pos} follow")
                    raw = data[pos:stop]
                    if op <= OP_STR4:
                        try:
                            value = raw.decode() if is_bytes else str(raw, "utf-8")
                        except UnicodeDecodeError:
                            value = _decode_surrogates(raw, pos)
                    elif op <= OP_BYTES4:
                        value = raw if is_bytes else bytes(raw)
                    else:
                        value = int.from_bytes(raw, "little", signed=True)
                    pos = stop
            elif op == OP_INT8:
                if pos + 8 > end:
                    raise _truncated(op, pos)
                value = _unpack_i64(data, pos)[0]
                pos += 8
            elif op <= OP_TRUE:
                value = None if op == OP_NONE else op == OP_TRUE
            elif op <= OP_CHANNEL:  # FLOAT, COMPLEX, CHANNEL: fixed size
                stop = pos + (16 if op == OP_COMPLEX else 8)
                if stop > end:
                    raise _truncated(op, pos)
                if op == OP_FLOAT:
                    value = _unpack_f64(data, pos)[0]
                elif op == OP_COMPLEX:
                    value = complex(*_unpack_c128(data, pos))
                elif channel_factory is None:
                    raise LoadError(f"channel reference outside a gateway (offset {pos - 1})")
                else:
                    value = channel_factory(_unpack_i64(data, pos)[0])
                pos = stop
            else:
                raise LoadError(f"unknown opcode 0x{op:02x} at offset {pos - 1}")
            # Deliver value to the open containers, closing each one that becomes full.
            while items is not None:
                items.append(value)
                left -= 1
                if left:
                    break
                if kind == K_LIST:
                    value = items
                elif kind == K_TUPLE:
                    value = tuple(items)
                else:
                    value = _build_hashed(kind, items, pos)
                items, left, kind = stack.pop()
            else:
                if pos != end:
                    raise LoadError(
                        f"trailing data: {end - pos} bytes after the value ending at offset {pos}"
                    )
                return value
    except LoadError:
        raise
    except Exception as exc:  # last line of defence: nothing but LoadError may escape
        raise LoadError(f"cannot load data near offset {pos}: {exc!r}") from exc
    finally:
        raw = None  # no slice of a caller's buffer may outlive the call via a traceback
        if view is not None:
            if flat is not None:
                flat.release()
            view.release()


def _build_hashed(kind: int, items: List[Any], pos: int) -> Any:
    """Build a dict, set or frozenset; unhashable keys or members (lists ...) are refused."""
    try:
        if kind == K_DICT:
            it = iter(items)
            return dict(zip(it, it))
        return set(items) if kind == K_SET else frozenset(items)
    except TypeError as exc:
        what = "dict key" if kind == K_DICT else "set member"
        raise LoadError(f"corrupt data: unhashable {what} before offset {pos} ({exc})") from exc


def _decode_surrogates(raw: Any, pos: int) -> str:
    """The slow path of UTF-8 decoding: lone surrogates are valid, other errors are not."""
    raw = bytes(raw)  # not a view of the caller's buffer: a traceback may keep this frame
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise LoadError(f"invalid UTF-8 in the string at offset {pos}: {exc}") from None


def _too_deep(what: str) -> str:
    return f"{what} is nested deeper than {MAX_DEPTH} containers (the serializer's limit)"


def _truncated(op: int, pos: int, detail: str = "is cut short") -> LoadError:
    return LoadError(f"truncated data: opcode 0x{op:02x} at offset {pos - 1} {detail}")


# For load(): per opcode, (fixed payload size, width of its size field, items per count);
# the size field holds the payload size, or the item count if items per count > 0.
_LAYOUT: List[Optional[Tuple[int, int, int]]] = [None] * 256
for _op in range(OP_FIXSTR, 256):
    _LAYOUT[_op] = (_op - OP_FIXSTR if _op < OP_FIXINT else 0, 0, 0)
for _op, _size in enumerate((0, 0, 0, 8, 8, 16, 8)):  # NONE ... CHANNEL
    _LAYOUT[_op] = (_size, 0, 0)
for _op in range(OP_STR1, OP_FROZENSET4 + 1):
    _LAYOUT[_op] = (0, 4 if _op & 1 else 1, 0 if _op < OP_TUPLE1 else 1 + (_op >> 1 == K_DICT))
del _op, _size
_READ_CHUNK = 1 << 20


def load(file: IO[bytes], channel_factory: Optional[ChannelFactory] = None) -> Any:
    """Read exactly one value from a binary file-like object (only ``.read(n)`` is used).

    The framing is walked first, reading no byte past the value, then the collected bytes
    go through loads. At end of file before the first byte this raises EOFError, as
    execnet does, so a reader can stop cleanly; a value cut short raises LoadError. Errors
    of the file itself (OSError ...) propagate unchanged: they are not bad data.
    """
    buf = bytearray()
    _read_exact(file, buf, 1)
    if buf[0] != VERSION:
        raise LoadError(f"unsupported format version {buf[0]} (this side reads version 1)")
    pending = 1
    while pending:
        pending -= 1
        offset = len(buf)
        _read_exact(file, buf, 1)
        layout = _LAYOUT[buf[offset]]
        if layout is None:
            raise LoadError(f"unknown opcode 0x{buf[offset]:02x} at offset {offset}")
        size, width, per_item = layout
        if width:
            _read_exact(file, buf, width)
            n = buf[-1] if width == 1 else _unpack_u32(buf, len(buf) - 4)[0]
            if per_item:
                pending += n * per_item
            else:
                size = n
        _read_exact(file, buf, size)
    return loads(buf, channel_factory)


def _read_exact(file: IO[bytes], buf: bytearray, n: int) -> None:
    """Append exactly n bytes from file to buf, in bounded chunks (a forged size must not
    make one read allocate gigabytes). EOFError at EOF before a value, else LoadError."""
    while n > 0:
        chunk = file.read(min(n, _READ_CHUNK))
        if not chunk:
            if not buf:
                raise EOFError("end of file before a serialized value")
            raise LoadError(f"truncated data: end of file after {len(buf)} bytes of a value")
        buf += chunk
        n -= len(chunk)


def loads_public(data: Any, py2str_as_py3str: bool = False, py3str_as_py2str: bool = False) -> Any:
    """``execnet.loads``: its signature, whose string flags mean nothing in Python 3."""
    return loads(data)


def load_public(
    file: IO[bytes], py2str_as_py3str: bool = False, py3str_as_py2str: bool = False
) -> Any:
    """``execnet.load``: its signature, whose string flags mean nothing in Python 3."""
    return load(file)
