"""Text that is no job's output but a host's: attributed to it, never loose on our stderr."""

from __future__ import annotations

import getpass
import json
import logging
import shutil
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from sshd_fixtures import SshdHost

from execnet_cli.cli import main
from execnet_cli.fleet import strays

#: A "login shell" that says something on stdout and refuses: what nologin does.
NOLOGIN = """\
#!/bin/sh
echo "This account is currently not available."
exit 1
"""


def test_records_and_stderr_of_a_hosts_threads_go_to_that_host() -> None:
    taken: list[tuple[str, str]] = []
    worker = threading.Thread(target=lambda: None, name="xnet-ssh-stderr-10.0.0.7")

    def owner(thread: threading.Thread) -> str | None:
        return {"MainThread": "web1", worker.name: "web2"}.get(thread.name)

    def report(name: str, text: str) -> bool:
        taken.append((name, text))
        return True

    logger = logging.getLogger("execnet_cli.test_strays")
    with strays.capture(owner, report):
        logger.warning("gateway %r: corrupt stream", "web1")
        logger.info("below the level: not taken")
        sys.stderr.write("from the main thread: not an ssh worker's\n")

        def write() -> None:
            sys.stderr.write("bash: warning: setlocale\n")

        worker = threading.Thread(target=write, name=worker.name)
        worker.start()
        worker.join()
    assert taken == [
        ("web1", "gateway 'web1': corrupt stream\n"),
        ("web2", "bash: warning: setlocale\n"),
    ]


def test_unattributed_records_are_said_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As logging's last resort would say them: unless another handler sees them."""
    monkeypatch.setattr(logging.getLogger("execnet_cli"), "propagate", False)  # pytest's
    with strays.capture(lambda thread: None, lambda name, text: False):
        logging.getLogger("execnet_cli.test_strays").error("nobody's: %s", "lost")
    assert capsys.readouterr().err == "xnet: nobody's: lost\n"


@pytest.fixture
def nologin_inventory(env: Path) -> Path:
    shell = env / "nologin.sh"
    shell.write_text(NOLOGIN)
    shell.chmod(0o755)
    inventory = env / "nologin.yaml"
    inventory.write_text(
        "hosts:\n"
        "  good: {transport: popen}\n"
        f"  wronguser: {{transport: popen, python: {shell}}}\n"
    )
    return inventory


def test_a_gateways_log_line_is_in_its_hosts_result(nologin_inventory: Path) -> None:
    result = CliRunner().invoke(main, ["run", "-i", str(nologin_inventory), "--json", "print(1)"])
    assert result.exit_code == 3, result.output
    records = {r["name"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert records["good"]["log"] == ""
    wrong = records["wronguser"]
    assert wrong["status"] == "unreachable"
    assert "gateway 'wronguser': corrupt stream" in wrong["log"]
    assert result.stderr == ""  # nothing loose: scripts read --json


def test_the_log_line_shows_in_the_hosts_block(nologin_inventory: Path) -> None:
    result = CliRunner().invoke(main, ["run", "-i", str(nologin_inventory), "print(1)"])
    lines = result.stdout.splitlines()
    block = lines[lines.index(next(x for x in lines if x.startswith("wronguser (1)"))) :]
    assert any("gateway 'wronguser': corrupt stream" in line for line in block)
    assert "corrupt stream" not in result.stderr


SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(shutil.which(SYSTEM_PYTHON) is None, reason=f"no {SYSTEM_PYTHON}")
def test_an_ssh_workers_stray_stderr_is_its_hosts(
    sshd_host: SshdHost, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = env / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(sshd_host.known_hosts_line() + "\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    inventory = env / "ssh.yaml"
    inventory.write_text(
        "hosts:\n"
        f"  far: {{transport: ssh, address: {sshd_host.address}, port: {sshd_host.port},"
        f" user: {getpass.getuser()}, identity_file: {sshd_host.key},"
        f" python: {SYSTEM_PYTHON}}}\n"
    )
    code = "import os, time; os.write(2, b'stray from the worker\\n'); time.sleep(0.5); print('ok')"
    result = CliRunner().invoke(main, ["run", "-i", str(inventory), "--json", code])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["stdout"] == "ok\n"
    assert record["log"] == "stray from the worker\n"
    assert "stray" not in result.stderr
