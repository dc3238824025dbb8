"""Host key checking against OpenSSH ``known_hosts`` files; never accepts silently.

Policy (``StrictHostKeyChecking``):

- a key listed for the host: accepted;
- ``@revoked``, or a key of the same type that differs, or the host known only with key
  types the server no longer offers: refused as *changed*, always, whatever the policy
  (this is where a man in the middle shows up);
- unknown host: refused with its fingerprint and how to accept it (``yes``/``ask``), as
  ``UnknownHostKey``, which carries the key: under ``ask`` (the default) ``xnet run``
  collects these from all hosts and asks once (``fleet.hostkeys``); or recorded in the
  first ``UserKnownHostsFile`` (``accept-new``, and ``no``, which for us is
  ``accept-new`` plus a logged warning).

Host names are matched as OpenSSH writes them: ``host`` on port 22, else
``[host]:port``; hashed entries (``|1|salt|hash``) and ``*``/``?``/``!`` patterns too.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import re
import stat
import threading
import time
from typing import Dict, Iterator, List, NoReturn, Optional, Sequence, Tuple

from ...errors import HostKeyError, UnknownHostKey
from .settings import SSHSettings

log = logging.getLogger("execnet_cli.ssh")

#: Recording a host key: one thread of this process at a time (``_locked`` adds a flock).
_record_lock = threading.Lock()

#: Unknown keys refused lately, by route (``route``): (key, when). A connection to such a
#: server while known_hosts still lists nothing for it is refused at once, without
#: connecting (``recall_unknown``): 64 hosts behind one jump host with an unknown key then
#: make a handful of handshakes with it, not 64 that each end right after the key exchange,
#: which sshd still counts against its MaxStartups for a moment and so drops connections.
#: Connections made from elsewhere (``via=``) are left out: their names mean other servers.
_unknown_seen: Dict[Tuple[Optional[str], ...], Tuple[object, float]] = {}
#: How long such a refusal is remembered (one run meets it many times within seconds).
RECALL_SECONDS = 60.0

#: paramiko host key algorithm names for each key type a known_hosts file holds.
ALGORITHMS_FOR_TYPE = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256")}


class KnownHosts:
    """The entries of the known_hosts files that name one host."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.keys: Dict[str, List[object]] = {}  # key type -> PKeys
        self.revoked: List[object] = []
        self.sources: Dict[str, str] = {}  # key type -> "file:line"

    @property
    def known(self) -> bool:
        return bool(self.keys)


#: A line of a known_hosts file that may list a host: (line number, marker, the line
#: without its marker).
_Line = Tuple[int, Optional[str], str]
#: A file's lines by the plain names they list (lowercased), and apart, the lines with
#: patterns, negations or hashed names, which are matched one by one.
_Index = Tuple[Dict[str, List[_Line]], List[Tuple[_Line, List[str]]]]

#: known_hosts files indexed, by path, with the (inode, size, mtime) they were read at: a
#: run opening many hosts reads and indexes each file once, and each host then looks up its
#: own lines rather than matching every line (64 hosts in one file: 64 lookups, not 4096
#: matches); a recorded key changes the file, so it is seen. A missing file (OpenSSH's
#: defaults name four) is noted as such (stamp None): a failed stat per host, no open.
_INDEXES: Dict[str, Tuple[Optional[Tuple[int, int, int]], _Index]] = {}
#: The hosts of a run ask at once: one reads a file, the others wait for its index.
_INDEX_LOCK = threading.Lock()


def _file_index(path: str) -> _Index:
    """The lines of ``path`` by the names they list, made again only when the file changed
    (a stat per host; the file is opened only then). A missing file raises OSError."""
    try:
        stamp: Optional[Tuple[int, int, int]] = _stamp(os.stat(path))
    except FileNotFoundError:
        stamp = None
    cached = _INDEXES.get(path)
    if cached is None or cached[0] != stamp:
        with _INDEX_LOCK:
            cached = _INDEXES.get(path)
            if cached is None or cached[0] != stamp:
                cached = _read_index(path)
                _INDEXES[path] = cached
    if cached[0] is None:
        raise FileNotFoundError(path)
    return cached[1]


