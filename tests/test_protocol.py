from __future__ import annotations

import threading

import pytest

from execnet_cli._remote import protocol
from execnet_cli._remote.protocol import (
    CLOSE,
    CLOSED_HERE,
    CONNECTION_LOST,
    FAR_CLOSE,
    FAR_CLOSED,
    FAR_CLOSED_WITH_ERROR,
    FAR_DONE,
    FAR_DONE_SENDING,
    FAR_ERROR,
    LOST,
    OPEN,
    TRANSITIONS,
    ChannelIds,
    ChannelState,
    ChannelStateError,
    MessageType,
    SendOutcome,
    check_exec_request,
)

STATES = [OPEN, FAR_DONE_SENDING, CLOSED_HERE, FAR_CLOSED, FAR_CLOSED_WITH_ERROR, CONNECTION_LOST]
EVENTS = [CLOSE, FAR_CLOSE, FAR_ERROR, FAR_DONE, LOST]


def state_in(state) -> ChannelState:
    channel = ChannelState()
    channel.state = state
    return channel


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
    """Rule 5: discard only after a normal far close; raise after any other close."""
    outcomes = {state: state.send for state in STATES}
    assert outcomes == {
        OPEN: SendOutcome.SEND,
        FAR_DONE_SENDING: SendOutcome.SEND,
        CLOSED_HERE: SendOutcome.RAISE,
        FAR_CLOSED: SendOutcome.DISCARD,
        FAR_CLOSED_WITH_ERROR: SendOutcome.RAISE,
        CONNECTION_LOST: SendOutcome.RAISE,
    }


def test_only_an_open_channel_takes_data():
    assert [state for state in STATES if state.receiving] == [OPEN]


def test_the_table_covers_every_state():
    assert set(TRANSITIONS) == set(STATES)
    assert all(
        set(row) <= set(EVENTS) and set(row.values()) <= set(STATES) for row in TRANSITIONS.values()
    )


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.name)
def test_open_channel_transitions(event):
    expected = {
        CLOSE: CLOSED_HERE,
        FAR_CLOSE: FAR_CLOSED,
        FAR_ERROR: FAR_CLOSED_WITH_ERROR,
        FAR_DONE: FAR_DONE_SENDING,
        LOST: CONNECTION_LOST,
    }
    channel = ChannelState()
    assert channel.apply(event) is OPEN
    assert channel.state is expected[event]


def test_first_close_reason_sticks_but_closing_here_ends_discarding():
    channel = state_in(FAR_CLOSED)
    for event in (FAR_CLOSE, FAR_ERROR, FAR_DONE, LOST):
        channel.apply(event)
        assert channel.state is FAR_CLOSED
    channel.apply(CLOSE)
    assert channel.state is CLOSED_HERE  # a later send raises instead of discarding
    for state in (CLOSED_HERE, FAR_CLOSED_WITH_ERROR, CONNECTION_LOST):
        channel = state_in(state)
        channel.apply(CLOSE)
        assert channel.state is state


def test_far_errors_are_kept_in_every_state_before_the_end():
    for state in STATES[:-1]:
        channel = state_in(state)
        channel.apply(FAR_ERROR, ValueError("first"))
        channel.apply(FAR_ERROR, ValueError("second"))
        assert [str(e) for e in channel.errors] == ["first", "second"]


def test_lost_records_why():
    channel = ChannelState()
    reason = EOFError("gone")
    channel.apply(LOST, reason)
    assert channel.lost is reason and channel.errors == []


@pytest.mark.parametrize("event", [FAR_CLOSE, FAR_ERROR, FAR_DONE, LOST], ids=lambda e: e.name)
def test_nothing_comes_from_the_far_side_after_the_end(event):
    channel = state_in(CONNECTION_LOST)
    with pytest.raises(
        ChannelStateError, match=f"{event.name} is illegal in state CONNECTION_LOST"
    ):
        channel.apply(event)
    assert channel.state is CONNECTION_LOST


def test_the_rules_are_written_at_the_top():
    doc = protocol.__doc__ or ""
    for name in [s.name for s in STATES] + [e.name for e in EVENTS]:
        assert name in doc, name


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
