"""execnet's documented behaviour, held against the real execnet and our alias alike.

Every test takes the ``execnet`` fixture, parametrized over the two engines: the real
execnet 2.1.2 (installed as a dev dependency) and our alias package, each imported as
``execnet`` (their modules are swapped into ``sys.modules`` for the test, so a gateway
opened through the alias gives its workers the alias too). The cases follow execnet's
docs (basics, the examples of channels, groups, multi-channels, proxies, rsync, execution
models, serialization). Where the engines differ on purpose, the difference is a test of
its own (``test_documented_difference_*``) and listed in docs/execnet.md.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import queue
import struct
import sys
import textwrap
import threading
from pathlib import Path
from types import ModuleType
from typing import Dict, Iterator

import pytest

from execnet_cli.compat import alias_dir

pytest.importorskip("execnet")

ALIAS = str(alias_dir())
#: execnet's modules a program may import (their names are checked below).
MODULES = ("gateway", "gateway_base", "gateway_io", "multi", "rsync", "xspec")
TIMEOUT = 30


def execnet_modules() -> Dict[str, ModuleType]:
    return {k: v for k, v in sys.modules.items() if k == "execnet" or k.startswith("execnet.")}


def import_engine(alias: bool) -> Dict[str, ModuleType]:
    """The modules of one engine imported as ``execnet``, leaving sys.modules as it was."""
    saved = execnet_modules()
    for name in saved:
        del sys.modules[name]
    if alias:
        sys.path.insert(0, ALIAS)
    try:
        importlib.import_module("execnet")
        for name in MODULES:
            importlib.import_module(f"execnet.{name}")
        return execnet_modules()
    finally:
        if alias:
            sys.path.remove(ALIAS)
        for name in execnet_modules():
            del sys.modules[name]
        sys.modules.update(saved)


_ENGINES: Dict[str, Dict[str, ModuleType]] = {}


def engine_modules(kind: str) -> Dict[str, ModuleType]:
    if kind not in _ENGINES:
        _ENGINES[kind] = import_engine(alias=kind == "alias")
    return _ENGINES[kind]


@contextlib.contextmanager
def using(modules: Dict[str, ModuleType]) -> Iterator[ModuleType]:
    """``import execnet`` gives ``modules`` while in the block."""
    saved = execnet_modules()
    for name in saved:
        del sys.modules[name]
    sys.modules.update(modules)
    try:
        yield modules["execnet"]
    finally:
        for name in execnet_modules():
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.fixture(params=["execnet", "alias"])
def execnet(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The real execnet, or our alias, as ``execnet``."""
    modules = engine_modules(request.param)
    with using(modules) as module:
        yield module
        module.default_group.terminate(10)


@pytest.fixture
def group(execnet: ModuleType) -> Iterator[object]:
    group = execnet.Group()
    yield group
    group.terminate(10)


def is_alias(execnet: ModuleType) -> bool:
    return bool(getattr(execnet, "__xnet_alias__", False))


# -- the module layout ------------------------------------------------------------------

#: Names of execnet 2.1.2's modules that a program may use, as the alias provides them.
LAYOUT = {
    "execnet": [
        "Channel", "DataFormatError", "DumpError", "Gateway", "Group", "HostNotFound",
        "LoadError", "MultiChannel", "RSync", "RemoteError", "TimeoutError", "XSpec",
        "__version__", "default_group", "dump", "dumps", "load", "loads", "makegateway",
        "set_execmodel",
    ],
    "execnet.gateway": ["Gateway", "RInfo", "RemoteStatus", "rinfo_source"],
    "execnet.gateway_base": [
        "BaseGateway", "COMPLEX_FORMAT", "COMPLEX_FORMAT_SIZE", "Channel", "ChannelFactory",
        "ChannelFile", "ChannelFileRead", "ChannelFileWrite", "DEBUG", "DUMPFORMAT_VERSION",
        "DataFormatError", "DumpError", "Event", "ExecModel", "FLOAT_FORMAT",
        "FLOAT_FORMAT_SIZE", "FOUR_BYTE_INT_MAX", "GatewayReceivedTerminate", "IO",
        "LoadError", "MAIN_THREAD_ONLY_DEADLOCK_TEXT", "Message", "NO_ENDMARKER_WANTED",
        "Popen2IO", "ReadIO", "RemoteError", "Reply", "TimeoutError", "Unserializer",
        "WorkerGateway", "WorkerPool", "WriteIO", "bchr", "dump", "dumps", "dumps_internal",
        "get_execmodel", "geterrortext", "init_popen_io", "load", "loads", "loads_internal",
        "notrace", "opcode", "pid", "sysex", "trace",
    ],
    "execnet.multi": [
        "Group", "MultiChannel", "NO_ENDMARKER_WANTED", "default_group", "makegateway",
        "safe_terminate", "set_execmodel",
    ],
    "execnet.rsync": ["RSync"],
    "execnet.xspec": ["XSpec"],
    "execnet.gateway_io": [
        "Message", "Popen2IO", "Popen2IOMaster", "create_io", "popen_args",
        "popen_bootstrapline", "shell_split_path", "ssh_args", "vagrant_ssh_args",
    ],
}  # fmt: skip