def _read_index(path: str) -> Tuple[Optional[Tuple[int, int, int]], _Index]:
    """``path`` read and indexed, with the stamp of what was read (None: no such file)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            stamp = _stamp(os.fstat(handle.fileno()))  # of what is read: a later change shows
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return None, ({}, [])
    named: Dict[str, List[_Line]] = {}
    patterned: List[Tuple[_Line, List[str]]] = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        marker = None
        if line.startswith("@"):
            marker, _, line = line.partition(" ")
            line = line.strip()
            if marker == "@cert-authority":
                continue  # host certificates are not supported; such lines never match
        names = line.split(None, 1)[0].split(",")
        entry = (number, marker, line)
        if any(n.startswith(("|1|", "!")) or "*" in n or "?" in n for n in names):
            patterned.append((entry, names))
            continue
        for plain in dict.fromkeys(n.lower() for n in names):
            named.setdefault(plain, []).append(entry)
    return stamp, (named, patterned)


def _stamp(info: os.stat_result) -> Tuple[int, int, int]:
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _lines_for(index: _Index, name: str) -> List[_Line]:
    """The lines of an indexed file that list ``name``, in the file's order."""
    named, patterned = index
    found = named.get(name.lower(), [])
    matched = [entry for entry, names in patterned if names_match(names, name)]
    return sorted(found + matched, key=lambda entry: entry[0]) if matched else found


def load_known_hosts(name: str, files: Sequence[str]) -> KnownHosts:
    """Every key the ``files`` list for ``name`` (missing files are skipped)."""
    from paramiko.hostkeys import HostKeyEntry, InvalidHostKey
    from paramiko.ssh_exception import SSHException

    found = KnownHosts(name)
    for path in files:
        try:
            index = _file_index(os.path.expanduser(path))
        except OSError:
            continue
        for number, marker, line in _lines_for(index, name):
            try:
                entry = HostKeyEntry.from_line(line, number)
            except (InvalidHostKey, SSHException, ValueError):
                log.debug("%s:%d: unreadable known_hosts line skipped", path, number)
                continue
            if entry is None:
                continue
            if marker == "@revoked":
                found.revoked.append(entry.key)
                continue
            key_type = entry.key.get_name()
            found.keys.setdefault(key_type, []).append(entry.key)
            found.sources.setdefault(key_type, f"{path}:{number}")
    return found


def names_match(patterns: Sequence[str], name: str) -> bool:
    """OpenSSH host list matching: hashed names, wildcards, and ``!`` negation."""
    matched = False
    for pattern in patterns:
        if pattern.startswith("|1|"):
            if hashed_matches(pattern, name):
                matched = True
            continue
        negated = pattern.startswith("!")
        if wildcard_match(pattern[1:] if negated else pattern, name):
            if negated:
                return False
            matched = True
    return matched


def wildcard_match(pattern: str, name: str) -> bool:
    """OpenSSH's patterns: only ``*`` and ``?`` are special (``[host]:port`` is literal)."""
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == name.lower()
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower()
    )
    return re.fullmatch(regex, name.lower()) is not None


def hashed_matches(entry: str, name: str) -> bool:
    try:
        _, _, salt, digest = entry.split("|", 3)
        expected = base64.b64decode(digest)
        mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(mac, expected)


def hash_name(name: str) -> str:
    """``|1|salt|hash``, as ``HashKnownHosts yes`` writes names."""
    salt = os.urandom(20)
    mac = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(mac).decode()}"


def preferred_algorithms(known: KnownHosts, available: Sequence[str]) -> List[str]:
    """Host key algorithms with those of already known key types first (as OpenSSH does).

    Without this, a server offering several host keys could be asked for one of a type
    we have never seen and look unknown although we know its ed25519 key.
    """
    first: List[str] = []
    for key_type in known.keys:
        for algorithm in ALGORITHMS_FOR_TYPE.get(key_type, (key_type,)):
            if algorithm in available and algorithm not in first:
                first.append(algorithm)
    return first + [a for a in available if a not in first]


