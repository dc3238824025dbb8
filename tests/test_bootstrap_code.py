"""Workers on another interpreter get our code objects with the sources: one with our
bytecode magic (any 3.11.x for a 3.11 controller) compiles nothing, any other compiles
the sources of what it imports. Real popen workers of other interpreters found here."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import threading
from collections.abc import Iterator

import pytest

import execnet_cli
from execnet_cli import bootstrap

#: What the worker's importer holds (its code objects), and a remote module's file name.
PROBE = """\
import sys
importer = [f for f in sys.meta_path if type(f).__name__ == "_XnetImporter"][0]
worker = sys.modules[importer.package + ".worker"]
channel.send((len(importer.code), worker.main.__code__.co_filename))
"""
#: A remote traceback through one of the shipped modules (the serializer refusing an object).
RAISE_INSIDE = "channel.send(object())"


def _pyenv() -> list[str]:
    root = os.path.expanduser("~/.pyenv/versions")
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    paths = [os.path.join(root, name, "bin", "python3") for name in names]
    return [p for p in paths if os.access(p, os.X_OK) and not bootstrap.same_interpreter(p)]


def _magic(python: str) -> bytes:
    code = "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"
    return bytes.fromhex(subprocess.run([python, "-c", code], capture_output=True).stdout.decode())


def _other_python(same_magic: bool) -> str:
    for python in _pyenv() + ["/usr/bin/python3"]:
        if not os.access(python, os.X_OK) or bootstrap.same_interpreter(python):
            continue
        if (_magic(python) == importlib.util.MAGIC_NUMBER) == same_magic:
            return python
    pytest.skip(f"no other interpreter {'with' if same_magic else 'without'} our magic here")


@pytest.fixture
def worker(request: pytest.FixtureRequest) -> Iterator[execnet_cli.Gateway]:
    gateway = execnet_cli.makegateway(f"popen//python={_other_python(request.param)}")
    yield gateway
    gateway.exit()


@pytest.mark.parametrize("worker", [True], indirect=True, ids=["same magic"])
def test_a_worker_with_our_magic_runs_our_code_objects(worker: execnet_cli.Gateway) -> None:
    count, filename = worker.remote_exec(PROBE).receive()
    assert count == len(bootstrap.REMOTE_MODULES) - len(bootstrap.ON_DEMAND)
    assert filename == "xnet_remote/worker.py"  # as if compiled there: no path of ours


@pytest.mark.parametrize("worker", [True, False], indirect=True, ids=["same", "other"])
def test_modules_few_workers_use_are_shipped_where_wanted(worker: execnet_cli.Gateway) -> None:
    """The fork server's and execnet's compatibility modules are left out of the bundle of
    a worker of another interpreter; ``remote_modules`` ships them (a relay imports
    ``forkserver``)."""
    probe = "from xnet_remote import forkserver\nchannel.send(forkserver.__name__)"
    if "sources" not in worker.remote_exec(HAS_SOURCES).receive(10):
        with pytest.raises(execnet_cli.RemoteError, match="forkserver"):
            worker.remote_exec(probe).waitclose(10)
    assert worker.remote_modules("forkserver") == bootstrap.WORKER_PACKAGE
    assert worker.remote_exec(probe).receive(10) == "xnet_remote.forkserver"


#: "sources" when the worker has them (it asked: another magic), else "code".
HAS_SOURCES = """
import sys
importer = [f for f in sys.meta_path if type(f).__name__ == "_XnetImporter"][0]
channel.send("code" if importer.code else "sources")
"""


@pytest.mark.parametrize("worker", [False], indirect=True, ids=["other magic"])
def test_a_worker_with_another_magic_compiles_the_sources(worker: execnet_cli.Gateway) -> None:
    count, filename = worker.remote_exec(PROBE).receive()
    assert (count, filename) == (0, "xnet_remote/worker.py")


def test_a_mismatched_magic_falls_back_to_the_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """Code objects are never run by an interpreter of another bytecode version."""
    monkeypatch.setattr(bootstrap, "CODE_MAGIC", b"\x00\x00\r\n")
    bootstrap._modules_bytes.cache_clear()  # the bundle is marshalled once per process
    gateway = execnet_cli.makegateway(f"popen//python={_other_python(True)}")
    try:
        assert gateway.remote_exec(PROBE).receive() == (0, "xnet_remote/worker.py")
    finally:
        gateway.exit()
        bootstrap._modules_bytes.cache_clear()


@pytest.mark.parametrize("worker", [True, False], indirect=True, ids=["same", "other"])
def test_remote_tracebacks_show_the_shipped_source(worker: execnet_cli.Gateway) -> None:
    with pytest.raises(execnet_cli.RemoteError) as info:
        worker.remote_exec(RAISE_INSIDE).waitclose(10)
    text = str(info.value)
    lines = text.splitlines()
    entries = [i for i, line in enumerate(lines) if line.startswith('  File "xnet_remote/')]
    assert entries, text
    for i in entries:  # each with its source line, as traceback prints it
        name, number = re.match(r'  File "xnet_remote/(\w+)\.py", line (\d+)', lines[i]).groups()
        source = module_source(name).splitlines()[int(number) - 1].strip()
        assert lines[i + 1] == "    " + source, text


def test_the_bundle_is_built_once_when_many_gateways_open_at_once() -> None:
    """64 ssh gateways opened together all ask for the bundle's modules first: they are
    read and compiled once, not once per thread (63 times, before)."""
    bootstrap._module_payloads.cache_clear()
    bootstrap._modules_bytes.cache_clear()
    bootstrap._worker_code.cache_clear()
    bootstrap.module_payload.cache_clear()
    start = threading.Barrier(16)

    def build() -> None:
        start.wait()
        bootstrap.bootstrap_bytes({}, same_python=False)

    threads = [threading.Thread(target=build) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert bootstrap._worker_code.cache_info().misses == 1
    assert bootstrap._module_payloads.cache_info().misses == 0  # sources: only on request
    assert bootstrap._modules_bytes.cache_info().misses == 1


def test_jobs_call_their_remote_half_from_the_bundle() -> None:
    """``xnet run``/``sh`` send a call, not ``run_python``'s source for every worker to
    compile: the worker imports it from its bundle (code objects where it takes ours)."""
    from execnet_cli.fleet.jobs import python_job, shell_job

    for job in (python_job("print(1)"), shell_job("true")):
        assert job.source.startswith(f"from {bootstrap.WORKER_PACKAGE}.jobs import ")
        assert len(job.source.splitlines()) == 2 and "def " not in job.source
    gateway = execnet_cli.makegateway("popen")
    try:
        probe = "from xnet_remote import jobs\nchannel.send(jobs.run_python.__code__.co_filename)"
        assert gateway.remote_exec(probe).receive(10).endswith("jobs.py")
    finally:
        gateway.exit()


SOURCE_PROBE = """
import sys
importer = [f for f in sys.meta_path if type(f).__name__ == "_XnetImporter"][0]
source = importer.get_source(importer.package + ".framing")
channel.send(source and source.splitlines()[0])
"""


@pytest.mark.parametrize("worker", [True, False], indirect=True, ids=["same", "other"])
def test_only_a_worker_of_another_magic_gets_the_sources(
    worker: execnet_cli.Gateway, request: pytest.FixtureRequest
) -> None:
    """A worker of our magic never reads the sources: they are not in the bundle (they
    were ~19 % of it). A worker of another magic asks for them, packed."""
    import marshal

    bundle = marshal.loads(bootstrap._modules_bytes(False))
    assert "modules" not in bundle and "packed" not in bundle and bundle["ask_sources"]
    assert bundle["names"] == list(bootstrap.REMOTE_MODULES)
    packed = bootstrap.packed_sources()
    assert len(packed) * 2 < sum(len(module_source(n)) for n in bundle["names"])
    first = worker.remote_exec(SOURCE_PROBE).receive(10)
    same_magic = request.node.callspec.id == "same"
    assert first == (None if same_magic else module_source("framing").splitlines()[0])


def module_source(name: str) -> str:
    return str(bootstrap.module_payload(name, "source"))


@pytest.mark.parametrize("same_magic", [True, False], ids=["same magic", "other magic"])
def test_stage_2_runs_the_compiled_start_where_the_magic_is_ours(same_magic: bool) -> None:
    """Stage 2's text is a few lines: the rest (``START``) comes compiled for a worker of
    our magic (parsing it cost ~3 M instructions), as text for any other."""
    import marshal

    python = _other_python(same_magic)
    bundle = marshal.loads(bootstrap._modules_bytes(False))
    assert bundle["start_source"] == bootstrap.START and len(bootstrap.STAGE2) < 1000
    compiled = compile("import os; os.write(1, b'code')", "<t>", "exec")
    bundle.update(start=marshal.dumps(compiled), start_source="import os; os.write(1, b'text')")
    head, tail = marshal.dumps(bundle, 4), marshal.dumps({}, 4)
    stage2 = bootstrap.STAGE2.encode()
    data = b"%08d%s%012d%s%012d%s" % (len(stage2), stage2, len(head), head, len(tail), tail)
    argv = bootstrap.stage1_argv(python)
    done = subprocess.run(argv, input=data, capture_output=True, timeout=60)
    assert done.stdout == (b"code" if same_magic else b"text"), done.stderr


def test_what_is_sent_before_the_sources_answer_runs_first_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker of another magic asks for the sources once it has read the bootstrap; what
    the controller sent behind the bootstrap before answering (a job: ``before_ready``) is
    kept by the worker and runs first, in order."""
    python = _other_python(False)
    sent = threading.Event()
    packed_sources = bootstrap.packed_sources

    def late_answer() -> bytes:
        sent.wait(30)  # the answer leaves only after the requests behind the bootstrap
        return packed_sources()

    monkeypatch.setattr(bootstrap, "packed_sources", late_answer)
    channels = []

    def before_ready(gateway: execnet_cli.Gateway) -> None:
        channels.extend(gateway.remote_exec(f"channel.send({n})") for n in (1, 2))
        sent.set()

    group = execnet_cli.Group()
    try:
        gateway = group.makegateway(f"popen//python={python}", before_ready=before_ready)
        assert [channel.receive(10) for channel in channels] == [1, 2]
        probe = "import __main__\nchannel.send(__main__._xnet_bundle['config']['pending_frames'])"
        kept = gateway.remote_exec(probe).receive(10)
        assert [(kind, number) for kind, number, _ in kept] == [(3, 1), (3, 3)]  # CHANNEL_EXEC
    finally:
        group.terminate()


