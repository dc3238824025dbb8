"""execnet's serialization format (version 2), for the alias's ``dumps``/``loads``.

The alias speaks it on both sides of a gateway (``compat``), so values stored by either
execnet load in the other. Implemented from the format's description: a stream of
one-byte opcodes for a stack machine, ``STOP`` last; sizes and ints of 4 bytes, big
endian. Exact types only, no eval; every malformed input is a LoadError (EOFError where
an opcode should start, as in execnet), and sizes are checked before anything is
allocated. Channels travel by id and are only loaded with a gateway's channel factory.

Limits: the data may come from a worker we do not trust, so loading is bounded as our own
format's is (``loadguards.py`` says why): containers nest at most ``MAX_DEPTH`` deep (a
set holding a 150,000-deep tuple crashed the process: exit 139), the objects made may take
at most 20 bytes per byte read plus ``MEMORY_ALLOWANCE`` (a tuple of empty dicts took 80 x
its size), and building big dicts and sets may take only so long (keys chosen to collide
took 5.7 s for 1 MiB). Each is a LoadError; ``dumps`` refuses what is nested too deep.
"""

from __future__ import annotations

import struct
import sys
from array import array
from itertools import islice

from . import channel, errors
from .loadguards import (
    _CHANNEL_CHARGE,
    _CHUNK,
    _GUARDED_ITEMS,
    MAX_DEPTH,
    MEMORY_ALLOWANCE,
    HashGuard,
    _build_hashed,
    _sizeof,
    _sizeof_scalar,
)
from .wireformat import K_DICT, K_FROZENSET, K_SET

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, List, Optional, Tuple

DUMPFORMAT_VERSION = b"\x02"
FOUR_BYTE_INT_MAX = 2147483647
FLOAT_FORMAT = "!d"
FLOAT_FORMAT_SIZE = struct.calcsize(FLOAT_FORMAT)
COMPLEX_FORMAT = "!dd"
COMPLEX_FORMAT_SIZE = struct.calcsize(COMPLEX_FORMAT)
_INT4 = struct.Struct("!i")
#: Longest int in decimal we write or read (CPython's own default conversion limit).
MAX_INT_DIGITS = 4300
#: Items a list read from a stream may announce (from bytes: at most what the rest holds):
#: a list grows to the index of each item set, so this bounds what one item can allocate.
MAX_STREAM_LIST = 1 << 22
#: Bytes read from a stream at once while collecting a long string.
_READ_CHUNK = 1 << 20


class opcode:
    """execnet's opcodes: one byte each, the wire values of version 2."""

    BUILDTUPLE = b"@"
    BYTES = b"A"
    CHANNEL = b"B"
    FALSE = b"C"
    FLOAT = b"D"
    FROZENSET = b"E"
    INT = b"F"
    LONG = b"G"
    LONGINT = b"H"
    LONGLONG = b"I"
    NEWDICT = b"J"
    NEWLIST = b"K"
    NONE = b"L"
    PY2STRING = b"M"
    PY3STRING = b"N"
    SET = b"O"
    SETITEM = b"P"
    STOP = b"Q"
    TRUE = b"R"
    UNICODE = b"S"
    COMPLEX = b"T"


def bchr(n: int) -> bytes:
    """The byte ``n`` (execnet's helper, kept for code that builds its stream by hand)."""
    return bytes((n,))


def _int4(n: int, what: str) -> bytes:
    if not -FOUR_BYTE_INT_MAX - 1 <= n <= FOUR_BYTE_INT_MAX:
        raise errors.DumpError(f"{what} is too long for execnet's format ({n})")
    return _INT4.pack(n)


def _sized(op: bytes, data: bytes, what: str) -> bytes:
    return op + _int4(len(data), what) + data


