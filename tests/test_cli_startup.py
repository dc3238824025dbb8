"""What an ``xnet`` process loads (``cli.startup``): ``xnet sh --json`` over ssh runs
without rich, PyYAML, paramiko's optional ``invoke``, ``importlib.metadata`` and the
gateway stack, and ``Match exec`` in an ssh config still works there (it loads ``invoke``
when first used); the stand-in's ``version`` answers as ``importlib.metadata.version`` does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from faults_helpers import ssh_inventory, xnet_env

from execnet_cli.cli.startup import installed_version

REPO = Path(__file__).resolve().parent.parent

#: Modules ``xnet sh --json`` over ssh must not load (paramiko aside, which it needs): the
#: optional ones, the gateway stack (straight on ssh session channels, no worker, no
#: spec) and the ``idna`` codec (host names that are ASCII are looked up as bytes).
WATCHED = (
    "rich",
    "yaml",
    "invoke",
    "importlib.metadata",
    "execnet_cli.gateway",
    "execnet_cli.connect",
    "execnet_cli._remote.channel",
    "execnet_cli._remote.serializer",
    "execnet_cli._remote.engine",
    "execnet_cli.imports",
    "execnet_cli.source",
    "execnet_cli.transports.forkserver",
    "execnet_cli.group",
    "execnet_cli.spec",
    "execnet_cli.transports.opening",
    "encodings.idna",
    "paramiko",
)

#: Runs xnet as ``python -m execnet_cli`` does; at its end, prints on stderr which of the
#: watched modules it really loaded (a stand-in of ``cli.startup`` is not; what the
#: interpreter's own start-up hooks loaded before it is not counted).
PROBE = f"""
import json, sys, types
WATCHED = {WATCHED!r}
before = set(sys.modules)
from execnet_cli.cli import main
try:
    main(prog_name="xnet")
finally:
    loaded = [name for name in WATCHED
              if name not in before and type(sys.modules.get(name)) is types.ModuleType]
    print("LOADED " + json.dumps(loaded), file=sys.stderr)
"""


def loaded_by(args: list[str], env: dict[str, str]) -> tuple[list[str], str]:
    """The watched modules an ``xnet ARGS`` process loaded, and its standard output."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, timeout=120
    )
    err = done.stderr.decode()
    last = [line for line in err.splitlines() if line.startswith("LOADED ")]
    assert last, err
    return json.loads(last[-1][len("LOADED ") :]), done.stdout.decode()


