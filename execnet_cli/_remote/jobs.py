"""The remote halves of ``xnet run`` and ``xnet sh`` (``fleet.jobs`` is the local half).

Each is a pure function: no annotations, imports inside, nothing global but builtins, so
``remote_exec`` could send its source text to any Python 3.8+. Jobs import them instead
(the module is in every worker's bundle, compiled where the interpreter takes our code
objects): a worker does not compile them per job.

Output never goes through the worker's stderr: ``run_python`` swaps ``sys.stdout`` and
``sys.stderr`` for writers that send ``("out"|"err", text)`` items, ``run_shell`` pumps
the command's pipes into the same items. Either ends with one ``("exit", exit_code,
text)`` item: ``text`` is the traceback of an exception (``run_python``) or why the
command ended early (``run_shell``: a timeout, a signal), else None.
"""

from __future__ import annotations

__all__ = ["run_python", "run_shell"]


def run_python(channel, code, filename, target=None, program=None, magic=None):
    """Worker side of ``xnet run``: exec the code with sys.stdout/sys.stderr sent back.

    ``program`` is the code compiled by the controller (marshalled), run where this
    interpreter's bytecode ``magic`` is the same: a worker's first ``compile()`` costs it
    ~7 M instructions (``worker.WorkerGateway._execute`` says why).

    With ``target`` ("pkg.mod:func" or "pkg.mod", ``xnet run -m``) the code is not used:
    the function is called with no arguments and its value sent as ("return", value,
    None), or ("return", None, repr) when it cannot travel; a module alone runs as
    ``__main__`` (``python -m``). Ends with one ("exit", code, traceback-or-None) item;
    the traceback leaves out this frame.
    """
    import codecs
    import sys
    from _thread import allocate_lock  # threading.Lock, without importing threading

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
            self.lock = allocate_lock()
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

    # A pure function, which may travel as source outside its package: the engine's
    # package is found from the channel's class (xnet_remote in a worker).
    engine = type(channel).__module__.rpartition(".")[0]
    try:
        hooks = __import__(engine + ".descendants", fromlist=["end_descendants"])
    except ImportError:  # a channel of something else: nothing to end
        hooks = None

    out, err = Writer("out"), Writer("err")
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    status, formatted, returned = 0, None, ()
    if hooks is not None:  # cut short (Ctrl-C, a timeout, a lost connection), the job's
        hooks.add_interrupt_hook(hooks.end_descendants)  # processes end with it
    try:
        if target is None:
            namespace = {"__name__": "__main__", "__file__": filename}
            ours = getattr(sys.modules.get("_frozen_importlib_external"), "MAGIC_NUMBER", None)
            if program is not None and magic == ours and not sys.flags.optimize:
                import marshal

                exec(marshal.loads(program), namespace)
            else:
                exec(compile(code, filename, "exec"), namespace)
        elif ":" in target:
            import importlib

            module_name, _, function = target.partition(":")
            returned = (getattr(importlib.import_module(module_name), function)(),)
        else:
            import runpy

            runpy.run_module(target, run_name="__main__", alter_sys=True)
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
        if hooks is not None:
            hooks.remove_interrupt_hook(hooks.end_descendants)
        sys.stdout, sys.stderr = saved
        for writer in (out, err):
            try:
                writer.flush()
            except Exception:
                pass
    if returned:
        try:
            channel.send(("return", returned[0], None))
        except Exception:  # a value the serializer refuses: its repr instead
            try:
                text = repr(returned[0])
            except Exception as exc:
                text = f"<unrepresentable {type(returned[0]).__name__}: {exc!r}>"
            channel.send(("return", None, text))
    channel.send(("exit", status, formatted))


def run_shell(channel, command, timeout):
    """Worker side of ``xnet sh``: run the command, stream its output as it comes.

    The command gets its own session so that a timeout, or the controller going away
    (the channel closes), kills it and everything it started. A background child that
    keeps the output pipes open (``sleep 100 &``) does not hold the report back: once the
    command has exited, its pipes get ``pipe_grace`` seconds to drain, then the child is
    left running and its later output is not collected (as with ``nohup``).
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

    pipe_grace = 1.0
    reported = threading.Event()  # the exit item is sent: nothing may follow it

    def pump(pipe, name):
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        fd = pipe.fileno()
        sending = True
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            text = decoder.decode(data)
            if text and sending and not reported.is_set():
                try:
                    channel.send((name, text))
                except Exception:
                    sending = False  # the controller is gone; keep draining
        text = decoder.decode(b"", True)
        if text and sending and not reported.is_set():
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
    drained_by = None  # once the command has exited: until when its pipes may stay open
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
        if proc.poll() is not None:
            if why is not None:
                break
            if drained_by is None:
                drained_by = time.monotonic() + pipe_grace
            elif time.monotonic() > drained_by:
                break  # a background child holds the pipes open
    code = proc.wait()
    reported.set()
    if code < 0:  # a signal: report it the way a shell does
        if why is None:
            why = f"killed by signal {-code}"
        code = 128 - code
    if not channel.isclosed():
        channel.send(("exit", code, why))
