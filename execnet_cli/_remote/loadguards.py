"""What any input may make ``loads`` do: the depth, memory and hashing-time bounds.

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

import sys
import time

from .errors import LoadError
from .wireformat import I64, K_DICT, K_FROZENSET, K_LIST, K_SET, K_TUPLE, OP_FIXSTR

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, List, Optional, Tuple

#: Containers nest at most this deep (a value inside MAX_DEPTH containers); see "Limits".
MAX_DEPTH = 400
#: loads refuses data whose value would take more memory than 20 times the size of the data
#: plus MEMORY_ALLOWANCE bytes (by the estimate described under "Limits").
MEMORY_ALLOWANCE = 16 << 20
#: Building big dicts and sets may take HASH_TIME_FACTOR times as long as decoding the data
#: took, plus HASH_TIME_ALLOWANCE seconds (see "Limits").
HASH_TIME_FACTOR = 2.0
HASH_TIME_ALLOWANCE = 0.02


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
    # PyPy: stand-ins that take the one argument we pass
    _sizeof, _sizeof_scalar = _estimate_table, _estimate_scalar  # type: ignore[assignment]


def _build_hashed(kind: int, items: List[Any], pos: int, guard: Optional[HashGuard]) -> Any:
    """Build a dict, set or frozenset; unhashable keys or members (lists ...) are refused.

    A big one is built under the hashing time ``guard`` (set up by the first big one).
    """
    try:
        if guard is None or len(items) <= _GUARDED_ITEMS:
            if kind == K_DICT:
                it = iter(items)
                return dict(zip(it, it))
            return set(items) if kind == K_SET else frozenset(items)
        return guard.fill({} if kind == K_DICT else set(), kind, items, pos)
    except TypeError as exc:
        what = "dict key" if kind == K_DICT else "set member"
        raise LoadError(f"corrupt data: unhashable {what} before offset {pos} ({exc})") from exc


class HashGuard:
    """One load's hashing time guard (see "Limits"), for both formats: the wall time when
    it was set up (``started``), the wall time spent hashing since (``hashing``), and the
    CPU time spent hashing since the wall time screen first tripped (-1.0 before).

    The wall time is cheap to read and never less than the CPU time, so it screens each
    chunk of _CHUNK keys. Once hashing has taken longer than allowed by the wall clock, the
    CPU time of this thread counts (read once per chunk), so that a thread that was only
    descheduled is not refused: over the allowance in CPU time too, and hashing is refused.
    An attack thus gets at most twice the allowance.
    """

    __slots__ = ("cpu_hashing", "hashing", "started")

    def __init__(self) -> None:
        self.started = _wall_time()
        self.hashing = 0.0
        self.cpu_hashing = -1.0

    def fill(self, table: Any, kind: int, items: List[Any], pos: int) -> Any:
        """``table`` (a dict or set) with ``items`` added (a dict's: keys and values in
        turn), a chunk at a time; for K_FROZENSET, then made a frozenset (work of its own).
        LoadError once hashing takes longer than allowed."""
        hashing, cpu_hashing = self.hashing, self.cpu_hashing
        wall0 = now = _wall_time()
        decoding = wall0 - self.started - hashing
        allowance = HASH_TIME_ALLOWANCE + HASH_TIME_FACTOR * decoding
        cpu0 = _cpu_time() if cpu_hashing >= 0.0 else -1.0
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
            else:  # a frozenset is made by copying the set
                table = frozenset(table)
            now = _wall_time()
            if cpu0 < 0.0:
                if hashing + now - wall0 > allowance:
                    cpu0, cpu_hashing = _cpu_time(), 0.0
            elif cpu_hashing + _cpu_time() - cpu0 > allowance:
                what = "dict" if kind == K_DICT else "set" if kind == K_SET else "frozenset"
                raise LoadError(
                    f"hash flooding: building a {what} ({len(table)} keys so far) before "
                    f"offset {pos} took more than the {allowance:.3f} s of CPU time allowed "
                    f"({HASH_TIME_FACTOR:g} x the {decoding:.3f} s spent decoding + "
                    f"{HASH_TIME_ALLOWANCE:g} s): keys chosen to collide in the hash table?"
                )
        self.hashing = hashing + now - wall0
        if cpu0 >= 0.0:
            self.cpu_hashing = cpu_hashing + _cpu_time() - cpu0
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
                    if size > 8 and -I64 <= item < I64:
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
