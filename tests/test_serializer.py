"""The safe serializer: round trips, hostile input, framing, channel references."""

from __future__ import annotations

import enum
import io
import math
import os
import pickle
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import execnet_cli
from execnet_cli._remote import loadguards, serializer
from execnet_cli._remote.errors import DataFormatError, DumpError, LoadError
from execnet_cli._remote.serializer import (
    BIG_SEGMENT,
    MAX_DEPTH,
    VERSION,
    dump,
    dumps,
    dumps_parts,
    load,
    loads,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
NESTED = settings(FAST, max_examples=60)


def patch_limit(monkeypatch: pytest.MonkeyPatch, name: str, value: Any) -> None:
    """Set a bound where loads and its guards read it (serializer imports it from loadguards)."""
    for module in (serializer, loadguards):
        if hasattr(module, name):
            monkeypatch.setattr(module, name, value)


def canon(value: Any) -> Any:
    """A comparable image of value that keeps exact types, float bits (nan, -0.0) and order."""
    tp = type(value)
    if tp is float:
        return ("float", struct.pack("<d", value))
    if tp is complex:
        return ("complex", struct.pack("<dd", value.real, value.imag))
    if tp in (list, tuple):
        return (tp.__name__, [canon(v) for v in value])
    if tp is dict:
        return ("dict", [(canon(k), canon(v)) for k, v in value.items()])
    if tp in (set, frozenset):
        return (tp.__name__, sorted(repr(canon(v)) for v in value))
    return (tp.__name__, value)


def roundtrip(value: Any) -> Any:
    data = dumps(value)
    assert type(data) is bytes and data[0] == VERSION
    result = loads(data)
    assert canon(result) == canon(value)
    return result


# -- round trips ---------------------------------------------------------------------------

EDGE_INTS = [0, 1, -1, 127, 128, -128, -129, 255, 256, 2**31, -(2**31), 2**31 - 1]
EDGE_INTS += [2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64, -(2**64), 10**100, -(10**100)]
EDGE_INTS += [2**2100, -(2**2100)]  # past the u8 length of the short big-int form


@pytest.mark.parametrize("value", EDGE_INTS, ids=repr)
def test_int_edges(value: int) -> None:
    roundtrip(value)


@pytest.mark.parametrize("value", [0.0, 1.5, -2.25, 1e308, 5e-324, math.inf, -math.inf])
def test_floats(value: float) -> None:
    roundtrip(value)


def test_nan_and_negative_zero() -> None:
    assert math.isnan(roundtrip(math.nan))
    assert math.copysign(1.0, roundtrip(-0.0)) == -1.0
    back = roundtrip(complex(-0.0, math.nan))
    assert math.copysign(1.0, back.real) == -1.0 and math.isnan(back.imag)


STRINGS = ["", "a", "x" * 63, "x" * 64, "x" * 255, "x" * 256, "é€𝄞", "\udc80", "a\ud800b", "\0"]


@pytest.mark.parametrize("value", STRINGS, ids=lambda s: f"str{len(s)}")
def test_strings(value: str) -> None:
    roundtrip(value)


@pytest.mark.parametrize("size", [0, 1, 255, 256, BIG_SEGMENT, 1 << 20])
def test_bytes(size: int) -> None:
    roundtrip(bytes(range(256)) * (size // 256) + b"z" * (size % 256))


SCALARS = [None, True, False, 1j, complex(2.5, -1)]
CONTAINERS = [(), [], {}, set(), frozenset(), ((),), [[]], {"": {}}, {frozenset()}]
CONTAINERS += [
    (1, "x", None, 2.5),
    list(range(300)),
    tuple(range(256)),
    {i: str(i) for i in range(300)},
    set(range(1000)),
    frozenset({(1, 2), "a", None, 3.5}),
    {"a": [1, {2, 3}], (1, (2, "b")): frozenset({4}), None: (True, False, b"")},
    [{"k": (1.5, [b"v", {"n": None}])}] * 3,
]


@pytest.mark.parametrize("value", SCALARS + CONTAINERS, ids=repr)
def test_values(value: Any) -> None:
    roundtrip(value)


GOLDEN = [  # the wire format is a protocol between versions: changing it needs VERSION + 1
    (None, "01 00"),
    (False, "01 01"),
    (True, "01 02"),
    (5, "01 85"),
    (-1, "01 03 ffffffffffffffff"),
    (2**64, "01 0c 09 000000000000000001"),
    (1.0, "01 04 000000000000f03f"),
    ("hi", "01 42 6869"),
    ("x" * 64, "01 08 40" + "78" * 64),
    (b"hi", "01 0a 02 6869"),
    (("a", [1], {2: 3}, set(), frozenset()), "01 0e 05 41 61 10 01 81 12 01 82 83 14 00 16 00"),
]


@pytest.mark.parametrize(("value", "hexdata"), GOLDEN, ids=[repr(v)[:20] for v, _ in GOLDEN])
def test_golden_encodings(value: Any, hexdata: str) -> None:
    assert dumps(value) == bytes.fromhex(hexdata)
    assert canon(loads(bytes.fromhex(hexdata))) == canon(value)


def test_shared_subobject_is_encoded_twice() -> None:
    shared = [1, 2]
    back = roundtrip([shared, (shared,), {"k": shared}])
    assert back[0] == back[1][0] == back[2]["k"] == shared


@pytest.mark.parametrize("change", ["none", "trailing", "cut to 1", "cut to 6", "cut by 1"])
def test_bulk_bytes_from_a_memoryview_load_as_from_bytes(change: str) -> None:
    """Memoryviews of one big bytes value take a shortcut: same value, same errors."""
    good = dumps(bytes(range(256)) * 300)
    data = {
        "none": good,
        "trailing": good + b"x",
        "cut to 1": good[:1],
        "cut to 6": good[:6],
        "cut by 1": good[:-1],
    }[change]

    def outcome(value: Any) -> Any:
        try:
            return loads(value)
        except LoadError as exc:
            return str(exc)

    expected = outcome(bytes(data))
    assert outcome(memoryview(bytearray(data))) == expected
    assert outcome(memoryview(bytearray(data))[::1]) == expected
    if change == "none":
        assert type(loads(memoryview(bytearray(data)))) is bytes


def test_loads_accepts_bytearray_and_memoryviews() -> None:
    value = ["héllo", b"raw", 7, (None,), 2**80]
    data = dumps(value)
    assert loads(bytearray(data)) == value
    assert loads(memoryview(data)) == value
    assert loads(memoryview(bytearray(data)).cast("c")) == value
    spaced = bytes(b for pair in zip(data, b"\0" * len(data)) for b in pair)
    assert loads(memoryview(spaced)[::2]) == value  # not contiguous


def test_loads_bytes_values_are_bytes_not_views() -> None:
    back = loads(memoryview(dumps([b"ab", b"c" * 300])))
    assert [type(b) for b in back] == [bytes, bytes]


def test_failed_load_leaves_the_callers_bytearray_unlocked() -> None:
    buf = bytearray(dumps(["ok", "ab"]))
    buf[-1] = 0xFF  # invalid UTF-8
    with pytest.raises(LoadError) as info:
        loads(buf)
    buf += b"x"  # a BufferError if a view of buf were still alive (e.g. via the traceback)
    assert info.value is not None


# -- hypothesis round trips ------------------------------------------------------------------

texts = st.text() | st.lists(st.integers(0, 0x10FFFF).map(chr)).map("".join)  # surrogates
hashable_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**200), 2**200)
    | st.floats()
    | st.complex_numbers()
    | texts
    | st.binary()
)
hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.lists(inner, max_size=4).map(tuple) | st.frozensets(inner, max_size=4),
    max_leaves=8,
)
values = st.recursive(
    hashable_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(hashables, inner, max_size=5)
        | st.sets(hashables, max_size=5)
        | st.frozensets(hashables, max_size=5)
    ),
    max_leaves=15,
)


