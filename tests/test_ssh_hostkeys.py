"""Recording accepted host keys: once, atomically, with the file's mode (issue #16, defect 8)."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sshd_fixtures import SshdHost, write_ed25519_key

import execnet_cli
from execnet_cli.errors import HostKeyError
from execnet_cli.transports.ssh.hostkeys import load_known_hosts, record_host_key
from execnet_cli.transports.ssh.settings import SSHSettings

PARALLEL = 8


@pytest.fixture(autouse=True)
def no_agent(monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


def accept_new_spec(host: SshdHost, known: Path, extra: str = "") -> str:
    spec = host.spec(extra=f"-o StrictHostKeyChecking=accept-new {extra}".strip())
    return spec.replace(str(host.known_hosts), str(known))


def recorded_keys(host: SshdHost, known: Path) -> list[str]:
    found = load_known_hosts(f"[{host.address}]:{host.port}", [str(known)])
    return [key.get_base64() for key in found.keys.get("ssh-ed25519", [])]


def public_key(line: str):  # type: ignore[no-untyped-def]
    import paramiko

    kind, blob = line.split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(blob))


@pytest.mark.parametrize("hashed", [False, True])
def test_parallel_accept_new_records_the_key_once(sshd_host, tmp_path, hashed):
    known = tmp_path / "dot-ssh" / "known_hosts"  # neither the file nor its directory exists
    spec = accept_new_spec(sshd_host, known, f"-o HashKnownHosts={'yes' if hashed else 'no'}")
    barrier = threading.Barrier(PARALLEL)
    gateways, errors = [], []

    def open_one() -> None:
        barrier.wait()
        try:
            gateways.append(execnet_cli.makegateway(spec))
        except Exception as exc:  # reported below
            errors.append(exc)

    umask = os.umask(0o022)  # the old code's file took the umask's 0644
    try:
        threads = [threading.Thread(target=open_one) for _ in range(PARALLEL)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        os.umask(umask)
        for gateway in gateways:
            gateway.exit()
    assert not errors and len(gateways) == PARALLEL
    assert len(known.read_text().splitlines()) == 1
    assert recorded_keys(sshd_host, known) == [sshd_host.host_key_line.split()[1]]
    assert known.read_text().startswith("|1|" if hashed else "[")
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    assert sorted(p.name for p in known.parent.iterdir()) == ["known_hosts", "known_hosts.lock"]


def test_existing_mode_and_content_are_kept(sshd_host, tmp_path):
    known = tmp_path / "known_hosts"
    other = write_ed25519_key(tmp_path / "other")
    known.write_text(f"# ours\nelsewhere {other}")  # no newline at the end
    known.chmod(0o640)
    gateway = execnet_cli.makegateway(accept_new_spec(sshd_host, known))
    gateway.exit()
    lines = known.read_text().splitlines()
    assert lines[:2] == ["# ours", f"elsewhere {other}"] and len(lines) == 3
    assert recorded_keys(sshd_host, known) == [sshd_host.host_key_line.split()[1]]
    assert stat.S_IMODE(known.stat().st_mode) == 0o640


def test_a_symlinked_file_is_updated_where_it_lives(sshd_host, tmp_path):
    real = tmp_path / "dotfiles" / "known_hosts"
    real.parent.mkdir()
    real.write_text("")
    real.chmod(0o644)
    link = tmp_path / "known_hosts"
    link.symlink_to(real)
    gateway = execnet_cli.makegateway(accept_new_spec(sshd_host, link))
    gateway.exit()
    assert link.is_symlink()
    assert recorded_keys(sshd_host, real) == [sshd_host.host_key_line.split()[1]]
    assert stat.S_IMODE(real.stat().st_mode) == 0o644


RECORD = """\
import sys
from test_ssh_hostkeys import public_key
from execnet_cli.transports.ssh.hostkeys import record_host_key
from execnet_cli.transports.ssh.settings import SSHSettings

