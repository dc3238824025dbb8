"""An authenticated socket gateway server.

Unlike execnet's socket server, which runs whatever a client sends, this one starts a
worker only for a client that proved it knows the shared secret (the handshake, in
``handshake.py``: the secret never crosses the wire).


Who gets a handshake slot. Clients that have proved nothing yet must not delay those
who can. They are told apart only by behaviour, so the rules never cut off a client that
is answering, and the address that takes the most pays first:

- The server greets (sends HELLO to) at most ``MAX_PENDING`` clients at once, the
  slots, and at most ``MAX_PER_SOURCE`` from one address: one address alone never
  fills them, so clients from elsewhere find a free slot at once.
- Every connection is accepted at once (a batch per wake-up) and waits, accepted but not
  greeted, until it gets a slot (``MAX_WAITING`` of them wait at most). Left in the
  kernel's listen backlog, a flood would queue in front of everyone by arrival alone.
- The next slot goes to the address holding the fewest slots, to its oldest waiter
  (first come, first served within an address). Serving the newest instead starves an
  honest client behind an attacker that reopens each dropped connection at once: the
  reopened ones are always newer.
- With no free slot, a waiter takes one from a handshake that has been idle for
  ``GRACE`` seconds (an honest client answers HELLO within one round trip): from the
  address holding the most slots, its oldest; from its own address if that holds its
  share. Under pressure the pre-auth deadline is ``GRACE``, else the handshake timeout.
- When the waiting room is full, the address with the most waiters loses its newest (a
  newcomer from the crowded address is refused at once rather than pushing out those
  who waited longest).
- An address is an IPv4 address or an IPv6 /64 (one host commonly owns a whole /64).

A burst of honest clients from one host is not refused: past its share it waits and is
served as slots free. Idle connections from one address (issue 16: 64 idle
connections, reopened as they are dropped) delay nobody from elsewhere, and a client
from the attacker's own address by at most ``GRACE`` for each ``MAX_PER_SOURCE`` of
the attacker's connections waiting there, however fast they are reopened. Attackers
holding ``MAX_PENDING / MAX_PER_SOURCE`` or more addresses can delay others by up to
``GRACE`` too, never refuse them.

After ACCEPT the server starts ``[python, "-c", STAGE1]`` with the accepted socket as its
stdin and stdout, and closes its own copy: the worker talks to the client directly, the
server never relays bytes and never executes anything a client sent.

Stdlib only, Python 3.8+, one sibling (``handshake``): for ``installvia=`` both are
made importable in a worker (``Gateway.remote_modules``) and ``serve_over_channel`` runs there.
"""

from __future__ import annotations

import ipaddress
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .handshake import (
    CLIENT_PROOF_SIZE,
    TAG,
    HandshakeError,
    SecretMismatch,
    accept_verdict,
    bytecode_magic,
    check_client_proof,
    new_nonce,
    proof_prefix_ok,
    refuse_verdict,
    server_hello,
    tune_socket,
)
from .refusals import LOG_BURST, LOG_INTERVAL, RefusalLog, stderr_log

Buffer = Union[bytes, bytearray, memoryview]


#: Seconds a client has to complete the handshake before the server drops it.
HANDSHAKE_TIMEOUT = 10.0
#: Handshakes in progress at once (greeted, their PROOF awaited): the "slots".
MAX_PENDING = 64
#: Slots one source address may hold: one address alone never takes them all.
MAX_PER_SOURCE = 16
#: Connections accepted but not greeted yet, waiting for a slot in fair order.
MAX_WAITING = 192
#: Seconds a greeted client keeps its slot whatever the pressure: far longer than the one
#: round trip an honest client needs to answer, so only idle handshakes are ever evicted.
GRACE = 1.0
#: Connections taken from the kernel per wake-up (the rest wait for the next turn).
ACCEPT_BATCH = 64
#: Seconds a stopping server gives its workers after SIGTERM before SIGKILL.
STOP_GRACE = 1.0
#: Longest sleep of the accept loop: how often it reaps workers and checks for a stop.
TICK = 0.2
#: Environment variables the workers do not inherit (the secret stays in the server).
PRIVATE_ENV = ("XNET_SECRET", "XNET_SUDO_PASSWORD")


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


