"""An ssh gateway's frames are dispatched in paramiko's transport thread as packets arrive
(transports/ssh/forwarding.py); what could block there runs in the receiver thread.

These hold the guarantees the receiver thread gave: callbacks run in a thread of ours (a
callback may send more than a window: the transport thread must stay free to take in the
window adjusts it waits for), a stalled callback still stops the sender, a corrupt
stream or a connection lost in the middle of a frame ends the gateway.
"""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import threading
import time
from pathlib import Path

import pytest
from proc_helpers import wait_until
from sshd_fixtures import SshdHost

import execnet_cli

#: Remote code: write raw bytes to the gateway's stream, bypassing the framing.
RAW_WRITE = "channel.gateway._io.write([bytes.fromhex(channel.receive())])\n"


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture
def gw(sshd_host: SshdHost):  # type: ignore[no-untyped-def]
    gateway = execnet_cli.makegateway(sshd_host.spec())
    yield gateway
    gateway.exit()


def test_items_reach_a_waiting_receive_without_the_receiver_thread(gw) -> None:  # type: ignore[no-untyped-def]
    channel = gw.remote_exec("for i in range(50): channel.send(i)")
    assert [channel.receive(10) for _ in range(50)] == list(range(50))
    channel.waitclose(10)
    assert gw.hasreceiver()  # it waits, for the end and for what only it may run


def test_a_callback_runs_in_the_receiver_thread_and_may_send_more_than_a_window(gw) -> None:  # type: ignore[no-untyped-def]
    echo = gw.remote_exec(
        "import hashlib\nh = hashlib.sha256()\nfor c in channel:\n    if c is None: break\n"
        "    h.update(c)\nchannel.send(h.digest())"
    )
    chunk = os.urandom(1 << 20)
    threads = []

    def on_item(item: object) -> None:
        threads.append(threading.current_thread().name)
        for _ in range(24):  # 24 MiB from inside a callback: far more than one ssh window
            echo.send(chunk)
        echo.send(None)

    trigger = gw.remote_exec("channel.send('go')\nchannel.receive()")
    trigger.setcallback(on_item)
    expected = hashlib.sha256()
    for _ in range(24):
        expected.update(chunk)
    assert echo.receive(90) == expected.digest()
    assert threads == [f"xnet-receiver-{gw.id}"]
    trigger.send(1)


def test_a_stalled_callback_stops_the_sender(gw, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    progress = tmp_path / "sent"
    count = 48  # MiB: well beyond the window, the pipes and sshd's buffers together
    channel = gw.remote_exec(
        f"import os\nchunk = bytes(1 << 20)\nfor i in range({count}):\n"
        f"    channel.send(chunk)\n    open({str(progress)!r}, 'w').write(str(i + 1))\n"
    )
    release = threading.Event()
    received: queue.SimpleQueue = queue.SimpleQueue()

    def slow(item: object) -> None:
        release.wait(60)
        received.put(item)

    channel.setcallback(slow, endmarker=None)

    def sent() -> int:
        try:
            return int(progress.read_text() or 0)
        except (OSError, ValueError):
            return 0

    assert wait_until(lambda: sent() > 0, 20)
    last, steady_since = -1, time.monotonic()
    while time.monotonic() - steady_since < 1.5 and sent() < count:
        if sent() != last:
            last, steady_since = sent(), time.monotonic()
        time.sleep(0.1)
    assert sent() < count  # it stalled: the window was not granted for what waits
    release.set()
    items = [received.get(timeout=60) for _ in range(count + 1)]
    assert items[-1] is None and all(len(item) == 1 << 20 for item in items[:-1])  # type: ignore[arg-type]


def test_a_corrupt_frame_ends_the_gateway_and_says_so(gw, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    waiting = gw.remote_exec("channel.receive()")
    raw = gw.remote_exec(RAW_WRITE + "channel.receive()")
    raw.send((b"\xee" + bytes(8)).hex())  # a message type no frame has
    with pytest.raises(EOFError, match="corrupt stream"):
        waiting.receive(20)
    gw.join(10)
    assert not gw.hasreceiver()
    assert "corrupt stream" in caplog.text


def test_a_connection_lost_in_the_middle_of_a_frame_ends_the_gateway(sshd_hosts) -> None:  # type: ignore[no-untyped-def]
    host = sshd_hosts(3)[2]  # a host of its own: we kill its connection processes
    gateway = execnet_cli.makegateway(host.spec())
    try:
        waiting = gateway.remote_exec("channel.receive()")
        raw = gateway.remote_exec(RAW_WRITE + "channel.send('written')\nchannel.receive()")
        # A data frame for channel 1 announcing 1 MiB, of which 1000 bytes come.
        header = bytes([4]) + (1).to_bytes(4, "big") + (1 << 20).to_bytes(4, "big")
        raw.send((header + bytes(1000)).hex())
        time.sleep(0.5)  # the partial frame reaches us
        for victim in host.connection_pids():
            os.kill(victim, signal.SIGKILL)
        with pytest.raises(EOFError):
            waiting.receive(20)
        gateway.join(10)
        assert not gateway.hasreceiver()
    finally:
        gateway.exit()
