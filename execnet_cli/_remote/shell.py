"""The remote half of ``xnet shell``: a Python REPL engine (``shell_pty`` does ``--sh``).

Sent whole as source with ``remote_exec(module)`` (stdlib only, Python 3.8+); it runs
under ``__name__ == "__channelexec__"``. ``cli.shell_remote`` is the local half.

Items, controller -> worker::

    ("run", source, n)     compile with the interpreter's own rules (codeop, "single"), run
                           (n numbers the statements, for interrupts)
    ("complete", text)     -> ("completions", [match, ...]) from the session's namespace
    ("line", text|None)    the answer to an ("input",) request: a line, "" at EOF, None
                           for Ctrl-C (raises KeyboardInterrupt in the statement)
    ("bye",)               end the session (so does the channel's end)

and worker -> controller: ``("hello", facts, interrupt_channel)`` once; ``("out"|"err",
text)`` as output is produced (``sys.stdout``/``sys.stderr`` and, through pipes, file
descriptors 1 and 2, so ``os.system`` output comes too); ``("input",)`` when the statement
reads ``sys.stdin``; ``("done", status, text)`` after each statement, ``status`` one of
``ok``, ``error`` (``text``: the traceback), ``interrupted`` (likewise), ``exit`` (``text``:
the exit code; the session ends). ``("interrupt", n)`` sent on the interrupt channel
raises KeyboardInterrupt in statement n (see ``Interrupts``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, Iterator, List, Optional

#: Largest piece of output sent as one item.
CHUNK = 65536
#: The file name tracebacks give statements, as the standard REPL does.
FILENAME = "<stdin>"
#: Most completion candidates sent back for one request.
MAX_COMPLETIONS = 2000


class Interrupts:
    """Turns the controller's "interrupt" into KeyboardInterrupt in the running statement.

    On the main thread (where a worker runs its first ``remote_exec``) the request sends
    SIGINT to that thread: its handler raises, which also ends a wait inside a C call
    (``time.sleep``, a read, waiting for a child). Elsewhere the exception is set
    asynchronously (``PyThreadState_SetAsyncExc``), which only bytecode notices. Our own
    channel traffic from the statement's thread holds ``guarded()``: an interrupt that
    lands there is kept and raised when it is left, so a frame is never cut in half.

    Requests name the statement (its number): one that arrives before its statement
    started (it travels on another channel, so it may overtake the "run") interrupts it
    at its start; one for a statement already done is ignored.
    """

    def __init__(self) -> None:
        self.thread = threading.current_thread()
        self.on_main = self.thread is threading.main_thread()
        self.running = False
        self.current = 0  # the number of the statement started last
        self.wanted = 0  # the highest statement number an interrupt was asked for
        self.depth = 0
        self.pending = False
        self.previous: Any = None

    def install(self) -> None:
        if self.on_main:
            self.previous = signal.signal(signal.SIGINT, self._on_signal)

    def uninstall(self) -> None:
        if self.on_main and self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def start(self, number: int) -> None:
        self.pending = False
        self.current = number
        self.running = True
        if number and self.wanted >= number:  # asked for before it started
            raise KeyboardInterrupt

    def stop(self) -> None:
        self.running = False
        self.pending = False

    def request(self, number: int = 0) -> None:
        """Interrupt statement ``number`` (0: the running one), now or when it starts;
        called from any thread."""
        self.wanted = max(self.wanted, number)
        if not self.running or (number and number != self.current):
            return
        if self.on_main:
            signal.pthread_kill(self.thread.ident, signal.SIGINT)  # type: ignore[arg-type]
            return
        if self.depth:
            self.pending = True
            return
        import ctypes

        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(self.thread.ident or 0), ctypes.py_object(KeyboardInterrupt)
        )

    def _on_signal(self, signum: int, frame: Any) -> None:
        if not self.running:
            return
        if self.depth:
            self.pending = True
            return
        raise KeyboardInterrupt

    def guarded(self) -> Guard:
        return Guard(self)


class Guard:
    """``with interrupts.guarded():`` defers an interrupt of the statement's thread."""

    def __init__(self, interrupts: Interrupts) -> None:
        self.interrupts = interrupts
        self.mine = threading.current_thread() is interrupts.thread

    def __enter__(self) -> None:
        if self.mine:
            self.interrupts.depth += 1

    def __exit__(self, *exc: Any) -> None:
        if not self.mine:
            return
        interrupts = self.interrupts
        interrupts.depth -= 1
        if not interrupts.depth and interrupts.pending and interrupts.running and not exc[0]:
            interrupts.pending = False
            raise KeyboardInterrupt