class _Pending:
    """A connection before authentication: waiting for a slot, then in its handshake."""

    def __init__(self, conn: socket.socket, peer: str, source: str, deadline: float) -> None:
        self.conn = conn
        self.peer = peer
        self.source = source
        self.deadline = deadline
        self.greeted = 0.0  # when it got a slot and our HELLO (0.0: still waiting)
        self.nonce = b""
        self.received = bytearray()


class _Worker:
    def __init__(self, process: subprocess.Popen, peer: str) -> None:
        self.process = process
        self.peer = peer


class SocketServer:
    """Accepts connections, authenticates them, starts one worker per good client.

    One thread, one selector: handshakes advance as bytes arrive, each with a deadline.
    Admission follows the module's "Who gets a handshake slot": ``max_pending`` slots,
    ``max_per_source`` per address, up to ``max_waiting`` accepted connections waiting
    for one, and a slot idle for ``grace`` seconds goes to a waiter.
    ``serve_forever`` returns after ``request_stop`` (thread- and signal-safe) or, with
    ``max_clients``, once that many clients came and went; it then ends the workers
    still running and reaps them.
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
        log: Callable[[str], None] = stderr_log,
        log_accepted: bool = True,
        log_burst: int = LOG_BURST,
        log_interval: float = LOG_INTERVAL,
        max_waiting: int = MAX_WAITING,
        max_per_source: int = MAX_PER_SOURCE,
        grace: float = GRACE,
    ) -> None:
        if not secret:
            raise ValueError("the secret must not be empty")
        self.listener = listener
        self.secret = bytes(secret)
        self.argv = [python or sys.executable, "-c", stage1]
        self.env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
        self.handshake_timeout = handshake_timeout
        self.max_pending = max_pending
        self.max_waiting = max_waiting
        self.max_per_source = max_per_source
        self.grace = grace
        self.max_clients = max_clients
        self.log = log
        self.log_accepted = log_accepted
        self._refusals = RefusalLog(log, log_burst, log_interval)
        self.magic = bytecode_magic()
        self.accepted = 0
        self.refused = 0
        self.workers: List[_Worker] = []
        self._pending: Dict[int, _Pending] = {}  # by fd, in the order they were greeted
        self._waiting: Dict[int, _Pending] = {}  # by fd, in the order they were accepted
        self._slots: Dict[str, int] = {}  # slots held per source address
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
                        self._accept_batch()
                    elif key.fileobj == self._wake_r:
                        self._drain_wake()
                    else:
                        self._advance(key.data)
                now = time.monotonic()
                self._expire(now)
                self._admit(now)
                self._reap()
                self._refusals.tick(now)
                if self._served_all():
                    break
        finally:
            self._shutdown()

    # -- the loop's steps ---------------------------------------------------------------

    def _next_timeout(self) -> float:
        now = time.monotonic()
        timeout = TICK
        for group in (self._pending, self._waiting):
            if group:
                timeout = min(timeout, min(p.deadline for p in group.values()) - now)
        due = self._refusals.due()
        if due is not None:
            timeout = min(timeout, due - now)
        if self._waiting:  # room may come when the next handshake turns idle
            for pending in self._pending.values():  # the oldest greeted first
                if pending.greeted + self.grace > now:
                    timeout = min(timeout, pending.greeted + self.grace - now)
                    break
        return max(0.0, timeout)

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

    def _accept_batch(self) -> None:
        """Take waiting connections from the kernel at once: a flood must not queue there,
        in front of others, where nobody can tell who sent what."""
        deadline = time.monotonic() + self.handshake_timeout
        for _ in range(ACCEPT_BATCH):
            if not self._accepting():  # not after the last client
                return
            try:
                conn, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors or the like: do not spin on it
                self._refusals.add("accept", "-", f"failed: {exc}", time.monotonic())
                time.sleep(0.05)
                return
            self._enqueue(_Pending(conn, _format_peer(address), source_of(address), deadline))

    def _enqueue(self, client: _Pending) -> None:
        """Put a new connection in the waiting room; when it is full, the address with the
        most waiters (the newcomer counted) loses its newest one: the newcomer itself when
        it comes from there, so those who waited longest keep their place."""
        self._waiting[client.conn.fileno()] = client
        if len(self._waiting) > self.max_waiting:
            counts: Dict[str, int] = {}
            for waiter in self._waiting.values():
                counts[waiter.source] = counts.get(waiter.source, 0) + 1
            crowded = max(counts, key=counts.__getitem__)
            newest = [w for w in self._waiting.values() if w.source == crowded][-1]
            self._drop(newest, "dropped: too many connections waiting from its address")

    def _admit(self, now: float) -> None:
        """Greet waiting clients while there is room: a free slot, or an idle handshake's.

        Addresses holding the fewest slots go first, each with its oldest waiter.
        """
        while self._waiting and self._accepting():
            oldest: Dict[str, _Pending] = {}
            for waiter in self._waiting.values():  # in the order they were accepted
                oldest.setdefault(waiter.source, waiter)
            for client in sorted(oldest.values(), key=lambda c: self._slots.get(c.source, 0)):
                if not self._free_slot(client.source):
                    idle = self._idle_victim(client.source, now)
                    if idle is None:
                        continue
                    self._drop(idle, f"dropped: idle for {self.grace:g}s while others waited")
                del self._waiting[client.conn.fileno()]
                self._greet(client, now)
                break
            else:
                return  # no room for anyone: wait for a slot to free or turn idle

    def _free_slot(self, source: str) -> bool:
        held = self._slots.get(source, 0)
        return held < self.max_per_source and len(self._pending) < self.max_pending

    def _idle_victim(self, source: str, now: float) -> Optional[_Pending]:
        """The handshake to evict for a waiter from ``source``: idle for ``grace``, of the
        address with the most slots (``source`` itself when it holds its share), oldest."""
        own_only = self._slots.get(source, 0) >= self.max_per_source
        victim = None
        for pending in self._pending.values():  # the oldest greeted first
            if now - pending.greeted < self.grace:
                break
            if own_only and pending.source != source:
                continue
            if victim is None or self._slots[pending.source] > self._slots[victim.source]:
                victim = pending
        return victim

    def _greet(self, client: _Pending, now: float) -> None:
        client.greeted = now
        client.nonce = new_nonce()
        conn = client.conn
        try:
            conn.setblocking(False)
            tune_socket(conn)
            _send_small(conn, server_hello(client.nonce))
        except OSError as exc:
            self.refused += 1
            self._log_refusal(client, f"dropped: {exc}")
            conn.close()
            return
        self._pending[conn.fileno()] = client
        self._slots[client.source] = self._slots.get(client.source, 0) + 1
        self._selector.register(conn, selectors.EVENT_READ, client)

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
        self._log_refusal(pending, message)
        pending.conn.close()

    def _log_refusal(self, pending: _Pending, message: str) -> None:
        self._refusals.add(pending.peer, pending.source, message, time.monotonic())

    def _forget(self, pending: _Pending) -> None:
        fd = pending.conn.fileno()
        if self._pending.pop(fd, None) is None:
            self._waiting.pop(fd, None)
            return
        left = self._slots.pop(pending.source) - 1
        if left:
            self._slots[pending.source] = left
        try:
            self._selector.unregister(pending.conn)
        except (KeyError, ValueError):
            pass

    def _expire(self, now: float) -> None:
        for pending in list(self._pending.values()):
            if now >= pending.deadline:
                self._drop(pending, f"refused: no handshake within {self.handshake_timeout:g}s")
        for waiter in list(self._waiting.values()):
            if now >= waiter.deadline:
                self._drop(waiter, f"dropped: no free slot within {self.handshake_timeout:g}s")

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
            self._log_refusal(pending, f"accepted, but the worker did not start: {exc}")
            self.refused += 1
            return
        finally:
            conn.close()
        self.accepted += 1
        self.workers.append(_Worker(process, pending.peer))
        if not self._accepting():
            self._close_listener()
            for waiter in list(self._waiting.values()):
                self._drop(waiter, "dropped: the server takes no more clients")
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
        for pending in [*self._pending.values(), *self._waiting.values()]:
            self._forget(pending)
            pending.conn.close()
        self.end_workers()
        self._refusals.flush(time.monotonic())
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


def _send_small(conn: socket.socket, data: bytes) -> None:
    """Send a handshake message; it fits any fresh socket buffer, so all or nothing."""
    if conn.send(data) != len(data):
        raise OSError("short send during the handshake")


def source_of(address: Any) -> str:
    """The address a client's slots count against: its IPv4 address, or its IPv6 /64
    (one host commonly owns a whole /64, so counting single IPv6 addresses is no bound)."""
    host = str(address[0] if isinstance(address, tuple) else address).split("%")[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


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