@NESTED
@given(values)
def test_roundtrip_property(value: Any) -> None:
    roundtrip(value)
    assert b"".join(dumps_parts(value)) == dumps(value)
    assert canon(load(io.BytesIO(dumps(value)))) == canon(value)


# -- hostile input ---------------------------------------------------------------------------


def value_or_load_error(data: Any) -> None:
    try:
        loads(data)
    except LoadError:
        pass


@FAST
@given(st.binary(max_size=200))
def test_garbage_gives_a_value_or_load_error(data: bytes) -> None:
    value_or_load_error(data)
    value_or_load_error(bytes((VERSION,)) + data)
    value_or_load_error(bytearray(bytes((VERSION,)) + data))


@FAST
@given(st.binary(max_size=200))
def test_garbage_from_a_file_gives_a_value_or_an_error(data: bytes) -> None:
    try:
        load(io.BytesIO(bytes((VERSION,)) + data))
    except LoadError:
        pass


@NESTED
@given(values, st.data())
def test_corrupted_encodings_give_a_value_or_load_error(value: Any, data: st.DataObject) -> None:
    encoded = bytearray(dumps(value))
    for _ in range(data.draw(st.integers(1, 3))):
        encoded[data.draw(st.integers(1, len(encoded) - 1))] = data.draw(st.integers(0, 255))
    value_or_load_error(bytes(encoded))


