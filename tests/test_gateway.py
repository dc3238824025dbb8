"""Popen gateways against real interpreters."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

import execnet_cli
from execnet_cli import BootstrapError, InterpreterNotFound, RemoteError, SpecError

SYSTEM_PYTHON = "/usr/bin/python3"
needs_system_python = pytest.mark.skipif(
    not os.path.exists(SYSTEM_PYTHON), reason=f"{SYSTEM_PYTHON} not installed"
)


def test_remote_exec_source_and_echo(gw):
    channel = gw.remote_exec("channel.send(channel.receive() * 2)")
    channel.send(21)
    assert channel.receive() == 42
    channel.waitclose(10)


def test_remote_code_runs_as_channelexec(gw):
    assert gw.remote_exec("channel.send(__name__)").receive() == "__channelexec__"


def test_indented_source_is_dedented(gw):
    channel = gw.remote_exec(
        """
        x = 5
        channel.send(x)
        """
    )
    assert channel.receive() == 5


@needs_system_python
def test_system_python_without_our_package(tmp_path, monkeypatch):
    probe = "import importlib.util; print(importlib.util.find_spec('execnet_cli'))"
    import subprocess

    monkeypatch.delenv("PYTHONPATH", raising=False)  # a checkout on it is seen by any python
    out = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "None", "the system python must not see our package"
    gateway = execnet_cli.makegateway(f"popen//python={SYSTEM_PYTHON}//chdir={tmp_path}")
    try:
        info = gateway._rinfo()
        assert info.executable == SYSTEM_PYTHON
        channel = gateway.remote_exec(
            "import sys, importlib.util\n"
            "channel.send(channel.receive() + 1)\n"
            "channel.send(('execnet_cli' in sys.modules, importlib.util.find_spec('execnet_cli')))"
        )
        channel.send(1)
        assert channel.receive() == 2
        assert channel.receive() == (False, None)
    finally:
        gateway.exit()


def test_remote_print_does_not_corrupt_the_stream(capfd):
    gw = execnet_cli.makegateway()  # started under capfd, so its stderr is captured
    channel = gw.remote_exec(
        "import sys\n"
        "print('to stdout ' * 1000)\n"
        "sys.stdout.write('raw')\n"
        "sys.stdout.flush()\n"
        "import os; os.write(1, b'fd one')\n"
        "channel.send('still fine')\n"
    )
    assert channel.receive() == "still fine"
    channel.waitclose(10)
    gw.exit()
    err = capfd.readouterr().err
    assert "to stdout" in err and "fd one" in err


def test_rinfo_is_cached_and_primed(gw):
    first = gw._rinfo()
    assert first.executable == sys.executable
    assert tuple(first.version_info[:2]) == sys.version_info[:2]
    assert first.pid != os.getpid()
    assert first.cwd == os.getcwd()
    channels_before = gw.remote_status().numchannels
    assert gw._rinfo() is first
    assert gw.remote_status().numchannels == channels_before
    assert gw._rinfo(update=True).pid == first.pid


def test_rinfo_update_asks_the_worker_what_its_ready_message_said(gw):
    first = gw._rinfo()
    fresh = gw._rinfo(update=True)
    assert fresh is not first and vars(fresh) == vars(first)


def test_remote_status(gw):
    channel = gw.remote_exec("channel.receive()")
    status = gw.remote_status()
    assert status.numexecuting == 1
    assert status.numchannels >= 1
    channel.send(None)
    channel.waitclose(10)


def test_remote_exception_carries_traceback(gw):
    channel = gw.remote_exec("def boom():\n    raise ValueError('bad value 42')\nboom()")
    with pytest.raises(RemoteError) as info:
        channel.waitclose(10)
    text = str(info.value)
    assert "ValueError: bad value 42" in text
    assert "raise ValueError" in text  # remote source lines are shown
    assert "boom()" in text


def test_syntax_error_reported(gw):
    with pytest.raises(RemoteError, match="SyntaxError"):
        gw.remote_exec("def (:").waitclose(10)


def pure(channel, factor, offset=0):
    import os

    for item in channel:
        channel.send((item * factor + offset, os.getpid()))


def test_remote_exec_function_with_kwargs(gw):
    channel = gw.remote_exec(pure, factor=3, offset=1)
    channel.send(2)
    value, pid = channel.receive()
    assert value == 7 and pid == gw._rinfo().pid
    channel.close()


GLOBAL_VALUE = 3


def uses_global(channel):
    channel.send(GLOBAL_VALUE)


def test_function_with_globals_refused(gw):
    with pytest.raises(ValueError, match="GLOBAL_VALUE"):
        gw.remote_exec(uses_global)


def test_closure_refused(gw):
    captured = 1

    def closure(channel):
        channel.send(captured)

    with pytest.raises(ValueError, match="closure"):
        gw.remote_exec(closure)


def test_function_needs_channel_first(gw):
    def wrong(chan):
        pass

    with pytest.raises(ValueError, match="'channel'"):
        gw.remote_exec(wrong)


def test_remote_exec_module(gw, tmp_path, monkeypatch):
    (tmp_path / "remote_mod.py").write_text(
        textwrap.dedent(
            """
            def helper(x):
                return x + 1

            if __name__ == "__channelexec__":
                channel.send(helper(channel.receive()))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import remote_mod

    channel = gw.remote_exec(remote_mod)
    channel.send(41)
    assert channel.receive() == 42


