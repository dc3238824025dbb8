"""TCP connections to ssh servers begun before they are asked for, and the dialling both use.

sshd forks and re-executes a process for every connection before it sends its banner:
tens of ms of the server's CPU. Begun as soon as a run knows its hosts (``begin``, from
threads of their own), that work overlaps the CLI's start (importing paramiko, building
the run) on another core instead of following it. ``connect.open_socket`` then ``take``s
the attempt made for its (host name, port, timeout): a connected socket, or the
failures it met, reported as its own would have been (no second wait for a host that
timed out). An attempt nobody takes is closed by ``close_all`` (the run's end).

Only plain TCP destinations are begun (the caller decides: no ProxyCommand, ProxyJump or
``via``), at most ``per_server`` at once per server (as ``connect.handshake_slot`` allows
handshakes), and an attempt is used only for the very destination it dialled.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from typing import Any, Optional

from .lean import LeanSocket

__all__ = ["Attempt", "begin", "close_all", "dial", "resolve", "take"]

#: (address, reason) for each address that did not answer.
Failures = list[tuple[str, str]]

_lock = threading.Lock()
#: (host, port, timeout) -> attempts not taken yet.
_waiting: dict[tuple[str, int, float], list[Attempt]] = {}


def dial(
    addresses: Iterable[tuple[Any, ...]], timeout: float
) -> tuple[Optional[socket.socket], Failures, Optional[BaseException]]:
    """Connect to the first of ``addresses`` (``getaddrinfo``'s) that answers within
    ``timeout`` in all: the socket (TCP_NODELAY), or None and why each address failed."""
    deadline = time.monotonic() + timeout
    failures: Failures = []
    last: Optional[BaseException] = None
    for af, kind, proto, _, address in addresses:
        sock = LeanSocket(af, kind, proto)  # paramiko's reads and writes, leaner
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            sock.connect(address)
        except socket.timeout as exc:
            sock.close()
            failures.append((str(address[0]), f"timed out after {timeout:g} s"))
            last = exc
            continue
        except OSError as exc:
            sock.close()
            failures.append((str(address[0]), str(exc.strerror or exc)))
            last = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, failures, last
    return None, failures, last


def resolve(host: str, port: int, family: int) -> list[Any]:
    """``socket.getaddrinfo`` of a TCP destination. An ASCII name goes as the bytes the
    ``idna`` codec would make of it (the codec's own checks kept): passed as ``str``, its
    first lookup imports ``encodings.idna``, ``stringprep`` and ``unicodedata`` (~7 M
    instructions of ``xnet sh``'s start, for names that need none of them)."""
    name: Any = host
    if host.isascii():
        labels = host.split(".")
        if all(0 < len(label) < 64 for label in labels[:-1]) and len(labels[-1]) < 64:
            name = host.encode("ascii")
    return socket.getaddrinfo(name, port, family, socket.SOCK_STREAM)


class Attempt:
    """One TCP connection being made in a thread of its own; ``result`` waits for it."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.key = (host, port, timeout)
        self.sock: Optional[socket.socket] = None
        self.failures: Failures = []
        self.last: Optional[BaseException] = None
        self._done = threading.Event()
        self._abandoned = False  # closed before it connected: the thread closes its socket
        name = f"xnet-early-{host}:{port}"
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        host, port, timeout = self.key
        sock = None
        try:
            addresses = resolve(host, port, socket.AF_UNSPEC)
            sock, self.failures, self.last = dial(addresses, timeout)
        except OSError as exc:  # the name did not resolve: the caller's own lookup says so
            self.last = exc
        with _lock:
            if self._abandoned and sock is not None:
                sock.close()
            else:
                self.sock = sock
            self._done.set()

    def result(self) -> Optional[socket.socket]:
        """The connected socket, once the attempt ended (None: ``failures`` say why, if it
        reached any address)."""
        self._done.wait()
        return self.sock

    def close(self) -> None:
        with _lock:
            self._abandoned = True
            sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


def begin(destinations: Iterable[tuple[str, int, float]], per_server: int) -> int:
    """Begin a connection to each (host name, port, timeout), at most ``per_server`` per
    (host name, port) waiting at once; how many were begun."""
    begun = 0
    for host, port, timeout in destinations:
        with _lock:
            same = sum(len(v) for k, v in _waiting.items() if k[:2] == (host, port))
            if same >= per_server:
                continue
            _waiting.setdefault((host, port, timeout), []).append(Attempt(host, port, timeout))
        begun += 1
    return begun


def take(host: str, port: int, timeout: float) -> Optional[Attempt]:
    """The attempt begun for exactly this destination and timeout, if one is waiting."""
    with _lock:
        attempts = _waiting.get((host, port, timeout))
        if not attempts:
            return None
        attempt = attempts.pop(0)
        if not attempts:
            del _waiting[(host, port, timeout)]
        return attempt


def close_all() -> None:
    """Close every attempt not taken (its socket now, or when it connects)."""
    with _lock:
        attempts = [a for waiting in _waiting.values() for a in waiting]
        _waiting.clear()
    for attempt in attempts:
        attempt.close()