settings = SSHSettings("web", "web", 2222, "me", user_known_hosts_files=(sys.argv[1],))
key = public_key(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
print(record_host_key(settings, key), flush=True)
"""


def test_processes_agree_through_the_lock_file(tmp_path):
    """Four xnet processes accepting one key at once: one writes, three find it written."""
    known = tmp_path / "known_hosts"
    line = write_ed25519_key(tmp_path / "host_key")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RECORD, str(known), line],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for proc in procs:  # as close together as we can
            assert proc.stdin is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
        answers = sorted(proc.communicate(timeout=60)[0].strip() for proc in procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert known.read_text().splitlines() == [f"[web]:2222 {line}"]
    assert answers == ["False", "False", "False", "True"]


def test_a_different_key_recorded_meanwhile_is_refused(tmp_path):
    known = tmp_path / "known_hosts"
    first = write_ed25519_key(tmp_path / "first")
    second = write_ed25519_key(tmp_path / "second")
    known.write_text(f"[web]:2222 {first}\n")
    settings = SSHSettings("web", "web", 2222, "me", user_known_hosts_files=(str(known),))
    assert record_host_key(settings, public_key(first)) is False
    with pytest.raises(HostKeyError, match="HOST KEY CHANGED"):
        record_host_key(settings, public_key(second))
    assert known.read_text() == f"[web]:2222 {first}\n"


def test_an_unknown_key_refused_a_moment_ago_is_refused_again_without_connecting(tmp_path):  # type: ignore[no-untyped-def]
    """Many hosts behind one jump host with an unknown key: one handshake says so, the others
    are refused at once (not 64 handshakes cut after the key exchange, which sshd's
    MaxStartups counts). Shown here with the server gone after the first refusal."""
    from sshd_fixtures import SshdCluster, find_sshd

    sshd = find_sshd()
    if sshd is None:
        pytest.skip("OpenSSH sshd not found")
    (tmp_path / "own").mkdir()
    cluster = SshdCluster(sshd, tmp_path / "own")
    try:
        [host] = cluster.start(1)
        known = tmp_path / "known_hosts"
        spec = host.spec().replace(str(host.known_hosts), str(known))
        with pytest.raises(execnet_cli.UnknownHostKey) as first:
            execnet_cli.makegateway(spec)
    finally:
        cluster.stop()
    with pytest.raises(execnet_cli.UnknownHostKey) as again:  # the server is gone
        execnet_cli.makegateway(spec)
    assert again.value.fingerprint == first.value.fingerprint
    known.write_text(host.known_hosts_line() + "\n")  # known now: connects (and fails)
    with pytest.raises(execnet_cli.ConnectFailed):
        execnet_cli.makegateway(spec)


def test_xnet_sh_direct_on_8_names_of_one_new_host_records_it_once(
    sshd_host, tmp_path, monkeypatch
):  # type: ignore[no-untyped-def]
    """The same on ``xnet sh``'s direct path (the session channel): 8 hosts of a run, one
    server, accept-new: one line, mode 0600."""
    import getpass

    from execnet_cli.fleet import direct
    from execnet_cli.fleet.jobs import shell_job
    from execnet_cli.fleet.runner import run_job
    from execnet_cli.inventory import Host

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    known = tmp_path / "dot-ssh" / "known_hosts"
    hosts = [
        Host(
            f"n{k}",
            transport="ssh",
            address=sshd_host.address,
            port=sshd_host.port,
            user=getpass.getuser(),
            identity_file=str(sshd_host.key),
            python="/nonexistent/python3",  # only the direct path can run the command
            ssh_options=(
                ("stricthostkeychecking", "accept-new"),
                ("userknownhostsfile", str(known)),
            ),
        )
        for k in range(PARALLEL)
    ]
    job = shell_job("echo ok")
    assert all(direct.applies(job, host) for host in hosts)
    umask = os.umask(0o022)
    try:
        results = run_job(hosts, job)
    finally:
        os.umask(umask)
    assert {r.stdout for r in results.values()} == {"ok\n"}, results
    assert len(known.read_text().splitlines()) == 1
    assert recorded_keys(sshd_host, known) == [sshd_host.host_key_line.split()[1]]
    assert stat.S_IMODE(known.stat().st_mode) == 0o600


def _new_public_line() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.generate().public_key()
    raw = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode()


def test_lines_are_found_by_name_pattern_negation_and_hash_in_file_order(tmp_path):
    """The index by plain names keeps OpenSSH's matching: patterns, ``!``, hashed names,
    case, ``@revoked``, and the file's order among them; a changed file is read again."""
    from execnet_cli.transports.ssh.hostkeys import hash_name

    keys = [_new_public_line() for _ in range(8)]
    known = tmp_path / "known_hosts"
    lines = [
        f"a.example,10.0.0.1 {keys[1]}",
        f"*.example {keys[2]}",
        f"!c.example,*.example {keys[3]}",
        f"{hash_name('d.example')} {keys[4]}",
        f"@revoked a.example {keys[5]}",
        f"A.EXAMPLE {keys[6]}",
        *(f"h{i}.other {keys[0]}" for i in range(50)),
    ]
    known.write_text("\n".join(lines) + "\n")

    def blobs(name: str) -> list[int]:
        found = load_known_hosts(name, [str(known)])
        return [
            keys.index(f"ssh-ed25519 {k.get_base64()}") for k in found.keys.get("ssh-ed25519", [])
        ]

    assert blobs("a.example") == [1, 2, 3, 6]
    assert load_known_hosts("a.example", [str(known)]).sources == {"ssh-ed25519": f"{known}:1"}
    revoked = load_known_hosts("a.example", [str(known)]).revoked
    assert [f"ssh-ed25519 {k.get_base64()}" for k in revoked] == [keys[5]]
    assert blobs("b.example") == [2, 3]
    assert blobs("c.example") == [2]
    assert blobs("d.example") == [2, 3, 4]
    assert blobs("10.0.0.1") == [1]
    assert blobs("h7.other") == [0]
    assert blobs("nowhere") == []
    with known.open("a") as handle:
        handle.write(f"nowhere {keys[7]}\n")
    assert blobs("nowhere") == [7]
