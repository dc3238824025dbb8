"""``xnet run`` and ``xnet sh`` through click's CliRunner, on real popen workers."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from inventory_helpers import LOCAL

from execnet_cli.cli import main
from execnet_cli.group import Group

INVENTORY = LOCAL

RAISE_ON_LOCAL2 = """\
import os
print('hello')
if os.environ.get('XNET_TEST_BOOM'):
    raise ValueError('boom')
"""


@pytest.fixture
def inv(env: Path) -> str:
    path = env / "cluster.yaml"
    path.write_text(INVENTORY)
    return str(path)


def xnet(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def test_default_inventory_runs_on_localhost(env: Path) -> None:
    result = xnet("run", "import os; print(os.getpid() % 1)")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("localhost (1) ---")
    assert result.stdout.splitlines()[1:] == ["0"]
    assert result.stderr.startswith("1 ok, 0 failed, 0 unreachable in ")


def test_identical_output_is_gathered_under_folded_names(inv: str) -> None:
    result = xnet("run", "-i", inv, "--hosts", "local", "print('same')")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("local[1-3] (3) ---")
    assert lines[1:] == ["same"]


def test_a_failing_host_fails_the_run(inv: str) -> None:
    result = xnet("run", "-i", inv, "--hosts", "local", RAISE_ON_LOCAL2)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("local[1,3] (2) ---")
    assert lines[1] == "hello"
    assert lines[2].startswith("local2 (1): failed ---")
    assert lines[3:] == ["hello", "ValueError: boom"]
    assert "1 failed (local2)" in result.stderr


def test_verbose_shows_the_remote_traceback(inv: str) -> None:
    result = xnet("run", "-i", inv, "--hosts", "local2", "-v", RAISE_ON_LOCAL2)
    assert result.exit_code == 1
    assert 'File "<xnet run>", line 4, in <module>' in result.stdout
    assert "    raise ValueError('boom')" in result.stdout


def test_unreachable_host_while_others_go_on(inv: str) -> None:
    result = xnet("run", "-i", inv, "--hosts", "local1,bad", "print('up')")
    assert result.exit_code == 3, result.output
    assert "bad (1): unreachable" in result.stdout
    assert "/nonexistent/python" in result.stdout
    assert result.stdout.splitlines()[:2] == [result.stdout.splitlines()[0], "up"]
    assert "1 ok, 0 failed, 1 unreachable (bad)" in result.stderr


def test_failed_wins_over_unreachable(inv: str) -> None:
    assert xnet("run", "-i", inv, RAISE_ON_LOCAL2).exit_code == 1


def test_code_from_stdin(inv: str) -> None:
    result = xnet("run", "-i", inv, "--hosts", "local1", "-", input="print('from stdin')\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["from stdin"]


def test_code_from_file(inv: str, env: Path) -> None:
    script = env / "check.py"
    script.write_text("import sys\nprint(__name__)\nsys.exit(4)\n")
    result = xnet("run", "-i", inv, "--hosts", "local1", f"@{script}")
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[0].startswith("local1 (1): exit 4")
    assert result.stdout.splitlines()[1:] == ["__main__"]


def test_traceback_names_the_file(inv: str, env: Path) -> None:
    script = env / "bad.py"
    script.write_text("x = 1\nraise KeyError(x)\n")
    result = xnet("run", "-i", inv, "--hosts", "local1", "-v", f"@{script}")
    assert f'File "{script}", line 2, in <module>' in result.stdout
    assert "raise KeyError(x)" in result.stdout


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("@missing.py", "xnet: error: cannot read missing.py: No such file or directory"),
        ("x = (", "xnet: error: <xnet run>:1: SyntaxError: '(' was never closed"),
    ],
)
def test_code_errors_are_usage_errors(env: Path, code: str, message: str) -> None:
    result = xnet("run", code)
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert result.stdout == ""


def test_bad_pattern_is_a_usage_error(inv: str) -> None:
    result = xnet("run", "-i", inv, "--hosts", "lcal", "print(1)")
    assert result.exit_code == 2
    assert result.stderr.startswith("xnet: error: in pattern 'lcal'")


def test_json_one_object_per_host(inv: str) -> None:
    result = xnet("run", "-i", inv, "--json", "import sys; print('o'); print('e', file=sys.stderr)")
    assert result.exit_code == 3, result.output
    records = {r["name"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert sorted(records) == ["bad", "local1", "local2", "local3"]
    local1 = records["local1"]
    assert local1["status"] == "ok" and local1["exit_code"] == 0
    assert (local1["stdout"], local1["stderr"], local1["error"]) == ("o\n", "e\n", None)
    assert isinstance(local1["duration"], float)
    assert records["bad"]["status"] == "unreachable"
    assert "/nonexistent/python" in records["bad"]["error"]
    assert result.stderr == ""


def test_no_gather_streams_prefixed_lines(inv: str) -> None:
    code = "import sys; print('o'); print('e', file=sys.stderr)"
    result = xnet("run", "-i", inv, "--hosts", "local", "--no-gather", code)
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout.splitlines()) == ["local1: o", "local2: o", "local3: o"]
    assert sorted(result.stderr.splitlines()[:-1]) == ["local1: e", "local2: e", "local3: e"]


def test_sh_reports_exit_status_per_host(inv: str) -> None:
    command = "echo out-${XNET_TEST_BOOM:-0}; exit ${XNET_TEST_BOOM:-0}"
    result = xnet("sh", "-i", inv, "--hosts", "local", command)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("local[1,3] (2) ---") and lines[1] == "out-0"
    assert lines[2].startswith("local2 (1): exit 1 ---") and lines[3] == "out-1"


def test_sh_json_exit_codes(inv: str) -> None:
    result = xnet("sh", "-i", inv, "--hosts", "local", "--json", "exit ${XNET_TEST_BOOM:-0}")
    codes = {r["name"]: r["exit_code"] for r in map(json.loads, result.stdout.splitlines())}
    assert codes == {"local1": 0, "local2": 1, "local3": 0}


def test_sh_on_the_default_inventory(env: Path) -> None:
    result = xnet("sh", "echo hi; echo err >&2")
    assert result.exit_code == 0, result.output
    # Two pipes, two pumps: the order between stdout and stderr is not kept.
    assert sorted(result.stdout.splitlines()[1:]) == ["err", "hi"]


def test_sh_commands_do_not_see_the_socket_secret(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XNET_SECRET", "the-controllers-own-secret")
    result = xnet("sh", 'echo "[${XNET_SECRET:-}]"; grep -c controllers-own /proc/$$/environ')
    assert result.stdout.splitlines()[1:] == ["[]", "0"], result.output


def test_sh_timeout(inv: str) -> None:
    result = xnet("sh", "-i", inv, "--hosts", "local1", "--timeout", "0.5", "sleep 60")
    assert result.exit_code == 4  # timed out, none failed
    assert result.stdout.splitlines()[0].startswith("local1 (1): timed out")
    assert result.stdout.splitlines()[1:] == ["timed out after 0.5 s"]


def test_fanout_one(inv: str) -> None:
    result = xnet("run", "-i", inv, "--hosts", "local", "--fanout", "1", "print(1)")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith("local[1-3] (3)")


def test_help_lists_run_and_sh() -> None:
    result = xnet("--help")
    assert " run " in result.stdout and " sh " in result.stdout
    assert "--fanout" in xnet("run", "--help").stdout
    assert "--no-gather" in xnet("sh", "--help").stdout


@pytest.fixture
def buggy_inv(env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """INVENTORY and a host ``buggy`` whose opening hits a bug of ours (a TypeError)."""
    path = env / "buggy.yaml"
    path.write_text(INVENTORY + "  buggy: {transport: popen}\n")
    real = Group.makegateway

    def makegateway(self: Group, spec: Any = None, **options: Any) -> Any:
        if "id=buggy" in str(spec):
            raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")
        return real(self, spec, **options)

    monkeypatch.setattr(Group, "makegateway", makegateway)
    return str(path)


def test_a_bug_is_an_error_with_its_own_status(buggy_inv: str) -> None:
    result = xnet("run", "-i", buggy_inv, "--hosts", "local1,bad,buggy", "print('up')")
    assert result.exit_code == 70, result.output  # not 3: the host was not unreachable
    lines = result.stdout.splitlines()
    assert lines[-2].startswith("buggy (1): error ---")
    assert lines[-1] == "TypeError: unsupported operand type(s) for +: 'int' and 'str'"
    assert result.stderr.startswith("1 ok, 0 failed, 1 unreachable (bad), 1 error (buggy) in ")
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback_of_a_bug(buggy_inv: str) -> None:
    result = xnet("--debug", "sh", "-i", buggy_inv, "--hosts", "buggy", "--json", "true")
    assert result.exit_code == 70, result.output
    record = json.loads(result.stdout)
    assert record["status"] == "error" and record["error"].startswith("TypeError: ")
    assert "xnet: debug: execnet_cli.fleet.runner: host buggy: internal error" in result.stderr
    assert "Traceback (most recent call last):" in result.stderr
    assert 'raise TypeError("unsupported operand' in result.stderr
    logger = logging.getLogger("execnet_cli")
    assert logger.level == logging.NOTSET and not logger.handlers  # undone after the command
