"""The fault suite, serializer side: what any peer can send to ``loads``.

100,000 fuzzed inputs (random bytes, and valid messages mutated) raise nothing but
``LoadError``. Hostile shapes run in a subprocess each (a crash must not take pytest
with it): nesting 150,000 deep in every container position, keys that all hash alike,
and empty containers that cost far more memory than their bytes (issue #16, defects 1, 5
and 6): refused with ``LoadError`` or loaded within the bounds the issue sets. Both formats a
peer can send: ours, and execnet's (``compat_format``, spoken by the ``execnet`` alias's
gateways, such as pytest-xdist's workers).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from typing import Any, Callable, List

import pytest

from execnet_cli._remote import compat_format, loadguards
from execnet_cli._remote.errors import LoadError
from execnet_cli._remote.serializer import dumps, loads

pytestmark = pytest.mark.faults

#: The hardening is there when the serializer states its bounds.

SAMPLES: List[Any] = [
    None,
    True,
    0,
    -1,
    2**70,
    1.5,
    complex(1, 2),
    "",
    "text",
    "é" * 70,
    b"",
    b"\x00" * 300,
    (1, "a", b"b"),
    [1, [2, [3, [4]]]],
    {"k": [1, 2], 3: (4,), (5, 6): {7}},
    {1, 2, 3},
    frozenset({"a", "b"}),
    [set(), frozenset(), {}, (), []],
    list(range(300)),
    {i: str(i) for i in range(50)},
]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """One of: flip bits, cut, insert or duplicate a run, replace a byte with an opcode edge."""
    buf = bytearray(data)
    choice = rng.randrange(5)
    if choice == 0 and buf:
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif choice == 1 and buf:
        del buf[rng.randrange(len(buf)) :]
    elif choice == 2:
        at = rng.randrange(len(buf) + 1)
        buf[at:at] = rng.randbytes(rng.randint(1, 8))
    elif choice == 3 and buf:
        start = rng.randrange(len(buf))
        run = buf[start : start + rng.randint(1, 16)]
        buf[start:start] = run * rng.randint(1, 4)
    elif buf:
        buf[rng.randrange(len(buf))] = rng.choice([0x00, 0x0F, 0x11, 0x13, 0x15, 0x17, 0xFF, 0x7F])
    return bytes(buf)


#: Per format: its loads and dumps, and what it may raise on bad data (execnet's raises
#: EOFError where an opcode should start, as execnet does).
FUZZED: dict = {
    "our": (loads, dumps, (LoadError,)),
    "execnet's": (compat_format.loads, compat_format.dumps, (LoadError, EOFError)),
}


@pytest.mark.parametrize(
    "fmt",
    ["our", pytest.param("execnet's", marks=pytest.mark.slow)],  # (5 s: make faults)
)
def test_100k_fuzzed_inputs_raise_only_load_error(fmt, figures):  # type: ignore[no-untyped-def]
    """100,000 random and mutated messages: each loads or raises LoadError, nothing else."""
    load, dump, refusals = FUZZED[fmt]
    rng = random.Random(16)
    valid = [dump(value) for value in SAMPLES]
    worst, total, refused = 0.0, 0.0, 0
    for number in range(100_000):
        if number % 4 == 0:
            data = valid[0][:1] + rng.randbytes(rng.randint(0, 48))  # the version byte
        else:
            data = _mutate(rng, rng.choice(valid))
        started = time.perf_counter()
        try:
            load(data)
        except refusals:
            refused += 1
        except Exception as exc:
            pytest.fail(f"loads({data!r}) raised {type(exc).__name__}: {exc}")
        took = time.perf_counter() - started
        total += took
        worst = max(worst, took)
    figures.note(
        f"{fmt} format: 100,000 inputs, {refused:,} refused, nothing else raised; "
        f"mean {total / 100_000 * 1e6:.1f} µs, max {worst * 1e3:.1f} ms"
    )


# -- hostile shapes, each in a subprocess --------------------------------------------------

PROBE = """
import importlib, json, resource, sys, time
from execnet_cli._remote.errors import LoadError
loads = importlib.import_module("execnet_cli._remote." + sys.argv[1]).loads
data = sys.stdin.buffer.read()
# a memory bomb that got through must not take the machine with it: MemoryError, past 3 GiB
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.getrlimit(resource.RLIMIT_AS)[1]))
def peak():  # this process's peak resident memory: VmHWM, not ru_maxrss (which Linux
    with open("/proc/self/status") as status:  # carries over from the parent)
        return 1024 * int(next(l for l in status if l.startswith("VmHWM:")).split()[1])
