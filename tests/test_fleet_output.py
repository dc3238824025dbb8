"""A host's output: in memory while small, in the run's spool file past a bound."""

from __future__ import annotations

import itertools

import pytest

from execnet_cli.fleet import output
from execnet_cli.fleet.output import HOST_MEMORY, HostOutput, Spool


def written(spool: Spool, pieces: list[tuple[str, str]]) -> HostOutput:
    out = HostOutput(spool)
    for stream, text in pieces:
        out.add(stream, text)
    return out.freeze()


def test_small_output_stays_in_memory_as_runs() -> None:
    spool = Spool()
    out = written(spool, [("out", "a\n"), ("out", "b\n"), ("err", "e\n"), ("out", "c")])
    assert tuple(out) == (("out", "a\nb\n"), ("err", "e\n"), ("out", "c"))
    assert out == (("out", "a\nb\n"), ("err", "e\n"), ("out", "c"))
    assert (out.text("out"), out.text("err"), out.text("log")) == ("a\nb\nc", "e\n", "")
    assert not out.spilled and spool.size == 0 and out.chars == 7


def test_large_output_is_spilled_and_read_back_whole() -> None:
    spool = Spool()
    line = "x" * 99 + "\n"
    pieces = [("out", line)] * 10_000 + [("err", "\udcff surrogate kept\n")] + [("out", "end")]
    out = written(spool, pieces)
    assert out.spilled and spool.size > HOST_MEMORY
    assert out.text("out") == line * 10_000 + "end"
    assert out.text("err") == "\udcff surrogate kept\n"
    assert [k for k, _ in itertools.groupby(stream for stream, _ in out)] == ["out", "err", "out"]
    spool.close()


def test_equal_content_is_equal_however_it_was_cut() -> None:
    spool = Spool()
    text = "".join(f"line {i}\n" for i in range(50_000))
    whole = written(spool, [("out", text)])
    by_line = written(spool, [("out", line) for line in text.splitlines(True)])
    assert whole.key == by_line.key and whole == by_line and hash(whole) == hash(by_line)
    other = written(spool, [("out", text), ("err", "x")])
    moved = written(spool, [("out", text[:-1]), ("err", text[-1:] + "x")])
    assert other != moved  # same characters, another stream


def test_the_runs_memory_budget_spills_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(budget=100_000)
    monkeypatch.setattr(output, "SPILL_MIN", 1000)
    held = [written(spool, [("out", "y" * 30_000)]) for _ in range(4)]
    assert [h.spilled for h in held] == [False, False, False, True]  # the one that went over
    small = [written(spool, [("out", "s" * 900)]) for _ in range(12)]  # 90,300 + 12,000
    assert spool.over_budget and not any(o.spilled for o in small)  # each under SPILL_MIN
    assert written(spool, [("out", "z" * 1200)]).spilled  # over the budget: to the file
    before = spool.in_memory
    held[0].discard()
    assert spool.in_memory == before - 30_000 - output._PIECE_OVERHEAD


def test_an_empty_output() -> None:
    out = written(Spool(), [("out", "")])
    assert not out and tuple(out) == () and out.text("out") == ""
