"""ssh gateways against real OpenSSH sshd processes on 127.0.0.x (see sshd_fixtures.py).

The remote hosts are this machine, so the tests can look at remote processes in /proc.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from faults_helpers import kill_all, pids_with
from proc_helpers import free_port, pid_alive, wait_until
from sshd_fixtures import SshdHost, write_ed25519_key

import execnet_cli
from execnet_cli.errors import (
    AuthenticationFailed,
    ConnectFailed,
    HostKeyError,
    HostNotFound,
    InterpreterNotFound,
    SpecError,
)
from execnet_cli.transports.ssh.hostkeys import (
    hash_name,
    load_known_hosts,
    names_match,
    preferred_algorithms,
)

ECHO = "for item in channel:\n    channel.send(item)\n"


@pytest.fixture
def gw(sshd_host: SshdHost):
    gateway = execnet_cli.makegateway(sshd_host.spec())
    yield gateway
    gateway.exit()


@pytest.fixture(autouse=True)
def no_agent(monkeypatch):
    """Tests choose their keys; a developer's ssh-agent must not change outcomes."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("XNET_SUDO_PASSWORD", raising=False)


# -- working gateways ----------------------------------------------------------------------


def test_exec_and_channels(gw):
    channel = gw.remote_exec("import os, sys\nchannel.send((os.getuid(), sys.executable))")
    uid, executable = channel.receive(10)
    assert uid == os.getuid()
    assert os.path.basename(executable).startswith("python3")
    echo = gw.remote_exec(ECHO)
    for item in [1, "two", b"three", {"four": (4.0, None)}]:
        echo.send(item)
        assert echo.receive(10) == item
    echo.close()
    info = gw._rinfo()
    assert info.pid != os.getpid()
    assert "ssh" in repr(gw.transport.describe())


def test_many_channels_at_once(gw):
    channels = [gw.remote_exec("channel.send(channel.receive() * 2)") for _ in range(20)]
    for number, channel in enumerate(channels):
        channel.send(number)
    assert [channel.receive(10) for channel in channels] == [2 * n for n in range(20)]


def test_big_data_both_ways(gw):
    chunk = os.urandom(1 << 20)
    sink = gw.remote_exec(
        "import hashlib\nh = hashlib.sha256()\nfor c in channel:\n    if c is None: break\n"
        "    h.update(c)\nchannel.send(h.hexdigest())"
    )
    expected = hashlib.sha256()
    for _ in range(16):
        sink.send(chunk)
        expected.update(chunk)
    sink.send(None)
    assert sink.receive(30) == expected.hexdigest()
    source = gw.remote_exec(
        "import os, hashlib\nh = hashlib.sha256()\nfor _ in range(16):\n"
        "    c = os.urandom(1 << 20); h.update(c); channel.send(c)\nchannel.send(h.hexdigest())"
    )
    got = hashlib.sha256()
    for _ in range(16):
        got.update(source.receive(30))
    assert source.receive(30) == got.hexdigest()
    single = gw.remote_exec("channel.send(bytes(channel.receive()))")
    single.send(bytes(20 << 20))  # one 20 MiB message: many windows, many packets
    assert len(single.receive(60)) == 20 << 20


def test_remote_print_reaches_local_stderr(gw, capsys):
    channel = gw.remote_exec("import sys\nprint('hello from the far side')\nchannel.send(1)")
    assert channel.receive(10) == 1
    seen = []

    def printed() -> bool:
        seen.append(capsys.readouterr().err)
        return "hello from the far side" in "".join(seen)

    assert wait_until(printed, 10)
    assert "hello from the far side" in gw.transport.stderr_text()


def test_execnet_style_destination_and_group(sshd_hosts):
    first, second = sshd_hosts(2)
    value = (
        f"-i {first.key} -o UserKnownHostsFile={first.known_hosts} "
        f"root@{first.address}:{first.port}"
    )
    group = execnet_cli.Group([f"ssh={value}", second.spec()])
    try:
        addresses = group.remote_exec(
            "import os\nchannel.send(os.environ['SSH_CONNECTION'].split()[2])"
        ).receive_each()
        assert sorted(addresses) == ["127.0.0.2", "127.0.0.3"]
    finally:
        group.terminate(5)


