"""An authenticated socket gateway server, and the handshake both ends speak.

Unlike execnet's socket server, which runs whatever a client sends, this one starts a
worker only for a client that proved it knows the shared secret. The secret never
crosses the wire; both sides prove knowledge of it with HMAC-SHA256 over fresh nonces.

Handshake (fixed-size messages; ``TAG`` names protocol and version)::

    server -> client  HELLO   TAG "S" server_nonce[32]
    client -> server  PROOF   TAG "C" client_nonce[32] client_mac[32]
    server -> client  ACCEPT  TAG "A" magic[4] server_mac[32]    or  REFUSE  TAG "R" 0[36]

    client_mac = HMAC(secret, TAG 0 "client" 0 server_nonce client_nonce)
    server_mac = HMAC(secret, TAG 0 "server" 0 server_nonce client_nonce magic)

Rules: the server's nonce is fresh per connection, so a recorded PROOF is worthless
later; the client's nonce is fresh too, so a recorded ACCEPT cannot fool a client; the
role labels keep one side's MAC from being reflected as the other's. ``magic`` is the
server interpreter's bytecode magic: a client with the same one sends code objects
(no compile on the far side). The client sends the bootstrap only after checking
``server_mac``. Everything after the handshake is the plain gateway stream: neither
encrypted nor integrity-protected (use ssh on untrusted networks).

After ACCEPT the server starts ``[python, "-c", STAGE1]`` with the accepted socket as its
stdin and stdout, and closes its own copy: the worker talks to the client directly, the
server never relays bytes and never executes anything a client sent.

Stdlib only, Python 3.8+, no sibling imports: this file is also shipped whole through
``remote_exec`` (``installvia=``) and then runs as ``__channelexec__``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

Buffer = Union[bytes, bytearray, memoryview]

TAG = b"xnet-socket-auth/1"
NONCE_SIZE = 32
MAC_SIZE = 32
MAGIC_SIZE = 4
SERVER_HELLO_SIZE = len(TAG) + 1 + NONCE_SIZE
CLIENT_PROOF_SIZE = len(TAG) + 1 + NONCE_SIZE + MAC_SIZE
VERDICT_SIZE = len(TAG) + 1 + MAGIC_SIZE + MAC_SIZE

#: Seconds a client has to complete the handshake before the server drops it.
HANDSHAKE_TIMEOUT = 10.0
#: Handshakes in progress at once; more connections are closed at once.
MAX_PENDING = 64
#: Seconds a stopping server gives its workers after SIGTERM before SIGKILL.
STOP_GRACE = 1.0
#: Longest sleep of the accept loop: how often it reaps workers and checks for a stop.
TICK = 0.2
#: Environment variables the workers do not inherit (the secret stays in the server).
PRIVATE_ENV = ("XNET_SECRET",)


class HandshakeError(Exception):
    """The peer does not speak this handshake (garbage, wrong protocol or version)."""


class SecretMismatch(HandshakeError):
    """The peer's proof does not match our secret."""


class Refused(HandshakeError):
    """The server refused our proof: we do not have its secret."""


# -- the handshake, sans I/O: bytes in, bytes out ---------------------------------------


def bytecode_magic() -> bytes:
    """This interpreter's marshal/bytecode magic (which code objects it can load)."""
    import importlib.util

    return bytes(importlib.util.MAGIC_NUMBER[:MAGIC_SIZE]).ljust(MAGIC_SIZE, b"\0")


def new_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def compute_mac(
    secret: bytes, role: bytes, server_nonce: bytes, client_nonce: bytes, extra: bytes = b""
) -> bytes:
    """HMAC-SHA256 binding the protocol tag, the prover's role and both nonces."""
    if len(server_nonce) != NONCE_SIZE or len(client_nonce) != NONCE_SIZE:
        raise ValueError(f"nonces must be {NONCE_SIZE} bytes")
    message = b"".join([TAG, b"\0", role, b"\0", server_nonce, client_nonce, extra])
    return hmac.new(secret, message, hashlib.sha256).digest()


def server_hello(server_nonce: bytes) -> bytes:
    return TAG + b"S" + server_nonce


def parse_server_hello(data: Buffer) -> bytes:
    """The server's nonce; HandshakeError unless ``data`` is a HELLO of this version."""
    _expect(data, b"S", SERVER_HELLO_SIZE, "greeting")
    return bytes(data[len(TAG) + 1 :])