def dumps_internal(obj: Any, channel_type: Any = None) -> bytes:
    """``obj`` in execnet's format without the version byte (what a channel carries).

    Iterative: ``todo`` holds values still to write (with the containers they are in) and
    opcodes to emit after them.
    """
    channel_type = channel_type or channel.Channel
    out: List[bytes] = []
    todo: List[Tuple[bool, Any, int]] = [(True, obj, 0)]
    active: set = set()  # ids of the lists and dicts being written: a cycle is an error
    while todo:
        is_value, value, depth = todo.pop()
        if not is_value:
            if type(value) is int:
                active.discard(value)
            else:
                out.append(value)
            continue
        tp = type(value)
        if value is None:
            out.append(opcode.NONE)
        elif tp is bool:
            out.append(opcode.TRUE if value else opcode.FALSE)
        elif tp is int:
            if -FOUR_BYTE_INT_MAX - 1 <= value <= FOUR_BYTE_INT_MAX:
                out.append(opcode.INT + _INT4.pack(value))
            else:
                try:
                    digits = str(value).encode("ascii")
                except ValueError as exc:  # beyond the interpreter's int-to-str limit
                    raise errors.DumpError(f"int too large for execnet's format: {exc}") from None
                out.append(_sized(opcode.LONGINT, digits, "int"))
        elif tp is str:
            try:
                encoded = value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise errors.DumpError(f"strings must be utf-8 encodable: {exc}") from None
            out.append(_sized(opcode.PY3STRING, encoded, "string"))
        elif tp is bytes:
            out.append(_sized(opcode.BYTES, value, "bytes"))
        elif tp is float:
            out.append(opcode.FLOAT + struct.pack(FLOAT_FORMAT, value))
        elif tp is complex:
            out.append(opcode.COMPLEX + struct.pack(COMPLEX_FORMAT, value.real, value.imag))
        elif depth >= MAX_DEPTH and tp in (list, dict, tuple, set, frozenset):
            raise errors.DumpError(f"a value is {_TOO_DEEP} (the other side would refuse it)")
        elif tp is list or tp is dict:
            if id(value) in active:
                raise errors.DumpError(f"recursive structure: a {tp.__name__} contains itself")
            active.add(id(value))
            todo.append((False, id(value), 0))
            pairs = enumerate(value) if tp is list else value.items()
            for key, item in reversed(list(pairs)):
                todo += (
                    (False, opcode.SETITEM, 0),
                    (True, item, depth + 1),
                    (True, key, depth + 1),
                )
            out.append(opcode.NEWDICT if tp is dict else opcode.NEWLIST + _int4(len(value), "list"))
        elif tp is tuple or tp is set or tp is frozenset:
            op = opcode.BUILDTUPLE if tp is tuple else opcode.SET if tp is set else opcode.FROZENSET
            todo.append((False, op + _int4(len(value), tp.__name__), 0))
            todo += ((True, item, depth + 1) for item in reversed(list(value)))
        elif tp is channel_type:
            out.append(opcode.CHANNEL + _int4(value.id, "channel id"))
        else:
            raise errors.DumpError(f"can't serialize {tp}")
    out.append(opcode.STOP)
    return b"".join(out)


def dumps(obj: Any) -> bytes:
    """``obj`` as bytes in execnet's format (version byte first)."""
    return DUMPFORMAT_VERSION + dumps_internal(obj)


def dump(byteio: Any, obj: Any) -> None:
    """Write ``obj`` in execnet's format to a binary file."""
    byteio.write(dumps(obj))


class BytesReader:
    """Reads a bytes-like value; knows how much is left."""

    def __init__(self, data: Any) -> None:
        self.data = bytes(data)
        self.pos = 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def list_limit(self) -> int:
        """The most items a list can announce: each needs bytes of its own."""
        return self.left()

    def read(self, n: int) -> bytes:
        part = self.data[self.pos : self.pos + n]
        self.pos += len(part)
        return part


