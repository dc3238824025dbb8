"""Safe serializer: builtin values to bytes and back, never executing anything.

This module is shipped as source to remote interpreters (Python >= 3.8), so it uses only
the standard library. It never pickles, evals or marshals: the loader builds values from a
closed set of builtin types, and any bad input raises ``LoadError`` (a ``DataFormatError``).

The format (opcodes and their payloads) is drawn in ``wireformat.py``.

Limits: what any input may make ``loads`` do is bounded (``loadguards.py`` says how).
"""

from __future__ import annotations

from itertools import chain

from .errors import DumpError, LoadError
from .loadguards import (
    _CHANNEL_CHARGE,
    _EMPTY_CHARGE,
    _GUARDED_ITEMS,
    _PREHASH,
    _SHORT_STR_CHARGE,
    HASH_TIME_ALLOWANCE,
    HASH_TIME_FACTOR,
    MAX_DEPTH,
    MEMORY_ALLOWANCE,
    HashGuard,
    _build_hashed,
    _is_key,
    _sizeof,
    _too_big,
    _unused_budget,
)
from .wireformat import (
    BIG_SEGMENT,
    BYTES1_HDR,
    CONTAINER_HDR,
    CONTAINER_OP,
    EMPTY,
    FALSE,
    FIXINT_HDR,
    FIXSTR_HDR,
    HDR1,
    I64,
    K_DICT,
    K_LIST,
    K_TUPLE,
    MAX_U32,
    NONE,
    OP_BIGINT1,
    OP_BIGINT4,
    OP_BYTES4,
    OP_CHANNEL,
    OP_COMPLEX,
    OP_FIXINT,
    OP_FIXSTR,
    OP_FLOAT,
    OP_FROZENSET4,
    OP_INT8,
    OP_NONE,
    OP_STR1,
    OP_STR4,
    OP_TRUE,
    OP_TUPLE1,
    STR1_HDR,
    TRUE,
    VERSION,
    VERSION_BYTE,
    VERSION_BYTES4,
    pack_op_c128,
    pack_op_f64,
    pack_op_i64,
    pack_op_u32,
    pack_u32,
    unpack_c128,
    unpack_f64,
    unpack_i64,
    unpack_u32,
)

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import IO, Any, Callable, Dict, List, Optional, Tuple

    ChannelFactory = Callable[[int], Any]

__all__ = [
    "HASH_TIME_ALLOWANCE",
    "HASH_TIME_FACTOR",
    "MAX_DEPTH",
    "MEMORY_ALLOWANCE",
    "VERSION",
    "dump",
    "dumps",
    "dumps_parts",
    "load",
    "loads",
]


def _encode(obj: Any, channel_type: Any, bigs: Optional[List[int]]) -> List[bytes]:
    """Encode obj into a list of pieces; note the indexes of big pieces in bigs.

    Iterative: ``stack`` holds the suspended iterators of the enclosing containers and
    ``active`` the ids of the lists and dicts on the current path. That detects cycles
    while a shared (acyclic) sub-object is encoded once per reference, like a tree. Every
    cycle passes through a list or a dict: tuples are immutable, and set members hashable.
    """
    out = [VERSION_BYTE]
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
                        append(FIXINT_HDR[obj])
                    elif -I64 <= obj < I64:
                        append(pack_op_i64(OP_INT8, obj))
                    else:
                        raw = obj.to_bytes((obj.bit_length() + 8) >> 3, "little", signed=True)
                        n = len(raw)
                        append(HDR1[OP_BIGINT1][n] if n < 256 else _header4(OP_BIGINT4, n))
                        append(raw)
                elif tp is str:
                    try:  # the strict codec is faster; it only fails on lone surrogates
                        raw = obj.encode()
                    except UnicodeEncodeError:
                        raw = obj.encode("utf-8", "surrogatepass")
                    n = len(raw)
                    if n < 64:
                        append(FIXSTR_HDR[n])
                    elif n < 256:
                        append(STR1_HDR[n])
                    else:
                        append(_header4(OP_STR4, n))
                        if n >= BIG_SEGMENT and bigs is not None:
                            bigs.append(len(out))
                    append(raw)
                elif obj is None:
                    append(NONE)
                elif tp is bool:
                    append(TRUE if obj else FALSE)
                elif tp is float:
                    append(pack_op_f64(OP_FLOAT, obj))
                elif tp is bytes:
                    n = len(obj)
                    if n < 256:
                        append(BYTES1_HDR[n])
                    else:
                        append(_header4(OP_BYTES4, n))
                        if n >= BIG_SEGMENT and bigs is not None:
                            bigs.append(len(out))
                    append(obj)
                elif tp in CONTAINER_HDR:
                    if len(stack) >= MAX_DEPTH:
                        raise DumpError(_too_deep(f"a {tp.__name__}"))
                    n = len(obj)
                    if n < 256:
                        append(CONTAINER_HDR[tp][n])
                    else:
                        append(_header4(CONTAINER_OP[tp] + 1, n))
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
                    append(pack_op_c128(OP_COMPLEX, obj.real, obj.imag))
                elif channel_type is not None and isinstance(obj, channel_type):
                    cid = getattr(obj, "id", None)
                    if type(cid) is not int or not -I64 <= cid < I64:
                        raise DumpError(f"channel {obj!r} has no 64-bit integer id: {cid!r}")
                    append(pack_op_i64(OP_CHANNEL, cid))
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
    if n > MAX_U32:
        raise DumpError(f"cannot serialize an object of {n} bytes or items (max {MAX_U32})")
    return pack_op_u32(op, n)