before = peak()
started = time.process_time()  # CPU time: the work a message causes, whatever the load
try:
    loads(data)
    outcome = "loaded"
except LoadError as exc:
    outcome = "LoadError: " + str(exc)[:120]
took = time.process_time() - started
print(json.dumps({"outcome": outcome, "seconds": took, "grown": peak() - before}))
"""


#: The two formats: the module whose ``loads`` reads it.
FORMATS = ["serializer", "compat_format"]


def _probe(data: bytes, fmt: str = "serializer", timeout: float = 60) -> dict:
    """``loads(data)`` in a fresh interpreter: its outcome, CPU time and memory growth."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, fmt], input=data, capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"loads of {len(data):,} bytes ran past {timeout:g} s")
    assert out.returncode == 0, f"loads crashed the process (exit {out.returncode})"
    return json.loads(out.stdout)


def _header(kind: type, count: int) -> bytes:
    """The header ``dumps`` writes for a container of ``kind`` with ``count`` items."""
    sample: Any = kind(range(count)) if kind is not dict else dict.fromkeys(range(count))
    items = b"".join(dumps(item)[1:] for item in sample)
    if kind is dict:
        items = b"".join(dumps(key)[1:] + dumps(None)[1:] for key in sample)
    return dumps(sample)[1 : -len(items) or None]


#: A container holding one item, as bytes before the item: the kinds and key positions.
ONE_ITEM: dict = {
    "tuple": _header(tuple, 1),
    "list": _header(list, 1),
    "set member": _header(set, 1),
    "frozenset member": _header(frozenset, 1),
    "dict value": _header(dict, 1) + dumps(0)[1:],
}


@pytest.mark.parametrize("position", [*ONE_ITEM, "dict key"])
def test_deep_nesting_is_refused(position, figures):  # type: ignore[no-untyped-def]
    """Nesting 150,000 deep, in every container position: LoadError, no crash."""
    depth = 150_000
    if position == "dict key":  # a dict whose key is a tuple holding a tuple ...
        data = b"\x01" + _header(dict, 1) + ONE_ITEM["tuple"] * depth + dumps(None)[1:] * 2
    else:
        data = b"\x01" + ONE_ITEM[position] * depth + dumps(None)[1:]
    facts = _probe(data)
    assert facts["outcome"].startswith("LoadError"), facts
    figures.seconds(f"{position}, {depth:,} deep: LoadError in", facts["seconds"])


def _colliding(kind: type, size: int) -> bytes:
    """About ``size`` bytes of a dict (its keys) or set of ints that all hash to 0: multiples
    of 2**61 - 1, CPython's modulus for int hashes."""
    items: List[bytes] = []
    length = 0
    while length < size:
        item = dumps((len(items) + 1) * (2**61 - 1) * 2**20)[1:]
        if kind is dict:
            item += dumps(None)[1:]
        items.append(item)
        length += len(item)
    return b"\x01" + _header(kind, len(items)) + b"".join(items)


#: CPU seconds for 1 MiB of colliding keys: ~0.3 s here idle, ~1 s under load; quadratic
#: insertion of that many keys takes minutes.
COLLISION_BOUND = 5.0


@pytest.mark.parametrize("kind", [dict, set], ids=["dict keys", "set members"])
def test_hash_collisions_are_bounded(kind, figures):  # type: ignore[no-untyped-def]
    """1 MiB of integer keys that all hash alike: loaded or refused in seconds of CPU, not
    the minutes a quadratic table takes (the bound is loose: it must only fail on that)."""
    data = _colliding(kind, 1 << 20)
    facts = _probe(data)
    assert facts["seconds"] < COLLISION_BOUND, facts
    what = "loaded" if facts["outcome"] == "loaded" else "refused"
    figures.seconds(
        f"1 MiB of colliding {kind.__name__} keys {what} in", facts["seconds"], COLLISION_BOUND
    )


