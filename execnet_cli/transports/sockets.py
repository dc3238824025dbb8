"""Socket gateways: connect to an authenticated ``xnet serve`` server, prove the secret.

The handshake (``_remote.handshake``) happens before a single byte of code is sent:
the client proves it knows the shared secret, and the server proves it too, so the
bootstrap never goes to an impostor. After that the socket carries the plain gateway
stream, straight to the worker process the server started for us.

The secret comes from, in order: the spec's ``secret_file=``, ``$XNET_SECRET``, or
``$XDG_CONFIG_HOME/xnet/secret`` (default ``~/.config/xnet/secret``). A secret file must
be a regular file of ours with mode 0600 (like ssh's private keys; through a link, the
file it leads to, and the link must be ours or root's).
"""

from __future__ import annotations

import os
import secrets
import select
import socket
import stat
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

from .. import bootstrap
from .._remote import handshake
from .._remote.fdio import FdIO
from ..errors import AuthenticationFailed, ConnectFailed, HostNotFound, SpecError, XnetError
from .base import TransportBase
from .cancel import watch
from .opening import OpenContext, SpecFields, WorkerConfig, send_bootstrap

SECRET_ENV = "XNET_SECRET"
#: Shortest secret accepted: shorter ones fall to an offline guess from one transcript.
MIN_SECRET_LENGTH = 16
#: Seconds for connecting and the handshake unless the spec says ``connect_timeout=``.
CONNECT_TIMEOUT = 10.0


class SecretError(XnetError, ValueError):
    """No usable secret; the message says how to fix it. Callers translate it."""


# -- the secret -------------------------------------------------------------------------


