"""popen workers as another user through ``sudo -n`` (``popen//sudo=USER``)."""

from __future__ import annotations

import pwd
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from proc_helpers import SUDO_USER, pid_alive, sudo_unavailable, wait_gone

import execnet_cli
from execnet_cli import AuthenticationFailed, InterpreterNotFound, SpecError
from execnet_cli.cli import main

USER = SUDO_USER
WHO_AND_WHERE = "import os; channel.send((os.getuid(), os.access('.', os.R_OK | os.X_OK)))"


@pytest.fixture(scope="module")
def nobody_uid() -> int:
    """The uid of ``nobody``, once sudo is known to switch to it without a password."""
    try:
        uid = pwd.getpwnam(USER).pw_uid
    except KeyError:
        pytest.skip(f"there is no user {USER!r} here")
    reason = sudo_unavailable(USER)
    if reason:
        pytest.skip(reason)
    return uid


@pytest.fixture
def locked_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Our working directory, which the sudo user may not enter."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    monkeypatch.chdir(locked)
    return locked


def test_spec_sudo_runs_the_worker_as_that_user(nobody_uid: int, locked_cwd: Path) -> None:
    gateway = execnet_cli.makegateway(f"popen//sudo={USER}")
    try:
        uid, cwd_usable = gateway.remote_exec(WHO_AND_WHERE).receive(10)
    finally:
        gateway.exit()
    assert uid == nobody_uid
    assert cwd_usable, "a directory the user cannot enter is not its working directory"


def test_sudo_true_is_root_through_sudo_and_never_forked(nobody_uid: int) -> None:
    gateway = execnet_cli.makegateway("popen//sudo=true")
    try:
        source = "import os; channel.send((os.getuid(), open(f'/proc/{os.getppid()}/comm').read()))"
        uid, parent = gateway.remote_exec(source).receive(10)
    finally:
        gateway.exit()
    assert (uid, parent.strip()) == (0, "sudo")


def test_inventory_host_with_sudo(nobody_uid: int, env: Path) -> None:
    (env / "inv.yaml").write_text(f"hosts:\n  box: {{transport: popen, sudo: {USER}}}\n")
    result = CliRunner().invoke(
        main, ["run", "-i", str(env / "inv.yaml"), "import os; print(os.getuid())"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [str(nobody_uid)]


def test_a_user_sudo_refuses_is_a_clear_error(nobody_uid: int) -> None:
    with pytest.raises(AuthenticationFailed, match=r"sudo to xnet-no-such-user refused: .*unknown"):
        execnet_cli.makegateway("popen//sudo=xnet-no-such-user")


def test_exit_ends_a_busy_sudo_worker(nobody_uid: int) -> None:
    gateway = execnet_cli.makegateway(f"popen//sudo={USER}")
    pid = gateway._rinfo().pid
    gateway.remote_exec("import time; time.sleep(60)")
    gateway.exit(timeout=0.2)
    assert wait_gone(pid, 5.0), "the worker outlived its gateway"
    assert not pid_alive(pid)


@pytest.mark.parametrize(
    "spec, key",
    [
        ("socket=127.0.0.1:1//sudo=nobody", "sudo"),
        ("popen//via=gw0//sudo=nobody", "sudo"),
        ("popen//sudo=bad user", "sudo"),
    ],
)
def test_sudo_where_it_cannot_apply_is_refused(spec: str, key: str) -> None:
    with pytest.raises(SpecError, match=key):
        group = execnet_cli.Group(["popen"]) if "via=" in spec else execnet_cli.Group()
        try:
            group.makegateway(spec)
        finally:
            group.terminate()


def test_our_working_directory_when_the_user_may_use_it(
    nobody_uid: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_dir = tmp_path / "open"  # its parents may be closed to the user: the cwd is held
    open_dir.mkdir(mode=0o755)
    monkeypatch.chdir(open_dir)
    gateway = execnet_cli.makegateway(f"popen//sudo={USER}")
    try:
        cwd = gateway.remote_exec("import os; channel.send(os.getcwd())").receive(10)
    finally:
        gateway.exit()
    assert cwd == str(open_dir)


def test_an_interpreter_the_user_cannot_run_is_named(nobody_uid: int, tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"  # pytest's directories are closed to other users
    hidden.mkdir(mode=0o700)
    python = hidden / "python3"
    python.symlink_to(sys.executable)
    with pytest.raises(InterpreterNotFound, match=f"user {USER} cannot run '{python}'"):
        execnet_cli.makegateway(f"popen//sudo={USER}//python={python}")


def test_no_sudo_installed_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to run there
    with pytest.raises(InterpreterNotFound, match=f"sudo to {USER} .*sudo is not installed"):
        execnet_cli.makegateway(f"popen//sudo={USER}")