SAMPLES = [None, 5, -5, 2**70, 2.5, 1j, "short", "x" * 300, b"b", (1, ["a", {2: None}]), {3}]


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_every_strict_prefix_is_a_load_error(value: Any) -> None:
    data = dumps(value)
    for cut in range(len(data)):
        with pytest.raises(LoadError, match="truncated"):
            loads(data[:cut])
        if cut:
            with pytest.raises(LoadError, match="truncated"):
                load(io.BytesIO(data[:cut]))


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_trailing_data_is_a_load_error(value: Any) -> None:
    with pytest.raises(LoadError, match="trailing data: 1 bytes"):
        loads(dumps(value) + b"\0")


def test_wrong_version_names_both_versions() -> None:
    data = b"\x02" + dumps("x")[1:]
    with pytest.raises(LoadError, match=r"version 2 .*version 1"):
        loads(data)
    with pytest.raises(LoadError, match=r"version 2 .*version 1"):
        load(io.BytesIO(data))


@pytest.mark.parametrize("op", [0x07, 0x18, 0x3F])
def test_unknown_opcode_is_named_in_hex_with_its_offset(op: int) -> None:
    data = bytes((VERSION, 0x0E, 2, 0x80, op))  # a tuple whose second item is unknown
    with pytest.raises(LoadError, match=f"unknown opcode 0x{op:02x} at offset 4"):
        loads(data)
    with pytest.raises(LoadError, match=f"unknown opcode 0x{op:02x} at offset 4"):
        load(io.BytesIO(data))


def test_invalid_utf8_is_a_load_error() -> None:
    with pytest.raises(LoadError, match="invalid UTF-8"):
        loads(bytes((VERSION, 0x42, 0xC3, 0x28)))


@pytest.mark.parametrize(
    "data",
    [
        bytes((VERSION, 0x14, 1, 0x10, 0)),  # {[]}
        bytes((VERSION, 0x16, 1, 0x12, 0)),  # frozenset({{}})
        bytes((VERSION, 0x12, 1, 0x0E, 1, 0x10, 0, 0x80)),  # {([],): 0}
    ],
)
def test_unhashable_members_are_a_load_error(data: bytes) -> None:
    with pytest.raises(LoadError, match="unhashable"):
        loads(data)


@pytest.mark.parametrize("op", [0x09, 0x0B, 0x0D, 0x0F, 0x11, 0x13, 0x15, 0x17])
def test_huge_declared_sizes_fail_before_allocating(op: int) -> None:
    data = bytes((VERSION, op)) + b"\xff\xff\xff\xff" + b"abc"
    with pytest.raises(LoadError, match="announces"):
        loads(data)
    with pytest.raises(LoadError, match="truncated"):
        load(io.BytesIO(data))


# -- nesting depth -----------------------------------------------------------------------------

# Each way one container can hold another: (outermost opening, opening of each further level,
# closing of the outermost); the innermost value is None (0x00). Keys and set members must be
# hashable, so below a dict key or a set member the levels are tuples.
LEVELS = {
    "list": (b"", b"\x10\x01", b""),
    "tuple": (b"", b"\x0e\x01", b""),
    "dict value": (b"", b"\x12\x01\x80", b""),  # {0: {0: ...}}
    "dict key": (b"\x12\x01", b"\x0e\x01", b"\x80"),  # {((...,),): 0}
    "set member": (b"\x14\x01", b"\x0e\x01", b""),  # {((...,),)}
    "frozenset member": (b"", b"\x16\x01", b""),  # frozenset({frozenset({...})})
}