def check_host_key(
    settings: SSHSettings,
    key: object,
    known: Optional[KnownHosts] = None,
    remember: bool = False,
) -> None:
    """Accept ``key`` for the host of ``settings``, record it, or raise ``HostKeyError``.

    ``known``: the host's keys as already loaded (the handshake reads them to order the
    key algorithms); read here otherwise. ``remember``: an unknown key refused is
    remembered for ``recall_unknown`` (a connection made from here, not ``via=``).
    """
    name = settings.known_hosts_name
    if known is None:
        known = load_known_hosts(name, list(settings.known_hosts_files))
    key_type = key.get_name()  # type: ignore[attr-defined]
    fingerprint = key.fingerprint  # type: ignore[attr-defined]
    where = settings.describe()
    if any(key == bad for bad in known.revoked):
        raise HostKeyError(
            f"{where}: the host key {key_type} {fingerprint} is marked @revoked in "
            "known_hosts; refusing to connect"
        )
    if key_type in known.keys:
        if any(key == good for good in known.keys[key_type]):
            return
        raise HostKeyError(
            f"{where}: HOST KEY CHANGED for {name}: the server offers {key_type} {fingerprint}, "
            f"which differs from the key recorded at {known.sources[key_type]}. This can be a "
            "man-in-the-middle attack; nothing was sent. If the host was really reinstalled, "
            f"remove the old key (ssh-keygen -R '{name}') and connect again."
        )
    if known.known:
        raise HostKeyError(
            f"{where}: HOST KEY CHANGED for {name}: known_hosts lists key types "
            f"{', '.join(sorted(known.keys))} ({', '.join(sorted(known.sources.values()))}), "
            f"but the server offers only {key_type} {fingerprint}. Refusing; if the host was "
            f"really changed, remove the old keys (ssh-keygen -R '{name}') and connect again."
        )
    policy = settings.strict_host_key_checking
    if policy in ("yes", "ask"):
        if remember:
            _unknown_seen[route(settings)] = (key, time.monotonic())
        raise_unknown(settings, key)
    if not record_host_key(settings, key):
        return  # a parallel open recorded it (and said so)
    message = "recorded new host key for %s: %s %s"
    if policy == "no":
        message += " (StrictHostKeyChecking=no is treated as accept-new)"
    log.warning(message, name, key_type, fingerprint)


def recall_unknown(settings: SSHSettings) -> None:
    """Refuse at once, as before, a server whose key was refused as unknown lately, if
    known_hosts still lists nothing for it (otherwise the handshake checks it afresh)."""
    if settings.strict_host_key_checking not in ("yes", "ask"):
        return
    seen = _unknown_seen.get(route(settings))
    if seen is None:
        return
    key, when = seen
    if time.monotonic() - when > RECALL_SECONDS:
        _unknown_seen.pop(route(settings), None)
        return
    known = load_known_hosts(settings.known_hosts_name, list(settings.known_hosts_files))
    if not known.known and not known.revoked:
        raise_unknown(settings, key)


def route(settings: SSHSettings) -> Tuple[Optional[str], ...]:
    """The server as reached from here: its name, and the jump hosts or ProxyCommand on
    the way (one name behind two bastions can be two machines)."""
    hops: List[Optional[str]] = []
    hop: Optional[SSHSettings] = settings
    while hop is not None:
        hops += [hop.known_hosts_name, hop.proxy_command]
        hop = hop.jump
    return tuple(hops)