AMPLIFIERS: dict = {
    "empty sets": lambda n: [set() for _ in range(n)],
    "empty dicts": lambda n: [{} for _ in range(n)],
    "empty lists": lambda n: [[] for _ in range(n)],
}


@pytest.mark.parametrize("shape", list(AMPLIFIERS))
def test_memory_amplification_is_bounded(shape, figures):  # type: ignore[no-untyped-def]
    """4 MB of empty containers: memory grows at most 20x the message, or LoadError."""
    build: Callable[[int], Any] = AMPLIFIERS[shape]
    data = dumps(build(2_000_000))
    facts = _probe(data)
    ratio = facts["grown"] / len(data)
    assert facts["outcome"].startswith("LoadError") or ratio <= 20, facts
    what = "loaded" if facts["outcome"] == "loaded" else "refused"
    figures.note(
        f"{len(data) / 1e6:.0f} MB of {shape}: {what}, memory x{ratio:.1f} (asserted ≤ 20)"
    )


# -- the same shapes in execnet's format (``compat_format``): a stack machine ---------------

_CF = compat_format.opcode


def _cf_size(op: bytes, n: int) -> bytes:
    return op + n.to_bytes(4, "big")


def _cf_nested(position: str, depth: int) -> bytes:
    """None inside ``depth`` containers, the innermost ``depth - 1`` tuples for set and
    frozenset members and dict keys (they must be hashable), lists and dicts as themselves."""
    tuples = _cf_size(_CF.BUILDTUPLE, 1) * depth
    if position == "tuple":
        body = _CF.NONE + tuples
    elif position in ("set member", "frozenset member"):
        op = _CF.SET if position == "set member" else _CF.FROZENSET
        body = _CF.NONE + tuples + _cf_size(op, 1)
    elif position == "list":  # [[[...]]]: NEWLIST 1, index 0, the item, SETITEM
        body = (_cf_size(_CF.NEWLIST, 1) + _cf_size(_CF.INT, 0)) * depth
        body += _CF.NONE + _CF.SETITEM * depth
    elif position == "dict value":
        body = (_CF.NEWDICT + _CF.NONE) * depth + _CF.NONE + _CF.SETITEM * depth
    else:  # a dict whose key is the deep tuple
        body = _CF.NEWDICT + _CF.NONE + tuples + _CF.NONE + _CF.SETITEM
    return compat_format.DUMPFORMAT_VERSION + body + _CF.STOP


@pytest.mark.parametrize(
    "position", ["tuple", "list", "set member", "frozenset member", "dict value", "dict key"]
)
def test_deep_nesting_is_refused_in_execnets_format(position, figures):  # type: ignore[no-untyped-def]
    """execnet's format, nesting 150,000 deep in every container position: LoadError, no
    crash (a set holding such a tuple crashed the process: exit 139)."""
    depth = 150_000
    facts = _probe(_cf_nested(position, depth), "compat_format")
    assert facts["outcome"].startswith("LoadError"), facts
    figures.seconds(f"{position}, {depth:,} deep: LoadError in", facts["seconds"])


def test_execnets_format_keeps_400_levels() -> None:
    """What the bound lets through, and what ``dumps`` refuses rather than send."""
    value: Any = None
    for _ in range(398):
        value = (value,)
    top = {value: [value]}  # 400 containers deep
    assert compat_format.loads(compat_format.dumps(top)) == top
    with pytest.raises(LoadError, match="nested deeper than 400"):
        compat_format.loads(_cf_nested("set member", 400))
    with pytest.raises(compat_format.errors.DumpError, match="nested deeper than 400"):
        compat_format.dumps([top])


