"""Import forwarding end to end: popen workers running the system's /usr/bin/python3 in an
empty directory import a package that exists only on the controller."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from imports_helpers import SYSTEM_PYTHON, make_package

import execnet_cli
from execnet_cli.errors import SpecError
from execnet_cli.imports import CACHE, ImportPolicy, serve_imports, server_of

pytestmark = pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="no /usr/bin/python3")

#: Remote code that imports and reports; the channel gets one item.
USE_PACKAGE = """
import ctrlonly.tasks
from importlib.resources import as_file, files
with as_file(files("ctrlonly") / "data" / "greeting.txt") as copy:
    copied = open(copy).read()
channel.send({
    "deploy": ctrlonly.tasks.deploy(),
    "data": files("ctrlonly").joinpath("data/greeting.txt").read_text(),
    "copied": copied,
    "listing": sorted(entry.name for entry in files("ctrlonly").iterdir()),
    "file": ctrlonly.tasks.__file__,
    "package": ctrlonly.tasks.__package__,
})
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_package(tmp_path / "controller")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    empty = tmp_path / "worker"
    empty.mkdir()
    return empty


@pytest.fixture
def group() -> Iterator[execnet_cli.Group]:
    group = execnet_cli.Group()
    yield group
    group.terminate(5)


def open_forwarding(
    group: execnet_cli.Group, workdir: Path, root: Path, python: str = SYSTEM_PYTHON
) -> Any:
    gateway = group.makegateway(f"popen//python={python}//chdir={workdir}")
    serve_imports(gateway, ImportPolicy.from_directories([str(root)]))
    return gateway


def run(gateway: Any, source: str) -> Any:
    channel = gateway.remote_exec(source)
    item = channel.receive(30)
    channel.waitclose(30)
    return item


def test_the_worker_cannot_import_it_by_itself(group: execnet_cli.Group, workdir: Path) -> None:
    gateway = group.makegateway(f"popen//python={SYSTEM_PYTHON}//chdir={workdir}")
    with pytest.raises(execnet_cli.RemoteError, match="No module named 'ctrlonly'"):
        run(gateway, "import ctrlonly")


def test_modules_subpackages_data_and_relative_imports(
    group: execnet_cli.Group, workdir: Path, root: Path
) -> None:
    gateway = open_forwarding(group, workdir, root)
    got = run(gateway, USE_PACKAGE)
    assert got["deploy"] == {"deep": 42, "version": "1.0"}
    assert got["data"] == got["copied"] == "hello from the controller\n"
    assert got["listing"] == [
        "__init__.py",
        "broken.py",
        "data",
        "helpers.py",
        "sub",
        "tasks.py",
    ]  # no .secret, no __pycache__
    assert got["file"] == str(root / "ctrlonly" / "tasks.py")
    assert got["package"] == "ctrlonly"


def test_a_module_raising_at_import_raises_there(
    group: execnet_cli.Group, workdir: Path, root: Path
) -> None:
    gateway = open_forwarding(group, workdir, root)
    got = run(
        gateway,
        """
import sys, traceback
try:
    import ctrlonly.broken
except RuntimeError:
    channel.send((traceback.format_exc(), "ctrlonly.broken" in sys.modules))
""",
    )
    text, kept = got
    assert "RuntimeError: broken at import" in text
    assert "raise RuntimeError('broken at import')" in text  # the source line, from the loader
    assert not kept


def test_names_nobody_has_fail_as_usual_and_are_asked_once(
    group: execnet_cli.Group, workdir: Path, root: Path
) -> None:
    gateway = open_forwarding(group, workdir, root)
    got = run(
        gateway,
        """
import sys
errors = []
for _ in range(3):
    try:
        import nosuch_module_xyz
    except ModuleNotFoundError as exc:
        errors.append(str(exc))
finder = [f for f in sys.meta_path if type(f).__name__ == "ControllerImporter"][0]
channel.send((errors, sorted(finder.missing), sys.meta_path[-1] is finder))
""",
    )
    errors, missing, last = got
    assert errors == ["No module named 'nosuch_module_xyz'"] * 3
    assert missing == ["nosuch_module_xyz"] and last


