"""Groups and multi-channels."""

from __future__ import annotations

import pytest

import execnet_cli
from execnet_cli import Group, RemoteError, SpecError, XSpec


@pytest.fixture
def group():
    group = Group(["popen", "popen", "popen"])
    yield group
    group.terminate(5)


def test_ids_indexing_and_iteration(group):
    assert [gw.id for gw in group] == ["gw0", "gw1", "gw2"]
    assert group["gw1"] is group[1]
    assert "gw2" in group and "gw9" not in group
    assert len(group) == 3
    with pytest.raises(KeyError):
        group["nope"]


def test_allocate_id_skips_taken_ids(group):
    spec = XSpec("popen")
    group.allocate_id(spec)
    assert spec.id == "gw3"
    explicit = XSpec("popen//id=gw4")
    group.allocate_id(explicit)
    assert explicit.id == "gw4"


def test_duplicate_id_refused(group):
    with pytest.raises(SpecError, match="already has a gateway with id 'gw0'"):
        group.makegateway("popen//id=gw0")
    with pytest.raises(ValueError):  # what it was before: old callers still catch it
        group.makegateway("popen//id=gw1")


def test_multichannel_send_and_receive_each(group):
    mch = group.remote_exec("import os; channel.send((channel.receive(), os.getpid()))")
    assert len(mch) == 3
    mch.send_each("ping")
    results = mch.receive_each()
    assert [r[0] for r in results] == ["ping"] * 3
    assert len({r[1] for r in results}) == 3
    mch.waitclose(10)


def _scaled(channel, factor):
    channel.send(channel.receive() * factor)


def test_a_function_with_kwargs_runs_on_every_gateway_and_an_empty_group_runs_nothing(group):
    mch = group.remote_exec(_scaled, factor=3)  # prepared and serialized once for all
    mch.send_each(7)
    assert mch.receive_each() == [21, 21, 21]
    mch.waitclose(10)
    with pytest.raises(ValueError, match="keyword arguments"):
        group.remote_exec("pass", factor=3)
    assert list(execnet_cli.Group().remote_exec("channel.send(1)")) == []


def test_receive_each_withchannel(group):
    mch = group.remote_exec("channel.send(1)")
    pairs = mch.receive_each(withchannel=True)
    assert [ch for ch, _ in pairs] == list(mch)
    assert all(item == 1 for _, item in pairs)


def test_make_receive_queue(group):
    mch = group.remote_exec("channel.send(channel.gateway.id)")
    items = mch.make_receive_queue(endmarker=-1)
    got = [items.get(timeout=10) for _ in range(6)]
    values = sorted(str(item) for _, item in got)
    assert values == ["-1", "-1", "-1", "gw0", "gw1", "gw2"]


def test_multichannel_waitclose_reraises(group):
    mch = group.remote_exec("raise RuntimeError(channel.gateway.id)")
    with pytest.raises(RemoteError, match="RuntimeError"):
        mch.waitclose(10)


def test_terminate_empties_the_group(group):
    pids = [gw._rinfo().pid for gw in group]
    group.terminate(5)
    assert len(group) == 0
    import os

    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_exit_removes_gateway_from_group(group):
    group["gw1"].exit()
    assert [gw.id for gw in group] == ["gw0", "gw2"]


def test_default_group_and_module_makegateway():
    gateway = execnet_cli.makegateway()
    try:
        assert gateway in execnet_cli.default_group
    finally:
        gateway.exit()
    assert gateway not in execnet_cli.default_group


def test_group_execmodel_applies_to_workers():
    group = Group(execmodel="main_thread_only")
    try:
        gateway = group.makegateway("popen")
        assert gateway.remote_execmodel == "main_thread_only"
        assert group.execmodel.backend == "main_thread_only"
        with pytest.raises(ValueError):
            group.set_execmodel("thread")
    finally:
        group.terminate(5)


def test_set_execmodel_on_default_group():
    execnet_cli.set_execmodel("main_thread_only")
    try:
        assert execnet_cli.default_group.remote_execmodel.backend == "main_thread_only"
    finally:
        execnet_cli.set_execmodel("thread")
