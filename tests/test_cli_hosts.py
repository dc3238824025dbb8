"""``xnet hosts``: the dry run, through click's CliRunner."""

from __future__ import annotations

import io
import json
import os
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from execnet_cli.cli import main
from execnet_cli.cli.hosts import plain_lines, render_table
from execnet_cli.inventory import Inventory

LAB = """\
vars:
  user: deploy
groups:
  web:
    hosts: web[01-03]
  db:
    hosts:
      db01:
      db02: {port: 2222}
  prod:
    hosts: web[01-02]
    children: [db]
    vars: {proxy_jump: gw}
  bastion:
    hosts: {bastion: {address: 203.0.113.10}}
"""


@pytest.fixture
def lab(env: Path) -> Path:
    path = env / "lab.yaml"
    path.write_text(LAB)
    return path


def xnet(*args: str) -> Result:
    return CliRunner().invoke(main, ["hosts", *args])


def test_default_inventory_is_local_workers(env: Path) -> None:
    result = xnet()
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["localhost", "popen", "localhost", "-", "-", "-", "-", "-"]


def test_project_file_is_found(env: Path) -> None:
    (env / "xnet.yaml").write_text("hosts: {p1: {transport: popen}}\n")
    assert xnet().stdout.split()[0] == "p1"


def test_xnet_inventory_variable(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (env / "a.yaml").write_text("hosts: {a1: }\n")
    (env / "b.yaml").write_text("hosts: {b1: }\n")
    monkeypatch.setenv("XNET_INVENTORY", os.pathsep.join(["a.yaml", "b.yaml"]))
    assert [line.split()[0] for line in xnet().stdout.splitlines()] == ["a1", "b1"]


def test_one_host_a_line_with_its_settings(lab: Path) -> None:
    result = xnet("-i", str(lab))
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert [r[0] for r in rows] == ["bastion", "db01", "db02", "web01", "web02", "web03"]
    assert rows[2] == ["db02", "ssh", "db02", "2222", "deploy", "python3", "-", "gw"]
    assert rows[0] == ["bastion", "ssh", "203.0.113.10", "-", "deploy", "python3", "-", "-"]


@pytest.mark.parametrize(
    ("pattern", "names"),
    [
        ("web&prod", ["web01", "web02"]),
        ("all,!db", ["bastion", "web01", "web02", "web03"]),
        ("web:&prod:!web01", ["web02"]),
        ("db*", ["db01", "db02"]),
        ("~web0[23]", ["web02", "web03"]),
        ("web[01-02],bastion", ["bastion", "web01", "web02"]),
    ],
)
def test_patterns(lab: Path, pattern: str, names: list[str]) -> None:
    result = xnet(pattern, "-i", str(lab))
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.stdout.splitlines()] == names


def test_repeated_inventory_options_merge(lab: Path, env: Path) -> None:
    extra = env / "extra.yaml"
    extra.write_text("groups:\n  web: {hosts: web04}\n")
    result = xnet("web", "-i", str(lab), "--inventory", str(extra))
    assert [line.split()[0] for line in result.stdout.splitlines()][-1] == "web04"


def test_json_one_object_per_host(lab: Path) -> None:
    result = xnet("db", "-i", str(lab), "--json")
    assert result.exit_code == 0, result.output
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["name"] for o in objects] == ["db01", "db02"]
    db02 = objects[1]
    assert db02["groups"] == ["prod", "db"] and db02["port"] == 2222 and db02["proxy_jump"] == "gw"
    assert db02["spec"] == "ssh=-p 2222 -l deploy -J gw db02//id=db02//python=python3"
    assert {"transport", "address", "user", "python", "sudo", "env", "vars"} <= set(db02)


def test_json_copes_with_any_yaml_value(env: Path) -> None:
    path = env / "dates.yaml"
    path.write_text("all:\n  hosts:\n    a: {built: 2024-01-01}\n")
    result = xnet("-i", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["vars"] == {"built": "2024-01-01"}


def test_tree_by_group(lab: Path) -> None:
    result = xnet("-i", str(lab), "--tree")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.splitlines()[0] == "all (6)"
    for text in ("prod (4)", "web[01-02]", "db (2)", "db[01-02]", "web (3)", "web[01-03]"):
        assert text in out
    assert out.index("prod (4)") < out.index("db (2)") < out.index("web (3)")


def test_tree_shows_only_groups_with_selected_hosts(lab: Path) -> None:
    out = xnet("db02", "-i", str(lab), "--tree").stdout
    assert "db02" in out and "web" not in out and "bastion" not in out


def _assert_one_line_error(result: Result, *fragments: str, status: int = 2) -> None:
    assert result.exit_code == status, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("xnet: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("groups:\n  web:\n    hosts: w1\n    vars: {prot: 22}\n", ":4:12:", "did you mean 'port'"),
        ("groups:\n  web: {hosts: [a\n", ":3:1:", "YAML syntax"),
        (
            "groups:\n  a: {children: [b]}\n  b: {children: [a], hosts: x}\n",
            ":3:18:",
            "cycle in children: a -> b -> a",
        ),
        ("hosts:\n  a:\n    env: {X: [1]}\n", ":3:14:", "env.X: expected a string"),
    ],
)
def test_bad_inventory_is_one_line_with_position(
    env: Path, text: str, where: str, words: str
) -> None:
    path = env / "bad.yaml"
    path.write_text(textwrap.dedent(text))
    result = xnet("-i", str(path))
    _assert_one_line_error(result, f"{path}{where}", words)


def test_bad_pattern_is_one_line(lab: Path) -> None:
    result = xnet("web&prdo", "-i", str(lab))
    _assert_one_line_error(result, "'prdo'", "column 5", "close names: prod")


def test_empty_selection_has_its_own_status(lab: Path) -> None:
    _assert_one_line_error(xnet("web&db", "-i", str(lab)), "selects no hosts", status=5)
    _assert_one_line_error(xnet("~nothing", "-i", str(lab)), "matches no host", status=5)


def test_missing_inventory_file(env: Path) -> None:
    _assert_one_line_error(xnet("-i", str(env / "nope.yaml")), "nope.yaml", "no such inventory")


def test_tree_and_json_together_is_a_usage_error(lab: Path) -> None:
    result = xnet("-i", str(lab), "--tree", "--json")
    assert result.exit_code == 2 and "cannot be combined" in result.stderr


def test_table_for_terminals() -> None:
    hosts = Inventory.from_text(LAB).hosts("web")
    buffer = io.StringIO()
    render_table(Console(file=buffer, width=100, color_system=None), hosts)
    out = buffer.getvalue()
    headings = ["HOST", "TRANSPORT", "ADDRESS", "PORT", "USER", "PYTHON", "VIA", "JUMP"]
    assert out.split()[:8] == headings
    assert "3 hosts: web[01-03]" in out and out.count("python3") == 3


def test_plain_lines_are_aligned() -> None:
    lines = plain_lines(Inventory.from_text(LAB).hosts("bastion,db02"))
    assert len({line.index("ssh") for line in lines}) == 1
