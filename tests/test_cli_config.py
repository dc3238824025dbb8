"""Defaults from ``$XDG_CONFIG_HOME/xnet/config.yaml``: flags > ``XNET_*`` > the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from inventory_helpers import LOCAL

from execnet_cli.cli import main
from execnet_cli.cli.config import ConfigError, load_config

#: local2 raises: one host not ok out of three.
FAIL_ON_LOCAL2 = "import os\nif os.environ.get('XNET_TEST_BOOM'): raise ValueError('boom')"


def xnet(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture
def config(env: Path) -> Path:
    path = env / "config" / "xnet" / "config.yaml"
    path.parent.mkdir(parents=True)
    (path.parent / "lab.yaml").write_text(LOCAL)
    return path


def test_the_file_env_and_flags_in_that_order(config: Path) -> None:
    config.write_text("inventory: lab.yaml\ntolerate: 1\n")
    run = ("run", "-H", "local", FAIL_ON_LOCAL2)
    assert xnet(*run).exit_code == 0  # the file's tolerance and inventory
    assert xnet(*run, env={"XNET_TOLERATE": "0"}).exit_code == 1
    assert xnet(*run[:1], "--tolerate", "1", *run[1:], env={"XNET_TOLERATE": "0"}).exit_code == 0


def test_fanout_and_timeout_from_the_file(config: Path) -> None:
    config.write_text("inventory: [lab.yaml]\nfanout: 1\ntimeout: 0.5\n")
    slow = xnet("run", "-H", "local1", "import time; time.sleep(30)")
    assert slow.exit_code == 4, slow.output
    assert "timed out after 0.5 s" in slow.stdout
    ok = xnet("run", "-H", "local1", "-t", "60", "print('done')")
    assert ok.exit_code == 0, ok.output


def test_the_inventory_comes_after_the_project_file_and_the_variable(
    config: Path, env: Path
) -> None:
    config.write_text("inventory: lab.yaml\n")
    assert "local3" in xnet("hosts").stdout
    (env / "xnet.yaml").write_text("groups: {one: {hosts: solo, vars: {transport: popen}}}\n")
    assert "solo" in xnet("hosts").stdout
    assert "localhost" not in xnet("hosts").stdout
    other = env / "other.yaml"
    other.write_text("groups: {two: {hosts: duo, vars: {transport: popen}}}\n")
    assert "duo" in xnet("hosts", env={"XNET_INVENTORY": str(other)}).stdout


def test_color_always_colors_a_pipe_and_the_flag_wins(config: Path) -> None:
    config.write_text("color: always\ninventory: lab.yaml\n")
    colored = xnet("run", "-H", "local1", "raise SystemExit('bad')")
    assert "\x1b[" in colored.stdout
    plain = xnet("--color", "never", "run", "-H", "local1", "raise SystemExit('bad')")
    assert "\x1b[" not in plain.stdout
    assert "\x1b[" not in xnet("run", "-H", "local1", "pass", env={"XNET_COLOR": "never"}).stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fanout: 8\ntimeot: 5\n", "config.yaml:2: unknown key 'timeot' (did you mean 'timeout'?)"),
        ("fanout: many\n", "config.yaml:1: fanout: expected a whole number >= 1, got 'many'"),
        ("color: blue\n", "config.yaml:1: color: expected one of auto, always, never"),
        ("tolerate: lots\n", "config.yaml:1: tolerate: "),
        ("inventory: []\n", "config.yaml:1: inventory: expected a path or a list of paths"),
        ("- fanout\n", "config.yaml:1: expected a mapping of key: value"),
        ("fanout: [\n", "config.yaml:2: not YAML"),
    ],
)
def test_a_bad_file_names_its_line_and_key(config: Path, text: str, message: str) -> None:
    config.write_text(text)
    with pytest.raises(ConfigError, match=None) as exc:
        load_config(config)
    assert message in str(exc.value)
    result = xnet("hosts")
    assert result.exit_code == 2
    assert result.stderr.startswith("xnet: error: ") and message in result.stderr


def test_no_file_and_an_empty_file_are_no_defaults(config: Path) -> None:
    assert load_config(config).values == {}
    config.write_text("# nothing yet\n")
    assert load_config(config).values == {}
    assert xnet("hosts").exit_code == 0


def test_serve_does_not_read_it(config: Path) -> None:
    config.write_text("nonsense: 1\n")
    assert xnet("serve", "--help").exit_code == 0


@pytest.mark.parametrize("command", ["run", "sh", "ping", "rsync", "shell"])
def test_every_fanout_is_one_option(command: str, config: Path) -> None:
    """``-f/--fanout``: one definition (a whole number >= 1, $XNET_FANOUT, default shown)."""
    help_text = " ".join(xnet(command, "--help").stdout.split())
    assert "-f, --fanout N" in help_text and "[default: 64; x>=1]" in help_text
    refused = xnet(command, "x", "y", env={"XNET_FANOUT": "0"})
    assert refused.exit_code == 2 and "XNET_FANOUT" not in refused.output
    assert "Invalid value for '-f' / '--fanout'" in refused.output