@pytest.mark.parametrize("same_python", [True, False], ids=["same python", "other python"])
def test_execnet_compatibility_travels_where_the_settings_use_it(same_python: bool) -> None:
    """``execnet_alias`` (the controller runs execnet's API) makes the worker import the
    compatibility modules at start: they travel in its bundle then, as to a fork server's
    interpreter (ours) always."""
    import marshal

    def shipped(config: dict) -> set[str]:
        data = bootstrap.bootstrap_bytes(config, same_python)
        start = 8 + int(data[:8])
        size = int(data[start : start + 12])
        bundle = marshal.loads(data[start + 12 : start + 12 + size])
        return set(bundle["modules"] if same_python else bundle["code"])

    everything = set(bootstrap.REMOTE_MODULES)
    assert shipped({"execnet_alias": "2.1.1"}) == everything
    trimmed = everything - set(bootstrap.ON_DEMAND)
    assert shipped({}) == (everything if same_python else trimmed)


def test_a_worker_gets_the_sources_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request would cost the controller a thread and the send: a worker that asks
    again (it never needs to) is not answered."""
    from execnet_cli._remote.protocol import MessageType

    answers: list[int] = []
    monkeypatch.setattr(bootstrap, "packed_sources", lambda: answers.append(1) or b"")
    gateway = execnet_cli.makegateway(f"popen//python={_other_python(True)}")
    try:
        for _ in range(3):
            gateway._dispatch((MessageType.SOURCES, 0, b""))
        for thread in threading.enumerate():
            if thread.name.startswith("xnet-sources-"):
                thread.join(10)
        assert answers == [1]
    finally:
        gateway.exit()