def nested(kind: str, depth: int) -> bytes:
    """Data for None inside `depth` containers, nested the way `kind` says."""
    outermost, level, closing = LEVELS[kind]
    levels = depth - 1 if outermost else depth
    return bytes((VERSION,)) + outermost + level * levels + b"\x00" + closing


def depth_of(value: Any) -> int:
    depth = 0
    while value is not None:
        depth += 1
        if not value:  # an empty container
            break
        (value,) = value.items() if type(value) is dict else value
        if type(value) is tuple and len(value) == 2:  # a dict item (key, value)
            value = value[0] if value[1] == 0 else value[1]
    return depth


@pytest.mark.parametrize("kind", list(LEVELS))
def test_nesting_up_to_max_depth_loads(kind: str) -> None:
    """...and the value survives repr, ==, hash and pickle at the default recursion limit."""
    value = loads(nested(kind, MAX_DEPTH))
    assert depth_of(value) == MAX_DEPTH
    assert repr(value).count("None") == 1
    assert value == loads(nested(kind, MAX_DEPTH))
    if type(value) in (tuple, frozenset):
        assert hash(value) == hash(loads(nested(kind, MAX_DEPTH)))
    assert pickle.loads(pickle.dumps(value)) == value
    assert loads(dumps(value)) == value


@pytest.mark.parametrize("kind", list(LEVELS))
def test_nesting_past_max_depth_is_a_load_error(kind: str) -> None:
    with pytest.raises(LoadError, match=f"nested deeper than {MAX_DEPTH}"):
        loads(nested(kind, MAX_DEPTH + 1))
    with pytest.raises(LoadError, match=f"nested deeper than {MAX_DEPTH}"):
        load(io.BytesIO(nested(kind, MAX_DEPTH + 1)))


@pytest.mark.parametrize("op", [0x10, 0x0E, 0x12, 0x14, 0x16])
def test_an_empty_container_past_max_depth_is_a_load_error(op: int) -> None:
    data = bytes((VERSION,)) + b"\x10\x01" * MAX_DEPTH + bytes((op, 0))
    with pytest.raises(LoadError, match=f"nested deeper than {MAX_DEPTH}"):
        loads(data)
    assert depth_of(loads(bytes((VERSION,)) + b"\x10\x01" * (MAX_DEPTH - 1) + b"\x10\x00")) == (
        MAX_DEPTH
    )


def test_a_very_deep_tuple_in_a_set_is_a_load_error_not_a_crash() -> None:
    """Issue #16: hashing a 150,000-deep tuple overflowed the C stack (exit 139)."""
    data = b"\x01\x14\x01" + b"\x0e\x01" * 150_000 + b"\x00"
    script = (
        "import sys\n"
        "from execnet_cli._remote.serializer import loads\n"
        "from execnet_cli._remote.errors import LoadError\n"
        "try:\n"
        "    loads(sys.stdin.buffer.read())\n"
        "except LoadError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    sys.exit('loaded')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(execnet_cli.__file__).parent.parent))
    result = subprocess.run(
        [sys.executable, "-c", script], input=data, capture_output=True, env=env, timeout=60
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-500:])
    assert f"nested deeper than {MAX_DEPTH}".encode() in result.stdout


def test_a_million_nested_lists_fail_fast_without_recursion() -> None:
    data = bytes((VERSION,)) + b"\x10\x01" * 1_000_000 + b"\x00"
    expected = f"offset {2 * MAX_DEPTH + 1} is nested deeper than {MAX_DEPTH}"
    with pytest.raises(LoadError, match=expected):
        loads(data)


def chain(kind: str, depth: int) -> Any:
    """None inside `depth` containers, the outermost of `kind` (a set holds a tuple chain)."""
    inner = "tuple" if kind == "set" else kind
    value: Any = None
    for level in range(depth):
        kind_here = kind if level == depth - 1 else inner
        if kind_here == "list":
            value = [value]
        elif kind_here == "tuple":
            value = (value,)
        elif kind_here == "dict":
            value = {"k": value}
        elif kind_here == "set":
            value = {value}
        else:
            value = frozenset({value})
    return value


