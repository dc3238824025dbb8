"""The jobs ``xnet run`` and ``xnet sh`` send to every host, and their worker-side halves.

A job is a pure function (Python 3.8+, stdlib only, no annotations, imports inside) sent
as source text with a call of it appended. Output never goes through the worker's stderr:
``run`` swaps ``sys.stdout``/``sys.stderr`` for writers that send ``("out"|"err", text)``
items, ``sh`` pumps the command's pipes into the same items. Either ends with one
``("exit", exit_code, text)`` item: ``text`` is the traceback of an exception (``run``) or
why the command ended early (``sh``: a timeout, a signal), else None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional, Union

from ..source import prepare_request

__all__ = ["SH_TIMEOUT_GRACE", "Job", "call_source", "python_job", "shell_job"]

#: With a timeout, how much longer we wait for ``sh`` to report its own timeout.
SH_TIMEOUT_GRACE = 3.0


@dataclass(frozen=True)
class Job:
    """What to run on each host: source text ending in a call of a worker-side function."""

    kind: str  # "run" or "sh"
    source: str
    #: Local limit on the run, after the gateway is open (None: no limit).
    timeout: Optional[float] = None


def python_job(code: str, filename: str = "<xnet run>", timeout: Optional[float] = None) -> Job:
    """Run ``code`` as ``__main__``; exit code as ``python -c`` would give it."""
    timeout = _finite(timeout)
    return Job("run", call_source(_remote_run, code=code, filename=filename), timeout)


def shell_job(command: str, timeout: Optional[float] = None) -> Job:
    """Run ``command`` with ``sh -c``; the worker enforces ``timeout`` (we wait a bit longer)."""
    timeout = _finite(timeout)
    local = None if timeout is None else timeout + SH_TIMEOUT_GRACE
    return Job("sh", call_source(_remote_sh, command=command, timeout=timeout), local)


def _finite(timeout: Optional[float]) -> Optional[float]:
    return timeout if timeout is not None and math.isfinite(timeout) else None


def call_source(function: Callable[..., Any], **kwargs: Union[str, float, None]) -> str:
    """The function's source and a call of it, as text built once per run.

    Sending text instead of the function keeps ``ast.parse`` out of the pool threads:
    ``remote_exec(function)`` parses per call, and CPython 3.11 can fail parsing in
    several threads at once ("AST constructor recursion depth mismatch").
    """
    source, _, name, _ = prepare_request(function, dict(kwargs))  # checks it is pure
    for key, value in kwargs.items():
        if not isinstance(value, (str, int, float, type(None))):
            raise TypeError(f"{key}={value!r}: only str, int, float and None are passed")
    args = "".join(f", {key}={value!r}" for key, value in kwargs.items())
    return f"{source}\n{name}(channel{args})\n"


def _remote_run(channel, code, filename):
    """Worker side of ``xnet run``: exec the code with sys.stdout/sys.stderr sent back.

    Ends with one ("exit", code, traceback-or-None) item; the traceback leaves out this frame.
    """
    import codecs
    import sys
    import threading

    class BytesWriter:
        def __init__(self, text_writer):
            self.text_writer = text_writer
            self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

        def write(self, data):
            self.text_writer.write(self.decoder.decode(bytes(data)))
            return len(data)

        def flush(self):
            self.text_writer.flush()

    class Writer:
        """Line-buffered: complete lines go at once, a long unterminated piece in chunks."""

        encoding = "utf-8"
        errors = "replace"
        closed = False
        chunk = 65536

        def __init__(self, name):
            self.name = name
            self.pending = ""
            self.lock = threading.Lock()
            self.buffer = BytesWriter(self)

        def write(self, text):
            if not isinstance(text, str):
                raise TypeError("write() argument must be str, not " + type(text).__name__)
            with self.lock:
                data = self.pending + text
                cut = data.rfind("\n") + 1
                if cut == 0 and len(data) < self.chunk:
                    self.pending = data
                    return len(text)
                if cut == 0:
                    cut = len(data)
                self.pending = data[cut:]
                channel.send((self.name, data[:cut]))
            return len(text)

        def writelines(self, lines):
            for line in lines:
                self.write(line)

        def flush(self):
            with self.lock:
                data, self.pending = self.pending, ""
                if data:
                    channel.send((self.name, data))

        def isatty(self):
            return False

        def writable(self):
            return True

        def readable(self):
            return False

        def fileno(self):
            import io

            raise io.UnsupportedOperation("output of xnet run is sent over a channel")

    out, err = Writer("out"), Writer("err")
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    status, formatted = 0, None
    try:
        namespace = {"__name__": "__main__", "__file__": filename}
        exec(compile(code, filename, "exec"), namespace)
    except SystemExit as exc:
        if exc.code is None:
            status = 0
        elif isinstance(exc.code, int):
            status = exc.code
        else:  # as the interpreter does: print the object, exit 1
            print(exc.code, file=sys.stderr)
            status = 1
    except BaseException as exc:
        import linecache  # only now: a job that succeeds does not pay for these imports
        import traceback

        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        formatted = "".join(traceback.format_exception(type(exc), exc, tb))
        status = 1
    finally:
        sys.stdout, sys.stderr = saved
        for writer in (out, err):
            try:
                writer.flush()
            except Exception:
                pass
    channel.send(("exit", status, formatted))


def _remote_sh(channel, command, timeout):
    """Worker side of ``xnet sh``: run the command, stream its output as it comes.

    The command gets its own session so that a timeout, or the controller going away
    (the channel closes), kills it and everything it started.
    """
    import codecs
    import os
    import signal
    import subprocess
    import threading
    import time

    proc = subprocess.Popen(
        command,
        shell=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )

    def pump(pipe, name):
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        fd = pipe.fileno()
        sending = True
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            text = decoder.decode(data)
            if text and sending:
                try:
                    channel.send((name, text))
                except Exception:
                    sending = False  # the controller is gone; keep draining
        text = decoder.decode(b"", True)
        if text and sending:
            try:
                channel.send((name, text))
            except Exception:
                pass
        pipe.close()

    pumps = [
        threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True),
    ]
    for thread in pumps:
        thread.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    why = None
    while proc.poll() is None or any(t.is_alive() for t in pumps):
        if why is None and (
            channel.isclosed() or (deadline is not None and time.monotonic() > deadline)
        ):
            why = "cancelled" if channel.isclosed() else f"timed out after {timeout:g} s"
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
        for thread in pumps:
            thread.join(0.05)
        if proc.poll() is not None and why is not None:
            break
    code = proc.wait()
    if code < 0:  # a signal: report it the way a shell does
        if why is None:
            why = f"killed by signal {-code}"
        code = 128 - code
    if not channel.isclosed():
        channel.send(("exit", code, why))
