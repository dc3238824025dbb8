"""``import execnet`` inside a worker of a controller that runs our execnet alias (issue 13).

A popen worker of the controller's own interpreter gets the whole alias, over its own
engine: ``execnet.Channel`` is the class of the channel it was handed, and gateways it
opens itself run on the same engine. A worker that cannot import the controller's
execnet_cli (another interpreter here) gets the engine's names, and every other execnet
name raises an ImportError that says why; names that are no execnet API stay plain
AttributeErrors (introspection such as pluggy's ``getattr(module, name, None)`` relies on it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from execnet_cli.compat import alias_dir

ALIAS = str(alias_dir())


def run_controller(tmp_path: Path, code: str) -> str:
    """Run ``code`` as a controller program with the alias first on its path; its stdout."""
    script = tmp_path / "controller.py"
    script.write_text(textwrap.dedent(code))
    paths = [ALIAS, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


WHOLE = """
import execnet
gateway = execnet.makegateway("execmodel=main_thread_only//popen")
channel = gateway.remote_exec('''
import sys
import execnet
from execnet.gateway_base import Channel, WorkerPool
from execnet.multi import Group
engine = sys.modules["xnet_remote.channel"]
channel.send({
    "alias_file": execnet.__file__,
    "channel_is_engines": type(channel) is execnet.Channel is Channel is engine.Channel,
    "engine_shared": sys.modules["execnet_cli._remote.channel"] is engine,
    "whole": all(callable(x) for x in (execnet.makegateway, execnet.XSpec, execnet.RSync)),
    "pool": WorkerPool("thread").spawn(lambda: 6 * 7).get(10),
})
# a gateway the worker opens itself, on the same engine
group = Group()
sub = group.makegateway()
inner = sub.remote_exec("channel.send(channel.receive() * 2)")
inner.send(21)
channel.send((inner.receive(30), isinstance(inner, Channel)))
group.terminate(10)
''')
facts = channel.receive(60)
nested = channel.receive(60)
channel.waitclose(60)
gateway.exit()
print(repr((facts, nested)))
"""


def test_a_same_interpreter_worker_imports_the_whole_alias_over_its_own_engine(tmp_path):
    facts, nested = eval(run_controller(tmp_path, WHOLE))  # our own repr()
    assert facts["alias_file"] == os.path.join(ALIAS, "execnet", "__init__.py")
    assert facts["channel_is_engines"] and facts["engine_shared"] and facts["whole"]
    assert facts["pool"] == 42
    assert nested == (42, True)


def other_python() -> str:
    """An interpreter that is not ours (any CPython 3.8+ found), or skip."""
    from test_execnet_interpreters import find_interpreters

    ours = os.path.realpath(sys.executable)
    for version, path in sorted(find_interpreters().items()):
        if os.path.realpath(path) != ours and version != tuple(sys.version_info[:2]):
            return path
    pytest.skip(f"no CPython other than {sys.executable} found to start a worker with")


ENGINE_ONLY = """
import execnet
gateway = execnet.makegateway("popen//python=PYTHON")
channel = gateway.remote_exec('''
import execnet
import execnet.gateway_base as base
answers = {
    "dumps": execnet.loads(execnet.dumps([1, "x"])),
    "channel_class": type(channel) is execnet.Channel is base.Channel,
    "introspection": getattr(execnet, "pytest_spec", "absent"),
    "base_names": [n for n in ("ExecModel", "get_execmodel", "RemoteError", "opcode")
                   if hasattr(base, n)],
}
for what in ("from execnet import Group", "import execnet.multi",
             "from execnet.gateway_base import WorkerPool"):
    try:
        exec(what)
    except ImportError as exc:
        answers[what] = str(exc)
channel.send(answers)
''')
print(repr(channel.receive(60)))
gateway.exit()
"""


def test_another_interpreters_worker_gets_the_engine_and_a_reason_for_the_rest(tmp_path):
    python = other_python()
    answers = eval(run_controller(tmp_path, ENGINE_ONLY.replace("PYTHON", python)))
    assert answers["dumps"] == [1, "x"] and answers["channel_class"]
    assert answers["introspection"] == "absent"
    assert answers["base_names"] == ["ExecModel", "get_execmodel", "RemoteError", "opcode"]
    for what in (
        "from execnet import Group",
        "import execnet.multi",
        "from execnet.gateway_base import WorkerPool",
    ):
        assert "is not available in this worker" in answers[what], answers
        assert "cannot import the controller's execnet_cli" in answers[what]


def test_without_the_alias_workers_leave_import_execnet_alone(tmp_path):
    """A controller that imports execnet_cli itself gives its workers no execnet."""
    out = run_controller(
        tmp_path,
        """
        import execnet_cli
        gateway = execnet_cli.makegateway()
        channel = gateway.remote_exec(
            "import sys; channel.send([m for m in sys.meta_path if 'Alias' in type(m).__name__])"
        )
        print(channel.receive(60))
        gateway.exit()
        """,
    )
    assert out.strip() == "[]"


def test_the_worker_and_controller_tables_agree():
    """Every engine name a worker's ``execnet.gateway_base`` offers is the very object the
    controller's alias has, and the worker's list of the rest is the alias's."""
    import importlib

    from execnet_cli._remote import compat

    sys.path.insert(0, ALIAS)
    saved = {k: v for k, v in sys.modules.items() if k == "execnet" or k.startswith("execnet.")}
    for name in saved:
        del sys.modules[name]
    try:
        base = importlib.import_module("execnet.gateway_base")
        package = importlib.import_module("execnet")
        exports = compat.gateway_base_exports()
        assert all(getattr(base, name) is value for name, value in exports.items())
        assert sorted(set(base.__all__) - set(exports)) == sorted(compat.GATEWAY_BASE_ONLY_WHOLE)
        assert set(compat.PACKAGE_NAMES) | set(compat.PACKAGE_ONLY_WHOLE) == (
            set(package.__all__) - {"__version__"}
        ) | {"gateway", "gateway_io", "multi", "rsync", "xspec"}
    finally:
        sys.path.remove(ALIAS)
        for name in [k for k in sys.modules if k == "execnet" or k.startswith("execnet.")]:
            del sys.modules[name]
        sys.modules.update(saved)