class StreamReader:
    """Reads a file object (``read(n)``), in bounded chunks."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.pos = 0  # bytes read: what the memory bound allows for

    def left(self) -> int:
        """Unknown: sizes are believed, and the data read in chunks as it comes."""
        return sys.maxsize

    def list_limit(self) -> int:
        return MAX_STREAM_LIST

    def read(self, n: int) -> bytes:
        parts = []
        while n > 0:
            part = self.stream.read(min(n, _READ_CHUNK))
            if not part:
                break
            parts.append(bytes(part))
            n -= len(part)
            self.pos += len(part)
        return b"".join(parts)


def _exact(reader: Any, n: int, what: str) -> bytes:
    if n < 0:
        raise errors.LoadError(f"negative size {n} for {what}")
    if n > reader.left():
        raise errors.LoadError(f"{what} of {n} bytes is longer than the data")
    data = reader.read(n)
    if len(data) != n:
        raise errors.LoadError(f"truncated data: {what} cut short")
    return data


def load_from(
    reader: Any,
    versioned: bool,
    strconfig: Tuple[bool, bool] = (False, False),
    channel_factory: Optional[Callable[[int], Any]] = None,
) -> Any:
    """One value in execnet's format from ``reader`` (``BytesReader``/``StreamReader``).

    ``strconfig`` is execnet's (py2str_as_py3str, py3str_as_py2str); ``channel_factory``
    makes the channel of an id (only a gateway has one).
    """
    if versioned:
        version = reader.read(1)
        if version != DUMPFORMAT_VERSION:
            raise errors.LoadError(f"wrong dumpformat version {version!r}")
    stack: List[Any] = []
    limits: Dict[int, int] = {}  # id of a list being filled -> items it announced
    guard = _Limits(reader)
    try:
        while True:
            op = reader.read(1)
            if not op:
                raise EOFError("end of data where an opcode should start")
            if op == opcode.STOP:
                if len(stack) != 1:
                    raise errors.LoadError("internal unserialization error")
                guard.flush(0)
                return stack[0]
            value = _load_one(op, reader, stack, limits, strconfig, channel_factory, guard)
            if value is not _NOTHING:
                stack.append(value)
                guard.depths.append(guard.made)
                guard.made = 0
                guard.spent += _PUSHED
    except (TypeError, ValueError, UnicodeDecodeError, struct.error) as exc:
        raise errors.LoadError(f"malformed data: {type(exc).__name__}: {exc}") from None


_NOTHING = object()  # what SETITEM leaves on the stack: nothing
_TOO_DEEP = f"nested deeper than {MAX_DEPTH} containers"
#: What each value costs on the way (a slot on the stack and its depth beside it), and
#: what each container costs beyond sys.getsizeof (the garbage collector's header).
_PUSHED, _TRACKED = 10, 16
#: A list that announced items is remembered while it is filled (an entry in a dict).
_ANNOUNCED = 104
#: A big dict's items wait until this many keys are ready, then go in (chunk by chunk).
_PENDING = 8 * _CHUNK
#: At most what an int of 4 bytes and a float or complex take (sys.getsizeof, 64 bits);
#: strings, bytes and long ints are measured.
_INT_SIZE = _COMPLEX_SIZE = 32


class _Limits:
    """One load's bounds (see "Limits"): the depth of each value on the stack (``depths``,
    beside it; ``made``: the depth of the value being made), the memory its objects take
    (``spent``, by sys.getsizeof as they are made and as they grow), and the time spent
    building big dicts and sets (``hashing``, the guard our own format's ``loads`` uses).

    SETITEM fills a dict one item at a time; past _GUARDED_ITEMS items, a dict's items wait
    in ``pending`` and go in _PENDING keys at a time under the guard (a clock read per chunk
    of keys, not per item), and all of them before the dict leaves the stack (``flush``)."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.depths = array("H")  # 2 bytes a value: the stack's shadow costs little
        self.made = 0
        self.spent = 0
        self.hashing = HashGuard()
        #: Big dicts being filled, bottom of the stack first: (index, dict, keys and values).
        self.pending: List[Tuple[int, dict, List[Any]]] = []

    def nest(self, depth: int) -> None:
        """The value being made is a container around values ``depth`` deep."""
        if depth >= MAX_DEPTH:
            raise errors.LoadError(f"a value before offset {self.reader.pos} is {_TOO_DEEP}")
        self.made = depth + 1

    def charge(self, size: int) -> None:
        """``size`` more bytes of memory made; refused past 20 per byte read + allowance."""
        self.spent += size
        read = self.reader.pos
        if self.spent > 20 * read + MEMORY_ALLOWANCE:
            raise errors.LoadError(
                f"memory bomb: by offset {read} the value would take an estimated "
                f"{self.spent} bytes of memory, more than 20 x the data read plus "
                f"{MEMORY_ALLOWANCE} bytes (the serializer's limit)"
            )

    def setitem(self, index: int, target: dict, key: Any, value: Any) -> None:
        """``target[key] = value`` for the dict at ``stack[index]``."""
        pending = self.pending
        if pending and pending[-1][1] is target:
            items = pending[-1][2]
        elif len(target) <= _GUARDED_ITEMS:
            before = _sizeof(target)
            target[key] = value
            self.charge(_sizeof(target) - before)
            return
        else:
            items = []
            pending.append((index, target, items))
        items.append(key)
        items.append(value)
        if len(items) >= 2 * _PENDING:
            self._add(target, items)

    def flush(self, start: int) -> None:
        """Add what waits for the big dicts from ``stack[start]`` up (leaving the stack)."""
        pending = self.pending
        while pending and pending[-1][0] >= start:
            _, target, items = pending.pop()
            self._add(target, items)

    def _add(self, target: dict, items: List[Any]) -> None:
        before = _sizeof(target)
        self.hashing.fill(target, K_DICT, items, self.reader.pos)
        del items[:]
        self.charge(_sizeof(target) - before)


def _load_one(
    op: bytes,
    reader: Any,
    stack: List[Any],
    limits: Dict[int, int],
    strconfig: Tuple[bool, bool],
    channel_factory: Optional[Callable[[int], Any]],
    guard: _Limits,
) -> Any:
    """The value one opcode makes (``_NOTHING`` for SETITEM, which fills a container).

    Scalars take at most 20 bytes of memory per byte of their own data, so they are
    charged (what they take) without a check; containers are checked as they are made."""
    if op == opcode.NONE:
        return None
    if op == opcode.TRUE or op == opcode.FALSE:
        return op == opcode.TRUE
    if op in (opcode.INT, opcode.LONG):
        guard.spent += _INT_SIZE
        return _INT4.unpack(_exact(reader, 4, "int"))[0]
    if op in (opcode.FLOAT, opcode.COMPLEX):
        guard.spent += _COMPLEX_SIZE
        if op == opcode.FLOAT:
            return struct.unpack(FLOAT_FORMAT, _exact(reader, FLOAT_FORMAT_SIZE, "float"))[0]
        return complex(*struct.unpack(COMPLEX_FORMAT, _exact(reader, COMPLEX_FORMAT_SIZE, "a")))
    if op == opcode.CHANNEL:
        cid = _INT4.unpack(_exact(reader, 4, "channel id"))[0]
        if channel_factory is None:
            raise errors.LoadError("a channel can only be loaded by a gateway's channel")
        guard.charge(_CHANNEL_CHARGE)
        return channel_factory(cid)
    if op == opcode.NEWDICT:
        guard.made = 1
        made: Any = {}
        guard.charge(_sizeof(made) + _TRACKED)
        return made
    if op == opcode.SETITEM:
        if len(stack) < 3:
            raise errors.LoadError("not enough items for setitem")
        guard.flush(len(stack) - 2)  # the key and value: a dict among them is complete
        value, key = stack.pop(), stack.pop()
        depths = guard.depths
        inner = max(depths.pop(), depths.pop())
        target = stack[-1]
        if type(target) is list and type(key) is int and 0 <= key < limits.get(id(target), 0):
            if key >= len(target):
                before = _sizeof(target)
                target.extend([None] * (key + 1 - len(target)))
                guard.charge(_sizeof(target) - before)
            target[key] = value
        elif type(target) is dict:
            guard.setitem(len(stack) - 1, target, key, value)
        else:
            raise errors.LoadError("setitem on something that is not a list or dict being built")
        if inner >= depths[-1]:
            guard.nest(inner)
            depths[-1], guard.made = guard.made, 0
        return _NOTHING
    size = _INT4.unpack(_exact(reader, 4, "size"))[0]
    if op == opcode.NEWLIST:
        if not 0 <= size <= reader.list_limit():
            raise errors.LoadError(f"a list of {size} items is longer than the data")
        made = [None] * min(size, 1 << 16)  # grown by SETITEM up to its size
        if size:
            limits[id(made)] = size
        guard.made = 1
        guard.charge(_sizeof(made) + _TRACKED + (_ANNOUNCED if size else 0))
        return made
    if op in (opcode.BUILDTUPLE, opcode.SET, opcode.FROZENSET):
        if not 0 <= size <= len(stack):
            raise errors.LoadError(f"a collection of {size} items, {len(stack)} on the stack")
        start = len(stack) - size
        guard.flush(start)
        guard.nest(max(guard.depths[start:], default=0))
        del guard.depths[start:]
        if op == opcode.BUILDTUPLE:
            made = tuple(islice(stack, start, None))
        else:
            kind = K_SET if op == opcode.SET else K_FROZENSET
            made = _build_hashed(kind, stack[start:], reader.pos, guard.hashing)
        del stack[start:]
        guard.charge(_sizeof(made) + _TRACKED)
        return made
    made = _load_sized(op, reader, size, strconfig)
    guard.spent += _sizeof_scalar(made)
    return made


def _load_sized(op: bytes, reader: Any, size: int, strconfig: Tuple[bool, bool]) -> Any:
    """The value of a string, bytes or long int opcode whose size was read."""
    if op in (opcode.LONGINT, opcode.LONGLONG) and size > MAX_INT_DIGITS:
        raise errors.LoadError(f"an int of {size} digits (at most {MAX_INT_DIGITS} are read)")
    data = _exact(reader, size, "string")
    if op == opcode.BYTES:
        return data
    if op == opcode.UNICODE:
        return data.decode("utf-8")
    if op == opcode.PY3STRING:
        return data if strconfig[1] else data.decode("utf-8")
    if op == opcode.PY2STRING:
        return data.decode("latin-1") if strconfig[0] else data
    if op in (opcode.LONGINT, opcode.LONGLONG):
        if not data.lstrip(b"-").isdigit():
            raise errors.LoadError(f"not an int of at most {MAX_INT_DIGITS} digits: {data[:40]!r}")
        return int(data)
    raise errors.LoadError(f"unknown opcode {op!r} - wire protocol corruption?")


def loads(bytestring: Any, py2str_as_py3str: bool = False, py3str_as_py2str: bool = False) -> Any:
    """The value ``dumps`` made (execnet's format; trailing bytes are ignored, as there)."""
    reader = BytesReader(bytestring)
    return load_from(reader, True, (py2str_as_py3str, py3str_as_py2str))


def load(io: Any, py2str_as_py3str: bool = False, py3str_as_py2str: bool = False) -> Any:
    """One value in execnet's format from a binary file."""
    return load_from(StreamReader(io), True, (py2str_as_py3str, py3str_as_py2str))


def loads_internal(
    bytestring: Any,
    channel_factory: Optional[Callable[[int], Any]] = None,
    strconfig: Optional[Tuple[bool, bool]] = None,
) -> Any:
    """A value ``dumps_internal`` made; channels need ``channel_factory``."""
    config = (True, False) if strconfig is None else strconfig
    return load_from(BytesReader(bytestring), False, config, channel_factory)