#: execnet's public names the alias does not have, and why (docs/execnet.md says more).
ABSENT = {
    "execnet.gateway_base": {
        "ENDMARKER": "a channel queue's internal sentinel",
        "EventletExecModel": "eventlet is not supported",
        "GeventExecModel": "gevent is not supported",
        "MainThreadOnlyExecModel": "one ExecModel class; its backend names the model",
        "ThreadExecModel": "one ExecModel class; its backend names the model",
        "INTERRUPT_TEXT": "workers ignore SIGINT (the controller ends them)",
        "serve": "workers run our engine (_remote/worker.py), started by the bootstrap",
    },
    "execnet.gateway_io": {
        "ProxyIO": "via= relays bytes with its own protocol (_remote/via.py)",
        "PseudoSpec": "via= relays bytes with its own protocol (_remote/via.py)",
        "serve_proxy_io": "via= relays bytes with its own protocol (_remote/via.py)",
        "RIO_CLOSE_WRITE": "via= relays bytes with its own protocol (_remote/via.py)",
        "RIO_KILL": "via= relays bytes with its own protocol (_remote/via.py)",
        "RIO_REMOTEADDRESS": "via= relays bytes with its own protocol (_remote/via.py)",
        "RIO_WAIT": "via= relays bytes with its own protocol (_remote/via.py)",
    },
}


