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
- Memory: every byte of data may make 20 bytes of memory; past 20 x len(data) +
  MEMORY_ALLOWANCE (16 MiB) by an estimate kept while decoding, LoadError ("memory bomb":
  a list of empty sets took 110 x its size). The estimate costs nothing per scalar: an
  int, float or str of 4 bytes or more takes at most 20 bytes per byte of its payload, and
  each value's opcode byte pays 20 towards its slot in its container. What may take more
  is charged as it is made, beyond that share: containers (their object, a list's spare
  slots, a dict's or set's table, measured once built) and strs of 2 or 3 bytes. A big
  table of small keys is charged its full size first; only if that passes the allowance
  are its keys looked at for the share of their payload that they leave unused. So lists
  of many tiny containers (an empty set is 216 bytes) are refused past the allowance.
- Hashing: an int hashes to itself modulo 2**61 - 1, so keys can be chosen that collide
  (a set of 374 KiB took 4.5 s), and even keys with distinct hashes can be chosen that
  crowd CPython's probe sequence (a dict of 1 MiB took 4.7 s): counting equal hashes is
  not enough, and replaying CPython's probing would be slow and version-bound. So time is
  bounded instead: a dict or set of more than 64 items is built in chunks of 128 keys and
  refused once building the dicts and sets of the data took HASH_TIME_FACTOR (2) times as
  long as decoding it did, plus HASH_TIME_ALLOWANCE (20 ms) of CPU time. Decoding runs
  Python code for every value, while hashing a real key is C work that takes at most half
  as long (measured: ints, floats, strs, tuples, frozensets; long strs and bytes that are
  keys are hashed as they are decoded, as their hash is cached), so real data is never
  refused, however fast the machine; flooding costs at most about 5 x the decoding time.