class Output:
    """``sys.stdout``/``sys.stderr`` of the session: text sent as ``(name, text)`` items.

    Line-buffered like a terminal's stdout: whole lines go at once, the rest on ``flush``
    (``input()`` flushes its prompt; the engine flushes after each statement).
    """

    encoding = "utf-8"
    errors = "replace"
    line_buffering = True
    closed = False

    def __init__(
        self,
        name: str,
        send: Callable[[Any], None],
        interrupts: Interrupts,
        before: Callable[[], None],
    ) -> None:
        import codecs

        self.name = name
        self.send = send
        self.before = before  # sends what went to the file descriptors first
        self.interrupts = interrupts
        self.pending: List[str] = []
        self.lock = threading.RLock()
        self.buffer = BinaryOutput(self, codecs.getincrementaldecoder("utf-8")("replace"))

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not " + type(text).__name__)
        with self.interrupts.guarded(), self.lock:
            self.pending.append(text)
            if "\n" in text or sum(map(len, self.pending)) >= CHUNK:
                self._send_pending()
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self.interrupts.guarded(), self.lock:
            self._send_pending()

    def _send_pending(self) -> None:
        data = "".join(self.pending)
        self.pending = []
        if data:
            self.before()
        for start in range(0, len(data), CHUNK):
            self.send((self.name, data[start : start + CHUNK]))

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def fileno(self) -> int:
        import io

        raise io.UnsupportedOperation("xnet shell output travels over a channel")


class BinaryOutput:
    """``sys.stdout.buffer``: bytes decoded as UTF-8 into the text stream."""

    def __init__(self, text: Output, decoder: Any) -> None:
        self.text = text
        self.decoder = decoder

    def write(self, data: Any) -> int:
        self.text.write(self.decoder.decode(bytes(data)))
        return len(data)

    def flush(self) -> None:
        self.text.flush()


class Input:
    """``sys.stdin`` of the session: each line is asked of the controller, which reads it
    from its terminal (``input()``, ``help()``, ``pdb`` work)."""

    encoding = "utf-8"
    errors = "replace"
    closed = False

    def __init__(self, channel: Any, interrupts: Interrupts, outputs: List[Output]) -> None:
        self.channel = channel
        self.interrupts = interrupts
        self.outputs = outputs
        self.at_eof = False

    def readline(self, size: int = -1) -> str:
        if self.at_eof:
            return ""
        for output in self.outputs:
            output.flush()
        with self.interrupts.guarded():
            self.channel.send(("input",))
            while True:
                item = self.channel.receive()
                if isinstance(item, tuple) and item and item[0] == "line":
                    break
        line = item[1]
        if line is None:
            raise KeyboardInterrupt
        if not line:
            self.at_eof = True
        return line

    def read(self, size: int = -1) -> str:
        return "".join(iter(self.readline, ""))

    def readlines(self, hint: int = -1) -> List[str]:
        return list(iter(self.readline, ""))

    def __iter__(self) -> Iterator[str]:
        return iter(self.readline, "")

    def isatty(self) -> bool:
        return False

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """``exit()`` closes stdin before it raises SystemExit: nothing to do."""

    def fileno(self) -> int:
        import io

        raise io.UnsupportedOperation("xnet shell input travels over a channel")


