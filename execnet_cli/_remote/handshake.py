"""The handshake both ends of a socket gateway speak, sans I/O: bytes in, bytes out.

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

Stdlib and ``errors`` only, Python 3.8+: the client (``transports/sockets.py``) and the server
(``sockets.py``, here or inside a worker for ``installvia=``) share it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
from typing import Union

from .errors import XnetError

Buffer = Union[bytes, bytearray, memoryview]

TAG = b"xnet-socket-auth/1"
NONCE_SIZE = 32
MAC_SIZE = 32
MAGIC_SIZE = 4
SERVER_HELLO_SIZE = len(TAG) + 1 + NONCE_SIZE
CLIENT_PROOF_SIZE = len(TAG) + 1 + NONCE_SIZE + MAC_SIZE
VERDICT_SIZE = len(TAG) + 1 + MAGIC_SIZE + MAC_SIZE

#: Seconds of silence before keepalive probes start on a connection (see tune_socket).
KEEPALIVE_IDLE = 15
#: Seconds between keepalive probes, and unanswered probes that end the connection.
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 6
#: Seconds without an acknowledgement (of data or probes) that end a connection (Linux).
USER_TIMEOUT = 45.0


class HandshakeError(XnetError):
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


def tune_socket(sock: socket.socket) -> None:
    """No Nagle delay on small round trips, and a dead peer found in under a minute.

    A peer whose host died sends no FIN: without keepalive its worker (or our gateway)
    waits for the kernel default of two hours. Silence of ``KEEPALIVE_IDLE`` seconds
    starts probes; ``USER_TIMEOUT`` seconds without an answer (or with data sent and not
    acknowledged) ends the connection. Where the platform lacks an option it is skipped.
    """
    options = [
        (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    ]
    idle = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)  # macOS
    for option, value in (
        (idle, KEEPALIVE_IDLE),
        (getattr(socket, "TCP_KEEPINTVL", None), KEEPALIVE_INTERVAL),
        (getattr(socket, "TCP_KEEPCNT", None), KEEPALIVE_COUNT),
        (getattr(socket, "TCP_USER_TIMEOUT", None), int(USER_TIMEOUT * 1000)),
    ):
        if option is not None:
            options.append((socket.IPPROTO_TCP, option, value))
    for level, option, value in options:
        try:
            sock.setsockopt(level, option, value)
        except OSError:
            pass