def test_sh_json_over_ssh_loads_only_what_it_uses(sshd_hosts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hosts = sshd_hosts(2)
    inventory = tmp_path / "ssh.yaml"
    inventory.write_text(ssh_inventory(hosts))
    env = xnet_env(tmp_path / "home", hosts)
    loaded, out = loaded_by(["sh", "--json", "-i", str(inventory), "echo hi"], env)
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted((r["name"], r["status"], r["stdout"]) for r in rows) == [
        ("n01", "ok", "hi\n"),
        ("n02", "ok", "hi\n"),
    ]
    assert loaded == ["paramiko"]


def test_a_terminal_style_run_still_loads_rich(tmp_path: Path) -> None:
    """The stand-ins leave nothing out that a renderer needs (gathered output: rich)."""
    inventory = tmp_path / "local.yaml"
    inventory.write_text("hosts:\n  p1: {transport: popen}\n")
    env = xnet_env(tmp_path / "home")
    loaded, out = loaded_by(["sh", "-i", str(inventory), "echo hi"], env)
    assert "hi" in out
    assert "rich" in loaded


MATCH_EXEC = """
import sys
from execnet_cli.cli.startup import defer
defer()
stand_in = type(sys.modules["invoke"]).__name__
from execnet_cli.transports.ssh.config import lookup
found = lookup('Match exec "test %h = far"\\n  HostName 127.0.0.9\\n', "far")
print(stand_in, found["hostname"], type(sys.modules["invoke"]).__name__)
"""


def test_match_exec_loads_invoke_on_first_use() -> None:
    pytest.importorskip("invoke")
    done = subprocess.run(
        [sys.executable, "-c", MATCH_EXEC], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split() == ["_Deferred", "127.0.0.9", "module"], done.stderr


def test_installed_version_answers_as_importlib_metadata() -> None:
    """Every installed distribution, by its name as written and as typed otherwise."""
    import importlib.metadata

    names = {dist.metadata["Name"] for dist in importlib.metadata.distributions()}
    assert "click" in names
    for name in sorted(n for n in names if n):
        for spelling in (name, name.upper(), name.replace("-", "_"), name.replace("_", "-")):
            expected = importlib.metadata.version(spelling)
            assert installed_version(spelling) in (expected, None), spelling
        assert installed_version(name) == importlib.metadata.version(name), name
    assert installed_version("no-such-distribution-here") is None


def test_installed_version_leaves_what_is_not_plain_to_the_real_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two candidates in one directory, a zip on the path, no Version header: None."""
    first, second, empty = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder, version in ((first, "1.0"), (second, "2.0")):
        info = folder / f"demo_pkg-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Name: demo-pkg\nVersion: {version}\n")
    (empty / "Demo.Pkg-3.0.egg-info").mkdir(parents=True)
    (empty / "Demo.Pkg-3.0.egg-info" / "PKG-INFO").write_text("Name: demo-pkg\n\nVersion: 3\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "missing"), str(first), str(second)])
    assert installed_version("Demo.Pkg") == "1.0"  # the first along the path, as the real one
    monkeypatch.setattr(sys, "path", [str(empty), str(first)])
    assert installed_version("demo-pkg") is None  # no Version among the headers
    (second / "demo_pkg-2.1.dist-info").mkdir()
    monkeypatch.setattr(sys, "path", [str(second)])
    assert installed_version("demo-pkg") is None  # two candidates: listing order decides
    archive = tmp_path / "packages.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip file
    monkeypatch.setattr(sys, "path", [str(archive), str(first)])
    assert installed_version("demo-pkg") is None


STAND_IN = """
import sys
from execnet_cli.cli.startup import defer
defer()
import paramiko
print(paramiko.__version__, type(sys.modules["importlib.metadata"]).__name__)
import importlib.metadata
kind = lambda: type(sys.modules["importlib.metadata"]).__name__
print(importlib.metadata.version("click"), kind())
print(importlib.metadata.distribution("paramiko").version, kind())
"""


def test_metadata_stand_in_answers_version_and_loads_the_rest() -> None:
    import importlib.metadata

    done = subprocess.run(
        [sys.executable, "-c", STAND_IN], capture_output=True, text=True, timeout=60
    )
    paramiko_version, click_version = (importlib.metadata.version(n) for n in ("paramiko", "click"))
    assert done.stdout.split() == [
        *(paramiko_version, "_Metadata"),
        *(click_version, "_Metadata"),
        *(paramiko_version, "module"),
    ], done.stderr


def test_python_m_runs_the_command_with_the_collector_on_and_imports_frozen() -> None:
    """``python -m execnet_cli`` turns the cyclic collector off while it imports; the
    command itself runs with it on again, the import-time objects frozen (``settle``)."""
    probe = (
        "import atexit, gc, runpy, sys\n"
        "atexit.register(lambda: print('GC', gc.isenabled(), gc.get_freeze_count() > 0))\n"
        "sys.argv = ['xnet', '--version']\n"
        "runpy.run_module('execnet_cli', run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60)
    assert done.stdout.decode().splitlines()[-1] == "GC True True", done.stderr.decode()


def test_the_xnet_script_enters_where_python_m_does() -> None:
    """The installed ``xnet`` script imports ``execnet_cli.__main__`` (collector off while
    the command line imports), not ``execnet_cli.cli`` (imported with it on)."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^xnet = "execnet_cli\.__main__:main"$', text, re.MULTILINE), text
    probe = (
        "import gc, sys\n"
        "from execnet_cli.__main__ import main\n"
        "print('GC', gc.isenabled())\n"
        "sys.argv = ['xnet', '--version']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60)
    assert done.stdout.decode().splitlines()[0] == "GC False", done.stderr.decode()


def test_the_command_freezes_what_it_made_before_the_interpreter_exits() -> None:
    """``__main__.main`` freezes the objects the command made (``gc.freeze``), so that
    the collections of the interpreter's exit do not walk them again."""
    probe = (
        "import gc, sys\n"
        "from execnet_cli.__main__ import main\n"
        "sys.argv = ['xnet', '--version']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    print('EXIT', exc.code, 'TRACKED', len(gc.get_objects()))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60)
    words = done.stdout.decode().splitlines()[-1].split()
    assert words[:2] == ["EXIT", "0"] and int(words[3]) < 10, done.stdout.decode()