class FdCapture:
    """Output written to file descriptors 1 and 2 (``os.system``, C code, child processes),
    read from pipes and sent like ``sys.stdout``'s. ``drain`` sends what is written so far,
    so a statement's output is complete before its "done"."""

    def __init__(self, send: Callable[[Any], None]) -> None:
        self.send = send
        self.saved: Dict[int, int] = {}
        self.readers: Dict[int, Any] = {}  # read end -> (name, decoder)
        self.lock = threading.Lock()
        self.wake_r, self.wake_w = os.pipe()
        self.thread: Optional[threading.Thread] = None
        self.stopping = False

    def start(self) -> None:
        import codecs

        for target, name in ((1, "out"), (2, "err")):
            try:
                sys.__stdout__.flush()  # type: ignore[union-attr]
                sys.__stderr__.flush()  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                pass
            read_end, write_end = os.pipe()
            self.saved[target] = os.dup(target)
            os.dup2(write_end, target)
            os.close(write_end)
            os.set_blocking(read_end, False)
            self.readers[read_end] = (name, codecs.getincrementaldecoder("utf-8")("replace"))
        self.thread = threading.Thread(target=self._pump, name="xnet-shell-fds", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        import select

        while not self.stopping:
            ready = select.select([*self.readers, self.wake_r], [], [])[0]
            if self.wake_r in ready:
                return
            self.drain(ready)

    def drain(self, fds: Any = None) -> None:
        with self.lock:
            for fd in fds if fds is not None else list(self.readers):
                name, decoder = self.readers[fd]
                while True:
                    try:
                        data = os.read(fd, CHUNK)
                    except (BlockingIOError, OSError):
                        break
                    if not data:
                        break
                    text = decoder.decode(data)
                    if text:
                        try:
                            self.send((name, text))
                        except Exception:
                            pass  # the controller is gone: keep the pipe from filling

    def stop(self) -> None:
        self.drain()
        for target, saved in self.saved.items():
            os.dup2(saved, target)
            os.close(saved)
        self.stopping = True
        os.write(self.wake_w, b"x")
        if self.thread is not None:
            self.thread.join(5.0)
        for fd in [*self.readers, self.wake_r, self.wake_w]:
            os.close(fd)


def complete(namespace: Dict[str, Any], text: str) -> List[str]:
    """Completions of ``text`` as rlcompleter finds them (names, keywords, ``obj.attr``);
    callables get "(". Only names and dots are evaluated, never calls or properties."""
    import builtins
    import keyword
    import re

    matches: List[str] = []
    if "." in text:
        expr, _, attr = text.rpartition(".")
        if not re.fullmatch(r"[^\W\d]\w*(\.[^\W\d]\w*)*", expr):
            return []
        try:
            obj = eval(expr, namespace)
        except Exception:
            return []
        names = set(dir(obj))
        if hasattr(obj, "__class__"):
            names.add("__class__")
            names.update(dir(obj.__class__))
        for name in sorted(names):
            if not name.startswith(attr) or (name[:1] == "_" and attr[:1] != "_"):
                continue
            if isinstance(getattr(type(obj), name, None), property):
                matches.append(f"{expr}.{name}")
                continue
            value = getattr(obj, name, None)
            matches.append(f"{expr}.{name}" + ("(" if callable(value) else ""))
    else:
        seen = set()
        for word in keyword.kwlist:
            if word.startswith(text):
                seen.add(word)
                if word in ("finally", "try"):
                    word += ":"
                elif word not in ("False", "None", "True", "break", "continue", "pass", "else"):
                    word += " "
                matches.append(word)
        for source in (namespace, vars(builtins)):
            for name, value in source.items():
                if name.startswith(text) and name not in seen:
                    if name[:2] == "__" and text[:2] != "__":
                        continue
                    seen.add(name)
                    matches.append(name + ("(" if callable(value) else ""))
    return sorted(set(matches))[:MAX_COMPLETIONS]


class Engine:
    """One interactive session: a namespace, statements run in it one at a time."""

    def __init__(self, channel: Any) -> None:
        import builtins
        import codeop

        self.channel = channel
        self.namespace: Dict[str, Any] = {
            "__name__": "__main__",
            "__doc__": None,
            "__builtins__": builtins,
        }
        self.compiler = codeop.CommandCompiler()
        self.interrupts = Interrupts()
        self.fds = FdCapture(channel.send)
        self.stdout = Output("out", channel.send, self.interrupts, self.fds.drain)
        self.stderr = Output("err", channel.send, self.interrupts, self.fds.drain)
        self.stdin = Input(channel, self.interrupts, [self.stdout, self.stderr])

    def serve(self) -> None:
        control = self.channel.gateway.newchannel()
        control.setcallback(self._on_control)
        self.channel.send(("hello", facts(self.interrupts), control))
        saved = sys.stdin, sys.stdout, sys.stderr
        sys.ps1, sys.ps2 = ">>> ", "... "  # code that asks "am I interactive?" sees yes
        self.fds.start()
        self.interrupts.install()
        sys.stdin, sys.stdout, sys.stderr = self.stdin, self.stdout, self.stderr
        try:
            self._loop()
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved
            self.interrupts.uninstall()
            self.fds.stop()
            for name in ("ps1", "ps2"):
                sys.__dict__.pop(name, None)

    def _on_control(self, item: Any) -> None:
        if item == "interrupt":
            self.interrupts.request()
        elif isinstance(item, tuple) and len(item) == 2 and item[0] == "interrupt":
            self.interrupts.request(int(item[1]))

    def _loop(self) -> None:
        while True:
            try:
                item = self.channel.receive()
            except EOFError:
                return
            if not isinstance(item, tuple) or not item:
                continue
            if item[0] == "run":
                status, text = self.run(item[1], item[2] if len(item) > 2 else 0)
                self.channel.send(("done", status, text))
                if status == "exit":
                    return
            elif item[0] == "complete":
                self.channel.send(("completions", complete(self.namespace, item[1])))
            elif item[0] == "bye":
                return

    def run(self, source: str, number: int = 0) -> Any:
        """Compile and run statement ``number``; return (status, traceback or exit code)."""
        try:
            code = self.compiler(source, FILENAME, "single")
            if code is None:  # as if a blank line followed, which ends a block
                code = self.compiler(source + "\n", FILENAME, "single")
            if code is None:  # incomplete by this interpreter's grammar: its own error
                compile(source, FILENAME, "exec")
                raise SyntaxError("incomplete input", (FILENAME, 1, 0, source))
        except (SyntaxError, ValueError, OverflowError) as exc:
            return "error", self._report(exc, None)
        self.stdin.at_eof = False
        try:
            try:
                self.interrupts.start(number)
                exec(code, self.namespace)
            finally:
                self.interrupts.stop()
        except SystemExit as exc:
            return "exit", exit_code(exc, self.stderr)
        except BaseException as exc:
            text = self._report(exc, user_frames(exc.__traceback__))
            return ("interrupted" if isinstance(exc, KeyboardInterrupt) else "error"), text
        finally:
            self._flush()
        return "ok", None

    def _report(self, exc: BaseException, tb: Any) -> str:
        import traceback

        sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, tb
        self._flush()
        return "".join(traceback.format_exception(type(exc), exc, tb))

    def _flush(self) -> None:
        for stream in (self.stdout, self.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()  # type: ignore[union-attr]
            except Exception:
                pass
        self.fds.drain()


def user_frames(tb: Any) -> Any:
    """The traceback without this module's frames: ours at its start (the exec call) and
    at its end (where an interrupt was raised in our output code or signal handler)."""
    ours = globals()
    while tb is not None and tb.tb_frame.f_globals is ours:
        tb = tb.tb_next
    last = tb
    while last is not None and last.tb_next is not None:
        if last.tb_next.tb_frame.f_globals is ours:
            last.tb_next = None
            break
        last = last.tb_next
    return tb


def exit_code(exc: SystemExit, stderr: Output) -> int:
    """The status ``sys.exit(value)`` means, as the interpreter reads it."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    stderr.write(f"{exc.code}\n")
    stderr.flush()
    return 1


def facts(interrupts: Interrupts) -> Dict[str, Any]:
    """What the banner shows, and whether Ctrl-C can end a wait in a C call here."""
    import platform

    return {
        "version": sys.version.split()[0],
        "platform": sys.platform,
        "node": platform.node(),
        "pid": os.getpid(),
        "executable": sys.executable,
        "main_thread": interrupts.on_main,
    }


if __name__ == "__channelexec__":
    Engine(channel).serve()  # type: ignore[name-defined]  # noqa: F821
