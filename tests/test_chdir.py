"""``chdir``: created like ``mkdir -p``; an impossible one says which directory and why."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import execnet_cli
from execnet_cli.cli import main
from execnet_cli.errors import BootstrapError


def test_missing_directories_are_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    group = execnet_cli.Group()
    try:
        gateway = group.makegateway(f"popen//chdir={target}")
        assert gateway.remote_exec("import os; channel.send(os.getcwd())").receive() == str(target)
    finally:
        group.terminate(5)


@pytest.mark.parametrize("spawn", ["", "//spawn"])
def test_a_file_in_the_way_is_named(tmp_path: Path, spawn: str) -> None:
    (tmp_path / "file").write_text("")
    group = execnet_cli.Group()
    try:
        with pytest.raises(BootstrapError) as exc:
            group.makegateway(f"popen{spawn}//id=w//chdir={tmp_path}/file/sub")
    finally:
        group.terminate(5)
    assert str(exc.value) == (
        f"gateway 'w': chdir {tmp_path}/file/sub: {tmp_path}/file exists and is not a directory"
    )


def test_xnet_run_reports_it_for_the_host_without_a_traceback(
    env: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    inventory = env / "inv.yaml"
    inventory.write_text(
        "groups: {w: {hosts: w1, vars: {transport: popen, chdir: /proc/no-such-pid/x}}}\n"
    )
    result = CliRunner().invoke(main, ["run", "-i", str(inventory), "print(1)"])
    assert result.exit_code == 3, result.output
    assert result.stdout.splitlines()[1] == (
        "BootstrapError: gateway 'w1': chdir /proc/no-such-pid/x: "
        "cannot create /proc/no-such-pid: No such file or directory"
    )
    assert "Traceback" not in capfd.readouterr().err  # the worker's stderr is ours (popen)
