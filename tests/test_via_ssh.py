"""via= with ssh and socket gateways: the TCP stream is made from the carrier's host."""

from __future__ import annotations

import pytest

import execnet_cli


def test_ssh_via_popen_carrier(sshd_host):
    group = execnet_cli.Group(["popen//id=bastion"])
    try:
        carrier_pid = group["bastion"]._rinfo().pid
        gateway = group.makegateway(sshd_host.spec() + "//via=bastion")
        channel = gateway.remote_exec("channel.send(channel.receive() * 2)")
        channel.send(21)
        assert channel.receive(10) == 42
        # the ssh server saw a connection from the carrier process, not from us
        assert any(carrier_pid == pid for pid in _tcp_owner_pids(sshd_host.port))
    finally:
        group.terminate(10)


def test_ssh_via_unknown_carrier_is_named(sshd_host):
    group = execnet_cli.Group()
    with pytest.raises(execnet_cli.SpecError, match="via='nowhere'"):
        group.makegateway(sshd_host.spec() + "//via=nowhere")


def _tcp_owner_pids(port: int) -> list:
    """PIDs of local processes with a TCP connection to ``port`` (from /proc)."""
    import os

    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[2].split(":")[1], 16) == port:
                inodes.add(fields[9])
    owners = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    owners.append(int(pid))
        except OSError:
            continue
    return owners
