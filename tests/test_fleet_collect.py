"""From a job's channel to events: line cutting, batching, and the bounds that keep memory flat."""

from __future__ import annotations

import threading

from proc_helpers import wait_until

from execnet_cli.fleet.collect import CLOSED, HOST_BUFFER, Budget, Collector, LineSplitter


def test_line_splitter() -> None:
    splitter = LineSplitter()
    assert splitter.feed("a") == ""
    assert splitter.feed("b\nc\n\nd") == "ab\nc\n\n"
    assert splitter.feed("\n") == "d\n"
    assert splitter.feed("e") == ""
    assert splitter.rest() == "e"
    assert splitter.rest() == ""


def test_collector_batches_output_and_notes_the_end() -> None:
    collector = Collector()
    for i in range(3):
        collector.on_item(("out", f"{i}\n"))
    collector.on_item(("err", "oops\n"))
    collector.on_item("not an item of ours")
    assert collector.take(0) == [("out", "0\n"), ("out", "1\n"), ("out", "2\n"), ("err", "oops\n")]
    assert not collector.ended
    collector.on_item(("exit", 0, None))
    assert collector.ended and collector.exit == ("exit", 0, None)
    collector.on_item(CLOSED)
    assert collector.closed


def fill_from_another_thread(collector: Collector, pieces: int) -> threading.Thread:
    def read() -> None:
        for _ in range(pieces):
            collector.on_item(("out", "x" * 1023 + "\n"))

    thread = threading.Thread(target=read)
    thread.start()
    return thread


def test_a_full_collector_holds_the_reading_thread() -> None:
    """Flow control: past HOST_BUFFER the reader waits until the taker takes."""
    collector = Collector()
    pieces = 2 * HOST_BUFFER // 1024
    reader = fill_from_another_thread(collector, pieces)
    try:
        assert wait_until(lambda: collector._size >= HOST_BUFFER, 10)
        assert reader.is_alive()  # waiting for room, not piling up
        assert collector._size <= HOST_BUFFER + 1024
        taken = 0
        while taken < pieces:
            taken += len(collector.take(1.0))
    finally:
        collector.stop()
        reader.join(10)
    assert taken == pieces and not reader.is_alive()


def test_a_stopped_collector_never_holds_the_reader() -> None:
    collector = Collector()
    collector.stop()
    reader = fill_from_another_thread(collector, 2 * HOST_BUFFER // 1024)
    reader.join(10)
    assert not reader.is_alive()


def test_the_taking_thread_is_never_held() -> None:
    """setcallback hands queued items over in the caller's thread: it must not wait."""
    collector = Collector()
    for _ in range(2 * HOST_BUFFER // 1024):
        collector.on_item(("out", "x" * 1023 + "\n"))
    assert len(collector.take(0)) == 2 * HOST_BUFFER // 1024


def test_budget_waits_for_room_unless_cancelled() -> None:
    budget, cancelled = Budget(limit=10), threading.Event()
    budget.acquire(10, cancelled)
    done = threading.Event()

    def more() -> None:
        budget.acquire(5, cancelled)
        done.set()

    thread = threading.Thread(target=more)
    thread.start()
    assert not done.wait(0.3)
    budget.release(10)
    assert done.wait(10)
    cancelled.set()
    budget.acquire(100, cancelled)  # over the limit, but the run is ending: no wait
    thread.join(10)