def test_extension_modules_fail_clearly(
    group: execnet_cli.Group, workdir: Path, root: Path
) -> None:
    (root / "ctrlonly" / "_fast.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    gateway = open_forwarding(group, workdir, root)
    got = run(
        gateway,
        """
try:
    import ctrlonly._fast
except ImportError as exc:
    channel.send((type(exc).__name__, str(exc), exc.name))
""",
    )
    kind, text, name = got
    assert kind == "ImportError" and name == "ctrlonly._fast"
    assert "compiled extension module" in text and "install it on the remote host" in text


def test_the_workers_own_modules_win(group: execnet_cli.Group, workdir: Path, root: Path) -> None:
    (root / "json.py").write_text("FROM_CONTROLLER = True\n")  # shadows nothing remotely
    local = workdir / "ctrlonly"  # the worker has its own ctrlonly (sys.path[0] is its cwd)
    local.mkdir()
    (local / "__init__.py").write_text("OWN = True\n")
    gateway = open_forwarding(group, workdir, root)
    got = run(
        gateway,
        """
import json, ctrlonly
try:
    import ctrlonly.tasks  # the controller's submodule is never mixed into a local package
    mixed = True
except ImportError:
    mixed = False
channel.send((hasattr(json, "FROM_CONTROLLER"), getattr(ctrlonly, "OWN", False), mixed))
""",
    )
    assert got == (False, True, False)


def test_refusals_reach_the_worker_as_import_errors(
    group: execnet_cli.Group, workdir: Path, root: Path, tmp_path: Path
) -> None:
    (tmp_path / "secret.py").write_text("KEY = 'x'\n")
    (root / "ctrlonly" / "leak.py").symlink_to(tmp_path / "secret.py")
    gateway = open_forwarding(group, workdir, root)
    got = run(
        gateway,
        """
import sys
finder = [f for f in sys.meta_path if type(f).__name__ == "ControllerImporter"][0]
answers = [
    finder.ask(("find", "../secret")),
    finder.ask(("find", "/etc/passwd")),
    finder.ask(("read", "ctrlonly", "../../secret.py")),
    finder.ask(("read", "ctrlonly", ".secret")),
]
try:
    import ctrlonly.leak
except ImportError as exc:
    answers.append(str(exc))
try:
    from importlib.resources import files
    files("ctrlonly").joinpath("..", "..", "secret.py").read_text()
except PermissionError as exc:
    answers.append("PermissionError: " + str(exc))
channel.send(answers)
""",
    )
    assert [a[0] for a in got[:4]] == ["refused"] * 4
    assert "not a module name" in got[0][1] and "not a module name" in got[1][1]
    assert "'..'" in got[2][1] and "'.secret'" in got[3][1]
    assert "outside the directories the controller serves" in got[4]
    assert got[5].startswith("PermissionError:") and "'..'" in got[5]


def test_each_module_crosses_once_per_gateway_and_is_read_once(
    group: execnet_cli.Group, workdir: Path, root: Path
) -> None:
    CACHE.clear()
    # Workers of our own Python (the controller's bytecode magic, whatever version runs
    # the suite) get code objects compiled here once; other versions get sources.
    gateways = [open_forwarding(group, workdir, root, python=sys.executable) for _ in range(3)]
    again = (
        "import sys\n"
        "for n in [m for m in sys.modules if m.startswith('ctrlonly')]:\n"
        "    del sys.modules[n]\n"
    )
    for gateway in gateways:
        run(gateway, USE_PACKAGE)
        run(gateway, again + USE_PACKAGE)  # imported anew, from what the worker kept
    sent = [server_of(gateway).sent for gateway in gateways]
    assert sent[0] == {
        "ctrlonly",
        "ctrlonly.tasks",
        "ctrlonly.helpers",
        "ctrlonly.sub",
        "ctrlonly.sub.deep",
    }
    assert sent[0] == sent[1] == sent[2]
    assert CACHE.reads == 6  # five modules and one data file, for all three workers
    assert CACHE.compiles == 5  # compiled here once, for workers of this Python
    assert all(server_of(gateway).magic == importlib.util.MAGIC_NUMBER for gateway in gateways)
    finder_asks = run(
        gateways[0],
        "import sys\n"
        "f = [f for f in sys.meta_path if type(f).__name__ == 'ControllerImporter'][0]\n"
        "channel.send(sorted(f.modules))",
    )
    assert len(finder_asks) == 5


def test_a_second_serve_adds_roots(
    group: execnet_cli.Group, workdir: Path, root: Path, tmp_path: Path
) -> None:
    more = tmp_path / "more"
    more.mkdir()
    (more / "extra_mod.py").write_text("VALUE = 7\n")
    gateway = open_forwarding(group, workdir, root)
    again = serve_imports(gateway, ImportPolicy.from_directories([str(more)]))
    assert again is server_of(gateway)
    assert run(gateway, "import extra_mod, ctrlonly\nchannel.send(extra_mod.VALUE)") == 7


def test_the_spec_option(group: execnet_cli.Group, workdir: Path, root: Path) -> None:
    gateway = group.makegateway(
        f"popen//python={SYSTEM_PYTHON}//chdir={workdir}//forward_imports={root}"
    )
    assert gateway.spec.fields.forward_imports == (str(root),)
    assert run(gateway, USE_PACKAGE)["deploy"]["deep"] == 42


def test_the_spec_option_bare_serves_the_main_scripts_directory(
    group: execnet_cli.Group, workdir: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", [str(root), *sys.path[1:]])
    gateway = group.makegateway(f"popen//python={SYSTEM_PYTHON}//chdir={workdir}//forward_imports")
    assert gateway.spec.fields.forward_imports == ()
    assert run(gateway, "import ctrlonly.sub.deep as d\nchannel.send(d.twice(2))") == 4


def test_bad_spec_values_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="forward_imports: .* is not a directory"):
        execnet_cli.XSpec(f"popen//forward_imports={tmp_path / 'none'}")
    with pytest.raises(SpecError, match="unknown key 'forward_import'.*forward_imports"):
        execnet_cli.XSpec("popen//forward_import")
    assert execnet_cli.XSpec("popen//forward_imports=false").fields.forward_imports is None


PY38 = "/root/.pyenv/versions/3.8.18/bin/python3.8"


@pytest.mark.skipif(not os.path.exists(PY38), reason="no Python 3.8 here")
def test_python_38_workers_with_its_resource_api(
    group: execnet_cli.Group, workdir: Path, root: Path
) -> None:
    gateway = open_forwarding(group, workdir, root, python=PY38)
    assert server_of(gateway).magic != importlib.util.MAGIC_NUMBER  # it is sent source
    got = run(
        gateway,
        """
import importlib.resources as res
import ctrlonly.tasks
channel.send((ctrlonly.tasks.deploy(), res.read_text("ctrlonly", "helpers.py")[:15],
              res.is_resource("ctrlonly", "tasks.py"), "sub" in res.contents("ctrlonly")))
""",
    )
    assert got == ({"deep": 42, "version": "1.0"}, 'NAME = "helpers', True, True)


@pytest.mark.parametrize("execmodel", ["thread", "main_thread_only"])
def test_an_import_in_a_channel_callback_fails_at_once(
    workdir: Path, root: Path, execmodel: str
) -> None:
    """The thread that reads the gateway runs callbacks: it cannot wait for an answer
    that only it would read (this hung for the answer timeout, 60 s)."""
    group = execnet_cli.Group(execmodel=execmodel)
    try:
        gateway = open_forwarding(group, workdir, root)
        assert run(gateway, "import ctrlonly.sub.deep as d\nchannel.send(d.twice(3))") == 6
        channel = gateway.remote_exec(
            """
import threading
done, seen = threading.Event(), []
def callback(item):
    for name in ("ctrlonly.sub.deep", "ctrlonly.helpers"):
        try:
            __import__(name)
            seen.append(name)
        except ImportError as exc:
            seen.append(type(exc).__name__ + ": " + str(exc))
    done.set()
inner = channel.gateway.newchannel()
inner.setcallback(callback)
channel.send(inner)
done.wait(30)
channel.send(seen)
"""
        )
        channel.receive(30).send("go")
        seen = channel.receive(30)
    finally:
        group.terminate(5)
    assert seen[0] == "ctrlonly.sub.deep"  # had come already: no need to ask
    assert seen[1].startswith("ModuleNotFoundError: cannot ask the controller for ")
    assert "channel callback" in seen[1]


#: Uses a namespace package spread over two roots, and lists packages' modules.
NAMESPACES = """
import pkgutil
import ctrlonly.sub
import nsx.alpha
import nsx.beta.deep
channel.send({
    "values": [nsx.alpha.A, nsx.beta.deep.D],
    "file": getattr(nsx, "__file__", None),
    "ctrlonly": sorted((m.name, m.ispkg) for m in pkgutil.iter_modules(ctrlonly.__path__)),
    "sub": sorted(m.name for m in pkgutil.iter_modules(ctrlonly.sub.__path__)),
    "nsx": sorted((m.name, m.ispkg) for m in pkgutil.iter_modules(nsx.__path__)),
    "walk": sorted(m.name for m in pkgutil.walk_packages(ctrlonly.__path__, "ctrlonly.")),
})
"""


def namespace_roots(root: Path, tmp_path: Path) -> list[str]:
    """``nsx`` (no ``__init__.py``) in two roots: ``nsx.alpha`` in one, ``nsx.beta`` (a
    regular package) in the other."""
    (root / "nsx").mkdir()
    (root / "nsx" / "alpha.py").write_text("A = 1\n")
    other = tmp_path / "other"
    (other / "nsx" / "beta").mkdir(parents=True)
    (other / "nsx" / "beta" / "__init__.py").write_text("")
    (other / "nsx" / "beta" / "deep.py").write_text("D = 2\n")
    return [str(root), str(other)]


def check_namespaces(got: dict) -> None:
    assert got["values"] == [1, 2]
    assert got["file"] is None  # a namespace package has no file
    assert got["ctrlonly"] == [
        ("broken", False),
        ("helpers", False),
        ("sub", True),
        ("tasks", False),
    ]  # not data/ (no __init__.py), as pkgutil lists a directory
    assert got["sub"] == ["deep"]
    assert got["nsx"] == [("alpha", False), ("beta", True)]
    assert got["walk"] == [
        "ctrlonly.broken",
        "ctrlonly.helpers",
        "ctrlonly.sub",
        "ctrlonly.sub.deep",
        "ctrlonly.tasks",
    ]


def test_namespace_packages_and_pkgutil_listings(
    group: execnet_cli.Group, workdir: Path, root: Path, tmp_path: Path
) -> None:
    gateway = group.makegateway(f"popen//python={SYSTEM_PYTHON}//chdir={workdir}")
    serve_imports(gateway, ImportPolicy.from_directories(namespace_roots(root, tmp_path)))
    check_namespaces(run(gateway, NAMESPACES))
