"""Block deltas (``_remote/rsync_delta``): signature, match and patch give back the new file."""

from __future__ import annotations

import os
import random
import tempfile
import zlib
from pathlib import Path
from typing import List, Tuple

import pytest

from execnet_cli._remote import rsync_delta as delta


def run_delta(tmp_path: Path, old: bytes, new: bytes) -> Tuple[bytes, List[object], int]:
    """(the patched file, the ops, bytes matched) for turning ``old`` into ``new``."""
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    block = delta.block_size(len(new))
    old_fd = os.open(tmp_path / "old", os.O_RDONLY)
    new_fd = os.open(tmp_path / "new", os.O_RDONLY)
    out_fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        weak, strong = delta.signature(old_fd, len(old), block)
        matcher = delta.Matcher(block, len(old), weak, strong)
        ops = list(matcher.ops(lambda offset, n: os.pread(new_fd, n, offset), len(new)))
        patcher = delta.Patcher(old_fd, block, len(old), out_fd)
        for op in ops:
            patcher.apply(op)
    finally:
        for fd in (old_fd, new_fd, out_fd):
            os.close(fd)
    return (tmp_path / "out").read_bytes(), ops, matcher.matched


def signature_of(data: bytes, block: int) -> Tuple[bytes, bytes]:
    with tempfile.TemporaryFile() as file:
        file.write(data)
        file.flush()
        return delta.signature(file.fileno(), len(data), block)


def literal(ops: List[object]) -> int:
    return sum(len(op) for op in ops if isinstance(op, bytes))


def edit(rnd: random.Random, data: bytes) -> bytes:
    new = bytearray(data)
    for _ in range(rnd.randint(0, 4)):
        at = rnd.randint(0, len(new))
        kind = rnd.random()
        if kind < 0.4:
            new[at:at] = rnd.randbytes(rnd.randint(1, 30000))
        elif kind < 0.7:
            del new[at : at + rnd.randint(1, 30000)]
        else:
            new[at : at + 7] = b"changed"
    return bytes(new)


@pytest.mark.parametrize("seed", range(40))
def test_random_edits_round_trip(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    size = rnd.choice([0, 1, 100, 8191, 8192, 8193, 70000, 300000, 1 << 20])
    old = rnd.randbytes(size)
    new = edit(rnd, old)
    patched, ops, _ = run_delta(tmp_path, old, new)
    assert patched == new


def test_append_sends_only_what_was_appended(tmp_path: Path) -> None:
    old = os.urandom(16 << 20)
    tail = os.urandom(256 << 10)
    patched, ops, matched = run_delta(tmp_path, old, old + tail)
    assert patched == old + tail
    assert literal(ops) == len(tail) and matched == len(old)
    assert len(ops) <= 4  # a few long copy runs, then the new bytes


def test_insertion_resynchronises(tmp_path: Path) -> None:
    old = os.urandom(4 << 20)
    new = old[:1_000_003] + b"inserted bytes" * 500 + old[1_000_003:]
    patched, ops, matched = run_delta(tmp_path, old, new)
    assert patched == new
    assert literal(ops) < 7000 + 2 * delta.block_size(len(new))


@pytest.mark.parametrize("inserted", [3 << 20, (3 << 20) + 12345, 9 << 20])
def test_a_long_insertion_costs_its_own_bytes_not_the_rest_of_the_file(
    tmp_path: Path, inserted: int
) -> None:
    # Longer than the positions rolled through after a miss: the rest of the file is found
    # by a later sample and matched from where it begins.
    old = os.urandom(40 << 20)
    at = 20_000_017
    new = old[:at] + os.urandom(inserted) + old[at:]
    patched, ops, matched = run_delta(tmp_path, old, new)
    assert patched == new
    block = delta.block_size(len(new))
    assert literal(ops) <= inserted + 2 * block
    assert matched >= len(old) - 2 * block


def test_matching_stretches_between_rewritten_ones_are_found(tmp_path: Path) -> None:
    old = os.urandom(24 << 20)
    new = bytearray(old)
    for at in (1 << 20, 12 << 20):  # two 5 MiB rewrites, 6 MiB of the old file between
        new[at : at + (5 << 20)] = os.urandom(5 << 20)
    patched, ops, matched = run_delta(tmp_path, old, bytes(new))
    assert patched == new
    assert literal(ops) <= (10 << 20) + 4 * delta.block_size(len(new))


def test_in_place_edits_cost_a_block_each(tmp_path: Path) -> None:
    old = bytearray(os.urandom(4 << 20))
    new = bytearray(old)
    for at in (100, 2_000_000, 3_999_000):
        new[at : at + 3] = b"xyz"
    patched, ops, _ = run_delta(tmp_path, bytes(old), bytes(new))
    assert patched == new
    assert literal(ops) <= 3 * delta.block_size(len(new))


def test_unrelated_content_is_all_literal(tmp_path: Path) -> None:
    old, new = os.urandom(3 << 20), os.urandom(3 << 20)
    patched, ops, matched = run_delta(tmp_path, old, new)
    assert patched == new and matched == 0 and literal(ops) == len(new)


def test_short_last_block_matches_at_the_end(tmp_path: Path) -> None:
    old = os.urandom(300_000)  # not a multiple of the block size
    new = b"new head" + old
    patched, ops, matched = run_delta(tmp_path, old, new)
    assert patched == new and matched == len(old)


def test_repeated_blocks(tmp_path: Path) -> None:
    old = bytes(1 << 20)  # all zeros: every block the same
    new = bytes(2 << 20)
    patched, ops, matched = run_delta(tmp_path, old, new)
    assert patched == new and literal(ops) == 0


def test_weak_checksum_is_zlib_adler32_and_rolls() -> None:
    """The bulk search recomputes adler32 from prefix sums: it must agree with zlib's."""
    data = os.urandom(70000)
    block = 8192
    weak, strong = signature_of(data, block)
    matcher = delta.Matcher(block, len(data), weak, strong)
    view = memoryview(b"junk" + data)
    assert matcher._search(view, 1, len(view) - block) == (4, 0)
    assert delta._weak_from_bytes(weak)[0] == zlib.adler32(data[:block])


def test_signature_must_fit() -> None:
    weak, strong = signature_of(os.urandom(20000), 8192)
    with pytest.raises(ValueError):
        delta.Matcher(8192, 50000, weak, strong)


def test_block_sizes() -> None:
    assert delta.block_size(0) == 8192
    assert delta.block_size(300 << 20) == 128 << 10
    sizes = [delta.block_size(n) for n in (1 << 20, 16 << 20, 1 << 30)]
    assert sizes == sorted(sizes)


def test_bad_ops_are_refused(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        patcher = delta.Patcher(fd, 8192, 10000, fd)
        for op in [(5, 1), (-1, 1), (0, 0), ("a", 1), 3, (0, 1, 2)]:
            with pytest.raises(ValueError):
                patcher.apply(op)
    finally:
        os.close(fd)