# -- ending -------------------------------------------------------------------------------


def test_exit_ends_the_remote_worker(sshd_host):
    gateway = execnet_cli.makegateway(sshd_host.spec())
    pid = gateway._rinfo().pid
    started = time.monotonic()
    gateway.exit()
    assert time.monotonic() - started < 3
    assert wait_until(lambda: not pid_alive(pid), 5)


def test_exit_kills_a_stuck_worker(sshd_host):
    gateway = execnet_cli.makegateway(sshd_host.spec())
    pid = gateway._rinfo().pid
    channel = gateway.remote_exec(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "channel.send('ignoring SIGTERM')\nwhile True: time.sleep(0.01)"
    )
    assert channel.receive(10) == "ignoring SIGTERM"  # the handler is in place: no guessing
    started = time.monotonic()
    gateway.exit(timeout=0.5)
    assert time.monotonic() - started < 8
    assert wait_until(lambda: not pid_alive(pid), 5)


def test_exit_does_not_wait_for_a_process_the_worker_left_running(sshd_host):
    """A process a job starts in the background inherits the worker's stderr, which keeps
    the ssh session open after the worker has exited (sshd ends the stdout it reads only
    with its stderr). exit() waits for the worker, not for that process, and leaves it
    running (README: a job that finishes leaves what it started alone). It used to wait
    out its whole timeout, then 5 s more."""
    mark = f"1013.{os.getpid()}"
    gateway = execnet_cli.makegateway(sshd_host.spec())
    exiting = threading.Thread(target=gateway.exit, args=(120,))
    try:
        channel = gateway.remote_exec(
            f"import subprocess\nsubprocess.Popen(['sleep', '{mark}'])\nchannel.send('started')"
        )
        assert channel.receive(10) == "started"
        exiting.start()
        exiting.join(30)  # the worker ends in well under a second; the sleep lasts 1013 s
        assert not exiting.is_alive(), "exit() waited for the background process"
        assert len(pids_with(mark)) == 1
    finally:
        kill_all(pids_with(mark))
        if exiting.ident is not None:
            exiting.join(30)
        gateway.exit()


def test_killed_remote_worker_ends_the_gateway(sshd_host):
    gateway = execnet_cli.makegateway(sshd_host.spec())
    channel = gateway.remote_exec("channel.send(1)\nchannel.receive()")
    assert channel.receive(10) == 1
    os.kill(gateway._rinfo().pid, signal.SIGKILL)
    with pytest.raises(EOFError):
        channel.receive(10)
    gateway.join(10)
    assert not gateway.hasreceiver()
    gateway.exit()
    assert gateway.transport.wait(0) is not None


