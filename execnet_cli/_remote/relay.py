"""The far half of relays (``fleet/relays.py``): a worker that opens and serves hosts itself.

The controller holds one gateway per relay instead of one per host: the relay starts each
host's worker (a local interpreter, or OpenSSH's ``ssh`` to a host it can reach), sends it
the bootstrap that the controller sent once per relay, runs the job on it, and forwards
the job's items upstream, tagged with the host's index, in batches. ``serve`` runs per
relay run (made importable with ``Gateway.remote_modules``). The hosts' processes and
gateways are ``relay_hosts``'.

First item from the controller, a dict: ``stage1``, ``stage2``, ``start`` and ``package``
(the bootstrap's programs and the worker package name), ``modules`` (the ``_remote`` sources),
``request`` (the job's exec request), ``imports`` (None, or a channel to the controller's
import server: ``relay_imports``; ``install`` is then the request that puts the finder
in place on a host, and ``magic`` the controller's bytecode), ``timeout`` (seconds or
None), ``fanout`` (hosts at once), ``hosts``: ``(name, argv, env, config, timeout, fork)``
or None each. argv None
means this interpreter: its workers get code objects compiled here, once, and with
``fork`` (no start-up variable in ``env``) are forked from a fork server of the relay's
(``relay_fork``) where pidfds allow. Later items: ``"stop"``. The channel's end (the
controller gone, the gateway terminated) stops too.

Records upstream, lists of tuples: ``("S", i)`` opening host i; ``("R", i)`` its worker is
ready and the job sent; ``("o"|"e", i, text)`` output; ``("L", i, text)`` what ``ssh``
wrote on stderr; ``("v", i, value, text)`` what a called function returned;
``("x", i, code, text)`` the job's exit item; ``("f", i, outcome, error,
detail, code)`` the host did not finish its job (outcome "unreachable", "failed" or
"timed out"). Then the channel closes.
"""

from __future__ import annotations

import marshal
import os
import sys
import threading
import time

from . import relay_fork, relay_imports
from .relay_hosts import (
    _END,
    KILL_WAIT,
    _Child,
    _children,
    _children_lock,
    _HostGateway,
    _how_ended,
    _kill,
    _StderrTail,
)
from .serializer import dumps_parts

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict, List, Optional, Tuple

#: Characters of output waiting to go upstream before host readers wait (flow control).
OUTBOX_LIMIT = 1 << 20
#: After the first record, how long the batch waits for more (a bound on added latency).
COALESCE = 0.02


class _Outbox:
    """Records waiting to go upstream, sent in batches by one thread; bounded in size."""

    def __init__(self, channel: Any, stopped: threading.Event) -> None:
        self.channel = channel
        self.stopped = stopped
        self.cond = threading.Condition()
        self.records: List[Tuple[Any, ...]] = []
        self.size = 0
        self.closing = False
        self.thread = threading.Thread(target=self._send_loop, daemon=True)
        self.thread.start()

    def put(self, record: Tuple[Any, ...], size: int = 0) -> None:
        with self.cond:
            while self.size >= OUTBOX_LIMIT and not self.stopped.is_set():
                self.cond.wait(0.1)
            if self.stopped.is_set():
                return
            self.records.append(record)
            self.size += size
            self.cond.notify_all()

    def close(self) -> None:
        """Send what is left, then end the sending thread."""
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        self.thread.join()

    def _send_loop(self) -> None:
        while True:
            with self.cond:
                while not self.records and not self.closing and not self.stopped.is_set():
                    self.cond.wait()
                if self.records and not self.closing and self.size < OUTBOX_LIMIT // 2:
                    self.cond.wait(COALESCE)
                batch, self.records, self.size = self.records, [], 0
                self.cond.notify_all()
                done = self.closing or self.stopped.is_set()
            if batch and not self.stopped.is_set():
                try:
                    self.channel.send(batch)
                except OSError:  # the controller is gone (ChannelClosed is an OSError)
                    self.stopped.set()
            if done and not self.records:
                return


