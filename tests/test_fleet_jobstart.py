"""The job sent right behind the bootstrap (``before_ready``, ``fleet.jobstart``): it runs,
fails and is refused as a job sent after the ready message would be."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
from inventory_helpers import ssh_host
from sshd_fixtures import SshdHost

import execnet_cli
from execnet_cli.errors import BootstrapError, RemoteError
from execnet_cli.fleet.events import FAILED, OK, UNREACHABLE
from execnet_cli.fleet.jobs import python_job
from execnet_cli.fleet.jobstart import JobStart
from execnet_cli.fleet.runner import run_job
from execnet_cli.gateway import Gateway
from execnet_cli.inventory import Host

SYSTEM_PYTHON = "/usr/bin/python3"


def test_a_request_sent_before_ready_runs_once_the_worker_is_ready() -> None:
    sent: list[Any] = []

    def early(gateway: Gateway) -> None:
        sent.append(gateway.remote_exec("channel.send(channel.receive() * 2)"))

    group = execnet_cli.Group()
    try:
        gateway = group.makegateway("popen", before_ready=early)
        (channel,) = sent
        channel.send(21)
        assert channel.receive(10) == 42
        channel.waitclose(10)
        assert gateway.remote_exec("channel.send(1)").receive(10) == 1
    finally:
        group.terminate()


def test_an_impossible_chdir_refuses_the_early_request(tmp_path: Path) -> None:
    """The request is in the worker's stream before it knows it cannot serve: it must never
    run (in the wrong directory)."""
    (tmp_path / "file").write_text("")
    marker = tmp_path / "ran"
    sent: list[Any] = []

    def early(gateway: Gateway) -> None:
        sent.append(gateway.remote_exec(f"open({str(marker)!r}, 'w').close()"))

    group = execnet_cli.Group()
    try:
        with pytest.raises(BootstrapError, match="exists and is not a directory"):
            group.makegateway(f"popen//chdir={tmp_path}/file/sub", before_ready=early)
    finally:
        group.terminate()
    assert sent and not marker.exists()
    with pytest.raises((RemoteError, EOFError)):
        sent[0].waitclose(10)


def test_an_impossible_chdir_in_a_run_leaves_the_job_unrun(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    marker = tmp_path / "ran"
    host = Host("w1", transport="popen", chdir=f"{tmp_path}/file/sub")
    ran = run_job([host], python_job(f"open({str(marker)!r}, 'w').close()"))["w1"]
    assert ran.status == UNREACHABLE and "not a directory" in (ran.error or ""), ran
    assert not marker.exists()


def test_an_early_job_that_raises_fails_with_its_traceback() -> None:
    host = Host("w1", transport="popen")
    ran = run_job([host], python_job("print('before')\nraise KeyError('boom')"))["w1"]
    assert (ran.status, ran.stdout) == (FAILED, "before\n"), ran
    assert ran.error == "KeyError: 'boom'"


def test_a_worker_that_dies_during_its_bootstrap_is_reported_not_hung(tmp_path: Path) -> None:
    """It reads part of the bootstrap and exits: the early request finds the pipe closed
    (or is never read), and the host is unreachable, saying how the worker ended."""
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/sh\nhead -c 100 >/dev/null\necho dying in the bootstrap >&2\nexit 3\n"
    )
    python.chmod(0o755)
    host = Host("w1", transport="popen", python=str(python))
    ran = run_job([host], python_job("print('never')"))["w1"]
    assert ran.status == UNREACHABLE, ran
    assert "status 3" in (ran.error or ""), ran
    assert ran.stdout == ""


def test_jobs_with_forwarded_imports_are_not_sent_early() -> None:
    from execnet_cli.imports import ImportPolicy

    policy = ImportPolicy.from_directories([str(Path(__file__).parent)])
    assert not JobStart(python_job("pass", imports=policy)).applies()
    assert JobStart(python_job("pass")).applies()


@pytest.mark.skipif(shutil.which(SYSTEM_PYTHON) is None, reason=f"no {SYSTEM_PYTHON}")
def test_early_jobs_over_ssh_run_and_fail_as_before(
    sshd_host: SshdHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = ssh_host(sshd_host, tmp_path / "home", monkeypatch)
    host = dataclasses.replace(host, chdir=str(tmp_path / "wd"))
    ok = run_job([host], python_job("import os; print(os.getcwd())"))["far"]
    assert ok.status == OK and ok.stdout.strip() == str(tmp_path / "wd"), ok
    raised = run_job([host], python_job("1/0"))["far"]
    assert raised.status == FAILED and raised.error == "ZeroDivisionError: division by zero"
    (tmp_path / "file").write_text("")
    refused = dataclasses.replace(host, chdir=str(tmp_path / "file" / "sub"))
    marker = tmp_path / "ran"
    ran = run_job([refused], python_job(f"open({str(marker)!r}, 'w').close()"))["far"]
    assert ran.status == UNREACHABLE and "not a directory" in (ran.error or ""), ran
    assert not marker.exists()
