"""Unknown host keys met by ``xnet sh``/``ping`` on many sshd hosts at once (``fleet.hostkeys``,
``cli.hostkeys``): one list and one question at a terminal, one line per host and one hint
in a pipe, ``--accept-new`` recording them all, a changed key refused while the rest run,
and hosts behind a jump host whose key is unknown too."""

from __future__ import annotations

import base64
import getpass
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from faults_helpers import run_xnet, ssh_inventory, xnet_env
from shell_helpers import spawned, wait_end
from sshd_fixtures import SshdCluster, SshdHost, find_sshd

from execnet_cli import UnknownHostKey, makegateway
from execnet_cli.fleet.hostkeys import REFUSED
from execnet_cli.transports.ssh.hostkeys import load_known_hosts


def fingerprint(host: SshdHost) -> str:
    """The SHA256 fingerprint of ``host``'s key, as ssh-keygen -l shows it."""
    _, blob = host.host_key_line.split()[:2]
    return paramiko.Ed25519Key(data=base64.b64decode(blob)).fingerprint


def name_of(host: SshdHost) -> str:
    return f"[{host.address}]:{host.port}"


def recorded(home: Path, hosts: list[SshdHost]) -> list[SshdHost]:
    """The hosts whose key ``home``'s known_hosts lists (names may be hashed)."""
    path = [str(home / ".ssh" / "known_hosts")]
    return [h for h in hosts if load_known_hosts(name_of(h), path).known]


def setup(tmp_path: Path, hosts: list[SshdHost], known: list[SshdHost] = ()) -> tuple:  # type: ignore[assignment]
    """An inventory of ``hosts`` (n01 ...) and a HOME whose known_hosts lists only ``known``."""
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(ssh_inventory(hosts))
    home = tmp_path / "home"
    return str(inventory), home, xnet_env(home, known)


def rows(out: bytes) -> dict[str, dict]:
    return {row["name"]: row for row in map(json.loads, out.decode().splitlines())}


@pytest.fixture
def eight(sshd_hosts) -> list[SshdHost]:  # type: ignore[no-untyped-def]
    return sshd_hosts(8)


def test_a_pipe_refuses_with_one_line_per_host_and_one_hint(eight, tmp_path):  # type: ignore[no-untyped-def]
    """Four hosts known, four not: the known ones run, the others are refused, not asked."""
    inventory, home, env = setup(tmp_path, eight, known=eight[:4])
    done = run_xnet(["sh", "echo hi", "-i", inventory, "--json"], env)
    assert done.returncode == 3, done.stderr.decode()
    result = rows(done.stdout)
    ok = sorted(n for n, r in result.items() if r["status"] == "ok")
    assert ok == ["n01", "n02", "n03", "n04"]
    for name in ("n05", "n06", "n07", "n08"):
        assert result[name]["status"] == "unreachable"
        assert result[name]["error"] == REFUSED
    err = done.stderr.decode().splitlines()
    for number, host in enumerate(eight[4:], 5):  # one line each: host, name, type, key
        [line] = [x for x in err if fingerprint(host) in x]
        assert line.split() == [f"n{number:02d}", name_of(host), "ssh-ed25519", fingerprint(host)]
    assert sum("--accept-new" in line for line in err) == 1, err
    assert not any("?" in line for line in err)  # nothing asked
    assert recorded(home, eight[4:]) == []


def test_the_gathered_report_folds_the_refused_hosts(eight, tmp_path):  # type: ignore[no-untyped-def]
    inventory, _, env = setup(tmp_path, eight)
    done = run_xnet(["sh", "echo hi", "-i", inventory], env)
    out = done.stdout.decode()
    assert done.returncode == 3
    assert "n[01-08] (8): unreachable" in out and out.count(REFUSED) == 1, out


def test_one_question_at_a_terminal_then_the_hosts_run(eight, tmp_path):  # type: ignore[no-untyped-def]
    inventory, home, env = setup(tmp_path, eight)
    args = [sys.executable, "-m", "execnet_cli", "sh", "echo hi-$((20+1))", "-i", inventory]
    with spawned(args, env, rows=40, cols=120) as child:
        child.expect(r"Accept these 8 keys and record them in \S+known_hosts\? \[y/N\] ")
        listed = child.before
        child.sendline("y")
        child.expect("hi-21")
        child.expect(r"8 ok\S*, 0 failed, 0 unreachable")
        rest = child.before
        assert wait_end(child) == 0
    assert "8 host keys not in known_hosts, for 8 hosts:" in listed
    for host in eight:
        assert fingerprint(host) in listed
    assert "Accept" not in rest  # one question, not one per host
    assert recorded(home, eight) == eight


