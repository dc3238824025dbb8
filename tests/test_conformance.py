"""One suite of gateway behaviour, run against every transport.

popen (forked from the fork server), popen//spawn (a new interpreter), popen via a
gateway, ssh (a real sshd on 127.0.0.K), ssh via a gateway, and socket (an authenticated
server started inside a gateway with ``installvia``). The transports themselves are held
to their verbs by ``test_transport_contract.py``.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Iterator

import pytest

import execnet_cli
from execnet_cli import ChannelClosed, RemoteError

KINDS = ["popen", "popen-spawn", "popen-via", "ssh", "ssh-via", "socket"]


@pytest.fixture(params=KINDS)
def transport_gw(request: pytest.FixtureRequest) -> Iterator[execnet_cli.Gateway]:
    """A gateway of each kind, in a group that is terminated after the test."""
    group = execnet_cli.Group()
    kind = request.param
    try:
        if kind == "popen":
            gateway = group.makegateway("popen")
        elif kind == "popen-spawn":
            gateway = group.makegateway("popen//spawn")
        elif kind == "popen-via":
            group.makegateway("popen//id=carrier")
            gateway = group.makegateway("popen//via=carrier")
        elif kind.startswith("ssh"):
            host = request.getfixturevalue("sshd_host")
            spec = host.spec()
            if kind == "ssh-via":
                group.makegateway("popen//id=carrier")
                spec += "//via=carrier"
            gateway = group.makegateway(spec)
        else:
            group.makegateway("popen//id=carrier")
            gateway = group.makegateway("socket=127.0.0.1:0//installvia=carrier")
        yield gateway
    finally:
        group.terminate(10)


def test_exec_and_echo(transport_gw):
    channel = transport_gw.remote_exec("for item in channel:\n    channel.send(item)")
    for value in [1, "two", b"three", (4.0, None), {"five": [5]}, -(2**70)]:
        channel.send(value)
        assert channel.receive(10) == value
    channel.close()


def test_big_data_both_ways(transport_gw):
    channel = transport_gw.remote_exec("for item in channel:\n    channel.send(item)")
    blob = os.urandom(4 << 20)
    channel.send(blob)
    assert channel.receive(60) == blob
    channel.close()


def test_remote_error_carries_traceback(transport_gw):
    channel = transport_gw.remote_exec("def f():\n    raise KeyError('conformance')\nf()")
    with pytest.raises(RemoteError, match="KeyError: 'conformance'"):
        channel.waitclose(10)
    with pytest.raises(ChannelClosed, match="with an error"):
        channel.send(1)


def test_channels_over_channels_and_concurrency(transport_gw):
    channel = transport_gw.remote_exec(
        "sub = channel.receive()\nsub.send(sub.receive() * 2)\nchannel.send('done')"
    )
    sub = transport_gw.newchannel()
    channel.send(sub)
    sub.send(21)
    assert sub.receive(10) == 42
    assert channel.receive(10) == "done"
    others = [transport_gw.remote_exec("channel.send(channel.receive())") for _ in range(5)]
    for i, other in enumerate(others):
        other.send(i)
    assert [o.receive(10) for o in others] == list(range(5))


def test_remote_print_does_not_corrupt(transport_gw):
    channel = transport_gw.remote_exec(
        "import os\nprint('noise ' * 100)\nos.write(1, b'raw noise')\nchannel.send('clean')"
    )
    assert channel.receive(10) == "clean"


def test_status_and_rinfo(transport_gw):
    info = transport_gw._rinfo()
    assert info.pid > 0 and info.version_info[0] == 3
    assert transport_gw._rinfo() is info
    assert transport_gw.remote_status().numexecuting == 0


def test_exit_ends_a_stuck_worker(transport_gw):
    transport_gw.remote_exec("while True: pass")
    start = time.monotonic()
    transport_gw.exit(timeout=1.0)
    assert time.monotonic() - start < 15
    assert not transport_gw.hasreceiver()


def test_worker_killed(transport_gw):
    channel = transport_gw.remote_exec("channel.send(1)\nchannel.receive()")
    assert channel.receive(10) == 1
    pid = transport_gw._rinfo().pid
    os.kill(pid, signal.SIGKILL)  # every transport's worker runs on this machine here
    with pytest.raises(EOFError):
        channel.waitclose(15)
