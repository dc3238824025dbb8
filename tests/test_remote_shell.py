"""The remote REPL engine (``_remote/shell.py``) spoken to directly over a popen gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import execnet_cli
from execnet_cli._remote import shell as remote_shell

WAIT = 30


class Engine:
    """The engine's channel and interrupt channel; ``run`` gathers a statement's items."""

    def __init__(self, gateway: execnet_cli.Gateway) -> None:
        self.channel = gateway.remote_exec(remote_shell)
        kind, self.facts, self.control = self.channel.receive(WAIT)
        assert kind == "hello"

    def run(self, source: str, number: int) -> list[tuple]:
        self.channel.send(("run", source, number))
        items = []
        while not items or items[-1][0] != "done":
            items.append(self.channel.receive(WAIT))
        return items


@pytest.fixture
def engine(gw: execnet_cli.Gateway) -> Iterator[Engine]:
    running = Engine(gw)
    yield running
    running.channel.send(("bye",))


def test_values_output_and_tracebacks(engine: Engine) -> None:
    assert engine.run("6 * 7", 1) == [("out", "42\n"), ("done", "ok", None)]
    assert engine.run("_ + 1", 2) == [("out", "43\n"), ("done", "ok", None)]
    items = engine.run("import os; print('a'); _ = os.system('echo b'); print('c')", 3)
    assert "".join(i[1] for i in items if i[0] == "out") == "a\nb\nc\n"
    kind, status, text = engine.run("{}['k']", 4)[-1]
    assert status == "error"
    assert text.splitlines() == [
        "Traceback (most recent call last):",
        '  File "<stdin>", line 1, in <module>',
        "KeyError: 'k'",
    ]


def test_an_interrupt_that_overtakes_its_statement_still_stops_it(engine: Engine) -> None:
    engine.control.send(("interrupt", 1))  # the statement is not even sent yet
    assert engine.run("import time; time.sleep(60)", 1)[-1][:2] == ("done", "interrupted")
    assert engine.run("'next one runs'", 2)[0] == ("out", "'next one runs'\n")


def test_completion_from_the_namespace(engine: Engine) -> None:
    engine.run("import os; a_remote_name = 1", 1)
    engine.channel.send(("complete", "a_remote"))
    assert engine.channel.receive(WAIT) == ("completions", ["a_remote_name"])
    engine.channel.send(("complete", "os.getcw"))
    assert engine.channel.receive(WAIT) == ("completions", ["os.getcwd(", "os.getcwdb("])


def test_off_the_main_thread_a_loop_is_still_interrupted(gw: execnet_cli.Gateway) -> None:
    busy = gw.remote_exec("channel.receive()")  # holds the worker's main thread
    engine = Engine(gw)
    assert engine.facts["main_thread"] is False
    engine.channel.send(("run", "while True: pass", 1))
    engine.control.send(("interrupt", 1))
    while (item := engine.channel.receive(WAIT))[0] != "done":
        pass
    assert item[1] == "interrupted"
    engine.channel.send(("bye",))
    busy.send(None)
    busy.waitclose(WAIT)
