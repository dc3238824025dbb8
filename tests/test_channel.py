"""Channel behaviour over a real popen worker."""

from __future__ import annotations

import queue
import threading

import pytest

from execnet_cli import ChannelClosed, RemoteError, TimeoutError

ECHO = "for item in channel:\n    channel.send(item)"


def test_items_of_every_type_round_trip(gw):
    channel = gw.remote_exec(ECHO)
    values = [
        None,
        True,
        -(2**70),
        1.5,
        2j,
        "text",
        b"\x00bytes",
        (1, "a"),
        [1, [2]],
        {"k": {1, 2}},
        frozenset({3}),
    ]
    for value in values:
        channel.send(value)
        assert channel.receive(10) == value
    channel.close()


def test_receive_timeout(gw):
    channel = gw.remote_exec("channel.receive()")
    with pytest.raises(TimeoutError):
        channel.receive(timeout=0.05)
    with pytest.raises(channel.TimeoutError):
        channel.receive(timeout=0.01)
    assert isinstance(TimeoutError("x"), OSError)
    channel.send(None)
    channel.waitclose(10)


def test_iteration_ends_at_close(gw):
    channel = gw.remote_exec("for i in range(5): channel.send(i)")
    assert list(channel) == [0, 1, 2, 3, 4]
    with pytest.raises(EOFError):
        channel.receive()


def test_setcallback_with_endmarker(gw):
    channel = gw.remote_exec("for i in range(100): channel.send(i)")
    got: queue.Queue = queue.Queue()
    channel.setcallback(got.put, endmarker="END")
    items = [got.get(timeout=10) for _ in range(101)]
    assert items == [*range(100), "END"]
    with pytest.raises(OSError, match="callback"):
        channel.receive()


def test_setcallback_runs_on_receiver_thread(gw):
    channel = gw.remote_exec("channel.receive(); channel.send(1)")
    threads: queue.Queue = queue.Queue()
    channel.setcallback(lambda item: threads.put(threading.current_thread().name))
    channel.send("go")
    assert threads.get(timeout=10).startswith("xnet-receiver")
    channel.waitclose(10)


def test_setcallback_delivers_queued_items_first(gw):
    channel = gw.remote_exec("channel.send(1); channel.send(2)")
    channel.waitclose(10)
    got = []
    channel.setcallback(got.append, endmarker=None)
    assert got == [1, 2, None]


def test_makefile_roundtrip(gw):
    channel = gw.remote_exec(
        "f = channel.makefile('r')\nout = channel.makefile('w')\nout.write(f.readline().upper())\n"
    )
    channel.makefile("w").write("hello\nignored")
    assert channel.makefile("r").read() == "HELLO\n"


def test_close_with_error_reaches_remote(gw):
    channel = gw.remote_exec(
        "report = channel.receive()\n"
        "try:\n"
        "    channel.receive()\n"
        "except channel.RemoteError as exc:\n"
        "    report.send('remote saw: ' + str(exc))\n"
    )
    report = gw.newchannel()
    channel.send(report)
    channel.close("local failure")
    assert channel.isclosed()
    assert report.receive(10) == "remote saw: local failure"


def test_send_after_far_side_finished_is_discarded(gw):
    channel = gw.remote_exec("pass")
    channel.waitclose(10)
    channel.send("nobody listens")  # no error: the far side finished normally
    assert channel.isclosed()


def test_send_after_local_close_raises(gw):
    channel = gw.remote_exec("channel.receive()")
    channel.close()
    with pytest.raises(ChannelClosed, match="closed by this side"):
        channel.send(1)
    assert isinstance(ChannelClosed("x"), OSError)


def test_send_after_far_error_raises(gw):
    channel = gw.remote_exec("raise KeyError('boom')")
    with pytest.raises(RemoteError, match="KeyError"):
        channel.waitclose(10)
    with pytest.raises(ChannelClosed, match="with an error.*KeyError"):
        channel.send(1)


def test_receive_after_far_error_raises_remote_error(gw):
    channel = gw.remote_exec("channel.send(1); raise KeyError('boom')")
    assert channel.receive(10) == 1
    with pytest.raises(RemoteError, match="boom"):
        channel.receive(10)


