"""``xnet run -m pkg.mod:func``, ``--file SCRIPT`` and ``--forward-imports`` through click's
CliRunner, on popen workers running /usr/bin/python3 in a directory without the package."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from imports_helpers import SYSTEM_PYTHON, make_package

from execnet_cli.cli import main

pytestmark = pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="no /usr/bin/python3")


@pytest.fixture
def inv(env: Path) -> str:
    """Two hosts whose workers cannot see the package in the current directory."""
    make_package(env)
    remote = env / "remote"
    remote.mkdir()
    path = env / "hosts.yaml"
    path.write_text(
        "groups:\n  w:\n    hosts: w[1-2]\n"
        f"    vars: {{transport: popen, python: {SYSTEM_PYTHON}, chdir: {remote}}}\n"
    )
    return str(path)


def xnet(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_a_function_runs_on_every_host_with_its_return_value(inv: str) -> None:
    result = xnet("run", "-i", inv, "-m", "ctrlonly.tasks:deploy")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("w[1-2] (2) ---")
    assert result.stdout.splitlines()[1:] == [
        "deploying helpers",
        "=> {'deep': 42, 'version': '1.0'}",
    ]


def test_the_return_value_in_json(inv: str) -> None:
    result = xnet("run", "-i", inv, "--json", "-m", "ctrlonly.tasks:deploy")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["name"] for r in records) == ["w1", "w2"]
    assert all(r["value"] == {"deep": 42, "version": "1.0"} for r in records)
    assert all(r["stdout"] == "deploying helpers\n" for r in records)


def test_a_value_json_cannot_hold_is_its_repr(inv: str, env: Path) -> None:
    (env / "ctrlonly" / "values.py").write_text("def raw():\n    return b'\\x00bytes'\n")
    result = xnet("run", "-i", inv, "--json", "-H", "w1", "-m", "ctrlonly.values:raw")
    assert json.loads(result.stdout)["value"] == "b'\\x00bytes'"


def test_package_data_through_importlib_resources(inv: str) -> None:
    result = xnet("run", "-i", inv, "-H", "w1", "-m", "ctrlonly.tasks:data")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["=> 'hello from the controller\\n'"]


def test_a_raising_function_fails_the_host(inv: str) -> None:
    result = xnet("run", "-i", inv, "-m", "ctrlonly.tasks:raising")
    assert result.exit_code == 1, result.output
    assert "ValueError: deploy failed on purpose" in result.stdout
    assert "=>" not in result.stdout


def test_a_module_runs_as_main_without_a_function(inv: str) -> None:
    result = xnet("run", "-i", inv, "-m", "ctrlonly.tasks")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["tasks as __main__"]


def test_without_forwarding_the_hosts_lack_it(inv: str) -> None:
    result = xnet("run", "-i", inv, "--no-forward-imports", "-m", "ctrlonly.tasks:deploy")
    assert result.exit_code == 1
    assert "ModuleNotFoundError: No module named 'ctrlonly'" in result.stdout


def test_only_the_targets_package_is_served(inv: str, env: Path) -> None:
    (env / "beside.py").write_text("X = 1\n")
    (env / "ctrlonly" / "reach.py").write_text("def out():\n    import beside\n")
    result = xnet("run", "-i", inv, "-H", "w1", "-m", "ctrlonly.reach:out")
    assert result.exit_code == 1
    assert "No module named 'beside'" in result.stdout


def test_an_extension_module_fails_clearly(inv: str, env: Path) -> None:
    (env / "ctrlonly" / "_c.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    (env / "ctrlonly" / "native.py").write_text("def go():\n    from . import _c\n")
    result = xnet("run", "-i", inv, "-H", "w1", "-m", "ctrlonly.native:go")
    assert result.exit_code == 1
    assert "ImportError: ctrlonly._c is a compiled extension module" in result.stdout


def test_a_script_imports_the_modules_beside_it(inv: str, env: Path) -> None:
    tools = env / "tools"
    tools.mkdir()
    (tools / "check.py").write_text("import checklib\nprint(checklib.verdict())\n")
    (tools / "checklib.py").write_text("def verdict():\n    return 'all good'\n")
    result = xnet("run", "-i", inv, "--file", str(tools / "check.py"))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["all good"]
    plain = xnet("run", "-i", inv, f"@{tools / 'check.py'}")
    assert "No module named 'checklib'" in plain.stdout


def test_code_with_forward_imports_serves_the_current_directory(inv: str) -> None:
    code = "import ctrlonly.sub.deep as d; print(d.twice(4))"
    result = xnet("run", "-i", inv, "--forward-imports", code)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["8"]


def test_forward_path(inv: str, env: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    lib = tmp_path_factory.mktemp("lib")
    (lib / "libmod.py").write_text("def value():\n    return 5\n")
    result = xnet(
        "run", "-i", inv, "--forward-path", str(lib), "import libmod; print(libmod.value())"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["5"]


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give one of CODE, -m PKG.MOD[:FUNC] or --file SCRIPT"),
        (["print(1)", "-m", "ctrlonly.tasks:deploy"], "(not CODE and -m)"),
        (["-m", "ctrlonly..tasks"], "is not a module name"),
        (["-m", "ctrlonly.tasks:1x"], "'1x' is not a function name"),
    ],
)
def test_usage_errors(inv: str, args: list, message: str) -> None:
    result = xnet("run", "-i", inv, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_target_not_found_here_says_how_to_go_on(inv: str) -> None:
    result = xnet("run", "-i", inv, "-m", "nosuch_pkg_xyz.mod:f")
    assert result.exit_code == 2
    assert "no module named 'nosuch_pkg_xyz' here" in result.stderr
    assert "--no-forward-imports" in result.stderr


@pytest.mark.parametrize(
    "args, shown",
    [
        (["-m", "ctrlonly.tasks:deploy"], "=> {'deep': 42, 'version': '1.0'}"),
        (["--no-forward-imports", "-m", "os:getcwd"], "=> '"),  # a return value
        (["--forward-imports", "import ctrlonly.sub.deep as d; print(d.twice(4))"], "8"),
    ],
)
def test_relays_forward_imports_and_return_values(inv: str, args: list, shown: str) -> None:
    """w1 becomes a relay (it runs the job itself) and serves w2: both import from here
    and report their values (tests/test_relay_imports.py has the rest)."""
    result = xnet("run", "-i", inv, "--relays", "1", *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("w[1-2] (2) ---")
    assert result.stdout.splitlines()[-1].startswith(shown)


def test_a_target_in_a_namespace_package(inv: str, env: Path) -> None:
    (env / "nsq").mkdir()  # no __init__.py: PEP 420
    (env / "nsq" / "mod.py").write_text("def hello():\n    return 'ns hello'\n")
    result = xnet("run", "-i", inv, "-m", "nsq.mod:hello")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["=> 'ns hello'"]
