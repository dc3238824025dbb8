"""Promises about what runs record, count and create that no other test checked
(docs/promises.md). Each test names the sentence it backs."""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

import pytest
from test_rolling import TWELVE

import execnet_cli
from execnet_cli._remote import relay as remote_relay
from execnet_cli.cli.ping import PROBE, probe_job
from execnet_cli.errors import BootstrapError
from execnet_cli.fleet.batches import BUDGET_SPENT, Amount, Rollout, plan
from execnet_cli.fleet.events import ERROR, FAILED, INTERRUPTED, TIMED_OUT
from execnet_cli.fleet.jobs import python_job
from execnet_cli.fleet.jobstart import JobStart
from execnet_cli.fleet.lastrun import load_state, record
from execnet_cli.inventory import Inventory


@pytest.mark.parametrize("outcome", [TIMED_OUT, ERROR, FAILED])
def test_the_budget_counts_timeouts_and_bugs(outcome: str) -> None:
    """docs/cli.md: "a host that failed, timed out, was unreachable or hit a bug of xnet's
    counts against it"."""
    rollout = Rollout(plan(Inventory.from_text(TWELVE).hosts(), Amount(4)), Amount(0))
    assert rollout.next_batch() is not None
    rollout.ended("n01", outcome)
    assert rollout.next_batch() is None and rollout.reason == BUDGET_SPENT


def test_an_interrupted_host_does_not_spend_the_budget() -> None:
    """docs/cli.md: "(an interrupted host does not: a signal stops the run anyway)"."""
    rollout = Rollout(plan(Inventory.from_text(TWELVE).hosts(), Amount(4)), Amount(0))
    assert rollout.next_batch() is not None
    for name in ("n01", "n02", "n03", "n04"):
        rollout.ended(name, INTERRUPTED)
    assert rollout.next_batch() is not None and rollout.reason == ""


def test_the_last_run_is_replaced_by_a_rename_never_rewritten(tmp_path: Path) -> None:
    """docs/cli.md: "The file is written to a temporary name and renamed, so it is always
    one whole record": a reader holding the old file keeps the old record whole."""
    record({"ok": ["a", "b"]}, "sh", "all", directory=tmp_path)
    held = tmp_path / "held.json"
    os.link(tmp_path / "last.json", held)  # what a reader has open meanwhile
    before = held.read_text()
    record({"failed": ["b"]}, "sh", "all", directory=tmp_path)
    assert held.read_text() == before  # untouched: the new record is another file
    assert load_state(None, "failed", tmp_path) == ["b"]
    assert (tmp_path / "last.json").stat().st_ino != held.stat().st_ino


@pytest.mark.parametrize("spawn", ["", "//spawn"])
def test_a_created_chdir_takes_the_umask(tmp_path: Path, spawn: str) -> None:
    """docs/inventories.md: chdir is "created with its missing parents (as `mkdir -p`, mode
    0777 less the umask)"."""
    target = tmp_path / "a" / "b"
    old = os.umask(0o027)
    group = execnet_cli.Group()
    try:
        gateway = group.makegateway(f"popen{spawn}//chdir={target}")
        assert gateway.remote_exec("import os; channel.send(os.getcwd())").receive(30) == str(
            target
        )
    finally:
        os.umask(old)
        group.terminate(5)
    for made in (tmp_path / "a", target):
        assert stat.S_IMODE(made.stat().st_mode) == 0o750


class HeldChannel:
    """The relay's upstream channel, with a controller that does not read: ``send`` waits
    until released, as a write into a full pipe would."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sent: list[list[tuple[object, ...]]] = []

    def send(self, batch: list[tuple[object, ...]]) -> None:
        self.release.wait(30)
        self.sent.append(batch)


def test_a_relays_upstream_output_is_bounded() -> None:
    """docs/relays.md: "Output waiting to go upstream is bounded (1 M characters): past
    that, the relay stops reading its hosts"."""
    channel, stopped = HeldChannel(), threading.Event()
    outbox = remote_relay._Outbox(channel, stopped)
    chunk = remote_relay.OUTBOX_LIMIT // 4
    put = 0

    def host_reader() -> None:
        nonlocal put
        for _ in range(40):  # 10 x the bound, if nothing held it back
            outbox.put(("o", 1, "x"), chunk)
            put += 1

    reader = threading.Thread(target=host_reader)
    reader.start()
    reader.join(2)
    assert reader.is_alive()  # the host's reader waits: nothing more is read from the host
    assert put * chunk <= 2 * remote_relay.OUTBOX_LIMIT + chunk  # one batch out, one waiting
    channel.release.set()
    reader.join(30)
    outbox.close()
    assert sum(len(batch) for batch in channel.sent) == 40  # and nothing was lost


def test_the_sudo_password_is_on_no_command_line_and_in_no_log(
    sshd_host, sudo_users, monkeypatch, caplog
) -> None:
    """docs/ssh.md: the sudo password "is never put on a command line and never logged"."""
    monkeypatch.setenv("XNET_SUDO_PASSWORD", sudo_users.password)
    caplog.set_level(logging.DEBUG)
    gateway = execnet_cli.makegateway(sshd_host.spec(user=sudo_users.passwd) + "//sudo=true")
    try:
        scan = (
            "import os\n"
            "lines = []\n"
            "for pid in os.listdir('/proc'):\n"
            "    try:\n"
            "        lines.append(open(f'/proc/{pid}/cmdline', 'rb').read())\n"
            "    except OSError:\n"
            "        pass\n"
            "channel.send((os.geteuid(), lines))"
        )
        euid, cmdlines = gateway.remote_exec(scan).receive(30)
    finally:
        gateway.exit()
    assert euid == 0
    assert any(b"sudo\0" in line and b"-S" in line for line in cmdlines)  # ours, seen
    secret = sudo_users.password.encode()
    assert not [line for line in cmdlines if secret in line]
    assert sudo_users.password not in caplog.text


def test_ssh_errors_show_the_last_4_kib_of_remote_stderr(sshd_host, tmp_path: Path) -> None:
    """docs/ssh.md: "The channel's stderr ... its last 4 KiB are kept and shown in errors"."""
    fake = tmp_path / "python-that-fails"
    fake.write_text(
        "#!/bin/sh\n"
        "printf 'HEAD-OF-IT' >&2\n"
        "head -c 20000 /dev/zero | tr '\\0' x >&2\n"
        "printf 'END-OF-IT\\n' >&2\n"
        "exit 1\n"
    )
    fake.chmod(0o755)
    with pytest.raises(BootstrapError) as info:
        execnet_cli.makegateway(sshd_host.spec(python=str(fake)))
    message = str(info.value)
    assert "END-OF-IT" in message
    assert "HEAD-OF-IT" not in message
    assert 2000 < message.count("x") <= 4096


def test_pings_rtt_is_one_request_and_its_answer_on_the_open_gateway() -> None:
    """docs/cli.md: `xnet ping`'s RTT is "the time of one request and its answer on it":
    the probe waits for the open gateway. Sent behind the bootstrap, as `xnet run`'s jobs
    are, its answer came with the opening and RTT read ~0 ms."""
    assert not JobStart(probe_job()).applies()
    assert JobStart(python_job(PROBE)).applies()  # what the probe would be as a run's job