def test_waitclose_timeout(gw):
    channel = gw.remote_exec("channel.receive()")
    with pytest.raises(TimeoutError):
        channel.waitclose(0.05)
    channel.send(None)
    channel.waitclose(10)


def test_channel_sent_over_channel(gw):
    channel = gw.remote_exec(
        "sub = channel.receive()\n"
        "sub.send(sub.receive() + 1)\n"
        "own = channel.gateway.newchannel()\n"
        "channel.send(own)\n"
        "own.send('from remote-made channel')\n"
    )
    sub = gw.newchannel()
    channel.send(sub)
    sub.send(1)
    assert sub.receive(10) == 2
    own = channel.receive(10)
    assert own.receive(10) == "from remote-made channel"
    assert own.id % 2 == 0 and sub.id % 2 == 1


def test_dropped_channel_closes_remote_side(gw):
    import gc

    channel = gw.remote_exec(
        "sub = channel.receive()\n"
        "try:\n"
        "    sub.receive()\n"
        "except EOFError:\n"
        "    channel.send('saw EOF')\n"
    )
    sub = gw.newchannel()
    channel.send(sub)
    del sub
    gc.collect()
    assert channel.receive(10) == "saw EOF"


def test_many_channels_concurrently(gw):
    channels = [gw.remote_exec("channel.send(channel.receive() * 2)") for _ in range(20)]
    for i, channel in enumerate(channels):
        channel.send(i)
    assert [c.receive(10) for c in channels] == [i * 2 for i in range(20)]


def test_big_items_in_both_directions(gw):
    channel = gw.remote_exec(ECHO)
    blob = bytes(range(256)) * 40000  # ~10 MB
    channel.send(blob)
    assert channel.receive(30) == blob
    channel.close()


def test_unserializable_item_raises_before_sending(gw):
    from execnet_cli import DumpError

    channel = gw.remote_exec(ECHO)
    with pytest.raises(DumpError, match="object"):
        channel.send(object())
    channel.send("still usable")
    assert channel.receive(10) == "still usable"
    channel.close()


def test_many_threads_receiving_on_one_gateway(gw):
    """Consumers take turns reading the stream; each gets exactly its own items."""
    errors: list = []

    def worker(index: int) -> None:
        try:
            channel = gw.remote_exec(ECHO)
            for i in range(200):
                channel.send((index, i))
                assert channel.receive(30) == (index, i)
            channel.close()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors


def test_callbacks_keep_flowing_while_a_consumer_idles(gw):
    """The background reader delivers callback items when no consumer reads."""
    got: queue.Queue = queue.Queue()
    feeder = gw.remote_exec(
        "import time\nfor i in range(20):\n    channel.send(i)\n    time.sleep(0.005)"
    )
    feeder.setcallback(got.put, endmarker="end")
    waiting = gw.remote_exec("channel.receive()")
    items = [got.get(timeout=10) for _ in range(21)]
    assert items == [*range(20), "end"]
    waiting.send(None)
    waiting.waitclose(10)


def test_timeout_while_another_thread_reads(gw):
    slow = gw.remote_exec("channel.receive()")
    other = gw.remote_exec("channel.receive()")
    reader = threading.Thread(target=slow.waitclose, args=(10,))
    reader.start()
    with pytest.raises(TimeoutError):
        other.receive(timeout=0.1)
    slow.send(None)
    other.send(None)
    reader.join(10)
    other.waitclose(10)


def test_data_arriving_after_a_local_close_is_dropped(gw):
    """Rule 6: data that crossed our close on the wire never shows up after EOFError.

    The receiver thread is held in a callback of another channel while the far side's
    item for ``sub`` waits behind it; ``sub`` is closed here meanwhile (which must not
    wait for that callback either).
    """
    sub = gw.newchannel()
    control = gw.remote_exec("sub = channel.receive()\nchannel.send('stall')\nsub.send('late')")
    stalled, release = threading.Event(), threading.Event()

    def stall(item: object) -> None:
        stalled.set()
        release.wait(10)

    control.setcallback(stall)
    control.send(sub)
    assert stalled.wait(10)
    sub.close()
    release.set()
    control.waitclose(10)
    for _ in range(2):
        with pytest.raises(EOFError):
            sub.receive(1)