def test_no_at_the_terminal_refuses_and_records_nothing(eight, tmp_path):  # type: ignore[no-untyped-def]
    inventory, home, env = setup(tmp_path, eight, known=eight[:6])
    args = [sys.executable, "-m", "execnet_cli", "sh", "echo hi", "-i", inventory]
    with spawned(args, env, rows=40, cols=120) as child:
        child.expect(r"Accept these 2 keys .*\[y/N\] ")
        child.sendline("")
        child.expect("host keys not accepted; 2 hosts not run")
        assert wait_end(child) == 3
    assert recorded(home, eight[6:]) == []


def test_accept_new_records_all_then_a_changed_key_is_refused(eight, tmp_path):  # type: ignore[no-untyped-def]
    inventory, home, env = setup(tmp_path, eight)
    done = run_xnet(["sh", "echo hi", "-i", inventory, "--json", "--accept-new"], env)
    assert done.returncode == 0, done.stderr.decode()
    assert all(r["status"] == "ok" and r["stdout"] == "hi\n" for r in rows(done.stdout).values())
    assert "recording 8 keys" in done.stderr.decode()  # listed, never a silent accept
    assert recorded(home, eight) == eight

    # n03's recorded key replaced by another's: a changed key, refused even with --accept-new
    lines = [h.known_hosts_line() for h in eight]
    lines[2] = f"{name_of(eight[2])} {eight[3].host_key_line}"
    (home / ".ssh" / "known_hosts").write_text("\n".join(lines) + "\n")
    done = run_xnet(["sh", "echo hi", "-i", inventory, "--json", "--accept-new"], env)
    result = rows(done.stdout)
    assert done.returncode == 3
    assert sorted(n for n, r in result.items() if r["status"] == "ok") == [
        "n01", "n02", "n04", "n05", "n06", "n07", "n08"
    ]  # fmt: skip
    assert result["n03"]["status"] == "unreachable"
    assert "HOST KEY CHANGED" in result["n03"]["error"]
    assert "recording" not in done.stderr.decode()
    assert (home / ".ssh" / "known_hosts").read_text().count("\n") == 8  # nothing added


def test_rolling_batches_meet_unknown_keys_batch_by_batch(eight, tmp_path):  # type: ignore[no-untyped-def]
    """Each batch holds its hosts with unknown keys; a pipe refuses them with one hint for
    the whole run, and --accept-new lets every batch run."""
    inventory, home, env = setup(tmp_path, eight, known=eight[::2])
    done = run_xnet(["sh", "echo hi", "-i", inventory, "--json", "--batch", "4"], env)
    assert done.returncode == 3, done.stderr.decode()
    result = rows(done.stdout)
    assert sorted(n for n, r in result.items() if r["status"] == "ok") == [
        "n01", "n03", "n05", "n07"
    ]  # fmt: skip
    assert {result[n]["error"] for n in ("n02", "n04", "n06", "n08")} == {REFUSED}
    err = done.stderr.decode().splitlines()
    assert sum("--accept-new" in line for line in err) == 1, err

    done = run_xnet(
        ["sh", "echo hi", "-i", inventory, "--json", "--batch", "4", "--accept-new"], env
    )
    assert done.returncode == 0, done.stderr.decode()
    assert all(r["status"] == "ok" for r in rows(done.stdout).values())
    assert recorded(home, eight) == eight


def test_explicit_strict_checking_yes_is_not_asked_about(eight, tmp_path):  # type: ignore[no-untyped-def]
    """``StrictHostKeyChecking yes`` means never add a key: refused with the full message."""
    _, _, env = setup(tmp_path, eight)
    config = tmp_path / "home" / ".ssh" / "config"
    config.write_text("Host *\n  StrictHostKeyChecking yes\n")
    inventory = tmp_path / "strict.yaml"
    inventory.write_text(ssh_inventory(eight[:2]))  # ~/.ssh/config is read (HOME)
    done = run_xnet(["ping", "-i", str(inventory), "--json", "--accept-new"], env)
    result = rows(done.stdout)
    assert done.returncode == 3, done.stderr.decode()
    assert all("unknown host key" in r["error"] for r in result.values()), result


def test_the_library_error_carries_the_key(sshd_host, tmp_path):  # type: ignore[no-untyped-def]
    known = tmp_path / "known_hosts"
    spec = sshd_host.spec().replace(str(sshd_host.known_hosts), str(known))
    with pytest.raises(UnknownHostKey) as caught:
        makegateway(spec)
    error = caught.value
    assert (error.name, error.key_type, error.askable) == (name_of(sshd_host), "ssh-ed25519", True)
    assert error.fingerprint == fingerprint(sshd_host)
    assert "accept-new" in str(error) and not known.exists()


@pytest.fixture
def jump(tmp_path: Path, eight: list[SshdHost]) -> Iterator[SshdHost]:
    """A jump host of this test's own, with sshd's default MaxStartups."""
    sshd = find_sshd()
    assert sshd is not None
    (tmp_path / "jump").mkdir()
    cluster = SshdCluster(sshd, tmp_path / "jump", max_startups="10:30:100")
    try:
        [host] = cluster.start(1)
        with cluster.authorized_keys.open("a") as keys:  # the targets' client key
            keys.write(Path(f"{eight[0].key}.pub").read_text())
        yield host
    finally:
        cluster.stop()