def test_cut_connection_ends_the_gateway(sshd_hosts):
    host = sshd_hosts(3)[2]  # a host of its own: we kill its connection processes
    gateway = execnet_cli.makegateway(host.spec())
    pid = gateway._rinfo().pid
    channel = gateway.remote_exec("channel.send(1)\nchannel.receive()")
    assert channel.receive(10) == 1
    victims = host.connection_pids()
    assert victims
    for victim in victims:
        os.kill(victim, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(EOFError):
        channel.receive(10)
    with pytest.raises((EOFError, OSError, execnet_cli.ChannelClosed)):
        gateway.remote_exec("pass").receive(5)
    gateway.exit()
    assert time.monotonic() - started < 8
    assert wait_until(lambda: not pid_alive(pid), 10)  # the orphaned worker sees EOF and ends


# -- errors ---------------------------------------------------------------------------------


def test_wrong_key(sshd_host, tmp_path):
    wrong = tmp_path / "wrong_key"
    write_ed25519_key(wrong)
    spec = (
        f"ssh=-p {sshd_host.port} -i {wrong} -o UserKnownHostsFile={sshd_host.known_hosts} "
        f"-o IdentitiesOnly=yes root@{sshd_host.address}"
    )
    with pytest.raises(AuthenticationFailed) as info:
        execnet_cli.makegateway(spec)
    text = str(info.value)
    assert sshd_host.address in text and str(wrong) in text and "publickey" in text


def test_missing_key_file_is_named(sshd_host, tmp_path):
    spec = sshd_host.spec().replace(str(sshd_host.key), str(tmp_path / "nokey"))
    with pytest.raises(AuthenticationFailed, match="no such file"):
        execnet_cli.makegateway(spec)


def test_unknown_host_key_is_refused_then_accept_new_records_it(sshd_host, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    spec = sshd_host.spec().replace(str(sshd_host.known_hosts), str(known))
    with pytest.raises(HostKeyError) as info:
        execnet_cli.makegateway(spec)
    text = str(info.value)
    assert sshd_host.address in text and "SHA256:" in text
    assert "StrictHostKeyChecking=accept-new" in text
    assert known.read_text() == ""
    gateway = execnet_cli.makegateway(
        spec.replace(" root@", " -o StrictHostKeyChecking=accept-new root@")
    )
    gateway.exit()
    recorded = load_known_hosts(f"[{sshd_host.address}]:{sshd_host.port}", [str(known)])
    assert [k.get_base64() for k in recorded.keys["ssh-ed25519"]] == [
        sshd_host.host_key_line.split()[1]
    ]  # hashed or not, as the ssh config's HashKnownHosts says
    gateway = execnet_cli.makegateway(spec + "")  # now known: accepted under the default policy
    gateway.exit()


def test_changed_host_key_is_always_refused(sshd_host, tmp_path):
    other = tmp_path / "other_host_key"
    line = write_ed25519_key(other)
    known = tmp_path / "known_hosts"
    known.write_text(f"[{sshd_host.address}]:{sshd_host.port} {line}\n")
    for policy in ("yes", "accept-new", "no"):
        spec = sshd_host.spec(extra=f"-o StrictHostKeyChecking={policy}")
        spec = spec.replace(str(sshd_host.known_hosts), str(known))
        with pytest.raises(HostKeyError, match="HOST KEY CHANGED") as info:
            execnet_cli.makegateway(spec)
        assert f"{known}:1" in str(info.value)
    assert len(known.read_text().splitlines()) == 1


def test_closed_port(sshd_host):
    port = free_port("127.0.0.2")
    spec = sshd_host.spec().replace(f"-p {sshd_host.port}", f"-p {port}")
    with pytest.raises(ConnectFailed, match=rf"127\.0\.0\.2.*{port}.*refused"):
        execnet_cli.makegateway(spec)


def test_silent_server_times_out(sshd_host):
    server = socket.socket()
    server.bind(("127.0.0.2", 0))
    server.listen(1)
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True)
    thread.start()
    spec = sshd_host.spec().replace(f"-p {sshd_host.port}", f"-p {server.getsockname()[1]}")
    started = time.monotonic()
    try:
        with pytest.raises(ConnectFailed, match="127.0.0.2"):
            execnet_cli.makegateway(spec + "//connect_timeout=1")
        assert time.monotonic() - started < 6
    finally:
        thread.join(5)
        for conn, _ in accepted:
            conn.close()
        server.close()


def test_unresolvable_name():
    with pytest.raises(HostNotFound, match="no-such-host.invalid") as info:
        execnet_cli.makegateway("ssh=root@no-such-host.invalid")
    assert type(info.value) is HostNotFound


def test_no_python_on_the_remote(sshd_host):
    with pytest.raises(InterpreterNotFound) as info:
        execnet_cli.makegateway(sshd_host.spec(python="/nonexistent"))
    text = str(info.value)
    assert sshd_host.address in text and "/nonexistent" in text
    assert "not found" in text or "No such file" in text


def test_unsupported_option_is_named(sshd_host):
    with pytest.raises(SpecError, match="ForwardAgent"):
        execnet_cli.makegateway(sshd_host.spec(extra="-o ForwardAgent=yes"))


# -- routes and config ---------------------------------------------------------------------


def test_proxy_jump_through_a_second_sshd(sshd_hosts):
    target, jump = sshd_hosts(2)
    spec = target.spec(extra=f"-J root@{jump.address}:{jump.port}")
    gateway = execnet_cli.makegateway(spec)
    try:
        assert jump.connection_pids()  # the tunnel runs through the jump host's sshd
        channel = gateway.remote_exec("import os\nchannel.send(os.environ['SSH_CONNECTION'])")
        assert channel.receive(10).split()[2] == target.address
    finally:
        gateway.exit()


def test_proxy_jump_chain_of_two_hops(sshd_hosts):
    target, first, second = sshd_hosts(3)
    hops = f"root@{first.address}:{first.port},root@{second.address}:{second.port}"
    gateway = execnet_cli.makegateway(target.spec(extra=f"-J {hops}"))
    try:
        assert first.connection_pids() and second.connection_pids()
        assert gateway.remote_exec("channel.send(7)").receive(10) == 7
    finally:
        gateway.exit()


def test_proxy_command(sshd_host, tmp_path):
    relay = tmp_path / "relay.py"
    relay.write_text(
        "import os, socket, sys, threading\n"
        "s = socket.create_connection((sys.argv[1], int(sys.argv[2])))\n"
        "def pump():\n"
        "    while True:\n"
        "        data = os.read(0, 65536)\n"
        "        if not data:\n"
        "            s.shutdown(socket.SHUT_WR)\n"
        "            return\n"
        "        s.sendall(data)\n"
        "threading.Thread(target=pump, daemon=True).start()\n"
        "while True:\n"
        "    data = s.recv(65536)\n"
        "    if not data:\n"
        "        break\n"
        "    os.write(1, data)\n"
    )
    config = tmp_path / "config"
    config.write_text(f"Host *\n  ProxyCommand {sys.executable} {relay} %h %p\n")
    gateway = execnet_cli.makegateway(sshd_host.spec() + f"//ssh_config={config}")
    try:
        assert gateway.remote_exec("channel.send(6 * 7)").receive(10) == 42
    finally:
        gateway.exit()


def test_ssh_config_with_host_patterns(sshd_host, tmp_path):
    config = tmp_path / "config"
    config.write_text(
        "Host xnet-*\n"
        f"  HostName {sshd_host.address}\n"
        f"  Port {sshd_host.port}\n"
        "  User root\n"
        f"  IdentityFile {sshd_host.key}\n"
        f"  UserKnownHostsFile {sshd_host.known_hosts}\n"
        "Host *\n"
        "  Port 1\n"
        "  ForwardAgent no\n"
    )
    for spec in (f"ssh=xnet-alpha//ssh_config={config}", f"ssh=-F {config} xnet-beta"):
        gateway = execnet_cli.makegateway(spec)
        try:
            assert gateway.remote_exec("channel.send(1)").receive(10) == 1
        finally:
            gateway.exit()
    with pytest.raises(
        ConnectFailed, match=r"127\.0\.0\.2:1: cannot connect to port 1\b"
    ):  # only Host * applies
        execnet_cli.makegateway(f"ssh=-F {config} root@127.0.0.2")


# -- sudo ------------------------------------------------------------------------------------


def whoami(spec: str) -> int:
    gateway = execnet_cli.makegateway(spec)
    try:
        return gateway.remote_exec("import os\nchannel.send(os.geteuid())").receive(10)
    finally:
        gateway.exit()


def test_sudo_to_root_without_password(sshd_host, sudo_users):
    assert whoami(sshd_host.spec(user=sudo_users.nopass) + "//sudo=true") == 0


def test_sudo_as_another_user(sshd_host, sudo_users):
    import pwd

    uid = pwd.getpwnam(sudo_users.nopass).pw_uid
    assert whoami(sshd_host.spec(user="root") + f"//sudo={sudo_users.nopass}") == uid


def test_sudo_with_a_password(sshd_host, sudo_users, monkeypatch):
    spec = sshd_host.spec(user=sudo_users.passwd) + "//sudo=true"
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(AuthenticationFailed, match="XNET_SUDO_PASSWORD"):
        whoami(spec)
    monkeypatch.setenv("XNET_SUDO_PASSWORD", "wrong-password")
    with pytest.raises(AuthenticationFailed, match="refused the password") as info:
        whoami(spec)
    assert "wrong-password" not in str(info.value)
    monkeypatch.setenv("XNET_SUDO_PASSWORD", sudo_users.password)
    assert whoami(spec) == 0


# -- host key bookkeeping (no network) -----------------------------------------------------------


def test_known_hosts_matching(tmp_path):
    assert names_match(["[127.0.0.2]:2222"], "[127.0.0.2]:2222")
    assert not names_match(["[127.0.0.2]:2222"], "2:2222")
    assert names_match(["*.lab", "!bad.lab"], "good.lab")
    assert not names_match(["*.lab", "!bad.lab"], "bad.lab")
    assert names_match([hash_name("web01")], "web01")
    assert not names_match([hash_name("web01")], "web02")
    key_file = tmp_path / "k"
    line = write_ed25519_key(key_file)
    known = tmp_path / "known_hosts"
    known.write_text(
        f"# comment\n\ngarbage\nweb01 ssh-ed25519 !!notbase64!!\n"
        f"@cert-authority * {line}\n{hash_name('web01')} {line}\n@revoked web02 {line}\n"
    )
    found = load_known_hosts("web01", [str(known), str(tmp_path / "missing")])
    assert list(found.keys) == ["ssh-ed25519"] and not found.revoked
    assert load_known_hosts("web02", [str(known)]).revoked
    assert preferred_algorithms(found, ["rsa-sha2-512", "ssh-ed25519"]) == [
        "ssh-ed25519",
        "rsa-sha2-512",
    ]


def test_fixture_hosts_are_distinct(sshd_hosts):
    hosts = sshd_hosts(2)
    assert len({(h.address, h.port, h.pid) for h in hosts}) == 2
    assert all(Path(f"/proc/{h.pid}").exists() for h in hosts)


def test_chunk_pipe_copies_across_packets_and_ends():
    from paramiko.buffered_pipe import PipeTimeout

    from execnet_cli.transports.ssh.channel import ChunkPipe

    pipe = ChunkPipe()
    event = threading.Event()
    pipe.set_event(event)
    assert not event.is_set()
    pipe.feed(b"abc")
    pipe.feed(b"defgh")
    assert event.is_set() and len(pipe) == 8 and pipe.read_ready()
    buffer = bytearray(5)
    assert pipe.readinto(buffer) == 5 and buffer == b"abcde"
    assert pipe.read(10) == b"fgh"
    assert not event.is_set()
    with pytest.raises(PipeTimeout):
        pipe.readinto(buffer, timeout=0.01)
    pipe.feed(b"xyz")
    pipe.close()
    assert pipe.empty() == b"xyz"
    assert pipe.readinto(buffer) == 0 and pipe.read(4) == b""


# -- inventory hosts: opened from their fields ------------------------------------------------


@pytest.fixture
def spaced_key(sshd_host: SshdHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The client key under a directory with a space in its name, and a HOME whose
    known_hosts knows the host (an inventory host names no known_hosts file)."""
    key = tmp_path / "my keys" / "id"
    key.parent.mkdir()
    key.write_bytes(sshd_host.key.read_bytes())
    key.chmod(0o600)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(sshd_host.known_hosts_line() + "\n")
    monkeypatch.setenv("HOME", str(home))
    return key


def test_inventory_host_opens_from_its_fields(sshd_host: SshdHost, spaced_key: Path) -> None:
    import getpass

    from execnet_cli.inventory.model import Host

    host = Host(
        "box",
        address=sshd_host.address,
        port=sshd_host.port,
        user=getpass.getuser(),
        identity_file=str(spaced_key),
        connect_timeout=1.5,
    )
    group = execnet_cli.Group()
    try:
        gateway = group.makegateway(host.xspec())
        settings = gateway.transport.settings
        assert settings.connect_timeout == 1.5, "not rounded up to whole seconds"
        assert settings.identity_files == (str(spaced_key),)
        assert gateway.remote_exec("channel.send(6 * 7)").receive(10) == 42
    finally:
        group.terminate(5)