def dumps(obj: Any, channel_type: Any = None) -> bytes:
    """Serialize obj; instances of channel_type are encoded by their ``.id``."""
    return b"".join(_encode(obj, channel_type, None))


def dumps_parts(obj: Any, channel_type: Any = None) -> List[bytes]:
    """Like dumps, as segments for ``os.writev``; big payloads are passed through uncopied.

    Every bytes value (and encoded str) of at least BIG_SEGMENT bytes is its own segment,
    the very same object; the small pieces between them are joined.
    """
    if type(obj) is bytes and BIG_SEGMENT <= len(obj) <= MAX_U32:  # a chunk of bulk data
        return [VERSION_BYTES4 + pack_u32(len(obj)), obj]
    bigs: List[int] = []
    out = _encode(obj, channel_type, bigs)
    if not bigs:  # the common case, every small item: one segment (never empty)
        return [b"".join(out)]
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
        and unpack_u32(data, 2)[0] == len(data) - 6
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
    spent = 0  # memory estimate: bytes beyond 20 per byte of data so far (see "Limits")
    guard: Optional[HashGuard] = None  # the hashing time guard, set up by a big dict or set
    try:
        if not end:
            raise LoadError("truncated data: empty input, expected the format version byte")
        if data[0] != VERSION:
            raise LoadError(f"unsupported format version {data[0]} (this side reads version 1)")
        pos = 1
        while True:
            op = data[pos]  # past the end, an IndexError (see below): no test per value
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
                if op < 0x44 and op > 0x41:  # OP_FIXSTR + 2 or 3 (literals: faster)
                    spent += _SHORT_STR_CHARGE[op][len(value)]
                    if spent > MEMORY_ALLOWANCE:
                        raise _too_big(spent, end, pos)
            elif op >= OP_STR1:  # a u8 (even opcode) or u32 (odd) size follows
                if op > OP_FROZENSET4:
                    raise LoadError(f"unknown opcode 0x{op:02x} at offset {pos - 1}")
                if op & 1:
                    if pos + 4 > end:
                        raise _truncated(op, pos)
                    n = unpack_u32(data, pos)[0]
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
                    k = op >> 1  # the container's kind
                    if k == K_DICT:
                        n *= 2
                    if n > end - pos:  # each item takes at least one byte
                        raise _truncated(op, pos, f"announces {n} items, {end - pos} follow")
                    if not n:
                        value = EMPTY[k]()
                        spent += _EMPTY_CHARGE[k]
                        if spent > MEMORY_ALLOWANCE:
                            raise _too_big(spent, end, pos)
                    else:
                        # A list's or tuple's memory is known now: 56 bytes and 8 per slot,
                        # with at most n / 8 + 6 spare slots (a list grown by appending), or
                        # 40 and 8 per item; less 20 x (2 header bytes + n items) plus 20 for
                        # the parent. The credit of a tuple of 2 items or more (12 per item
                        # less 20) is left out. A dict's or set's table is measured once built.
                        if k == K_LIST:
                            spent += 84 - 11 * n
                            if spent > MEMORY_ALLOWANCE:
                                raise _too_big(spent, end, pos)
                        elif k == K_TUPLE:
                            if n == 1:
                                spent += 8
                                if spent > MEMORY_ALLOWANCE:
                                    raise _too_big(spent, end, pos)
                        elif n > _GUARDED_ITEMS and guard is None:
                            guard = HashGuard()
                        stack.append((items, left, kind))
                        items, left, kind = [], n, k
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
                        if n == 2 and op == OP_STR1:  # not how dumps writes it
                            spent += 80 - 60
                            if spent > MEMORY_ALLOWANCE:
                                raise _too_big(spent, end, pos)
                    elif op <= OP_BYTES4:
                        value = raw if is_bytes else bytes(raw)
                    else:
                        value = int.from_bytes(raw, "little", signed=True)
                    pos = stop
                    if n >= _PREHASH and op < OP_BIGINT1 and _is_key(stack, kind, left):
                        hash(value)  # a key: str and bytes cache their hash (see "Limits")
            elif op == OP_INT8:
                if pos + 8 > end:
                    raise _truncated(op, pos)
                value = unpack_i64(data, pos)[0]
                pos += 8
            elif op <= OP_TRUE:
                value = None if op == OP_NONE else op == OP_TRUE
            elif op <= OP_CHANNEL:  # FLOAT, COMPLEX, CHANNEL: fixed size
                stop = pos + (16 if op == OP_COMPLEX else 8)
                if stop > end:
                    raise _truncated(op, pos)
                if op == OP_FLOAT:
                    value = unpack_f64(data, pos)[0]
                elif op == OP_COMPLEX:
                    value = complex(*unpack_c128(data, pos))
                elif channel_factory is None:
                    raise LoadError(f"channel reference outside a gateway (offset {pos - 1})")
                else:
                    value = channel_factory(unpack_i64(data, pos)[0])
                    spent += _CHANNEL_CHARGE
                    if spent > MEMORY_ALLOWANCE:
                        raise _too_big(spent, end, pos)
                pos = stop
            else:
                raise LoadError(f"unknown opcode 0x{op:02x} at offset {pos - 1}")
            # Deliver value to the open containers, closing each one that becomes full.
            while items is not None:
                items.append(value)
                left -= 1
                if left:
                    break
                if kind == K_TUPLE:
                    value = tuple(items)
                elif kind == K_LIST:
                    value = items
                else:
                    value = _build_hashed(kind, items, pos, guard)
                    charge = _sizeof(value) - 20 * len(items) - 20
                    if spent + charge > MEMORY_ALLOWANCE:  # what the estimate did not see:
                        charge -= _unused_budget(items)  # small keys in a big table
                    spent += charge
                    if spent > MEMORY_ALLOWANCE:
                        raise _too_big(spent, end, pos)
                items, left, kind = stack.pop()
            else:
                if pos != end:
                    raise LoadError(
                        f"trailing data: {end - pos} bytes after the value ending at offset {pos}"
                    )
                return value
    except LoadError:
        raise
    except IndexError as exc:
        if pos >= end:  # the opcode read at the top of the loop
            raise LoadError(f"truncated data: expected an opcode at offset {pos}") from None
        raise LoadError(f"cannot load data near offset {pos}: {exc!r}") from exc
    except Exception as exc:  # last line of defence: nothing but LoadError may escape
        raise LoadError(f"cannot load data near offset {pos}: {exc!r}") from exc
    finally:
        raw = None  # no slice of a caller's buffer may outlive the call via a traceback
        if view is not None:
            if flat is not None:
                flat.release()
            view.release()


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
            n = buf[-1] if width == 1 else unpack_u32(buf, len(buf) - 4)[0]
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