"""

from __future__ import annotations

import struct
import sys
import time
from itertools import chain

from .errors import DumpError, LoadError

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

VERSION = 1
#: Containers nest at most this deep (a value inside MAX_DEPTH containers); see "Limits".
MAX_DEPTH = 400
#: loads refuses data whose value would take more memory than 20 times the size of the data
#: plus MEMORY_ALLOWANCE bytes (by the estimate described under "Limits").
MEMORY_ALLOWANCE = 16 << 20
#: Building big dicts and sets may take HASH_TIME_FACTOR times as long as decoding the data
#: took, plus HASH_TIME_ALLOWANCE seconds (see "Limits").
HASH_TIME_FACTOR = 2.0
HASH_TIME_ALLOWANCE = 0.02
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

# The memory estimate (see "Limits"): what each object costs beyond 20 bytes per byte of
# its opcode and payload, after CPython 3.11 on 64 bits (malloc rounding to 8 included).
# The charge of an empty container: its object, less 20 x its 2 header bytes, plus the 20
# bytes that its opcode byte pays towards its parent.
_EMPTY_CHARGE = {K_TUPLE: -20, K_LIST: 36, K_DICT: 44, K_SET: 196, K_FROZENSET: 196}
# A str of 2 or 3 UTF-8 bytes may take more than 20 bytes per byte of payload (a str of one
# character from U+0100 on takes 80 bytes); by opcode, then number of characters.
_SHORT_STR_CHARGE = {
    OP_FIXSTR + 2: (0, 80 - 40, 56 - 40),
    OP_FIXSTR + 3: (0, 80 - 60, 80 - 60, 0),
}
_CHANNEL_CHARGE = 2048 - 160  # a channel: its queue, event and registry entry
_GUARDED_ITEMS = 64  # dicts and sets with more items (a dict item is a key or a value) ...
_CHUNK = 128  # ... are built in chunks of this many keys under the hashing time guard
_PREHASH = 1024  # str and bytes keys this long are hashed as they are decoded
_cpu_time = getattr(time, "thread_time", time.process_time)
_wall_time = time.perf_counter


def _estimate_table(value: Any) -> int:
    """Memory of a dict or set where sys.getsizeof is missing (PyPy): generous."""
    return 232 + 128 * len(value)


def _estimate_scalar(value: Any) -> int:
    """Memory of an int, str or bytes where sys.getsizeof is missing: generous."""
    return 80 + 4 * (len(value) if type(value) is not int else value.bit_length() // 8)


try:  # a dict's or set's table is as big as its growth history made it: measure it
    _sizeof = _sizeof_scalar = sys.getsizeof
    _sizeof(frozenset())
except (AttributeError, TypeError):  # pragma: no cover
    _sizeof, _sizeof_scalar = _estimate_table, _estimate_scalar


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
    spent = 0  # memory estimate: bytes beyond 20 per byte of data so far (see "Limits")
    clock: Optional[List[float]] = None  # the hashing time guard, set up by a big dict or set
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
                    k = op >> 1  # the container's kind
                    if k == K_DICT:
                        n *= 2
                    if n > end - pos:  # each item takes at least one byte
                        raise _truncated(op, pos, f"announces {n} items, {end - pos} follow")
                    if not n:
                        value = _EMPTY[k]()
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
                        elif n > _GUARDED_ITEMS and clock is None:
                            clock = [_wall_time(), 0.0, -1.0]
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
                    value = _build_hashed(kind, items, pos, clock)
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


def _build_hashed(kind: int, items: List[Any], pos: int, clock: Optional[List[float]]) -> Any:
    """Build a dict, set or frozenset; unhashable keys or members (lists ...) are refused.

    A big one is built in chunks under the hashing time guard, whose state is ``clock``: the
    wall time when it was set up, the wall time spent hashing since, and the CPU time spent
    hashing since the wall time screen first tripped (-1.0 before).
    """
    try:
        if clock is None or len(items) <= _GUARDED_ITEMS:
            if kind == K_DICT:
                it = iter(items)
                return dict(zip(it, it))
            return set(items) if kind == K_SET else frozenset(items)
        return _build_guarded(kind, items, pos, clock)
    except TypeError as exc:
        what = "dict key" if kind == K_DICT else "set member"
        raise LoadError(f"corrupt data: unhashable {what} before offset {pos} ({exc})") from exc


def _build_guarded(kind: int, items: List[Any], pos: int, clock: List[float]) -> Any:
    """Build in chunks of _CHUNK keys; refuse once hashing takes longer than allowed.

    The wall time is cheap to read and never less than the CPU time, so it screens each
    chunk. Once hashing has taken longer than allowed by the wall clock, the CPU time of
    this thread counts (read once per chunk), so that a thread that was only descheduled is
    not refused: over the allowance in CPU time too, and hashing is refused. An attack thus
    gets at most twice the allowance.
    """
    wall_start, hashing, cpu_hashing = clock
    wall0 = _wall_time()
    decoding = wall0 - wall_start - hashing
    allowance = HASH_TIME_ALLOWANCE + HASH_TIME_FACTOR * decoding
    cpu0 = _cpu_time() if cpu_hashing >= 0.0 else -1.0
    table: Any = {} if kind == K_DICT else set()
    update = table.update
    step = 2 * _CHUNK if kind == K_DICT else _CHUNK
    end = len(items)
    for start in range(0, end + step * (kind == K_FROZENSET), step):
        if start < end:
            chunk = items[start : start + step]
            if kind == K_DICT:
                it = iter(chunk)
                update(zip(it, it))
            else:
                update(chunk)
        else:  # a frozenset is made by copying the set: work of its own
            table = frozenset(table)
        if cpu0 < 0.0:
            if hashing + _wall_time() - wall0 > allowance:
                cpu0, cpu_hashing = _cpu_time(), 0.0
        elif cpu_hashing + _cpu_time() - cpu0 > allowance:
            what = "dict" if kind == K_DICT else "set" if kind == K_SET else "frozenset"
            raise LoadError(
                f"hash flooding: building a {what} of {end >> (kind == K_DICT)} keys before "
                f"offset {pos} took more than the {allowance:.3f} s of CPU time allowed "
                f"({HASH_TIME_FACTOR:g} x the {decoding:.3f} s spent decoding + "
                f"{HASH_TIME_ALLOWANCE:g} s): keys chosen to collide in the hash table?"
            )
    clock[1] = hashing + _wall_time() - wall0
    if cpu0 >= 0.0:
        clock[2] = cpu_hashing + _cpu_time() - cpu0
    return table


def _is_key(stack: List[Tuple[Any, int, int]], kind: int, left: int) -> bool:
    """Whether the next value is a dict key, a set member, or inside a tuple that is one."""
    depth = len(stack)
    while kind == K_TUPLE:  # the tuple's place in its parent is on the stack
        depth -= 1
        kind, left = stack[depth][2], stack[depth][1]
    return kind >= K_SET or (kind == K_DICT and not left & 1)


def _too_big(spent: int, end: int, pos: int) -> LoadError:
    return LoadError(
        f"memory bomb: by offset {pos} the value would take an estimated {spent} bytes of "
        f"memory more than 20 x the {end} bytes of data, over the allowance of "
        f"{MEMORY_ALLOWANCE} bytes (the serializer's limit); send big collections in pieces"
    )


def _unused_budget(items: List[Any]) -> int:
    """What the keys, members and values of a dict or set (and the items of tuples among
    them) leave unused of their 20 bytes per byte of payload: the estimate did not count it.

    Each scalar counts here at most once: tuples are looked into, other containers are not
    (a dict or set has an estimate of its own; lists and dicts cannot be keys). Sizes are
    measured low (the shortest encoding of the value) and memory high (sys.getsizeof of a
    shared object too), so the credit is never more than the real one.
    """
    credit = 0
    pending = [items]
    while pending:
        for item in pending.pop():
            tp = type(item)
            if tp is int:
                if not 0 <= item < 128:  # INT8, or BIGINT of the fewest bytes and a size
                    size = (item.bit_length() + 8) // 8 + 1
                    if size > 8 and -_I64 <= item < _I64:
                        size = 8
                    credit += max(0, 20 * size - _sizeof_scalar(item))
            elif tp is str:
                if len(item) > 3:  # shorter ones may be charged: leave them out
                    credit += max(0, 20 * len(item) - _sizeof_scalar(item))
            elif tp is float:
                credit += 20 * 8 - 24
            elif tp is bytes:
                credit += max(0, 20 * (len(item) + 1) - _sizeof_scalar(item))
            elif tp is complex:
                credit += 20 * 16 - 32
            elif tp is tuple:
                pending.append(item)
    return credit


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