def _cf_colliding(kind: type, size: int) -> bytes:
    """About ``size`` bytes of a dict (its keys, built by SETITEM) or a set of ints that all
    hash to 0, in execnet's format."""
    items: List[bytes] = []
    length = 0
    while length < size:
        digits = str((len(items) + 1) * (2**61 - 1) * 2**20).encode()
        item = _cf_size(_CF.LONGINT, len(digits)) + digits
        if kind is dict:
            item += _CF.NONE + _CF.SETITEM
        items.append(item)
        length += len(item)
    body = b"".join(items)
    body = _CF.NEWDICT + body if kind is dict else body + _cf_size(_CF.SET, len(items))
    return compat_format.DUMPFORMAT_VERSION + body + _CF.STOP


@pytest.mark.parametrize("kind", [dict, set], ids=["dict keys", "set members"])
def test_hash_collisions_are_bounded_in_execnets_format(kind, figures):  # type: ignore[no-untyped-def]
    """execnet's format, 1 MiB of integer keys that all hash alike: loaded or refused in
    seconds of CPU (it took 5.7 s; the bound is as loose as for ours)."""
    facts = _probe(_cf_colliding(kind, 1 << 20), "compat_format")
    assert facts["seconds"] < COLLISION_BOUND, facts
    what = "loaded" if facts["outcome"] == "loaded" else "refused"
    figures.seconds(
        f"1 MiB of colliding {kind.__name__} keys {what} in", facts["seconds"], COLLISION_BOUND
    )


#: 4 MB of small containers in a tuple, in execnet's format: (opcode bytes, count).
CF_AMPLIFIERS: dict = {
    "empty sets": (_cf_size(_CF.SET, 0), 800_000),
    "empty dicts": (_CF.NEWDICT, 4_000_000),
    "empty lists": (_cf_size(_CF.NEWLIST, 0), 800_000),
    "lists announcing 65,536 items": (_cf_size(_CF.NEWLIST, 1 << 16), 800_000),
}


@pytest.mark.parametrize("shape", list(CF_AMPLIFIERS))
def test_memory_amplification_is_bounded_in_execnets_format(shape, figures):  # type: ignore[no-untyped-def]
    """execnet's format, 4 MB of small containers: memory grows at most 20x, or LoadError
    (empty dicts took 80x; lists announcing items took 512 KiB for 5 bytes each)."""
    item, count = CF_AMPLIFIERS[shape]
    data = compat_format.DUMPFORMAT_VERSION + item * count + _cf_size(_CF.BUILDTUPLE, count)
    facts = _probe(data + _CF.STOP, "compat_format")
    ratio = facts["grown"] / len(data)
    assert facts["outcome"].startswith("LoadError") or ratio <= 20, facts
    what = "loaded" if facts["outcome"] == "loaded" else "refused"
    figures.note(
        f"{len(data) / 1e6:.0f} MB of {shape}: {what}, memory x{ratio:.1f} (asserted ≤ 20)"
    )


def test_execnets_big_dicts_are_built_a_chunk_at_a_time(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """SETITEM adds one item; the hashing time guard reads the clock per chunk of keys, the
    guard our own format uses, and every dict is whole before it is used."""
    reads = [0]
    wall = loadguards._wall_time

    def counted() -> float:
        reads[0] += 1
        return wall()

    monkeypatch.setattr(loadguards, "_wall_time", counted)
    monkeypatch.setattr(compat_format, "_wall_time", counted, raising=False)  # it had its own
    big = dict.fromkeys(range(10_000), "v")
    value = ({"big": big, "list": [dict.fromkeys(range(300), 1)]}, frozenset(range(500)))
    assert compat_format.loads(compat_format.dumps(value)) == value
    assert reads[0] < 200, reads  # 10,800 keys in chunks of 128; it read 3 a key
    item = _cf_size(_CF.INT, 5) + _cf_size(_CF.INT, 1) + _CF.SETITEM  # {5: 1}, then 5: 2
    again = _cf_size(_CF.INT, 5) + _cf_size(_CF.INT, 2) + _CF.SETITEM
    many = b"".join(_cf_size(_CF.INT, k) + _CF.NONE + _CF.SETITEM for k in range(100, 400))
    data = _CF.NEWDICT + item + many + again + _cf_size(_CF.BUILDTUPLE, 1)
    (loaded,) = compat_format.loads(compat_format.DUMPFORMAT_VERSION + data + _CF.STOP)
    assert loaded[5] == 2 and len(loaded) == 301  # the later item wins, as in a dict
