"""The serializer's wire format: opcodes, container kinds, packers and precomputed headers.

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
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Dict, List

VERSION = 1
#: bytes and encoded str payloads at least this long become their own dumps_parts segment
BIG_SEGMENT = 1 << 16

OP_NONE, OP_FALSE, OP_TRUE, OP_INT8, OP_FLOAT, OP_COMPLEX, OP_CHANNEL = range(7)
OP_STR1, OP_STR4, OP_BYTES1, OP_BYTES4, OP_BIGINT1, OP_BIGINT4 = range(0x08, 0x0E)
OP_TUPLE1, OP_LIST1, OP_DICT1, OP_SET1, OP_FROZENSET1 = range(0x0E, 0x18, 2)
OP_FROZENSET4 = OP_FROZENSET1 + 1
OP_FIXSTR, OP_FIXINT = 0x40, 0x80
# A container's kind is its opcode >> 1 (the same for the u8 and the u32 form).
K_TUPLE, K_LIST, K_DICT, K_SET, K_FROZENSET = range(OP_TUPLE1 >> 1, (OP_FROZENSET1 >> 1) + 1)

MAX_U32 = 0xFFFFFFFF
I64 = 1 << 63
unpack_u32 = struct.Struct("<I").unpack_from
unpack_i64 = struct.Struct("<q").unpack_from
unpack_f64 = struct.Struct("<d").unpack_from
unpack_c128 = struct.Struct("<dd").unpack_from
pack_op_i64 = struct.Struct("<Bq").pack
pack_op_u32 = struct.Struct("<BI").pack
pack_op_f64 = struct.Struct("<Bd").pack
pack_op_c128 = struct.Struct("<Bdd").pack
pack_u32 = struct.Struct("<I").pack

# Precomputed headers: a list lookup is cheaper than building a 1- or 2-byte bytes object.
VERSION_BYTE = bytes((VERSION,))
VERSION_BYTES4 = bytes((VERSION, OP_BYTES4))
NONE, FALSE, TRUE = bytes((OP_NONE,)), bytes((OP_FALSE,)), bytes((OP_TRUE,))
FIXINT_HDR = [bytes((OP_FIXINT + n,)) for n in range(128)]
FIXSTR_HDR = [bytes((OP_FIXSTR + n,)) for n in range(64)]
CONTAINER_OP: Dict[type, int] = {tuple: OP_TUPLE1, list: OP_LIST1, dict: OP_DICT1, set: OP_SET1}
CONTAINER_OP[frozenset] = OP_FROZENSET1
HDR1 = {
    op: [bytes((op, n)) for n in range(256)]
    for op in (OP_STR1, OP_BYTES1, OP_BIGINT1, *CONTAINER_OP.values())
}
STR1_HDR, BYTES1_HDR = HDR1[OP_STR1], HDR1[OP_BYTES1]
CONTAINER_HDR: Dict[type, List[bytes]] = {tp: HDR1[op] for tp, op in CONTAINER_OP.items()}
EMPTY = {K_TUPLE: tuple, K_LIST: list, K_DICT: dict, K_SET: set, K_FROZENSET: frozenset}