def behind(jump: SshdHost, targets: list[SshdHost], count: int, tmp_path: Path) -> Path:
    """An inventory of ``count`` hosts t00... on ``targets`` (round robin) behind ``jump``."""
    names = [f"t{k:02d}" for k in range(count)]
    text = ssh_inventory([targets[k % len(targets)] for k in range(count)], names).replace(
        "vars:\n", f"vars:\n  proxy_jump: {getpass.getuser()}@{jump.address}:{jump.port}\n", 1
    )
    inventory = tmp_path / "behind.yaml"
    inventory.write_text(text)
    return inventory


def test_hosts_behind_a_jump_host_with_unknown_keys(eight, jump, tmp_path):  # type: ignore[no-untyped-def]
    """24 hosts on 8 sshd behind one jump host, no key known: refused in a pipe with the jump
    host's key listed once; with --accept-new, the jump host's key, then the targets', then all
    24 run."""
    inventory = behind(jump, eight, 24, tmp_path)
    home = tmp_path / "home"
    env = xnet_env(home)

    done = run_xnet(["sh", "echo hi", "-i", str(inventory)], env, timeout=120)
    err = done.stderr.decode()
    assert done.returncode == 3
    [line] = [x for x in err.splitlines() if fingerprint(jump) in x]
    assert line.split()[:2] == ["t[00-23]", name_of(jump)], err

    done = run_xnet(["sh", "echo hi", "-i", str(inventory), "--accept-new", "--json"], env, 300)
    err = done.stderr.decode()
    assert done.returncode == 0, err[-2000:]
    assert len(rows(done.stdout)) == 24
    assert "recording 1 key" in err and "recording 8 keys" in err
    assert recorded(home, [jump, *eight]) == [jump, *eight]


def test_hosts_via_a_carrier_with_an_unknown_key_wait_for_it(eight, tmp_path):  # type: ignore[no-untyped-def]
    """Three hosts ``via`` a carrier that is not selected: its key is asked about for them."""
    text = ssh_inventory(eight[:4], ["carrier", "n02", "n03", "n04"])
    for name in ("n02", "n03", "n04"):
        text = text.replace(f"  {name}: {{", f"  {name}: {{via: carrier, ")
    inventory = tmp_path / "via.yaml"
    inventory.write_text(text)
    home = tmp_path / "home"
    env = xnet_env(home)
    args = ["sh", "echo hi", "-i", str(inventory), "-H", "n[02-04]"]

    done = run_xnet(args, env)
    err = done.stderr.decode()
    assert done.returncode == 3
    [line] = [x for x in err.splitlines() if fingerprint(eight[0]) in x]
    assert line.split()[:2] == ["n[02-04]", name_of(eight[0])], err

    done = run_xnet([*args, "--accept-new", "--json"], env)
    err = done.stderr.decode()
    assert done.returncode == 0, err[-2000:]
    assert sorted(rows(done.stdout)) == ["n02", "n03", "n04"]
    assert "recording 1 key" in err and "recording 3 keys" in err
    assert recorded(home, eight[:4]) == eight[:4]


def test_ctrl_c_at_the_question_stops_the_run_and_records_nothing(eight, tmp_path):  # type: ignore[no-untyped-def]
    inventory, home, env = setup(tmp_path, eight[:2])
    args = [sys.executable, "-m", "execnet_cli", "sh", "echo hi", "-i", inventory]
    with spawned(args, env, rows=40, cols=120) as child:
        child.expect(r"\[y/N\] ")
        child.sendintr()
        child.expect("stopped by SIGINT")
        assert wait_end(child) == 130
    assert recorded(home, eight[:2]) == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_64_hosts_behind_one_jump_host_all_keys_new(sshd_hosts, jump, tmp_path):  # type: ignore[no-untyped-def]
    """64 sshd hosts behind one jump host (MaxStartups 10:30:100), no key known, --accept-new:
    65 keys recorded in two lists, every host runs, none dropped."""
    targets = sshd_hosts(64)
    inventory = behind(jump, targets, 64, tmp_path)
    home = tmp_path / "home"
    args = ["sh", "echo hi", "-i", str(inventory), "--accept-new", "--json"]
    done = run_xnet(args, xnet_env(home), timeout=300)
    err = done.stderr.decode()
    assert done.returncode == 0, err[-3000:]
    result = rows(done.stdout)
    assert len(result) == 64 and all(r["stdout"] == "hi\n" for r in result.values())
    assert "recording 1 key" in err and "recording 64 keys" in err
    assert recorded(home, [jump, *targets]) == [jump, *targets]