@pytest.mark.parametrize("kind", ["list", "tuple", "dict", "set", "frozenset"])
def test_dumps_refuses_what_loads_would_refuse(kind: str) -> None:
    value = chain(kind, MAX_DEPTH)
    assert depth_of(loads(dumps(value))) == MAX_DEPTH
    deeper = chain(kind, MAX_DEPTH + 1) if kind != "set" else [value]
    for refused in (deeper, [1, {"k": (deeper,)}]):
        with pytest.raises(DumpError, match=f"nested deeper than {MAX_DEPTH}"):
            dumps(refused)
        with pytest.raises(DumpError, match=f"nested deeper than {MAX_DEPTH}"):
            dumps_parts([b"x" * BIG_SEGMENT, refused])


def test_deep_structures_dump_and_load() -> None:
    value: Any = "leaf"
    for i in range(MAX_DEPTH):
        value = [value] if i % 2 else {"k": value}
    back = loads(dumps(value))
    for i in reversed(range(MAX_DEPTH)):
        back = back[0] if i % 2 else back["k"]
    assert back == "leaf"


# -- hash flooding -----------------------------------------------------------------------------

HASH_MODULUS = 2**61 - 1  # an int hashes to itself modulo this prime (on 64-bit CPython)


def colliding_ints(count: int, residue: int = 12345) -> List[int]:
    """Distinct ints (beyond 64 bits) that all have the same hash."""
    return [k * HASH_MODULUS + residue for k in range(1, count + 1)]


FLOODS = ["set", "frozenset", "dict", "tuple keys", "frozenset keys", "floats and ints"]
FLOODS += ["complex", "in a list"]


def encoded(op: int, items: List[Any]) -> bytes:
    """A container (op: 0x12 dict, of key, value ... items; 0x14 set; ...) of items, encoded
    here: building such a set in Python to dump it would take as long as the attack."""
    count = len(items) // 2 if op == 0x12 else len(items)
    return bytes((op + 1,)) + struct.pack("<I", count) + b"".join(dumps(i)[1:] for i in items)


@pytest.fixture(scope="module")
def flood_data() -> Dict[str, bytes]:
    """Containers of ~380 KiB whose keys collide: each took seconds to load (issue #16)."""
    keys: List[Any] = colliding_ints(34_000)
    floats: List[Any] = [float(2 ** (61 * k)) for k in range(16)]  # hash 1, as 2**61 does
    shapes = {
        "set": encoded(0x14, keys),
        "frozenset": encoded(0x16, keys),
        "dict": encoded(0x12, [x for key in keys for x in (key, 0)]),
        "tuple keys": encoded(0x14, [(7, key) for key in keys[:20_000]]),
        "frozenset keys": encoded(0x14, [frozenset({key}) for key in keys[:20_000]]),
        "floats and ints": encoded(0x14, floats + colliding_ints(30_000, residue=1)),
        "complex": encoded(0x14, [complex(1000003.0 * t, -t) for t in range(2, 25_000)]),
        "in a list": b"\x10\x02\x44head\x12\x01\x41k\x10\x02"
        + dumps(1.5)[1:]
        + encoded(0x14, keys),
    }
    assert list(shapes) == FLOODS
    return {name: bytes((VERSION,)) + data for name, data in shapes.items()}


@pytest.mark.parametrize("shape", FLOODS)
def test_colliding_keys_are_refused_quickly(shape: str, flood_data: Dict[str, bytes]) -> None:
    """Issue #16 defect 5: the goal is under 0.5 s for any 1 MiB message (generous bound)."""
    start = time.thread_time()
    with pytest.raises(LoadError, match="hash flooding: building a .* keys chosen to collide"):
        loads(flood_data[shape])
    assert time.thread_time() - start < 2.0


def test_colliding_keys_are_refused_from_a_file(flood_data: Dict[str, bytes]) -> None:
    with pytest.raises(LoadError, match="hash flooding"):
        load(io.BytesIO(flood_data["dict"]))


def test_a_few_colliding_keys_load() -> None:
    """Collisions cost nothing much in small numbers: refusing is for floods."""
    value = [set(colliding_ints(64)), dict.fromkeys(colliding_ints(32), 1), set(range(10**5))]
    roundtrip(value)


BIG_REAL_DATA: Dict[str, Callable[[], Any]] = {
    "ints": lambda: set(range(-(10**5), 10**5)),
    "big ints": lambda: {2**64 + 7919 * i for i in range(50_000)},
    "floats": lambda: {i / 7 for i in range(100_000)},
    "strs": lambda: {f"host{i:06d}.example.org": i for i in range(50_000)},
    "tuples": lambda: {(i, -i, str(i)) for i in range(50_000)},
    "frozensets": lambda: {frozenset({i, i + 1, "x"}) for i in range(20_000)},
    "long strs": lambda: {f"{i}" + "x" * 100_000: i for i in range(100)},
    "long bytes in tuples": lambda: {(b"%d" % i + bytes(100_000),) for i in range(100)},
    "huge ints": lambda: {2**12_000 + i for i in range(300)},
}