def public_names(module: ModuleType) -> set:
    """What a module offers: public names but modules, and classes and functions only
    where they come from execnet itself (not its stdlib and typing imports)."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, ModuleType):
            continue
        if name in ("annotations", "TYPE_CHECKING"):
            continue
        if callable(value) and not getattr(value, "__module__", "").startswith("execnet"):
            continue
        names.add(name)
    return names


@pytest.mark.parametrize("module", sorted(LAYOUT))
def test_module_layout(execnet, module):
    """Every name of LAYOUT imports from both engines (so the list is execnet's)."""
    loaded = importlib.import_module(module)
    missing = [name for name in LAYOUT[module] if not hasattr(loaded, name)]
    assert missing == []


@pytest.mark.parametrize("module", [f"execnet.{name}" for name in MODULES])
def test_what_the_alias_lacks_is_listed(module):
    """execnet's public names minus the alias's are exactly ABSENT (and docs/execnet.md)."""
    real, ours = engine_modules("execnet")[module], engine_modules("alias")[module]
    lacking = {n for n in public_names(real) if not hasattr(ours, n)}
    assert lacking == set(ABSENT.get(module, {}))


def test_engine_objects_are_the_same_in_every_module(execnet):
    base = importlib.import_module("execnet.gateway_base")
    multi = importlib.import_module("execnet.multi")
    assert execnet.Channel is base.Channel
    assert execnet.RemoteError is base.RemoteError and execnet.dumps is base.dumps
    assert execnet.Group is multi.Group and execnet.MultiChannel is multi.MultiChannel
    assert execnet.XSpec is importlib.import_module("execnet.xspec").XSpec
    assert execnet.RSync is importlib.import_module("execnet.rsync").RSync
    assert execnet.Gateway is importlib.import_module("execnet.gateway").Gateway
    assert isinstance(execnet.default_group, execnet.Group)


# -- gateways and channels (docs: basics, example/test_info) ------------------------------


def exit_and_reap(execnet: ModuleType, gateway: object) -> None:
    """``gateway.exit()``; execnet's returns before its worker ended (and forgets it):
    wait for that worker here, as ours does itself."""
    gateway.exit()
    if not is_alias(execnet):
        gateway._io.wait()


def test_quickstart(execnet):
    gateway = execnet.makegateway()
    channel = gateway.remote_exec("channel.send(channel.receive() + 1)")
    channel.send(1)
    assert channel.receive(TIMEOUT) == 2
    channel.waitclose(TIMEOUT)
    exit_and_reap(execnet, gateway)


def test_remote_exec_of_a_pure_function_with_kwargs(group):
    def multiplier(channel, factor):
        while not channel.isclosed():
            param = channel.receive()
            channel.send(param * factor)

    channel = group.makegateway().remote_exec(multiplier, factor=10)
    for i in range(5):
        channel.send(i)
        assert channel.receive(TIMEOUT) == i * 10


def test_remote_exec_of_a_function_with_globals_is_refused(group):
    def uses_a_global(channel):
        channel.send(os.getpid())

    with pytest.raises(ValueError):
        group.makegateway().remote_exec(uses_a_global)


def test_remote_exec_of_a_module(group, tmp_path, monkeypatch):
    (tmp_path / "xnet_remote1.py").write_text(
        'if __name__ == "__channelexec__":\n    channel.send("initialization complete")\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("xnet_remote1")
    try:
        channel = group.makegateway().remote_exec(module)
        assert channel.receive(TIMEOUT) == "initialization complete"
    finally:
        sys.modules.pop("xnet_remote1", None)


def test_indented_source_is_dedented_and_cwd_is_ours(group):
    channel = group.makegateway().remote_exec(
        """
        import os
        channel.send(os.getcwd())
        """
    )
    assert channel.receive(TIMEOUT) == os.getcwd()


def test_callback_with_endmarker(group):
    channel = group.makegateway().remote_exec("for i in range(10): channel.send(i)")
    received: list = []
    channel.setcallback(received.append, endmarker=None)
    channel.waitclose(TIMEOUT)
    assert received == [*range(10), None]


def test_iterating_a_channel_ends_when_the_far_side_closes(group):
    channel = group.makegateway().remote_exec("for i in range(3): channel.send(i)")
    assert list(channel) == [0, 1, 2]


def test_receive_timeout(execnet, group):
    channel = group.makegateway().remote_exec("channel.receive()")
    with pytest.raises(channel.TimeoutError):
        channel.receive(0.1)
    assert issubclass(channel.TimeoutError, OSError)
    assert channel.TimeoutError is execnet.TimeoutError
    channel.send(None)
    channel.waitclose(TIMEOUT)


def test_remote_error_is_raised_with_its_traceback(execnet, group):
    channel = group.makegateway().remote_exec("def f():\n    raise ValueError('xyz')\nf()")
    with pytest.raises(execnet.RemoteError) as excinfo:
        channel.waitclose(TIMEOUT)
    assert "ValueError: xyz" in str(excinfo.value)
    assert "ValueError: xyz" in excinfo.value.formatted
    assert channel.RemoteError is execnet.RemoteError


def test_closing_with_an_error_reaches_the_far_side(execnet, group):
    channel = group.makegateway().remote_exec(
        "try:\n    channel.receive()\nexcept channel.RemoteError as e:\n"
        "    channel.gateway.newchannel()\n    import sys\n    sys.stderr.flush()\n"
        "    raise ValueError('far got: ' + str(e))\n"
    )
    channel.close("stop it")
    assert channel.isclosed()


def test_channels_travel_over_channels(execnet, group):
    gateway = group.makegateway()
    channel = gateway.remote_exec(
        """
        other = channel.receive()
        other.send(other.receive() * 2)
        made = channel.gateway.newchannel()
        channel.send(made)
        made.send("from far")
        """
    )
    other = gateway.newchannel()
    channel.send(other)
    other.send(21)
    assert other.receive(TIMEOUT) == 42
    made = channel.receive(TIMEOUT)
    assert isinstance(made, execnet.Channel)
    assert made.receive(TIMEOUT) == "from far"


def test_channel_files(group):
    gateway = group.makegateway()
    channel = gateway.remote_exec(
        """
        out = channel.makefile("w")
        out.write("line one\\n")
        out.write("line two\\n")
        """
    )
    lines = channel.makefile("r")
    assert lines.readline() == "line one\n"
    assert lines.readline() == "line two\n"
    with pytest.raises(ValueError):
        channel.makefile("rw")


def test_remote_status_and_rinfo(group):
    gateway = group.makegateway()
    status = gateway.remote_status()
    assert status.numexecuting == 0 and status.numchannels >= 0
    info = gateway._rinfo()
    assert info.executable and info.version_info[:2] == tuple(sys.version_info[:2])
    assert info.cwd == os.getcwd() and info.pid != os.getpid()


# -- groups and multi-channels (docs: example/test_group, test_multi, test_proxy) --------------


def test_group_membership_and_ids(execnet):
    group = execnet.Group(["popen"] * 2)
    try:
        assert len(group) == 2 and repr(group) == "<Group ['gw0', 'gw1']>"
        assert "gw0" in group and "gw1" in group
        assert group["gw0"] == group[0] and group["gw1"] == group[1]
        named = group.makegateway("popen//id=sub1")
        assert named.id == "sub1" and group["sub1"] is named
        spec = execnet.XSpec("popen")
        group.allocate_id(spec)
        assert group.makegateway(spec).id == spec.id == "gw2"
    finally:
        group.terminate()
    assert repr(group) == "<Group []>"


def test_default_group(execnet):
    gateway = execnet.makegateway()
    assert gateway in execnet.default_group
    assert execnet.default_group.defaultspec == "popen"
    exit_and_reap(execnet, gateway)


def test_terminate_ends_a_busy_worker(execnet):
    group = execnet.Group()
    gateway = group.makegateway("popen//id=sleeper")
    gateway.remote_exec("import time; time.sleep(60)")
    assert repr(group) == "<Group ['sleeper']>"
    group.terminate(timeout=1.0)
    assert repr(group) == "<Group []>"


def test_multichannel(execnet, group):
    channels = [group.makegateway().remote_exec(f"channel.send({i})") for i in (1, 2)]
    multi = execnet.MultiChannel(channels)
    assert len(multi) == 2 and multi[0] is channels[0] and channels[1] in multi
    assert sum(multi.receive_each()) == 3
    again = execnet.MultiChannel([gw.remote_exec("channel.send(1)") for gw in group])
    items = again.make_receive_queue()
    assert sorted(items.get(timeout=TIMEOUT)[1] for _ in again) == [1, 1]


def test_group_remote_exec_and_endmarker_after_terminate(execnet):
    group = execnet.Group(["popen"] * 3)
    multi = group.remote_exec("channel.send(channel.receive() + 1)")
    items = multi.make_receive_queue(endmarker=42)
    multi[0].send(1)
    assert items.get(timeout=TIMEOUT) == (multi[0], 2)
    group.terminate(timeout=1)
    assert [items.get(timeout=TIMEOUT)[1] for _ in range(3)] == [42, 42, 42]


def test_send_each_and_receive_each_with_channels(group):
    group.makegateway()
    group.makegateway()
    multi = group.remote_exec("channel.send(channel.receive() * 2)")
    multi.send_each(4)
    assert [(ch in multi, item) for ch, item in multi.receive_each(withchannel=True)] == [
        (True, 8),
        (True, 8),
    ]
    multi.waitclose()


def test_gateways_via_another(group):
    group.defaultspec = "popen//via=master"
    master = group.makegateway("popen//id=master")
    worker = group.makegateway()
    assert worker.id == "gw0" and repr(group) == "<Group ['master', 'gw0']>"
    pids = [
        gw.remote_exec("import os; channel.send(os.getppid())").receive(TIMEOUT) for gw in group
    ]
    assert pids[1] != os.getpid() or master is None


# -- execution models (docs: basics) -------------------------------------------------------


@pytest.mark.parametrize("model", ["thread", "main_thread_only"])
def test_remote_code_runs_on_the_main_thread(execnet, model):
    group = execnet.Group(execmodel=model)
    try:
        assert group.execmodel.backend == model == group.remote_execmodel.backend
        channel = group.makegateway().remote_exec(
            "import threading; channel.send(threading.current_thread() is threading.main_thread())"
        )
        assert channel.receive(TIMEOUT) is True
    finally:
        group.terminate(10)


def test_main_thread_only_refuses_a_concurrent_request(execnet):
    base = importlib.import_module("execnet.gateway_base")
    group = execnet.Group()
    try:
        gateway = group.makegateway("execmodel=main_thread_only//popen")
        busy = gateway.remote_exec("channel.receive()")
        refused = gateway.remote_exec("channel.send(1)")
        with pytest.raises(execnet.RemoteError, match=base.MAIN_THREAD_ONLY_DEADLOCK_TEXT):
            refused.waitclose(TIMEOUT)
        busy.send(None)
        busy.waitclose(TIMEOUT)
    finally:
        group.terminate(10)


def test_thread_model_runs_requests_concurrently(group):
    gateway = group.makegateway("execmodel=thread//popen")
    first = gateway.remote_exec("channel.send(channel.receive())")
    second = gateway.remote_exec("channel.send('second ran')")
    assert second.receive(TIMEOUT) == "second ran"
    first.send("first ran")
    assert first.receive(TIMEOUT) == "first ran"


def test_execmodel_objects(execnet):
    base = importlib.import_module("execnet.gateway_base")
    model = base.get_execmodel("thread")
    assert isinstance(model, base.ExecModel) and base.get_execmodel(model) is model
    assert model.backend == "thread"
    lock, event = model.RLock(), model.Event()
    with lock, lock:
        event.set()
    assert event.is_set() and model.get_ident() == threading.get_ident()
    items = model.queue.Queue()
    model.start(items.put, (1,))
    assert items.get(timeout=TIMEOUT) == 1
    with pytest.raises(ValueError):
        base.get_execmodel("no-such-model")


# -- the worker pool (gateway_base.WorkerPool, multi.safe_terminate) -----------------------


def test_worker_pool(execnet):
    base = importlib.import_module("execnet.gateway_base")
    pool = base.WorkerPool(base.get_execmodel("thread"))
    assert pool.spawn(lambda: 42).get(TIMEOUT) == 42
    failing = pool.spawn(lambda: 1 / 0)
    failing.waitfinish(TIMEOUT)
    with pytest.raises(ZeroDivisionError):
        failing.get()
    gate = queue.Queue()
    blocked = pool.spawn(gate.get)
    assert blocked.running and pool.active_count() == 1
    assert not pool.waitall(0.05)
    with pytest.raises(OSError):
        blocked.get(timeout=0.01)
    gate.put("go")
    assert blocked.get(TIMEOUT) == "go" and pool.waitall(TIMEOUT)
    pool.trigger_shutdown()
    with pytest.raises(ValueError):
        pool.spawn(lambda: None)


def test_worker_pool_primary_thread(execnet):
    base = importlib.import_module("execnet.gateway_base")
    model = base.get_execmodel("main_thread_only")
    pool = base.WorkerPool(model, hasprimary=True)
    primary = threading.Thread(target=pool.integrate_as_primary_thread)
    primary.start()
    idents = [pool.spawn(threading.get_ident).get(TIMEOUT) for _ in range(3)]
    assert set(idents) == {primary.ident}
    assert pool.terminate(TIMEOUT)
    primary.join(TIMEOUT)
    assert not primary.is_alive()


def test_safe_terminate_kills_what_does_not_end(execnet):
    multi = importlib.import_module("execnet.multi")
    base = importlib.import_module("execnet.gateway_base")
    calls: list = []
    never = threading.Event()
    pairs = [
        (lambda: calls.append("term ok"), lambda: calls.append("kill ok")),
        (lambda: never.wait(5), lambda: (calls.append("kill stuck"), never.set())),
    ]
    multi.safe_terminate(base.get_execmodel("thread"), 0.2, pairs)
    assert sorted(calls) == ["kill stuck", "term ok"]


# -- specs, rsync, serialization ------------------------------------------------------------


def test_xspec(execnet):
    spec = execnet.XSpec("popen//python=python3//chdir=/tmp/w//env:NAME=value//id=w1")
    assert spec.popen is True and spec.python == "python3" and spec.chdir == "/tmp/w"
    assert spec.env == {"NAME": "value"} and spec.id == "w1" and spec.ssh is None
    assert str(spec) == "popen//python=python3//chdir=/tmp/w//env:NAME=value//id=w1"
    assert spec == execnet.XSpec(str(spec)) and hash(spec) == hash(execnet.XSpec(str(spec)))
    with pytest.raises(ValueError):
        execnet.XSpec("popen//popen")  # a key twice


def test_rsync(execnet, group, tmp_path):
    source, dest = tmp_path / "source", tmp_path / "dest"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("a")
    (source / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    (source / "skip.tmp").write_text("no")

    class Filtered(execnet.RSync):
        def filter(self, path):
            return not path.endswith(".tmp")

    done: list = []
    rsync = Filtered(source, verbose=False)
    rsync.add_target(group.makegateway(), dest, finishedcallback=lambda: done.append(1))
    rsync.send()
    assert (dest / "a.txt").read_text() == "a" and done == [1]
    assert (dest / "sub" / "b.bin").read_bytes() == (source / "sub" / "b.bin").read_bytes()
    assert not (dest / "skip.tmp").exists()


VALUES = [
    None, True, False, 0, -1, 2**31 - 1, -(2**31), 2**100, 1.5, -0.0,
    float("inf"), 3 + 4j, "", "text", "ünïcödé ✓", b"", b"\x00\xff" * 100,
    (), (1, (2, 3)), [], [1, [2, [3]]], {}, {"k": [1], (1, 2): {"n": None}},
    set(), {1, 2}, frozenset({"a"}), [b"x" * 70_000, "y" * 70_000],
]  # fmt: skip


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_serializer_round_trips(execnet, value, tmp_path):
    assert execnet.loads(execnet.dumps(value)) == value
    path = tmp_path / "value.bin"
    with open(path, "wb") as out:
        execnet.dump(out, value)
    with open(path, "rb") as back:
        assert execnet.load(back) == value


def test_serializer_errors(execnet):
    with pytest.raises(execnet.DumpError):
        execnet.dumps(object())
    with pytest.raises(execnet.DataFormatError):
        execnet.loads(b"\x02garbage")
    with pytest.raises(execnet.DataFormatError):
        execnet.loads(b"\x01" + execnet.dumps(1)[1:])  # another format version
    assert issubclass(execnet.DumpError, execnet.DataFormatError)
    assert issubclass(execnet.LoadError, execnet.DataFormatError)


def test_serialized_bytes_are_execnets(execnet):
    """Values stored by either engine load in the other (execnet's format, version 2)."""
    real = engine_modules("execnet")["execnet"]
    value = {"a": [1, 2**40, -(2**31), 1.5, (None, True)], "b": {b"x", frozenset()}}
    assert execnet.loads(real.dumps(value)) == value
    assert real.loads(execnet.dumps(value)) == value
    assert execnet.dumps([1, "x"]) == real.dumps([1, "x"])


def test_values_of_every_type_cross_the_gateway_both_ways(group):
    channel = group.makegateway().remote_exec("for item in channel: channel.send(item)")
    for value in VALUES:
        channel.send(value)
        assert channel.receive(TIMEOUT) == value


def test_unsendable_values_raise_dump_error_on_both_sides(execnet, group):
    gateway = group.makegateway()
    channel = gateway.remote_exec("channel.receive()")
    with pytest.raises(execnet.DumpError):
        channel.send(object())
    channel.send(None)
    far = gateway.remote_exec("channel.send(object())")
    with pytest.raises(execnet.RemoteError, match="DumpError|serializ"):
        far.waitclose(TIMEOUT)


# -- termination (docs: basics "robust termination") ---------------------------------------


def test_a_killed_worker_ends_its_channels(execnet, group):
    gateway = group.makegateway()
    channel = gateway.remote_exec("import os; channel.send(os.getpid()); channel.receive()")
    pid = channel.receive(TIMEOUT)
    os.kill(pid, 9)
    with pytest.raises(EOFError):
        channel.receive(TIMEOUT)


def test_documented_difference_exit_ends_a_busy_worker(execnet):
    """Ours: ``exit()`` asks, waits (5 s by default, or ``timeout``), then kills, and
    returns once the worker is gone. execnet's only asks: a busy worker runs on until its
    task ends, outside the group (so ``terminate`` does not reach it)."""
    if not is_alias(execnet):
        pytest.skip("execnet leaves a busy worker running after exit()")
    group = execnet.Group()
    gateway = group.makegateway()
    gateway.remote_exec("import time; time.sleep(60)")
    gateway.exit(timeout=0.5)
    assert not gateway.hasreceiver() and len(group) == 0
    group.terminate()  # its fork server


def test_documented_difference_ints_below_minus_two_to_the_31(execnet):
    """execnet's serializer fails with struct.error on ints below -2**31; ours writes them
    in execnet's format for long ints, which execnet reads."""
    real = engine_modules("execnet")["execnet"]
    if not is_alias(execnet):
        with pytest.raises(struct.error):
            execnet.dumps(-(2**70))
        return
    assert real.loads(execnet.dumps(-(2**70))) == -(2**70)


# -- differences on purpose (docs/execnet.md) ----------------------------------------------


def test_documented_difference_send_after_a_normal_far_close(execnet, group):
    channel = group.makegateway().remote_exec("pass")
    channel.waitclose(TIMEOUT)
    if is_alias(execnet):
        channel.send("discarded")  # the far side has finished: nothing to tell
    else:
        with pytest.raises(OSError):
            channel.send("raises")


def test_documented_difference_unknown_spec_keys(execnet):
    if is_alias(execnet):
        with pytest.raises(ValueError, match="pyhton"):
            execnet.XSpec("popen//pyhton=python3")
    else:
        assert execnet.XSpec("popen//pyhton=python3").pyhton == "python3"


def test_gateway_io_command_lines_start_a_worker(execnet):
    """The alias's popen command line starts our worker: it waits for its bootstrap."""
    io_module = importlib.import_module("execnet.gateway_io")
    args = io_module.popen_args(execnet.XSpec("popen"))
    assert args[0] == sys.executable and args[-1] == io_module.popen_bootstrapline
    compile(io_module.popen_bootstrapline, "bootstrapline", "exec")
    ssh = io_module.ssh_args(execnet.XSpec("ssh=-p 2222 user@host//python=python3"))
    assert ssh[0] == "ssh" and ssh[-3:-1] == ["2222", "user@host"] and "python3 -c" in ssh[-1]


def test_message_round_trip(execnet):
    from io import BytesIO

    base = importlib.import_module("execnet.gateway_base")
    for code in base.Message._types:
        out = BytesIO()
        base.Message(code, 42, b"23").to_io(out)
        message = base.Message.from_io(BytesIO(out.getvalue()))
        assert (message.msgcode, message.channelid, message.data) == (code, 42, b"23")
        assert repr(message).startswith("<Message")
    with pytest.raises(EOFError):
        base.Message.from_io(base.Popen2IO(BytesIO(), BytesIO(b""), "thread"))


def test_function_source_helpers(execnet):
    gateway = importlib.import_module("execnet.gateway")

    def working(channel):
        pass

    assert gateway._source_of_function(working).lstrip("\r\n") == (
        "def working(channel):\n    pass\n"
    )
    with pytest.raises(ValueError):
        gateway._source_of_function(lambda: 1)

    def reads_sys(a):
        return sys

    code = reads_sys.__code__
    assert gateway._find_non_builtin_globals(textwrap.dedent(
        "def reads_sys(a):\n    return sys\n"), code) == ["sys"]  # fmt: skip


def test_trace_is_off_without_execnet_debug(execnet):
    base = importlib.import_module("execnet.gateway_base")
    if os.environ.get("EXECNET_DEBUG"):
        pytest.skip("EXECNET_DEBUG is set here")
    assert base.trace is base.notrace
    base.trace("goes nowhere")


def test_geterrortext(execnet):
    base = importlib.import_module("execnet.gateway_base")
    try:
        raise ValueError("17")
    except ValueError as exc:
        assert "ValueError: 17" in base.geterrortext(exc)


def test_popen2io_reads_exactly(execnet, tmp_path):
    base = importlib.import_module("execnet.gateway_base")
    path = Path(tmp_path / "data")
    path.write_bytes(b"abcdef")
    with open(path, "rb") as infile, open(tmp_path / "out", "wb") as outfile:
        io = base.Popen2IO(outfile, infile, base.get_execmodel("thread"))
        assert io.read(4) == b"abcd"
        with pytest.raises(EOFError):
            io.read(4)
        io.write(b"written")
    assert (tmp_path / "out").read_bytes() == b"written"