class _Relay:
    """One run: the hosts, the pool that serves them, what goes upstream."""

    def __init__(self, channel: Any, setup: Dict[str, Any]) -> None:
        self.channel = channel
        self.setup = setup
        self.hosts = setup["hosts"]
        self.request = dumps_parts(tuple(setup["request"]))
        self.timeout = setup.get("timeout")
        imports = setup.get("imports")
        self.imports = None
        if imports is not None:
            self.imports = relay_imports.Upstream(imports, setup.get("magic"))
        self.stopped = threading.Event()
        self.outbox = _Outbox(channel, self.stopped)
        self.next_host = 0
        self.lock = threading.Lock()
        self.bundles: Dict[str, bytes] = {}  # "source" / "code" -> the marshalled bundle
        self.stage2 = setup["stage2"].encode()
        self.base_environ = _initial_environ()
        self.forks: Any = None  # the fork server: None until asked for, False if unusable
        self.fork_lock = threading.Lock()

    def environ(self, extra: Dict[str, str]) -> Dict[str, str]:
        """A host worker's environment: what the relay started with, and the host's own."""
        env = dict(self.base_environ)
        env.update(extra)
        return env

    # -- the bootstrap, kept here and served to every host -------------------------------

    def bootstrap(self, config: Dict[str, Any], compiled: bool) -> bytes:
        """What ``bootstrap.bootstrap_bytes`` sends: stage 2, then the modules and the
        worker's settings as two marshalled blobs (stage 2 reads both)."""
        head = self._bundle("code" if compiled else "source")
        tail = marshal.dumps(config, 4)
        parts = [b"%08d" % len(self.stage2), self.stage2]
        parts += [b"%012d" % len(head), head, b"%012d" % len(tail), tail]
        return b"".join(parts)

    def _bundle(self, kind: str) -> bytes:
        """The marshalled modules of ``kind``, made once for every host of the relay."""
        with self.lock:
            head = self.bundles.get(kind)
            if head is None:
                package, modules = self.setup["package"], self.setup["modules"]
                if kind == "code":
                    modules = {
                        name: marshal.dumps(compile(text, f"{package}/{name}.py", "exec"))
                        for name, text in modules.items()
                    }
                bundle = {"package": package, "modules": modules}
                bundle["start_source"] = self.setup["start"]
                head = marshal.dumps(bundle, 4)
                self.bundles[kind] = head
            return head

    # -- the pool -------------------------------------------------------------------------

    def run(self) -> None:
        self.channel.setcallback(self._control, endmarker=_END)
        count = max(1, min(int(self.setup.get("fanout") or 1), len(self.hosts)))
        threads = [threading.Thread(target=self._work, daemon=True) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
        if self.forks:
            self.forks.stop()
        self.outbox.close()

    def _fork(self, env: Dict[str, str], config: Dict[str, Any]) -> Optional[_Child]:
        """A worker forked from this relay's fork server (started on first use), or None
        where forking does not work here (the caller starts an interpreter)."""
        with self.fork_lock:
            if self.forks is None:
                self.forks = False
                if relay_fork.supported():
                    argv = [sys.executable, "-c", self.setup["stage1"]]
                    try:
                        self.forks = relay_fork.ForkServer(
                            argv, self.base_environ, self._server_bootstrap
                        )
                        with _children_lock:  # ended at exit like the workers
                            _children[self.forks.process.pid] = self.forks.process
                    except OSError:
                        pass
            forks = self.forks
        if not forks:
            return None
        try:
            process, read_fd, write_fd = forks.fork(env, config)
        except OSError:
            return None
        return _Child(process, read_fd, write_fd)

    def _server_bootstrap(self, config: Dict[str, Any]) -> bytes:
        return self.bootstrap(config, True)

    def _control(self, item: Any) -> None:
        if item is _END or item == "stop":
            self.stopped.set()
            with self.outbox.cond:
                self.outbox.cond.notify_all()

    def _work(self) -> None:
        while not self.stopped.is_set():
            with self.lock:
                index = self.next_host
                self.next_host += 1
            if index >= len(self.hosts):
                return
            if self.hosts[index] is None:  # the controller could not describe it
                continue
            try:
                self._serve(index, *self.hosts[index])
            except Exception as exc:  # our bug: report it for this host, serve the others
                error = f"relay: {type(exc).__name__}: {exc}"
                self.outbox.put(("f", index, "error", error, None, None))

    def _serve(
        self, index: int, name: str, argv: Any, env: Any, config: Any, wait: Any, fork: bool
    ) -> None:
        put = self.outbox.put
        put(("S", index))
        compiled = argv is None
        ssh = not compiled and os.path.basename(argv[0]) == "ssh"
        if compiled:
            argv = [sys.executable, "-c", self.setup["stage1"]]
        forked = self._fork(self.environ(env), config) if fork else None
        try:
            child = forked or _Child.spawn(argv, self.environ(env), ssh)
        except OSError as exc:
            error = f"InterpreterNotFound: cannot start {argv[0]!r}: {exc.strerror or exc}"
            put(("f", index, "unreachable", error, None, None))
            return
        tail = _StderrTail(child, index, put) if ssh else None
        gateway = _HostGateway(child, name)
        try:
            gateway.start(None if forked else self.bootstrap(config, compiled))
            self._run_job(index, gateway, child, tail, wait)
        finally:
            gateway.finish(KILL_WAIT)
            child.end(0 if self.stopped.is_set() else KILL_WAIT)
            gateway.join(KILL_WAIT)
            if tail is not None:
                tail.thread.join(KILL_WAIT)

    def _run_job(
        self, index: int, gateway: _HostGateway, child: _Child, tail: Any, wait: Any
    ) -> None:
        put = self.outbox.put
        if not self._wait(gateway.ready, wait) or gateway.info is None:
            if self.stopped.is_set():
                return
            if gateway.info is None and not gateway.ready.is_set():
                why = f"worker not ready after {wait:g} s"
            else:
                why = f"the worker {_how_ended(child)} before it was ready"
            shown = tail.text() if tail is not None else ""
            put(("f", index, "unreachable", f"{why}{': ' + shown if shown else ''}", None, None))
            return
        if self.imports is not None and not self._install_imports(index, gateway, wait):
            return
        ended = threading.Event()
        exited: List[Any] = []

        def forward(item: Any) -> None:
            if item is _END:
                ended.set()
            elif isinstance(item, tuple) and item and item[0] in ("out", "err"):
                put(("o" if item[0] == "out" else "e", index, item[1]), len(item[1]))
            elif isinstance(item, tuple) and len(item) == 3 and item[0] == "exit":
                exited.append(item)
                put(("x", index, item[1], item[2]))
            elif isinstance(item, tuple) and len(item) == 3 and item[0] == "return":
                put(("v", index, item[1], item[2]))  # it came through loads: it travels

        if gateway.execute(self.request, forward):
            put(("R", index))
        if not self._wait(ended, self.timeout):
            if not self.stopped.is_set():
                _kill(child.process)
                put(("f", index, "timed out", f"timed out after {self.timeout:g} s", None, None))
            return
        if exited or self.stopped.is_set():
            return
        text = gateway.remote_error()
        if text is not None:
            last = text.strip().splitlines()[-1] if text.strip() else "remote error"
            put(("f", index, "failed", last, text, None))
            return
        code = child.end(KILL_WAIT)
        status = None if code is None else 128 - code if code < 0 else code
        put(("f", index, "failed", f"the worker {_how_ended(child)}", None, status))

    def _install_imports(self, index: int, gateway: _HostGateway, wait: Any) -> bool:
        """Put the finder in place on the host, asking us; False (reported) if it failed."""
        assert self.imports is not None
        try:
            relay_imports.install(gateway, self.setup["install"], self.imports, wait or 30.0)
        except Exception as exc:  # lost, timed out, refused: this host cannot run the job
            if not self.stopped.is_set():
                last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
                put = self.outbox.put
                put(("f", index, "failed", "cannot forward imports: " + last, None, None))
            return False
        return True

    def _wait(self, event: threading.Event, timeout: Optional[float]) -> bool:
        """Wait for ``event`` up to ``timeout`` (None: no bound); False if stopped first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.stopped.is_set():
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                return False
            if event.wait(left):
                return True
        return False


def _initial_environ() -> Dict[str, str]:
    """The environment this process started with, before its own spec's ``env:`` (Linux's
    /proc; elsewhere the current one): the relay's settings are not its hosts'."""
    try:
        with open("/proc/self/environ", "rb") as file:
            entries = file.read().split(b"\0")
    except OSError:
        return dict(os.environ)
    env = {}
    for entry in entries:
        name, sep, value = entry.partition(b"=")
        if sep and name:
            env[os.fsdecode(name)] = os.fsdecode(value)
    return env


def serve(channel: Any) -> None:
    """Serve one run: the setup item first (see the module's docstring)."""
    setup = channel.receive()
    _Relay(channel, setup).run()
