"""What a worker does not do at start, to cost less: import ``threading``
(``_remote.threads``: its primitives behave as threading's, an ``xnet run`` job starts with
it unloaded, and code that imports it sees the real main thread as the main one,
concurrent tasks included), and call ``compile()`` for an ``xnet run`` job whose code
travels compiled (``fleet.jobs._program``) for workers of our bytecode; any other worker
compiles the text, and both run it the same way."""

from __future__ import annotations

import importlib.util
import marshal
import subprocess
import sys
import time
from _thread import allocate_lock
from pathlib import Path
from typing import Any, Iterator, List

import pytest

import execnet_cli
from execnet_cli._remote.jobs import run_python
from execnet_cli._remote.threads import Condition, Event, start_daemon
from execnet_cli.fleet.jobs import PROGRAM_LIMIT, call_source, python_job
from execnet_cli.gateway import Gateway

SYSTEM_PYTHON = "/usr/bin/python3"
OTHER_PYTHON = str(Path.home() / ".pyenv/versions/3.8.18/bin/python3")  # another magic
PYTHONS = [
    p for p in dict.fromkeys([sys.executable, SYSTEM_PYTHON, OTHER_PYTHON]) if Path(p).exists()
]


def test_event_wakes_its_waiters_and_times_out() -> None:
    event = Event()
    assert event.wait(0.01) is False
    woken: List[bool] = []
    done = allocate_lock()
    done.acquire()

    def waiter() -> None:
        woken.append(event.wait(30))
        if len(woken) == 3:
            done.release()

    for _ in range(3):
        start_daemon(waiter)
    time.sleep(0.05)
    event.set()
    assert done.acquire(True, 30)
    assert woken == [True, True, True]
    assert event.is_set() and event.wait(0)
    event.clear()
    assert not event.is_set() and event.wait(0) is False


def test_condition_wait_for_sees_the_predicate_and_its_deadline() -> None:
    cond = Condition(allocate_lock())
    box: List[int] = []

    def producer() -> None:
        for value in range(5):
            with cond:
                box.append(value)
                cond.notify_all()

    with cond:
        start_daemon(producer)
        assert cond.wait_for(lambda: len(box) == 5, 30)
        assert cond.wait_for(lambda: False, 0.02) is False
        assert cond.wait(0) is False  # the lock is held again after a timeout
        assert not cond._waiters  # a timed-out waiter leaves nothing behind
    with cond:
        cond.notify()  # nobody waits: nothing happens


@pytest.fixture(params=PYTHONS)
def python(request: Any) -> str:
    return str(request.param)


@pytest.fixture
def gateway(python: str) -> Iterator[Gateway]:
    group = execnet_cli.Group()
    try:
        # spawned: a worker forked from the fork server (this interpreter's) inherits
        # what the server imported before forking, threading among it
        yield group.makegateway(f"popen//spawn//python={python}")
    finally:
        group.terminate(10)


def _items(channel: Any) -> List[Any]:
    items = []
    while True:
        try:
            items.append(channel.receive(30))
        except EOFError:
            return items


def test_a_run_job_starts_without_threading(python: str, gateway: Gateway) -> None:
    code = "import sys\nprint('threading' in sys.modules, 'collections' in sys.modules)\n"
    bare = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    if bare.stdout != "False False\n":  # a .pth file of this interpreter's site imports them
        pytest.skip(f"{python} -c loads them at start: {bare.stdout!r}")
    items = _items(gateway.remote_exec(python_job(code).source))
    assert items == [("out", "False False\n"), ("exit", 0, None)]


def test_other_code_finds_threading_loaded_by_the_main_thread(gateway: Gateway) -> None:
    code = (
        "import sys\n"
        "loaded = 'threading' in sys.modules\n"
        "import threading\n"
        "channel.send((loaded, threading.main_thread().ident == threading.get_ident()))\n"
    )
    assert gateway.remote_exec(code).receive(30) == (True, True)


def test_a_concurrent_task_sees_the_main_thread_as_main(gateway: Gateway) -> None:
    first = gateway.remote_exec(
        "import _thread\nchannel.send(_thread.get_ident())\nchannel.receive()\n"
    )
    main_ident = first.receive(30)
    second = gateway.remote_exec(
        "import threading\nchannel.send((threading.main_thread().ident, threading.get_ident()))\n"
    )
    seen_main, own = second.receive(30)
    first.send(None)
    first.waitclose(30)
    assert seen_main == main_ident != own


def _run(gateway: Gateway, source: str) -> List[Any]:
    return _items(gateway.remote_exec(source))


def test_the_program_runs_where_the_magic_is_ours_else_the_text(gateway: Gateway) -> None:
    program = marshal.dumps(compile("print('program')", "<p>", "exec"))
    magic = importlib.util.MAGIC_NUMBER
    ours = call_source(
        run_python, code="print('text')", filename="<p>", program=program, magic=magic
    )
    other = call_source(
        run_python, code="print('text')", filename="<p>", program=program, magic=b"\0\0\0\0"
    )
    version = gateway.remote_exec("import sys; channel.send(sys.version_info[:2])").receive(30)
    expected = "program" if tuple(version) == sys.version_info[:2] else "text"
    assert _run(gateway, ours)[0] == ("out", expected + "\n")
    assert _run(gateway, other)[0] == ("out", "text\n")


def test_a_job_runs_the_same_compiled_here_or_there(gateway: Gateway) -> None:
    code = (
        "def f(x: Undefined) -> None: pass\n"  # the worker's future flags: no NameError
        "print(f.__annotations__, __name__, __file__)\n"
        "assert False, 'kept'\n"
    )
    job = python_job(code, "t.py")
    assert "program=" in job.source
    shipped, compiled = (
        _run(gateway, job.source),
        _run(gateway, call_source(run_python, code=code, filename="t.py")),  # compiled there
    )
    assert (
        shipped[0] == compiled[0] == ("out", "{'x': 'Undefined', 'return': 'None'} __main__ t.py\n")
    )
    for items in (shipped, compiled):
        status, exit_code, formatted = items[-1]
        assert (status, exit_code) == ("exit", 1)
        assert 'File "t.py", line 3' in formatted and "assert False, 'kept'" in formatted


def test_code_that_does_not_compile_or_is_big_travels_as_text() -> None:
    assert "program=" not in python_job("def (").source
    assert "program=" not in python_job("x = 1\n" * PROGRAM_LIMIT).source
    assert "program=" in python_job("pass").source


def test_a_syntax_error_is_reported_by_the_worker() -> None:
    gateway = execnet_cli.makegateway("popen")
    try:
        status, exit_code, formatted = _run(gateway, python_job("def (", "bad.py").source)[-1]
    finally:
        gateway.exit()
    assert (status, exit_code) == ("exit", 1)
    assert "SyntaxError" in formatted and "bad.py" in formatted
