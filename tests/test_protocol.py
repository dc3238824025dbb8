from __future__ import annotations

import threading

import pytest

from execnet_cli._remote.protocol import (
    ChannelIds,
    CloseReason,
    MessageType,
    SendOutcome,
    check_exec_request,
    reason_for_close_message,
    send_outcome,
)


def test_controller_ids_are_odd_worker_ids_even():
    controller, worker = ChannelIds(True), ChannelIds(False)
    assert [controller.next() for _ in range(4)] == [1, 3, 5, 7]
    assert [worker.next() for _ in range(4)] == [2, 4, 6, 8]


def test_ids_unique_across_threads():
    ids = ChannelIds(True)
    seen: list = []

    def take():
        seen.extend(ids.next() for _ in range(1000))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 4000


def test_send_rules():
    assert send_outcome(None) is SendOutcome.SEND
    assert send_outcome(CloseReason.FAR_CLOSED) is SendOutcome.DISCARD
    for reason in (
        CloseReason.CLOSED_HERE,
        CloseReason.FAR_CLOSED_WITH_ERROR,
        CloseReason.CONNECTION_LOST,
    ):
        assert send_outcome(reason) is SendOutcome.RAISE


def test_close_messages_map_to_reasons():
    assert reason_for_close_message(MessageType.CHANNEL_CLOSE) is CloseReason.FAR_CLOSED
    assert (
        reason_for_close_message(MessageType.CHANNEL_CLOSE_ERROR)
        is CloseReason.FAR_CLOSED_WITH_ERROR
    )


def test_message_kinds_have_stable_wire_values():
    expected = {
        "STATUS": 0,
        "RECONFIGURE": 1,
        "GATEWAY_TERMINATE": 2,
        "CHANNEL_EXEC": 3,
        "CHANNEL_DATA": 4,
        "CHANNEL_CLOSE": 5,
        "CHANNEL_CLOSE_ERROR": 6,
        "CHANNEL_LAST_MESSAGE": 7,
        "WORKER_READY": 8,
    }
    for name, value in expected.items():
        assert getattr(MessageType, name) == value
        assert MessageType.name_of(value) == name


def test_exec_request_validation():
    assert check_exec_request(("x=1", None, None, {})) == ("x=1", None, None, {})
    for bad in [("x",), ("x", None, None, []), (1, None, None, {}), ("x", 1, None, {})]:
        with pytest.raises(ValueError):
            check_exec_request(bad)
