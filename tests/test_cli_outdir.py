"""``--outdir DIR``: each host's stdout and stderr in ``DIR/HOST.stdout`` and ``.stderr``."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from inventory_helpers import LOCAL

from execnet_cli.cli import main


def xnet(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def inv(env: Path) -> str:
    path = env / "cluster.yaml"
    path.write_text(LOCAL)
    return str(path)


def test_each_host_gets_its_two_streams(inv: str, env: Path) -> None:
    out = env / "deep" / "out"
    result = xnet(
        "sh", "-i", inv, "-H", "local", "--outdir", str(out),
        'echo "to out $XNET_TEST_BOOM"; printf "to err\\n\\033[31mred" >&2; exit 0',
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        f"local{n}.{s}" for n in (1, 2, 3) for s in ("stderr", "stdout")
    ]
    assert (out / "local1.stdout").read_text() == "to out \n"
    assert (out / "local2.stdout").read_text() == "to out 1\n"
    assert (out / "local3.stderr").read_text() == "to err\n\x1b[31mred"  # as printed


def test_a_later_run_replaces_the_files_and_failures_keep_their_output(inv: str, env: Path) -> None:
    out = env / "out"
    xnet("run", "-i", inv, "-H", "local", "--outdir", str(out), "print('first ' * 100)")
    result = xnet(
        "run", "-i", inv, "-H", "local[1-2],bad", "--outdir", str(out),
        "import os, sys; print('second'); print('warn', file=sys.stderr)\n"
        "if os.environ.get('XNET_TEST_BOOM'): raise ValueError('boom')",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert (out / "local1.stdout").read_text() == "second\n"
    assert (out / "local2.stdout").read_text() == "second\n"
    assert (out / "local2.stderr").read_text() == "warn\n"  # the traceback is the report's
    assert (out / "bad.stdout").read_text() == ""  # unreachable: empty files
    assert (out / "local3.stdout").read_text().startswith("first")  # not selected: kept


def test_a_directory_that_cannot_be_made_is_a_usage_error(inv: str, env: Path) -> None:
    (env / "file").write_text("")
    result = xnet("run", "-i", inv, "--outdir", str(env / "file" / "sub"), "pass")
    assert result.exit_code == 2
    assert "cannot create the directory: Not a directory" in result.stderr
