"""Reaching an ssh server with paramiko: socket, jump hosts, handshake, host key, keys.

``connect(settings, timeout)`` returns an authenticated ``Connection`` (the paramiko
transport plus whatever carries it: jump-host connections, a ProxyCommand process),
or raises one error naming the host: ``HostNotFound`` (name does not resolve),
``ConnectFailed`` (refused, timed out, cut), ``HostKeyError``, ``AuthenticationFailed``.
paramiko and socket errors are translated here, once.

Speed (see DESIGN.md): TCP_NODELAY; curve25519 key exchange first (the post-quantum
hybrid costs several times the CPU per handshake); AES-GCM first (one C call per packet,
no separate MAC); no compression unless asked; a large receive window.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import select
import signal
import socket
import subprocess
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ...errors import AuthenticationFailed, ConnectFailed, HostNotFound
from ..cancel import watch
from . import early
from .hostkeys import check_host_key, load_known_hosts, preferred_algorithms, recall_unknown
from .lean import trim
from .settings import SSHSettings, proxy_command_line

log = logging.getLogger("execnet_cli.ssh")
#: paramiko logs failures we translate into errors (and tracebacks from its thread when
#: we close a transport mid-handshake); without a handler of the application's they would
#: reach stderr through logging's last resort. Configured logging still sees them.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

DEFAULT_CONNECT_TIMEOUT = 10.0
#: Our receive window: what the server may send before we acknowledge. 16 MiB keeps a
#: fast link busy between window adjustments while bounding memory per channel.
WINDOW_SIZE = 16 * 1024 * 1024
#: Largest packet we accept; the server chooses within it (OpenSSH sends up to 32 KiB).
MAX_PACKET_SIZE = 256 * 1024 - 1024
PREFERRED_KEX = ("curve25519-sha256@libssh.org",)
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr")
PREFERRED_MACS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-256")
DEFAULT_KEY_FILES = ("id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_dsa")


class Connection:
    """An authenticated paramiko transport and the things it runs over (closed in reverse)."""

    __slots__ = ("closers", "settings", "transport")

    def __init__(
        self,
        transport: Any,
        settings: SSHSettings,
        closers: Optional[List[Callable[[], None]]] = None,
    ) -> None:
        self.transport = transport
        self.settings = settings
        self.closers: List[Callable[[], None]] = [] if closers is None else closers

    def close(self) -> None:
        say_goodbye(self.transport)
        close_transport(self.transport)
        while self.closers:
            try:
                self.closers.pop()()
            except Exception:  # closing must go on
                log.debug("closing %s", self.settings.describe(), exc_info=True)


#: Opens the first TCP stream somewhere else (``via=``): (host, port, timeout) -> socket-like.
StreamOpener = Callable[[str, int, float], Any]


def connect(
    settings: SSHSettings, timeout: Optional[float] = None, opener: Optional[StreamOpener] = None
) -> Connection:
    """An authenticated connection to the host of ``settings`` (through its jump hosts).

    With ``opener``, the first TCP connection of the chain is made by it (for ``via=``:
    from another gateway's host) instead of from here.
    """
    timeout = settings.connect_timeout or timeout or DEFAULT_CONNECT_TIMEOUT
    if opener is None:
        recall_unknown(settings)  # refused as unknown a moment ago: again, not connecting
    closers: List[Callable[[], None]] = []
    try:
        hop = None
        if settings.jump is not None:  # authenticated first, in a slot of the jump host's
            hop = connect(settings.jump, timeout, opener)
            closers.append(hop.close)
        attempt = 1
        while True:
            try:
                with handshake_slot(settings, timeout):
                    sock = open_stream(settings, timeout, closers, opener, hop)
                    transport = handshake(sock, settings, timeout, remember=opener is None)
                    connection = Connection(transport, settings, closers)
                    try:
                        authenticate(transport, settings)
                    except BaseException:
                        connection.close()
                        raise
                break
            except ConnectFailed as exc:
                if attempt > DROPPED_RETRIES or settings.proxy_command or not dropped(exc):
                    raise
            log.debug("%s: closed before its banner (MaxStartups?); again", settings.describe())
            time.sleep(random.uniform(0.05, 0.25) * attempt)
            attempt += 1
    except BaseException:
        for close in reversed(closers):
            close()
        raise
    if settings.server_alive_interval:
        transport.set_keepalive(max(1, int(settings.server_alive_interval)))
    return connection


# -- handshakes in flight -----------------------------------------------------------------

#: Connections to one server (address and port) that may be between TCP connect and
#: authentication at once. sshd drops unauthenticated connections past its ``MaxStartups``
#: (default 10:30:100: some from the 11th on), and each host behind a jump host is one
#: more connection to that jump host: 64 of them at once lost hosts at random.
HANDSHAKES_PER_SERVER = 8
_slots: Dict[Tuple[str, int], threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


#: Times a connection closed by the server before its banner is tried again: what sshd
#: does to connections past its MaxStartups, and it counts a connection as starting up a
#: moment longer than the client does, so the slots above do not always suffice.
DROPPED_RETRIES = 2


def dropped(exc: ConnectFailed) -> bool:
    """Whether the server closed the connection before sending its banner (not a timeout).

    paramiko words its banner timeout as it words a closed connection; only the timeout
    it was raised from tells them apart (trying a silent server again would take up to
    three times ``connect_timeout``)."""
    cause = exc.__cause__
    if cause is None or isinstance(cause.__context__, TimeoutError):
        return False
    text = str(cause)
    return text == "Error reading SSH protocol banner" or text.endswith("reset by peer")


@contextlib.contextmanager
def handshake_slot(settings: SSHSettings, timeout: float) -> Iterator[None]:
    """Hold one of the server's handshake slots while connecting and authenticating.

    Waiting is bounded: each holder is bounded by ``timeout``, so the queue moves; a slot
    not had in four times that means the server is not answering anyone.
    """
    key = (settings.hostname, settings.port)
    with _slots_lock:
        slot = _slots.setdefault(key, threading.BoundedSemaphore(HANDSHAKES_PER_SERVER))
    if not slot.acquire(timeout=4 * timeout):
        raise ConnectFailed(
            f"{settings.describe()}: {HANDSHAKES_PER_SERVER} connections to "
            f"{settings.hostname} port {settings.port} stayed in their handshake for "
            f"{4 * timeout:g} s"
        )
    try:
        yield
    finally:
        slot.release()


# -- the byte stream -----------------------------------------------------------------------


def open_stream(
    settings: SSHSettings,
    timeout: float,
    closers: List[Callable[[], None]],
    opener: Optional[StreamOpener] = None,
    hop: Optional[Connection] = None,
) -> Any:
    """A socket-like stream to the server: TCP, a channel of ``hop`` (the connection to
    its jump host, for ``settings.jump``), or a ProxyCommand."""
    if settings.jump is not None:
        assert hop is not None, "connect() opens the jump host first"
        try:
            channel = hop.transport.open_channel(
                "direct-tcpip",
                (settings.hostname, settings.port),
                ("127.0.0.1", 0),
                window_size=WINDOW_SIZE,
                max_packet_size=MAX_PACKET_SIZE,
                timeout=timeout,
            )
        except Exception as exc:
            raise ConnectFailed(
                f"{settings.describe()}: jump host {settings.jump.describe()} could not "
                f"reach {settings.hostname} port {settings.port}: {exc}"
            ) from exc
        watch(channel)
        return channel
    if settings.proxy_command:
        return start_proxy_command(settings, closers)
    if opener is not None:
        stream = opener(settings.hostname, settings.port, timeout)
        closers.append(stream.close)
        watch(stream)
        return stream
    sock = open_socket(settings, timeout)
    watch(sock)  # Group.terminate shuts it down while the handshake waits (cancel.py)
    return sock


def open_socket(settings: SSHSettings, timeout: float) -> socket.socket:
    """A connected TCP socket with TCP_NODELAY; DNS and connect errors translated."""
    host, port, where = settings.hostname, settings.port, settings.describe()
    if host.lower().rstrip(".").endswith(".invalid") or host.lower() == "invalid":
        # RFC 6761: such names never resolve; answer without asking a name server.
        raise HostNotFound(f"{where}: cannot resolve host name {host!r} (.invalid never exists)")
    family = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}.get(
        settings.address_family, socket.AF_UNSPEC
    )
    attempt = early.take(host, port, timeout) if family == socket.AF_UNSPEC else None
    if attempt is not None and (attempt.result() is not None or attempt.failures):
        sock, failures, last = attempt.sock, attempt.failures, attempt.last  # begun earlier
    else:
        try:
            addresses = early.resolve(host, port, family)
        except socket.gaierror as exc:
            why = f"cannot resolve host name {host!r}: {exc.strerror}"
            raise HostNotFound(f"{where}: {why}") from exc
        sock, failures, last = early.dial(addresses, timeout)
    if sock is not None:
        return sock
    raise ConnectFailed(f"{where}: {connect_failure(host, port, where, failures)}") from last


def connect_failure(host: str, port: int, where: str, failures: List[Tuple[str, str]]) -> str:
    """Why no address of ``host`` answered, naming each address and the host only where
    ``where`` (the destination as given) does not already say it."""
    target = f"port {port}" if host in where else f"{host} port {port}"
    reasons = [
        reason if address == host and len(failures) == 1 else f"{address}: {reason}"
        for address, reason in failures
    ]
    return f"cannot connect to {target}: {'; '.join(reasons) or 'no address'}"


def start_proxy_command(settings: SSHSettings, closers: List[Callable[[], None]]) -> socket.socket:
    """Run ProxyCommand with its stdin and stdout on one end of a socket pair.

    paramiko then talks to a real socket (timeouts, no extra thread), as OpenSSH does
    with its pipe pair. The command runs under ``/bin/sh -c`` like OpenSSH's; the names
    put into it are checked and shell-quoted first (``names``), so none can inject.
    """
    command = proxy_command_line(settings)
    ours, theirs = socket.socketpair()
    try:
        process = subprocess.Popen(
            ["/bin/sh", "-c", "exec " + command],
            stdin=theirs.fileno(),
            stdout=theirs.fileno(),
            start_new_session=True,
        )
    except OSError as exc:
        ours.close()
        raise ConnectFailed(f"{settings.describe()}: cannot run ProxyCommand: {exc}") from exc
    finally:
        theirs.close()

    def stop() -> None:  # as OpenSSH does: hang up on the command, then reap it
        ours.close()
        if process.poll() is None:
            try:
                process.send_signal(signal.SIGHUP)
                process.wait(2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    closers.append(stop)
    return ours


# -- handshake and host key ------------------------------------------------------------------


def handshake(sock: Any, settings: SSHSettings, timeout: float, remember: bool = False) -> Any:
    """Key exchange over ``sock`` and the host key check; returns the paramiko Transport.

    ``remember``: an unknown key refused is remembered (``hostkeys.recall_unknown``)."""
    import paramiko

    where = settings.describe()
    known = load_known_hosts(settings.known_hosts_name, list(settings.known_hosts_files))
    transport = paramiko.Transport(
        sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
    )
    trim(transport)
    try:
        options = transport.get_security_options()
        options.kex = prefer(options.kex, PREFERRED_KEX)
        options.ciphers = prefer(options.ciphers, PREFERRED_CIPHERS)
        options.digests = prefer(options.digests, PREFERRED_MACS)
        options.key_types = preferred_algorithms(known, list(options.key_types))
        transport.use_compression(settings.compression)
        transport.banner_timeout = transport.handshake_timeout = timeout
        transport.auth_timeout = transport.channel_timeout = timeout
        try:
            transport.start_client(timeout=timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectFailed(f"{where}: ssh handshake failed: {describe_error(exc)}") from exc
        if not transport.is_active() or transport.host_key is None:
            raise ConnectFailed(f"{where}: ssh handshake did not finish in {timeout:g} s")
        check_host_key(settings, transport.get_remote_server_key(), known, remember)
    except BaseException:
        close_transport(transport)
        raise
    return transport


def prefer(available: Sequence[str], first: Sequence[str]) -> Tuple[str, ...]:
    """``available`` reordered with ``first`` (those present) in front."""
    head = [name for name in first if name in available]
    return tuple(head + [name for name in available if name not in head])


def say_goodbye(transport: Any) -> None:
    """Tell the server we are leaving (SSH_MSG_DISCONNECT) before the connection closes.

    An OpenSSH server whose client just drops the connection spends more CPU ending the
    session: 22.5 against 18.3 ms per one-command session here (median of 8 rounds of 32
    sessions). Only over our own TCP socket, and only when it can take the 60 bytes at
    once: saying goodbye must never wait on a stuck peer.
    """
    sock = getattr(transport, "sock", None)
    if not isinstance(sock, socket.socket) or not transport.is_active():
        return
    try:
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        if not poller.poll(0):
            return
        from paramiko.common import cMSG_DISCONNECT
        from paramiko.message import Message

        message = Message()
        message.add_byte(cMSG_DISCONNECT)
        message.add_int(11)  # SSH_DISCONNECT_BY_APPLICATION
        message.add_string("closed by the client")
        message.add_string("")
        transport._send_message(message)
    except Exception:  # the connection is going anyway
        log.debug("disconnect message not sent", exc_info=True)


def close_transport(transport: Any) -> None:
    """Close a paramiko transport, its socket too, and make sure its helper threads end.

    paramiko's ``close`` does nothing once the transport's thread has ended (a handshake
    that failed): the socket stayed open, to the server a connection still starting up
    (sshd's MaxStartups counts it), after its handshake slot was given back. A shutdown
    ends the connection at once, even while paramiko's thread still waits in a read; it
    comes first, since paramiko's own close of a running transport closes the descriptor
    under that read, and the kernel sends the FIN only when the read wakes (up to 0.1 s
    after the handshake slot was given back)."""
    sock = getattr(transport, "sock", None)
    if isinstance(sock, socket.socket) and sock.fileno() != -1:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more
    transport.close()
    if sock is not None:
        sock.close()
    timer = getattr(transport.packetizer, "_Packetizer__timer", None)
    if timer is not None:  # the handshake timer of a transport that never finished it
        timer.cancel()


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, EOFError) or not text:
        return "the server closed the connection"
    if "Error reading SSH protocol banner" in text:
        return "no ssh banner from the server (not an ssh server, or it gave up on us)"
    return text


# -- authentication --------------------------------------------------------------------------


def authenticate(transport: Any, settings: SSHSettings) -> None:
    """Public key authentication as OpenSSH would try it; raises ``AuthenticationFailed``."""
    import paramiko

    where = settings.describe()
    tried: List[str] = []
    agent = open_agent(settings)
    try:
        for label, key in candidate_keys(settings, agent, tried):
            try:
                transport.auth_publickey(settings.user, key)
            except paramiko.BadAuthenticationType as exc:
                raise AuthenticationFailed(
                    f"{where}: the server does not accept public keys (it allows: "
                    f"{', '.join(exc.allowed_types) or 'nothing'})"
                ) from exc
            except paramiko.AuthenticationException:
                tried.append(f"{label} (refused)")
                continue
            except (paramiko.SSHException, EOFError, OSError) as exc:
                tried.append(f"{label} ({describe_error(exc)})")
                break
            if transport.is_authenticated():
                log.debug("%s: authenticated with %s", where, label)
                return
            tried.append(f"{label} (needs a further method, unsupported)")
            break
    finally:
        if agent is not None:
            agent.close()
    raise AuthenticationFailed(
        f"{where}: authentication failed; tried publickey with: "
        f"{', '.join(tried) or 'no keys (no identity files, no ssh-agent keys)'}"
    )


def candidate_keys(settings: SSHSettings, agent: Any, notes: List[str]):  # type: ignore[no-untyped-def]
    """Keys in OpenSSH's spirit: identity files (or their agent copies), agent, defaults."""
    agent_keys = list(agent.get_keys()) if agent is not None else []
    used = set()
    files = list(settings.identity_files)
    explicit = bool(files)
    if not explicit:
        home = os.path.expanduser("~/.ssh")
        files = [os.path.join(home, name) for name in DEFAULT_KEY_FILES]
    for path in files:
        public = read_public_key(path) if agent_keys else None  # only to find its twin
        twin = next((k for k in agent_keys if public is not None and k.asbytes() == public), None)
        if twin is not None:
            used.add(twin.asbytes())
            yield f"{path} (from ssh-agent)", twin
            continue
        if not explicit and not os.path.exists(path):
            continue
        key = load_private_key(path, notes)
        if key is not None:
            used.add(key.asbytes())
            yield path, key
    if not settings.identities_only:
        for key in agent_keys:
            if key.asbytes() not in used:
                yield f"ssh-agent key {key.fingerprint}", key


def load_private_key(path: str, notes: List[str]) -> Any:
    import paramiko

    try:
        stat = os.stat(path)
        with _keys_lock:  # the hosts of a run ask at once: one reads
            return _key_from(path, stat.st_mtime_ns, stat.st_size, stat.st_ino)
    except FileNotFoundError:
        notes.append(f"{path} (no such file)")
    except (paramiko.PasswordRequiredException, TypeError) as exc:
        # cryptography says TypeError for an encrypted key in OpenSSH's own format
        if isinstance(exc, TypeError) and "password" not in str(exc):
            raise
        notes.append(f"{path} (encrypted: add it to ssh-agent, we do not prompt)")
    except (paramiko.SSHException, OSError, ValueError) as exc:
        notes.append(f"{path} (unreadable: {exc})")
    return None


_keys_lock = threading.Lock()


@functools.lru_cache(maxsize=32)
def _key_from(path: str, mtime: int, size: int, inode: int) -> Any:
    """A private key file read once while it stays the same file (the hosts of a run
    mostly share one key)."""
    import paramiko

    return paramiko.PKey.from_path(path)


def read_public_key(path: str) -> Optional[bytes]:
    """The public key blob of ``path.pub``, to find a private key's twin in the agent."""
    import base64

    try:
        with open(path + ".pub", encoding="ascii") as handle:
            fields = handle.read().split()
        return base64.b64decode(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def open_agent(settings: SSHSettings) -> Any:
    """An ssh-agent client per IdentityAgent (default $SSH_AUTH_SOCK), or None."""
    from paramiko.agent import AgentSSH

    setting = settings.identity_agent
    if setting is not None and setting.lower() == "none":
        return None
    if setting is None or setting == "SSH_AUTH_SOCK":
        path = os.environ.get("SSH_AUTH_SOCK")
    elif setting.startswith("$"):
        path = os.environ.get(setting[1:])
    else:
        path = setting
    if not path:
        return None

    class Agent(AgentSSH):
        def close(self) -> None:
            self._close()

    agent = Agent()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5.0)
        sock.connect(path)
        agent._connect(sock)
    except (OSError, Exception) as exc:  # a stale SSH_AUTH_SOCK must not stop us
        sock.close()
        log.debug("%s: ssh-agent at %s unusable: %s", settings.describe(), path, exc)
        return None
    return agent