def default_secret_path(environ: Optional[Mapping[str, str]] = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "xnet" / "secret"


def load_secret(
    secret_file: Optional[str] = None,
    create: bool = False,
    environ: Optional[Mapping[str, str]] = None,
) -> Tuple[bytes, str, bool]:
    """The shared secret, where it came from, and whether it was created just now.

    ``create`` (the server) writes a fresh random secret to the default file if there
    is none; a client never creates one (it could not match any server's).
    """
    environ = os.environ if environ is None else environ
    if secret_file:
        path = Path(secret_file).expanduser()
        return _read_secret_file(path), str(path), False
    value = environ.get(SECRET_ENV, "").strip()
    if value:
        _check_length(value, f"${SECRET_ENV}")
        return value.encode(), f"${SECRET_ENV}", False
    path = default_secret_path(environ)
    created = False
    if not path.exists():
        if not create:
            raise SecretError(
                f"no secret: set {SECRET_ENV}, add secret_file=PATH to the spec, or copy "
                f"the server's secret to {path} (mode 0600)"
            )
        created = _create_secret_file(path)
    return _read_secret_file(path), str(path), created


def _create_secret_file(path: Path) -> bool:
    """Write 32 random bytes as hex to ``path`` (0600); False if it appeared meanwhile."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_hex(32) + "\n")
    return True


def _read_secret_file(path: Path) -> bytes:
    """The secret in ``path``, checked as ssh checks a key: a link is followed and the file
    it leads to must be a regular file of ours with mode 0600. The checks are made on the
    file opened, so a link swapped meanwhile cannot slip another file in; a link another
    user owns is refused (they could point it anywhere at any moment)."""
    try:
        link = path.lstat()
        info = path.stat()  # a fifo or a device is refused unopened
    except FileNotFoundError:
        raise SecretError(
            f"secret file {path} does not exist; create one with: (umask 077; python3 -c "
            f"'import secrets; print(secrets.token_hex(32))' > {path})"
        ) from None
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror or exc}") from exc
    shown = str(path)
    if stat.S_ISLNK(link.st_mode):
        shown = f"{path} (a link to {os.path.realpath(path)})"
        if link.st_uid not in (0, os.geteuid()):
            raise SecretError(
                f"secret file {path} is a link owned by uid {link.st_uid}, who can point it "
                f"anywhere; give the file itself: secret_file={os.path.realpath(path)}"
            )
    _check_secret_file(info, shown, path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as file:
            _check_secret_file(os.fstat(fd), shown, path)
            text = file.read().decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"cannot read secret file {shown}: {exc}") from exc
    _check_length(text, f"secret file {path}")
    return text.encode()


def _check_secret_file(info: os.stat_result, shown: str, path: Path) -> None:
    """Refuse a secret file that is not a regular file of ours with mode 0600."""
    if not stat.S_ISREG(info.st_mode):
        raise SecretError(f"secret file {shown} is not a regular file")
    if info.st_uid != os.geteuid():
        raise SecretError(
            f"secret file {shown} belongs to uid {info.st_uid}, not to us (uid {os.geteuid()}); "
            f"fix with: chown {os.geteuid()} {path}"
        )
    if info.st_mode & 0o077:
        raise SecretError(
            f"secret file {shown} is accessible by others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"fix with: chmod 600 {path}"
        )


def _check_length(secret: str, origin: str) -> None:
    if len(secret) < MIN_SECRET_LENGTH:
        raise SecretError(
            f"the secret in {origin} is too short ({len(secret)} characters; use at least "
            f"{MIN_SECRET_LENGTH}, e.g. python3 -c 'import secrets; print(secrets.token_hex(32))')"
        )


def one_time_secret() -> bytes:
    """A secret for a server only this controller talks to (``installvia``)."""
    return secrets.token_hex(32).encode()


# -- addresses --------------------------------------------------------------------------


def parse_hostport(value: str) -> Tuple[str, int]:
    """``host:port`` or ``[v6addr]:port`` as (host, port); ValueError says what is wrong."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"{value!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} in {value!r} is out of range")
    return host, port


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def connect_host(bound_host: str) -> str:
    """Where to connect to a server bound to ``bound_host`` (a wildcard: loopback)."""
    if bound_host in WILDCARD_HOSTS:
        return "::1" if ":" in bound_host else "127.0.0.1"
    return bound_host


# -- the transport ----------------------------------------------------------------------


class SocketTransport(FdIO, TransportBase):
    """The gateway stream over an authenticated TCP connection (one fd, both ways).

    There is no process here to wait for: the worker's end of the connection stands for
    it. ``wait`` returns 0 once the far side has closed its end (the worker exited or
    let go), ``kill`` shuts the connection down both ways, which ends the worker.
    """

    def __init__(self, sock: socket.socket, address: str, magic: bytes, control: Any = None):
        sock.settimeout(None)  # FdIO uses plain os.readv/os.writev: the fd must block
        fd = sock.fileno()
        super().__init__(fd, fd)
        self.sock = sock
        self.address = address
        self.server_magic = magic
        self.control = control  # installvia: the channel of the server we started
        self._eof = False
        self._closed = False

    @property
    def same_python(self) -> bool:
        """Whether the worker can load our code objects (same bytecode magic)."""
        return self.server_magic == handshake.bytecode_magic()

    def readinto(self, buffer: bytearray | memoryview) -> int:
        try:
            count = os.readv(self.read_fd, [buffer])
        except OSError:
            self._eof = True
            raise
        if not count:
            self._eof = True
        return count

    def close_write(self) -> None:
        if self._write_open:
            self._write_open = False
            self._shutdown(socket.SHUT_WR)

    def close_read(self) -> None:
        self._read_open = False

    def close(self) -> None:
        """Close the connection once (one fd serves both ways) and stop our server."""
        self._write_open = self._read_open = False
        if not self._closed:
            self._closed = True
            self._shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self.read_fd = self.write_fd = -1
        self._stop_server()

    def kill(self) -> None:
        if not self._closed:
            self._shutdown(socket.SHUT_RDWR)

    def wait(self, timeout: Optional[float]) -> Optional[int]:
        """0 once the far side closed the connection, None if it is still open."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (self._eof or self._closed):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            if self._far_end_closed(remaining):
                self._eof = True
        return 0

    def _far_end_closed(self, timeout: Optional[float]) -> bool:
        """Wait up to ``timeout`` for the peer's FIN without taking unread data."""
        poller = select.poll()
        poller.register(self.sock.fileno(), getattr(select, "POLLRDHUP", 0) | select.POLLHUP)
        events = poller.poll(None if timeout is None else max(0, int(timeout * 1000) + 1))
        if not events:
            return False
        if getattr(select, "POLLRDHUP", 0):
            return True
        try:  # no POLLRDHUP (not Linux): peek; data still unread means not yet known
            return not self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _shutdown(self, how: int) -> None:
        try:
            self.sock.shutdown(how)
        except OSError:
            pass

    def _stop_server(self) -> None:
        control, self.control = self.control, None
        if control is not None:
            try:
                control.close()
            except Exception:  # the carrying gateway may be gone already: nothing to stop
                pass

    def describe(self) -> str:
        return f"socket {self.address}"

    def exit_description(self) -> str:
        return "closed the connection" if (self._eof or self._closed) else "still connected"


def connect(
    host: str,
    port: int,
    secret: bytes,
    timeout: float = CONNECT_TIMEOUT,
    where: str = "",
    secret_origin: str = "the secret",
    control: Any = None,
) -> SocketTransport:
    """Connect to ``host:port`` and authenticate both ways within ``timeout`` seconds.

    ``where`` prefixes every error message (the spec); it defaults to the address.
    """
    address = format_hostport(host, port)
    where = where or f"socket={address}"
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise HostNotFound(f"{where}: cannot resolve {host!r}: {exc.strerror or exc}") from exc
    except socket.timeout as exc:
        raise ConnectFailed(f"{where}: no connection to {address} within {timeout:g} s") from exc
    except ConnectionRefusedError as exc:
        raise ConnectFailed(
            f"{where}: connection to {address} refused (is `xnet serve` running there?)"
        ) from exc
    except OSError as exc:
        raise ConnectFailed(f"{where}: cannot connect to {address}: {exc.strerror or exc}") from exc
    watch(sock)  # Group.terminate shuts it down while the handshake waits (cancel.py)
    try:
        handshake.tune_socket(sock)  # no Nagle delay; a dead server found within a minute
        magic = _client_handshake(sock, secret, deadline, where, address, secret_origin)
    except BaseException:
        sock.close()
        raise
    return SocketTransport(sock, address, magic, control)


def _client_handshake(
    sock: socket.socket, secret: bytes, deadline: float, where: str, address: str, origin: str
) -> bytes:
    try:
        hello = _recv_exact(sock, handshake.SERVER_HELLO_SIZE, deadline)
        server_nonce = handshake.parse_server_hello(hello)
        client_nonce = handshake.new_nonce()
        sock.sendall(handshake.client_proof(secret, server_nonce, client_nonce))
        verdict = _recv_exact(sock, handshake.VERDICT_SIZE, deadline)
        return handshake.check_verdict(secret, server_nonce, client_nonce, verdict)
    except handshake.Refused as exc:
        raise AuthenticationFailed(
            f"{where}: the server at {address} refused our secret (from {origin})"
        ) from exc
    except handshake.SecretMismatch as exc:
        raise AuthenticationFailed(
            f"{where}: the server at {address} could not prove it knows the secret "
            f"(from {origin}); nothing was sent to it"
        ) from exc
    except handshake.HandshakeError as exc:
        raise ConnectFailed(f"{where}: {address} is not an xnet socket server ({exc})") from exc
    except socket.timeout as exc:
        raise ConnectFailed(
            f"{where}: no handshake from {address} in time (is it an xnet socket server?)"
        ) from exc
    except EOFError as exc:
        raise ConnectFailed(
            f"{where}: {address} closed the connection during the handshake ({exc})"
        ) from exc
    except OSError as exc:
        raise ConnectFailed(
            f"{where}: connection to {address} broke during the handshake: {exc}"
        ) from exc


def _recv_exact(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("handshake timed out")
        sock.settimeout(remaining)
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError(f"after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


# -- installvia: a server started inside an existing gateway -----------------------------


def install_server(
    gateway: Any, host: str, port: int, secret: bytes, stage1: str, timeout: float, where: str
) -> Tuple[Any, str, int]:
    """Start a one-client socket server inside ``gateway``; (its channel, host, port).

    The server's code is ``_remote/sockets.py`` (and its ``handshake``), made importable
    there once; it stops when the channel closes, so closing the channel is how we end it.
    """
    try:
        package = gateway.remote_modules("sockets", timeout=timeout)
    except (EOFError, OSError, XnetError) as exc:
        raise ConnectFailed(
            f"{where}: could not send the socket server to gateway {gateway.id!r}: {exc}"
        ) from exc
    channel = gateway.remote_exec(
        f"from {package} import sockets\nsockets.serve_over_channel(channel)"
    )
    try:
        channel.send(
            {
                "host": host,
                "port": port,
                "secret": secret,
                "stage1": stage1,
                "handshake_timeout": timeout,
            }
        )
        reply = channel.receive(timeout)
    except (EOFError, OSError, channel.RemoteError, channel.TimeoutError) as exc:
        _close_quietly(channel)
        raise ConnectFailed(
            f"{where}: could not start a socket server in gateway {gateway.id!r}: {exc}"
        ) from exc
    if not (isinstance(reply, tuple) and reply and reply[0] == "listening"):
        _close_quietly(channel)
        detail = reply[1] if isinstance(reply, tuple) and len(reply) > 1 else repr(reply)
        raise ConnectFailed(f"{where}: socket server in gateway {gateway.id!r}: {detail}")
    return channel, str(reply[1]), int(reply[2])


def _close_quietly(channel: Any) -> None:
    try:
        channel.close()
    except Exception:
        pass


# -- the opener --------------------------------------------------------------------------


def open_socket(fields: SpecFields, config: WorkerConfig, context: OpenContext) -> SocketTransport:
    """Connect to an authenticated socket server; with ``installvia=ID`` start it first.

    ``installvia`` starts a one-client server inside gateway ``ID`` with a fresh secret
    only we know (no secret file needed); closing the gateway stops that server.
    """
    where = fields.where
    fields.refuse(["python", "via", "sudo"], "with socket= (the server decides)")
    assert fields.socket is not None
    host, port = fields.socket
    timeout = fields.timeout(CONNECT_TIMEOUT)
    if fields.installvia:
        if fields.secret_file:
            raise SpecError(f"{where}: secret_file= has no use with installvia= (fresh secret)")
        carrier = context.carrier(fields, "installvia")
        secret = one_time_secret()
        control, bound, port = install_server(
            carrier, host, port, secret, bootstrap.STAGE1, timeout, where
        )
        transport = connect(
            connect_host(bound), port, secret, timeout, where, "a one-time secret", control
        )
    else:
        if port == 0:
            raise SpecError(f"{where}: socket= needs a port (0 only with installvia=)")
        try:
            secret, origin, _ = load_secret(fields.secret_file)
        except SecretError as exc:
            raise AuthenticationFailed(f"{where}: {exc}") from exc
        transport = connect(host, port, secret, timeout, where, origin)
    return send_bootstrap(transport, config, transport.same_python)