def test_spec_settings_reach_the_worker(tmp_path):
    target = tmp_path / "new" / "dir"
    gateway = execnet_cli.makegateway(
        f"popen//chdir={target}//env:XNET_TEST_VAR=hello//nice=1//dont_write_bytecode//id=mine"
    )
    try:
        assert gateway.id == "mine"
        channel = gateway.remote_exec(
            "import os, sys\n"
            "channel.send((os.getcwd(), os.environ['XNET_TEST_VAR'], os.nice(0),"
            " sys.dont_write_bytecode))"
        )
        cwd, var, niceness, no_bytecode = channel.receive()
        assert cwd == str(target) and var == "hello" and no_bytecode is True
        assert niceness >= 1
        assert gateway._rinfo().cwd == str(target)
    finally:
        gateway.exit()


def test_unknown_spec_key_is_named():
    with pytest.raises(SpecError, match="'pyhton'.*did you mean 'python'"):
        execnet_cli.makegateway("popen//pyhton=/usr/bin/python3")


def test_missing_interpreter():
    with pytest.raises(InterpreterNotFound, match="/nonexistent/python"):
        execnet_cli.makegateway("popen//python=/nonexistent/python")


def test_interpreter_that_dies_at_once():
    with pytest.raises(BootstrapError, match="exited with status"):
        execnet_cli.makegateway("popen//python=/bin/false")


def test_gateway_repr_and_ids():
    group = execnet_cli.Group()
    try:
        first = group.makegateway()
        second = group.makegateway("popen")
        assert (first.id, second.id) == ("gw0", "gw1")
        assert "gw0" in repr(first)
    finally:
        group.terminate(5)


def test_execmodel_main_thread_only_runs_on_main_thread():
    gateway = execnet_cli.makegateway("execmodel=main_thread_only//popen")
    try:
        assert gateway.remote_execmodel == "main_thread_only"
        code = (
            "import threading; channel.send(threading.current_thread() is threading.main_thread())"
        )
        first = gateway.remote_exec(code)
        assert first.receive() is True
        first.waitclose(10)
        blocker = gateway.remote_exec("channel.receive()")
        assert gateway.remote_status().numexecuting == 1
        second = gateway.remote_exec("channel.send(1)")
        with pytest.raises(RemoteError, match="concurrent remote_exec"):
            second.waitclose(10)
        blocker.send(None)
        blocker.waitclose(10)
        assert gateway.remote_exec(code).receive() is True
    finally:
        gateway.exit()


def test_execmodel_thread_runs_concurrently(gw):
    first = gw.remote_exec("channel.send(channel.receive())")
    second = gw.remote_exec("channel.send('second done')")
    assert second.receive(10) == "second done"
    first.send("first done")
    assert first.receive(10) == "first done"


def test_unknown_execmodel_refused():
    with pytest.raises(ValueError, match="eventlet"):
        execnet_cli.Group(execmodel="eventlet")


@needs_system_python
def test_errors_inside_shipped_modules_show_their_lines():
    gateway = execnet_cli.makegateway(f"popen//python={SYSTEM_PYTHON}")
    try:
        with pytest.raises(RemoteError) as info:
            gateway.remote_exec("channel.send(object())").waitclose(10)
        text = str(info.value)
        assert "xnet_remote/channel.py" in text and "dumps_parts(item" in text
        assert "DumpError: cannot serialize <class 'object'>" in text
        assert "_execute" not in text  # the worker's own frame is left out
    finally:
        gateway.exit()


def test_remote_modules_are_importable_once_sent(tmp_path):
    """A _remote module outside the bootstrap bundle (the socket server's) becomes a
    submodule of the worker's package, with its sibling imports; sending it again is free."""
    gw = execnet_cli.makegateway("popen//python=/usr/bin/python3")
    try:
        missing = gw.remote_exec(
            "import importlib.util as u; channel.send(u.find_spec('xnet_remote.handshake'))"
        )
        assert missing.receive(10) is None
        package = gw.remote_modules("sockets")
        assert package == "xnet_remote" and gw.remote_modules("sockets") == package
        probe = gw.remote_exec(
            f"from {package} import sockets, handshake\n"
            "channel.send((sockets.tune_socket is handshake.tune_socket, handshake.TAG))"
        )
        assert probe.receive(10) == (True, b"xnet-socket-auth/1")
    finally:
        gw.exit()