def client_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    mac = compute_mac(secret, b"client", server_nonce, client_nonce)
    return TAG + b"C" + client_nonce + mac


def proof_prefix_ok(data: Buffer) -> bool:
    """False as soon as a partial PROOF cannot become a valid one (reject garbage early)."""
    expected = TAG + b"C"
    head = bytes(data[: len(expected)])
    return expected.startswith(head)


def check_client_proof(secret: bytes, server_nonce: bytes, data: Buffer) -> bytes:
    """The client's nonce if its proof is right; SecretMismatch or HandshakeError if not."""
    _expect(data, b"C", CLIENT_PROOF_SIZE, "proof")
    start = len(TAG) + 1
    client_nonce = bytes(data[start : start + NONCE_SIZE])
    mac = bytes(data[start + NONCE_SIZE :])
    expected = compute_mac(secret, b"client", server_nonce, client_nonce)
    if not hmac.compare_digest(mac, expected):
        raise SecretMismatch("the client's proof does not match the secret")
    return client_nonce


def accept_verdict(secret: bytes, server_nonce: bytes, client_nonce: bytes, magic: bytes) -> bytes:
    if len(magic) != MAGIC_SIZE:
        raise ValueError(f"magic must be {MAGIC_SIZE} bytes")
    mac = compute_mac(secret, b"server", server_nonce, client_nonce, magic)
    return TAG + b"A" + magic + mac


def refuse_verdict() -> bytes:
    return TAG + b"R" + bytes(MAGIC_SIZE + MAC_SIZE)


def check_verdict(secret: bytes, server_nonce: bytes, client_nonce: bytes, data: Buffer) -> bytes:
    """The server's bytecode magic if it accepted us and proved the secret.

    Raises Refused if the server refused us, SecretMismatch if its proof is wrong,
    HandshakeError for anything else.
    """
    if len(data) == VERDICT_SIZE and bytes(data[: len(TAG) + 1]) == TAG + b"R":
        raise Refused("the server refused our proof")
    _expect(data, b"A", VERDICT_SIZE, "verdict")
    start = len(TAG) + 1
    magic = bytes(data[start : start + MAGIC_SIZE])
    mac = bytes(data[start + MAGIC_SIZE :])
    expected = compute_mac(secret, b"server", server_nonce, client_nonce, magic)
    if not hmac.compare_digest(mac, expected):
        raise SecretMismatch("the server's proof does not match the secret")
    return magic


def _expect(data: Buffer, kind: bytes, size: int, what: str) -> None:
    if len(data) != size or bytes(data[: len(TAG) + 1]) != TAG + kind:
        head = bytes(data[:24])
        raise HandshakeError(f"unexpected {what} {head!r}... ({len(data)} bytes): not {TAG!r}")


# -- the server -------------------------------------------------------------------------