def raise_unknown(settings: SSHSettings, key: object) -> NoReturn:
    """Raise ``UnknownHostKey`` for ``key``: its fingerprint and how to accept it."""
    name = settings.known_hosts_name
    key_type = key.get_name()  # type: ignore[attr-defined]
    fingerprint = key.fingerprint  # type: ignore[attr-defined]
    where = settings.describe()
    target = settings.user_known_hosts_files[:1]
    raise UnknownHostKey(
        f"{where}: unknown host key for {name}: {key_type} {fingerprint}. Nothing was "
        "sent. If this fingerprint is right, accept it with -o StrictHostKeyChecking="
        "accept-new in the ssh= spec (or StrictHostKeyChecking accept-new in the ssh "
        "config; xnet run/sh/ping/shell: --accept-new, or in the inventory ssh_options: "
        "{StrictHostKeyChecking: accept-new}), which records it in "
        f"{target[0] if target else 'the UserKnownHostsFile'}; or add it there yourself "
        f"(ssh-keyscan -p {settings.port} {settings.hostname}).",
        name=name,
        key_type=key_type,
        fingerprint=fingerprint,
        askable=settings.strict_host_key_checking == "ask",
        settings=settings,
        key=key,
    )


def record_host_key(settings: SSHSettings, key: object) -> bool:
    """Add the key to the first user known_hosts file: once, atomically, under a lock.

    Returns False when the key was there already (another thread or process added it).

    Parallel ``accept-new`` opens of one new host (threads here, or other xnet processes)
    all find it unknown. Each takes the lock (``_locked``) and re-reads the file: the first
    adds the line, the others find the key and add nothing (a different key of that type
    meanwhile is refused as changed). The file is replaced whole (``_replace``), so a
    reader never sees half a line, and keeps its mode (0600 for a new file, not the umask's).
    """
    where = settings.describe()
    if not settings.user_known_hosts_files:
        raise HostKeyError(f"{where}: cannot accept a new host key: UserKnownHostsFile is none")
    shown = os.path.expanduser(settings.user_known_hosts_files[0])
    path = os.path.realpath(shown)  # a symlinked file is updated where it lives
    name = settings.known_hosts_name
    key_type = key.get_name()  # type: ignore[attr-defined]
    fingerprint = key.fingerprint  # type: ignore[attr-defined]
    written = hash_name(name) if settings.hash_known_hosts else name
    line = f"{written} {key_type} {key.get_base64()}\n"  # type: ignore[attr-defined]
    try:
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        with _locked(path):
            known = load_known_hosts(name, [path])
            _unknown_seen.pop(route(settings), None)
            if any(key == good for good in known.keys.get(key_type, [])):
                return False  # another thread or process recorded it meanwhile
            if known.known or any(key == bad for bad in known.revoked):
                raise HostKeyError(
                    f"{where}: HOST KEY CHANGED for {name}: while accepting {key_type} "
                    f"{fingerprint}, {shown} got other keys for it "
                    f"({', '.join(sorted(known.sources.values())) or '@revoked'}); refusing"
                )
            before: Optional[os.stat_result]
            try:
                with open(path, "rb") as handle:
                    old, before = handle.read(), os.fstat(handle.fileno())
            except FileNotFoundError:
                old, before = b"", None
            glue = b"\n" if old and not old.endswith(b"\n") else b""
            _replace(path, old + glue + line.encode(), before)
        return True
    except OSError as exc:
        raise HostKeyError(
            f"{where}: cannot record the host key in {shown}: {exc.strerror or exc}"
        ) from exc


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """Exclusive: this process's threads (a lock), other processes (flock on ``path.lock``).

    The lock file is separate because ``path`` itself is replaced by rename: a lock on the
    old inode would not stop a process that opens the new one. It is left in place (as
    removing it would race with a process about to lock it).
    """
    with _record_lock:
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


def _replace(path: str, data: bytes, old: Optional[os.stat_result]) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, rename it over ``path``.

    Mode (and, where we may, owner) of the old file are kept; a new file gets 0600.
    """
    import tempfile  # here: it loads shutil, bz2 and lzma, which only a key written needs

    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(prefix=".known_hosts.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), stat.S_IMODE(old.st_mode) if old else 0o600)
            if old and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.fchown(out.fileno(), old.st_uid, old.st_gid)
                except PermissionError:
                    pass  # not ours to give away; the mode still holds
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
