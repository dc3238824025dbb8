"""Refusals the docs promise that no other test held the code to (docs/promises.md)."""

from __future__ import annotations

import os
import secrets
import selectors
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from test_sockets import start_server, stop_server, write_secret

import execnet_cli
from execnet_cli.errors import AuthenticationFailed
from execnet_cli.fleet import relays
from execnet_cli.inventory import Inventory, InventoryError
from execnet_cli.inventory.patterns import PatternError
from execnet_cli.inventory.ranges import expand
from execnet_cli.transports.sockets import SecretError, load_secret


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_secret_file_must_be_a_regular_file(tmp_path: Path, kind: str) -> None:
    """docs/socket.md: "A secret file must be a regular file that belongs to you and has
    mode 0600. Otherwise ... the client refuses to connect" (a fifo is refused unread:
    opening it would wait for a writer)."""
    path = tmp_path / "secret"
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    else:
        path.mkdir(mode=0o700)
    with pytest.raises(SecretError, match="is not a regular file"):
        load_secret(str(path))
    with pytest.raises(AuthenticationFailed, match="is not a regular file"):
        execnet_cli.makegateway(f"socket=127.0.0.1:9//secret_file={path}")


def test_a_range_of_more_than_a_million_names_is_refused() -> None:
    """docs/inventories.md: "A range of more than 1,000,000 names is refused"."""
    with pytest.raises(PatternError, match="range '0-1000000' is too large"):
        expand("n[0-1000000]")  # 1,000,001 names
    with pytest.raises(PatternError, match="more than 1000000 names"):
        expand("r[1-1001]-n[1-1000]")
    assert len(expand("r[1-1000]-n[1-1000]")) == 1_000_000


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_an_encrypted_key_is_never_prompted_for(sshd_host, tmp_path: Path, monkeypatch) -> None:
    """docs/ssh.md: "We never prompt for a key passphrase or a password: a failure
    (AuthenticationFailed) lists every key tried and why it did not work (... encrypted
    and not in the agent)". The right key, encrypted, and no agent."""
    key = tmp_path / "encrypted_key"
    shutil.copy(sshd_host.key, key)
    key.chmod(0o600)
    subprocess.run(
        ["ssh-keygen", "-q", "-p", "-P", "", "-N", "a passphrase", "-f", str(key)],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    spec = sshd_host.spec().replace(str(sshd_host.key), str(key))
    with pytest.raises(AuthenticationFailed) as info:
        execnet_cli.makegateway(spec + "//connect_timeout=20")
    assert f"{key} (encrypted: add it to ssh-agent, we do not prompt)" in str(info.value)


def test_a_client_never_creates_a_secret(tmp_path: Path, monkeypatch) -> None:
    """docs/socket.md: "If the file is missing, the server creates it ... A client never
    creates a secret" (it could not match any server's)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("XNET_SECRET", raising=False)
    with pytest.raises(AuthenticationFailed, match="no secret"):
        execnet_cli.makegateway("socket=127.0.0.1:9")
    assert not (tmp_path / "config").exists()


def test_a_host_behind_a_proxy_command_is_not_relayed() -> None:
    """docs/relays.md: "a host behind a ProxyCommand is not relayed" (the relay's OpenSSH
    would run a command this side resolved, on another machine)."""
    inventory = Inventory.from_text(
        "hosts:\n  h: {address: 127.0.0.9, ssh_options: {ProxyCommand: nc %h %p}}\n"
    )
    with pytest.raises(InventoryError, match="a relay cannot go through a jump host or proxy"):
        relays.host_entry(inventory.host("h"))


class Recorder:
    """A TCP relay in front of a server that keeps every byte it passes, both ways."""

    def __init__(self, port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = port
        self.seen = bytearray()
        self.thread = threading.Thread(target=self._relay, name="recorder")
        self.thread.start()

    def _relay(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.target))
        pairs = {client: server, server: client}
        selector = selectors.DefaultSelector()
        for end in pairs:
            selector.register(end, selectors.EVENT_READ)
        while pairs:
            for key, _ in selector.select():
                end = key.fileobj
                assert isinstance(end, socket.socket)
                data = end.recv(65536)
                if not data:
                    for sock in (end, pairs[end]):
                        selector.unregister(sock)
                        sock.close()
                    pairs.clear()
                    break
                self.seen += data
                pairs[end].sendall(data)
        selector.close()

    def close(self) -> None:
        self.thread.join(30)
        self.listener.close()


def test_the_socket_secret_never_crosses_the_wire(tmp_path: Path, monkeypatch) -> None:
    """docs/socket.md: "The secret itself never crosses the wire" (a HMAC proves it)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("XNET_SECRET", raising=False)
    text = "wire-" + secrets.token_hex(24)
    secret = write_secret(tmp_path / "secret", text)
    server = start_server(tmp_path, "--listen", "127.0.0.1:0", "--secret-file", str(secret))
    recorder = Recorder(server.port)
    try:
        gateway = execnet_cli.makegateway(f"socket=127.0.0.1:{recorder.port}//secret_file={secret}")
        assert gateway.remote_exec("channel.send(6 * 7)").receive(10) == 42
        gateway.exit()
    finally:
        recorder.close()
        stop_server(server)
    assert len(recorder.seen) > 10_000  # the handshake, the bootstrap, the exchange
    assert text.encode() not in recorder.seen
    assert bytes.fromhex(text[5:]) not in recorder.seen