def bind_listener(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    infos = socket.getaddrinfo(host or None, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _stderr_log(line: str) -> None:
    try:
        sys.stderr.write(f"xnet serve: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class _Pending:
    """A connection in the middle of its handshake."""

    def __init__(self, conn: socket.socket, peer: str, deadline: float) -> None:
        self.conn = conn
        self.peer = peer
        self.deadline = deadline
        self.nonce = new_nonce()
        self.received = bytearray()


class _Worker:
    def __init__(self, process: subprocess.Popen, peer: str) -> None:
        self.process = process
        self.peer = peer


class SocketServer:
    """Accepts connections, authenticates them, starts one worker per good client.

    One thread, one selector: handshakes advance as bytes arrive, each with a deadline,
    so a silent or garbage client holds nothing but its own slot. ``serve_forever``
    returns after ``request_stop`` (thread- and signal-safe) or, with ``max_clients``,
    once that many clients came and went; it then ends the workers still running and
    reaps them.
    """

    def __init__(
        self,
        listener: socket.socket,
        secret: bytes,
        stage1: str,
        python: Optional[str] = None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        max_pending: int = MAX_PENDING,
        max_clients: Optional[int] = None,
        log: Callable[[str], None] = _stderr_log,
        log_accepted: bool = True,
    ) -> None:
        if not secret:
            raise ValueError("the secret must not be empty")
        self.listener = listener
        self.secret = bytes(secret)
        self.argv = [python or sys.executable, "-c", stage1]
        self.env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
        self.handshake_timeout = handshake_timeout
        self.max_pending = max_pending
        self.max_clients = max_clients
        self.log = log
        self.log_accepted = log_accepted
        self.magic = bytecode_magic()
        self.accepted = 0
        self.refused = 0
        self.workers: List[_Worker] = []
        self._pending: Dict[int, _Pending] = {}
        self._stopping = False
        self._wake_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector = selectors.DefaultSelector()

    @property
    def address(self) -> Tuple[str, int]:
        host, port = self.listener.getsockname()[:2]
        return host, port

    def request_stop(self) -> None:
        """Ask ``serve_forever`` to stop; safe from other threads and signal handlers.

        Never blocks: if the lock is busy (the loop is closing the pipe, or this is a
        signal handler interrupting it), the flag alone stops the loop within a TICK.
        """
        self._stopping = True
        if self._wake_lock.acquire(blocking=False):
            try:
                if self._wake_w >= 0:
                    os.write(self._wake_w, b"x")
            except OSError:
                pass
            finally:
                self._wake_lock.release()

    def serve_forever(self) -> None:
        self.listener.setblocking(False)
        self._selector.register(self.listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            while not self._stopping:
                for key, _ in self._selector.select(self._next_timeout()):
                    if key.fileobj is self.listener:
                        if self._accepting():  # not after the last client this batch
                            self._accept()
                    elif key.fileobj == self._wake_r:
                        self._drain_wake()
                    else:
                        self._advance(key.data)
                self._expire(time.monotonic())
                self._reap()
                if self._served_all():
                    break
        finally:
            self._shutdown()

    # -- the loop's steps ---------------------------------------------------------------

    def _next_timeout(self) -> float:
        timeout = TICK
        if self._pending:
            earliest = min(p.deadline for p in self._pending.values())
            timeout = min(timeout, max(0.0, earliest - time.monotonic()))
        return timeout

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except OSError:
            pass

    def _accepting(self) -> bool:
        return self.max_clients is None or self.accepted < self.max_clients

    def _served_all(self) -> bool:
        return not self._accepting() and not self.workers and not self._pending

    def _accept(self) -> None:
        try:
            conn, address = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # out of descriptors or the like: do not spin on it
            self.log(f"accept failed: {exc}")
            time.sleep(0.05)
            return
        peer = _format_peer(address)
        if len(self._pending) >= self.max_pending:
            self.log(f"{peer} refused: too many handshakes in progress")
            self.refused += 1
            conn.close()
            return
        pending = _Pending(conn, peer, time.monotonic() + self.handshake_timeout)
        try:
            conn.setblocking(False)
            _tune(conn)
            _send_small(conn, server_hello(pending.nonce))
        except OSError as exc:
            self.log(f"{peer} dropped: {exc}")
            conn.close()
            return
        self._pending[conn.fileno()] = pending
        self._selector.register(conn, selectors.EVENT_READ, pending)

    def _advance(self, pending: _Pending) -> None:
        """Read what the client sent so far (never more than the PROOF) and judge it."""
        try:
            data = pending.conn.recv(CLIENT_PROOF_SIZE - len(pending.received))
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._drop(pending, f"refused: {exc}")
            return
        if not data:
            self._drop(pending, "refused: closed the connection during the handshake")
            return
        pending.received += data
        if not proof_prefix_ok(pending.received):
            self._refuse(pending, f"not speaking {TAG.decode()}")
            return
        if len(pending.received) < CLIENT_PROOF_SIZE:
            return
        try:
            client_nonce = check_client_proof(self.secret, pending.nonce, bytes(pending.received))
        except SecretMismatch:
            self._refuse(pending, "wrong secret")
            return
        except HandshakeError as exc:
            self._refuse(pending, str(exc))
            return
        self._start_worker(pending, client_nonce)

    def _refuse(self, pending: _Pending, why: str) -> None:
        try:
            _send_small(pending.conn, refuse_verdict())
        except OSError:
            pass
        self._drop(pending, f"refused: {why}")

    def _drop(self, pending: _Pending, message: str) -> None:
        self.refused += 1
        self._forget(pending)
        self.log(f"{pending.peer} {message}")
        pending.conn.close()

    def _forget(self, pending: _Pending) -> None:
        self._pending.pop(pending.conn.fileno(), None)
        try:
            self._selector.unregister(pending.conn)
        except (KeyError, ValueError):
            pass

    def _expire(self, now: float) -> None:
        for pending in list(self._pending.values()):
            if now >= pending.deadline:
                self._drop(pending, f"refused: no handshake within {self.handshake_timeout:g}s")

    def _start_worker(self, pending: _Pending, client_nonce: bytes) -> None:
        self._forget(pending)
        conn = pending.conn
        try:
            verdict = accept_verdict(self.secret, pending.nonce, client_nonce, self.magic)
            _send_small(conn, verdict)
            conn.setblocking(True)  # the worker reads and writes it with plain os calls
            fd = conn.fileno()
            process = subprocess.Popen(
                self.argv, stdin=fd, stdout=fd, env=self.env, close_fds=True, start_new_session=True
            )
        except OSError as exc:
            self.log(f"{pending.peer} accepted, but the worker did not start: {exc}")
            self.refused += 1
            return
        finally:
            conn.close()
        self.accepted += 1
        self.workers.append(_Worker(process, pending.peer))
        if not self._accepting():
            self._close_listener()
        if self.log_accepted:
            self.log(f"{pending.peer} accepted: worker pid {process.pid}")

    def _reap(self) -> None:
        for worker in list(self.workers):
            code = worker.process.poll()
            if code is not None:
                self.workers.remove(worker)
                if self.log_accepted:
                    self.log(f"{worker.peer} worker pid {worker.process.pid} ended ({code})")

    def _close_listener(self) -> None:
        try:
            self._selector.unregister(self.listener)
        except (KeyError, ValueError):
            pass
        self.listener.close()

    # -- stopping -----------------------------------------------------------------------

    def _shutdown(self) -> None:
        self._close_listener()
        for pending in list(self._pending.values()):
            self._forget(pending)
            pending.conn.close()
        self.end_workers()
        self._selector.close()
        with self._wake_lock:  # a late request_stop must not write to a reused fd number
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
            self._wake_r = self._wake_w = -1

    def end_workers(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM the workers still running, SIGKILL them after ``grace``; reap all."""
        for worker in self.workers:
            if worker.process.poll() is None:
                try:
                    worker.process.terminate()
                except OSError:
                    pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(w.process.poll() is None for w in self.workers):
            time.sleep(0.01)
        for worker in self.workers:
            if worker.process.poll() is None:
                try:
                    worker.process.kill()
                except OSError:
                    pass
                try:
                    worker.process.wait(5.0)
                except subprocess.TimeoutExpired:
                    self.log(f"worker pid {worker.process.pid} does not die")
        self._reap()


def _tune(conn: socket.socket) -> None:
    """No Nagle delay on the worker's small round trips; keepalive finds dead clients."""
    try:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except OSError:
        pass


def _send_small(conn: socket.socket, data: bytes) -> None:
    """Send a handshake message; it fits any fresh socket buffer, so all or nothing."""
    if conn.send(data) != len(data):
        raise OSError("short send during the handshake")


def _format_peer(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


# -- installvia: running inside an existing gateway -------------------------------------


def serve_over_channel(channel: Any) -> None:
    """Run a one-client server for the controller on the other end of ``channel``.

    Receives a dict (host, port, secret, stage1, handshake_timeout), answers
    ``("listening", host, port)`` or ``("error", message)``, and serves until its worker
    has come and gone or the channel closes (controller gone or done).
    """
    request = channel.receive()
    host, port = request["host"], request["port"]
    try:
        listener = bind_listener(host, port)
    except OSError as exc:
        channel.send(("error", f"cannot listen on {host}:{port}: {exc}"))
        return
    server = SocketServer(
        listener,
        request["secret"],
        request["stage1"],
        handshake_timeout=request.get("handshake_timeout") or HANDSHAKE_TIMEOUT,
        max_clients=1,
        log_accepted=False,
    )
    # Any item or the channel's end stops the server; the callback wakes the loop at once.
    channel.setcallback(lambda item: server.request_stop(), endmarker=None)
    bound_host, bound_port = server.address
    channel.send(("listening", bound_host, bound_port))
    server.serve_forever()


if __name__ == "__channelexec__":
    serve_over_channel(channel)  # type: ignore[name-defined]  # noqa: F821