@pytest.mark.parametrize("shape", list(BIG_REAL_DATA))
def test_big_real_dicts_and_sets_load(shape: str) -> None:
    """The hashing time guard leaves real data alone (it builds these in chunks)."""
    roundtrip(BIG_REAL_DATA[shape]())


def test_a_descheduled_thread_is_not_taken_for_a_flood(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wall clock only screens: refusing takes too much CPU time spent hashing."""
    clock = iter(range(10**9))
    patch_limit(monkeypatch, "_wall_time", lambda: next(clock) / 100)  # 10 ms per read
    roundtrip([set(range(10_000)), dict.fromkeys(range(5_000), "v"), frozenset(range(3_000))])
    with pytest.raises(LoadError, match="hash flooding"):
        loads(bytes((VERSION,)) + encoded(0x14, colliding_ints(20_000)))


# -- memory amplification ----------------------------------------------------------------------

SMALL_ALLOWANCE = 1 << 16


def traced_load(data: bytes) -> Tuple[Any, int]:
    """loads(data) and the memory that the value holds (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        value = loads(data)
        return value, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def within_bound(data: bytes) -> None:
    """loads data: either a value within 20 x len(data) + the allowance, or a memory bomb."""
    try:
        value, held = traced_load(data)
    except LoadError as exc:
        assert "memory bomb" in str(exc)
    else:
        assert held <= 20 * len(data) + serializer.MEMORY_ALLOWANCE, (held, len(data))
        del value


def repeated(op: bytes, size: int) -> bytes:
    """A list of `size` bytes (about) made of one encoded value `op` over and over."""
    count = size // len(op)
    return bytes((VERSION, 0x11)) + struct.pack("<I", count) + op * count


AMPLIFIERS = {
    "empty set": b"\x14\x00",
    "empty frozenset": b"\x16\x00",
    "empty dict": b"\x12\x00",
    "empty list": b"\x10\x00",
    "{0: 0}": b"\x12\x01\x80\x80",
    "{0}": b"\x14\x01\x80",
    "[0]": b"\x10\x01\x80",
    "(0,)": b"\x0e\x01\x80",
    "one char U+0100": b"\x42" + "\u0100".encode(),
    "'ab'": b"\x42ab",
    "'\\u20ac' as STR1": b"\x08\x03" + "\u20ac".encode(),
    "'ab' as STR1": b"\x08\x02ab",
}


def test_a_list_of_empty_sets_is_a_memory_bomb() -> None:
    """Issue #16 defect 6: 4 MB of empty sets took 438 MiB (110 x); refused within 20 x."""
    data = repeated(b"\x14\x00", 4_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(LoadError, match="memory bomb: by offset"):
            loads(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 20 * len(data) + serializer.MEMORY_ALLOWANCE


@pytest.mark.parametrize("shape", list(AMPLIFIERS))
def test_amplifiers_stay_within_the_bound(shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    patch_limit(monkeypatch, "MEMORY_ALLOWANCE", SMALL_ALLOWANCE)
    for size in (1_000, 100_000):
        within_bound(repeated(AMPLIFIERS[shape], size))


def test_short_encodings_get_no_extra_credit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A big set's small keys are credited by their shortest encoding, whatever was sent."""
    patch_limit(monkeypatch, "MEMORY_ALLOWANCE", SMALL_ALLOWANCE)
    for count in (5_000, 30_000):
        members = b"".join(b"\x0c\x02" + struct.pack("<h", i) for i in range(300, 300 + count))
        within_bound(bytes((VERSION, 0x15)) + struct.pack("<I", count) + members)


def test_channels_count_towards_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_limit(monkeypatch, "MEMORY_ALLOWANCE", SMALL_ALLOWANCE)
    data = dumps([FakeChannel(i) for i in range(10_000)], channel_type=FakeChannel)
    with pytest.raises(LoadError, match="memory bomb"):
        loads(data, lambda cid: [cid] * 200)  # 1.6 KiB each, as big as a real channel


BIG_BUT_LEAN: Dict[str, Callable[[], Any]] = {  # each well past the allowance of 64 KiB
    "ints": lambda: list(range(30_000)),
    "set of ints": lambda: set(range(10**10, 10**10 + 20_000)),
    "dict of strs": lambda: {f"key{i:07d}": f"value {i}" for i in range(10_000)},
    "dict of small ints": lambda: dict.fromkeys(range(-20_000, 0), 1),
    "3-letter strs": lambda: [f"{i:03d}" for i in range(1000)] * 20,
    "pairs": lambda: [(i, i + 1) for i in range(10_000)],
    "set of pairs": lambda: {(i, -i) for i in range(10_000)},
    "floats": lambda: [i / 3 for i in range(20_000)],
}


@pytest.mark.parametrize("shape", list(BIG_BUT_LEAN))
def test_big_values_under_20x_load(shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The estimate is not so coarse that it refuses data well within the bound."""
    patch_limit(monkeypatch, "MEMORY_ALLOWANCE", SMALL_ALLOWANCE)
    original = BIG_BUT_LEAN[shape]()
    data = dumps(original)
    value, held = traced_load(data)
    assert canon(value) == canon(original)
    assert held <= 20 * len(data) + SMALL_ALLOWANCE


@settings(FAST, max_examples=25)
@given(value=values, count=st.integers(1, 1000))
def test_repeated_values_stay_within_the_bound(
    value: Any, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch_limit(monkeypatch, "MEMORY_ALLOWANCE", 4096)
    within_bound(dumps([value] * count))


# -- fuzzing the three attack shapes ------------------------------------------------------------

CONTAINER_OPS = [0x0E, 0x10, 0x12, 0x14, 0x16]


@NESTED
@given(st.lists(st.sampled_from(CONTAINER_OPS), min_size=1, max_size=8), st.integers(300, 900))
def test_fuzzed_nesting_is_bounded(kinds: List[int], depth: int) -> None:
    """Chains of any container kinds: a value within MAX_DEPTH, else LoadError."""
    head = b"".join(bytes((kinds[i % len(kinds)], 1)) for i in range(depth))
    data = bytes((VERSION,)) + head + b"\x80" * (depth * 2)  # dict values and spare bytes
    try:
        loads(data)
    except LoadError as exc:
        assert depth > MAX_DEPTH or "nested" not in str(exc)
    else:
        assert depth <= MAX_DEPTH


@settings(FAST, max_examples=15)
@given(
    st.sampled_from(["set", "frozenset", "dict", "tuple keys"]),
    st.integers(1, 2**20),
    st.integers(5_000, 30_000),
)
def test_fuzzed_floods_are_bounded(kind: str, residue: int, count: int) -> None:
    keys: List[Any] = colliding_ints(count, residue)
    if kind == "tuple keys":
        keys = [("k", key) for key in keys]
    op = {"set": 0x14, "frozenset": 0x16, "dict": 0x12, "tuple keys": 0x14}[kind]
    items = [x for key in keys for x in (key, None)] if kind == "dict" else keys
    start = time.thread_time()
    try:
        loads(bytes((VERSION,)) + encoded(op, items))
    except LoadError as exc:
        assert "hash flooding" in str(exc)
    assert time.thread_time() - start < 2.0


@settings(FAST, max_examples=30)
@given(
    ops=st.lists(st.sampled_from(list(AMPLIFIERS.values())), min_size=1, max_size=6), data=st.data()
)
def test_fuzzed_amplifiers_stay_within_the_bound(
    ops: List[bytes], data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch_limit(monkeypatch, "MEMORY_ALLOWANCE", SMALL_ALLOWANCE)
    count = data.draw(st.integers(1, 30_000))
    body = b"".join(ops[i % len(ops)] for i in range(count))
    within_bound(bytes((VERSION, 0x11)) + struct.pack("<I", count) + body)


# -- what dumps refuses ------------------------------------------------------------------------


class Color(enum.IntEnum):
    RED = 1


class Text(str):
    pass


class Opaque:
    pass


@pytest.mark.parametrize(
    "value",
    [Color.RED, Text("x"), bytearray(b"x"), memoryview(b"x"), Opaque(), Opaque, len, range(3), ...],
    ids=lambda v: type(v).__name__,
)
def test_unsupported_types_raise_dump_error_naming_the_type(value: Any) -> None:
    with pytest.raises(DumpError, match=f"cannot serialize .*{type(value).__name__}"):
        dumps(value)
    with pytest.raises(DumpError, match=type(value).__name__):
        dumps([1, {"k": (value,)}])


def test_cycles_raise_dump_error() -> None:
    direct: List[Any] = [1]
    direct.append(direct)
    via_tuple: List[Any] = []
    via_tuple.append((via_tuple,))
    via_dict: dict = {}
    via_dict["self"] = [via_dict]
    for value in (direct, via_tuple, via_dict, [[via_dict]]):
        with pytest.raises(DumpError, match="recursive structure"):
            dumps(value)


def test_errors_are_data_format_errors() -> None:
    assert issubclass(DumpError, DataFormatError) and issubclass(LoadError, DataFormatError)
    with pytest.raises(LoadError):
        loads("not bytes")


# -- dumps_parts -------------------------------------------------------------------------------


def test_dumps_parts_passes_big_bytes_through_uncopied() -> None:
    big, other = bytes(1 << 20), b"y" * BIG_SEGMENT
    value = ["head", big, 5, (other, b"small" * 100), "t" * (BIG_SEGMENT + 1)]
    parts = dumps_parts(value)
    assert b"".join(parts) == dumps(value)
    assert any(part is big for part in parts) and any(part is other for part in parts)
    assert len(parts) == 6  # joined small pieces, big, joined, other, joined, the big str
    assert all(type(part) is bytes for part in parts)


@pytest.mark.parametrize("size", [BIG_SEGMENT - 1, BIG_SEGMENT, 1 << 20])
def test_dumps_parts_of_one_bytes_value(size: int) -> None:
    chunk = bytes(range(256)) * (size // 256) + b"r" * (size % 256)
    parts = dumps_parts(chunk)
    assert b"".join(parts) == dumps(chunk)
    assert (parts[-1] is chunk) == (size >= BIG_SEGMENT)


def test_dumps_parts_small_values_are_one_segment() -> None:
    assert dumps_parts(("x", 1, None, b"z" * (BIG_SEGMENT - 1))) == [
        dumps(("x", 1, None, b"z" * (BIG_SEGMENT - 1)))
    ]


# -- files ---------------------------------------------------------------------------------------


class ReadOnly:
    """A file that only has read(n), and returns at most 3 bytes per call."""

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    def read(self, n: int) -> bytes:
        return self._stream.read(min(n, 3))


def test_dump_and_load_several_values_then_eof() -> None:
    stream = io.BytesIO()
    values = [1, "two", (3.0, [b"four"]), {"five": {5}}, None, bytes(70_000)]
    for value in values:
        dump(stream, value)
    stream.seek(0)
    reader = ReadOnly(stream.getvalue())
    for value in values:
        assert canon(load(reader)) == canon(value)
    with pytest.raises(EOFError):
        load(reader)


def test_load_reads_no_byte_past_the_value() -> None:
    stream = io.BytesIO(dumps([1, "a"]) + b"rest")
    assert load(stream) == [1, "a"]
    assert stream.read() == b"rest"


# -- channel references --------------------------------------------------------------------------


class FakeChannel:
    def __init__(self, id: int) -> None:
        self.id = id


def test_channels_are_sent_by_id() -> None:
    data = dumps(("ch", FakeChannel(3), [FakeChannel(-(2**63))]), channel_type=FakeChannel)
    made: List[int] = []

    def factory(cid: int) -> Any:
        made.append(cid)
        return ("channel", cid)

    assert loads(data, factory) == ("ch", ("channel", 3), [("channel", -(2**63))])
    assert load(io.BytesIO(data), channel_factory=factory) == loads(data, factory)
    assert made[:2] == [3, -(2**63)]
    with pytest.raises(LoadError, match="channel reference outside a gateway"):
        loads(data)


def test_channels_need_a_channel_type_and_an_int_id() -> None:
    with pytest.raises(DumpError, match="FakeChannel"):
        dumps(FakeChannel(1))
    with pytest.raises(DumpError, match="64-bit integer id"):
        dumps(FakeChannel(2**63), channel_type=FakeChannel)
    with pytest.raises(DumpError, match="64-bit integer id"):
        dumps(FakeChannel("1"), channel_type=FakeChannel)  # type: ignore[arg-type]
